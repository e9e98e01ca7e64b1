"""What every route of the service shares: the model store, the inspection service, the conversations kept for
chat, the records, the upload limits and the one lock that lets the language model answer one question at a
time (llama.cpp contexts are not thread-safe). Built once by `create_app`, handed to each resource's router."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import UploadFile

from ..language import LanguageModel
from ..service import Conversations, InspectionService, ModelStore, SeriesChats
from .errors import ApiError
from .records import FeedbackKeeper
from .uploads import Limits

if TYPE_CHECKING:
    from ..records import RecordStore


@dataclass
class ServiceContext:
    store: ModelStore
    service: InspectionService
    sessions: Conversations  # inspections kept for chat, bounded in count and in picture bytes
    series_chats: SeriesChats  # series findings kept for chat
    keep_feedback: FeedbackKeeper  # the API's, the page's and the chat's corrections
    records: RecordStore | None
    limits: Limits
    language_model: LanguageModel | None
    guard: str
    model_lock: threading.Lock = field(default_factory=threading.Lock)

    def uploads(self, items: list[UploadFile] | None) -> list[tuple[str, bytes]]:
        """The uploaded files' names and bytes, each read to one byte past the limit (so a larger one is told)."""
        items = items or []
        if len(items) > self.limits.max_files:
            raise ApiError(413, f"too many files ({len(items)}; the limit is {self.limits.max_files})")
        return [(item.filename or "", item.file.read(self.limits.max_file_bytes + 1)) for item in items]

    def answered(self, session, question: str):
        """A chat turn, one language-model call at a time; a model that fails leaves the findings' answer and
        says why (the turn's model_error)."""
        with self.model_lock:
            return session.ask(question)

    def conversation(self, inspection_id: str):
        """The chat about an inspection: kept in memory, else rebuilt from its record (after a restart)."""
        session = self.sessions.get(inspection_id)
        if session is None and self.records is not None:
            from ..records.chats import restored_session

            recorded = self.records.get(inspection_id)
            session = restored_session(recorded, self.language_model, self.guard) if recorded else None
            if session is not None:
                self.sessions.add(inspection_id, session)
        return session
