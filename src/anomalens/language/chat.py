"""A conversation about one inspected image. Each question is answered by the grounded composer; with a
language model configured, the model answers from the same findings (Myriad: the vision expert's map
guides it — as an overlay image for vision models, as text otherwise) and the guard checks it."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..data import to_uint8
from .composer import Answer, compose
from .corrections import ChatCorrection, confirmation, read_correction
from .errors import BackendError
from .findings import Findings
from .guard import GUARD_MODES, JUDGE_PROMPT, GuardReport, check, correct, parse_judgement
from .models import LanguageModel

SYSTEM_PROMPT = (
    "You are AnomaLens, an assistant for industrial visual inspection. A vision expert has inspected the "
    "product image; its findings below are facts. Answer the user's question in one or two sentences, using "
    "only these facts. Name places with the 3×3 grid words: top left, top, top right, left, center, right, "
    "bottom left, bottom, bottom right.\n\nFindings:\n{facts}"
)
IMAGE_SIDE = 512  # images sent to a vision model are downscaled to at most this many pixels a side


@dataclass
class ChatImages:
    """Pictures a vision model is shown with the first question: the query, its expert overlay, references."""

    query: np.ndarray | Image.Image  # H×W×3 (uint8, or float in [0, 1]) or a picture
    overlay: Image.Image | None = None
    references: list[np.ndarray] = field(default_factory=list)

    def message_parts(self) -> list[dict]:
        parts = [{"type": "text", "text": "The product image:"}, _image_part(self.query)]
        if self.overlay is not None:
            parts += [
                {"type": "text", "text": "The vision expert's anomaly map over it (red = anomalous, boxes = regions):"},
                _image_part(self.overlay),
            ]
        for i, reference in enumerate(self.references[:2], 1):
            parts += [{"type": "text", "text": f"Normal reference image {i}:"}, _image_part(reference)]
        return parts


@dataclass
class Turn:
    question: str
    answer: str  # what the user is shown
    backend: str
    grounded_answer: str
    model_answer: str | None = None
    guard: GuardReport | None = None
    model_error: str | None = None  # why the language model gave no answer (the grounded one is shown instead)
    correction: ChatCorrection | None = None  # what the person said the image is, when the question corrected it
    taught: dict | None = None  # the model version the correction taught (path, version, flags), set by its caller

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "answer": self.answer,
            "backend": self.backend,
            "grounded_answer": self.grounded_answer,
            "model_answer": self.model_answer,
            "guard": self.guard.to_dict() if self.guard else None,
            "model_error": self.model_error,
            "correction": self.correction.to_dict() if self.correction else None,
            "taught": self.taught,
        }


class ChatSession:
    """Multi-turn chat over one image's findings; keeps the history and which region is being discussed."""

    def __init__(
        self,
        findings: Findings,
        model: LanguageModel | None = None,
        *,
        guard: str = "correct",
        images: ChatImages | None = None,
    ):
        if guard not in GUARD_MODES:
            raise ValueError(f"unknown guard mode {guard!r}; choose one of {', '.join(GUARD_MODES)}")
        self.findings, self.model, self.guard_mode, self.images = findings, model, guard, images
        self.turns: list[Turn] = []
        self._focus: int | None = None  # the region under discussion, for "it" and "the other one"
        self._intents: list[str] | None = None

    @property
    def backend(self) -> str:
        return self.model.name if self.model else "grounded"

    def ask(self, question: str) -> Turn:
        question = question.strip()
        if not question:
            raise ValueError("empty question")
        if correction := read_correction(question, self.findings.type_names):  # said back, never asked of a model
            said = confirmation(correction)
            turn = Turn(question, said, "grounded", said, correction=correction)
        else:
            turn = self._answer(question)
        self.turns.append(turn)
        return turn

    def _answer(self, question: str) -> Turn:
        grounded = compose(question, self.findings, self._focus, self._intents)
        self._focus, self._intents = grounded.focus, grounded.intents
        if self.model is None:
            return Turn(question, grounded.text, "grounded", grounded.text)
        try:
            return self._model_turn(question, grounded)
        except BackendError as error:  # a model that fails or dies: the findings still answer
            return Turn(question, grounded.text, "grounded", grounded.text, model_error=str(error))

    def _model_turn(self, question: str, grounded: Answer) -> Turn:
        assert self.model is not None
        model_text = self.model.complete(self._messages(question))
        problems = check(model_text, grounded, self.findings) if self.guard_mode != "off" else []
        report = GuardReport(consistent=not problems, problems=[p.text for p in problems])
        answer = model_text
        if problems and self.guard_mode == "correct":
            answer = correct(model_text, problems, grounded, self.findings, report)
        elif problems and self.guard_mode == "judge":
            corrected = correct(model_text, problems, grounded, self.findings, report)
            answer = self._judge(corrected, model_text, report)
        return Turn(question, answer, self.backend, grounded.text, model_text, report)

    def _messages(self, question: str) -> list[dict]:
        """System prompt with the findings, the conversation so far, the new question; a vision model gets
        the pictures with the first question. The backend trims it to its context (models.fit_context)."""
        messages: list[dict] = [{"role": "system", "content": SYSTEM_PROMPT.format(facts=self.findings.as_text())}]
        for i, turn in enumerate(self.turns + [None]):
            text = turn.question if turn else question
            content = self._with_images(text) if i == 0 else text
            messages.append({"role": "user", "content": content})
            if turn:
                messages.append({"role": "assistant", "content": turn.answer})
        return messages

    def _with_images(self, text: str) -> str | list[dict]:
        if not (self.images and self.model is not None and self.model.vision):
            return text
        return self.images.message_parts() + [{"type": "text", "text": text}]

    def _judge(self, expert: str, model: str, report: GuardReport) -> str:
        """A vision model decides between the expert's (corrected) answer and its own first one; both are
        recorded."""
        prompt = JUDGE_PROMPT.format(expert=expert, model=model, problems="; ".join(report.problems))
        assert self.model is not None  # only a model's answer is judged
        reply = self.model.complete([{"role": "user", "content": self._with_images(prompt)}])
        decision = parse_judgement(reply)
        report.judge = {"decision": decision or "unclear", "reason": reply}
        if decision == "model":
            report.corrected = False
            return model
        return expert  # the expert's answer stands when the judge sides with it or is unclear

    def to_dict(self) -> dict:
        return {
            "image": self.findings.source,
            "backend": self.backend,
            "guard": self.guard_mode,
            "findings": self.findings.to_dict(),
            "turns": [t.to_dict() for t in self.turns],
        }


def _image_part(image: np.ndarray | Image.Image) -> dict:
    picture = image if isinstance(image, Image.Image) else Image.fromarray(to_uint8(image))
    picture = picture.convert("RGB")
    picture.thumbnail((IMAGE_SIDE, IMAGE_SIDE))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()},
    }
