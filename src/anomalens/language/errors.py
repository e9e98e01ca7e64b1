"""The language layer's one error: a backend that cannot be used or reached."""


class BackendError(RuntimeError):
    """A language backend that cannot be used or reached; the message says what to do."""
