"""The chat part of the HTTP service: a question about an inspection, answered from its findings (kept in
memory, or rebuilt from the records after a restart); a correction said in the chat is kept and taught as the
page's buttons are."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from .context import ServiceContext
from .errors import ApiError
from .questions import Question
from .records import corrected_in_chat


class ChatRequest(BaseModel):
    inspection_id: str = Field(description="From a /v1/inspect result.")
    question: Question


def chat_routes(ctx: ServiceContext) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/chat")
    def chat(request: ChatRequest) -> dict:
        session = ctx.conversation(request.inspection_id)
        if session is None:
            raise ApiError(404, f"unknown or expired inspection {request.inspection_id!r}; inspect the image again")
        turn = ctx.answered(session, request.question)
        if turn.correction is not None:  # "this one is fine", "it's a crack at the top": kept, and taught
            said = corrected_in_chat(
                ctx.keep_feedback, ctx.records, request.inspection_id, turn, session.findings.image_size
            )
            turn.answer = f"{turn.answer} {said}"
        if ctx.records is not None:
            ctx.records.add_chat_turn(request.inspection_id, len(session.turns), turn.to_dict())
        return {"inspection_id": request.inspection_id, **turn.to_dict(), "turn": len(session.turns)}

    return router
