"""The inspection service and its web chat page (`anomalens serve`)."""

from .app import create_app
from .uploads import Limits

__all__ = ["Limits", "create_app"]
