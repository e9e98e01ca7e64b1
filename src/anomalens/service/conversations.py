"""Conversations kept for follow-up questions, bounded in bytes, not only in count: each holds display-size
pictures (at most DISPLAY_SIDE a side), and the oldest are forgotten first when either bound is passed."""

from __future__ import annotations

import threading
from collections import OrderedDict

from ..language import ChatSession, LanguageModel
from ..series import SeriesResult
from ..series.answers import SeriesChat, series_findings

MAX_CONVERSATIONS = 256
MAX_BYTES = 128 * 2**20  # pictures kept for conversations, all together
MAX_SERIES_CHATS = 256  # series findings kept for chat (oldest dropped)


def picture_bytes(session: ChatSession) -> int:
    """The memory a conversation's pictures hold."""
    images = session.images
    if images is None:
        return 0
    pictures = [images.query, images.overlay, *images.references]
    return sum(p.nbytes if hasattr(p, "nbytes") else len(p.tobytes()) for p in pictures if p is not None)


class Conversations:
    def __init__(self, max_count: int = MAX_CONVERSATIONS, max_bytes: int = MAX_BYTES):
        self.max_count, self.max_bytes = max_count, max_bytes
        self._sessions: OrderedDict[str, tuple[ChatSession, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def add(self, key: str, session: ChatSession) -> None:
        size = picture_bytes(session)
        with self._lock:
            self._sessions[key] = (session, size)
            self._bytes += size
            while len(self._sessions) > self.max_count or (self._bytes > self.max_bytes and len(self._sessions) > 1):
                _, (_, freed) = self._sessions.popitem(last=False)
                self._bytes -= freed

    def get(self, key: str) -> ChatSession | None:
        with self._lock:
            entry = self._sessions.get(key)
            return entry[0] if entry else None

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._sessions)


class SeriesChats:
    """Chats about inspected series, the oldest dropped beyond `max_kept`; answered by the service's language
    model (guarded) when it has one, else by the grounded composer."""

    def __init__(self, model: LanguageModel | None = None, max_kept: int = MAX_SERIES_CHATS):
        self.model, self.max_kept = model, max_kept
        self._kept: OrderedDict[str, SeriesChat] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: str, result: SeriesResult) -> SeriesChat:
        chat = SeriesChat(series_findings(result, result.reference_points), self.model)
        with self._lock:
            self._kept[key] = chat
            while len(self._kept) > self.max_kept:
                self._kept.popitem(last=False)
        return chat

    def get(self, key: str) -> SeriesChat | None:
        with self._lock:
            return self._kept.get(key)
