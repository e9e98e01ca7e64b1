"""The API's own errors: a status and a message for the client (answered as JSON `{"error": message, …}`)."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra
