"""Text prompts for zero-shot inspection.

Two layers, as in WinCLIP / AnomalyGPT and ALFA:

* a *prompt ensemble*: state words ("flawless {}", "{} with defect", …) with the class name filled in, each
  written into many template sentences ("a cropped photo of the {}.", …); a phrase's embedding is the
  average of its sentences' normalised embeddings;
* *descriptive prompts* for the class (ALFA): what a good part looks like and which defects it may have,
  from the known defects of the class, from a language model when one is given (`writer`), else from a
  curated offline library of defect vocabulary.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

NORMAL_STATES = (
    "{}",
    "flawless {}",
    "perfect {}",
    "unblemished {}",
    "{} without flaw",
    "{} without defect",
    "{} without damage",
)
ANOMALOUS_STATES = ("damaged {}", "broken {}", "{} with flaw", "{} with defect", "{} with damage")

TEMPLATES = (
    "a cropped photo of the {}.",
    "a cropped photo of a {}.",
    "a close-up photo of a {}.",
    "a close-up photo of the {}.",
    "a bright photo of a {}.",
    "a dark photo of the {}.",
    "a photo of a {}.",
    "a photo of the {}.",
    "a photo of a small {}.",
    "a photo of a large {}.",
    "a photo of a {} for visual inspection.",
    "a photo of the {} for anomaly detection.",
)

# Offline stand-in for a language model: what a good part looks like, and defect vocabulary grouped by how
# defects arise. Each entry reads after "<class> with …".
NORMAL_DESCRIPTIONS = (
    "{} with a clean surface",
    "{} with a uniform texture",
    "intact {}",
    "{} in good condition",
    "well-made {}",
)
DEFECT_LIBRARY: dict[str, tuple[str, ...]] = {
    "surface wear": ("a scratch", "scratches", "a scuff mark", "abrasion"),
    "cracks and breaks": ("a crack", "a fracture", "a chipped edge", "a broken corner"),
    "deformation": ("a dent", "a bend", "a warped surface", "a bulge"),
    "contamination": ("a stain", "dirt", "a foreign particle", "discoloration", "rust", "an oil spot"),
    "holes and cuts": ("a hole", "a pinhole", "a cut", "a puncture"),
    "missing or extra material": ("a missing part", "a missing piece", "excess material", "a burr"),
    "misalignment": ("a misaligned part", "a shifted component", "a twisted part"),
    "texture faults": ("an irregular texture", "a bubble", "a frayed thread", "a rough patch"),
}

Writer = Callable[[str], str]  # a language model: prompt text in, completion text out
MAX_WRITTEN = 12  # descriptions kept per state from a language model


@dataclass(frozen=True)
class Prompts:
    """Phrases for each state (class name filled in); `sentences` writes one into every template."""

    normal: tuple[str, ...]
    anomalous: tuple[str, ...]

    @staticmethod
    def sentences(phrase: str) -> list[str]:
        return [template.format(phrase) for template in TEMPLATES]


def object_name(class_name: str | None) -> str:
    """The class as words (metal_plate → metal plate); "object" when it is unknown."""
    name = " ".join((class_name or "").replace("_", " ").replace("-", " ").split())
    return name or "object"


def generate_prompts(class_name: str | None, defects: Sequence[str] = (), writer: Writer | None = None) -> Prompts:
    """State-word phrases, the known `defects` ("scratch", "a crack along the weld", …), and descriptive
    phrases: from `writer` when given (a state it writes nothing usable for falls back), else from the
    offline library."""
    name = object_name(class_name)
    written = _ask_writer(writer, name, defects) if writer is not None else ([], [])
    normal = [s.format(name) for s in NORMAL_STATES] + (written[0] or [d.format(name) for d in NORMAL_DESCRIPTIONS])
    library = [f"{name} with {d}" for group in DEFECT_LIBRARY.values() for d in group]
    anomalous = (
        [s.format(name) for s in ANOMALOUS_STATES]
        + [f"{name} with {_clean(d)}" for d in defects]
        + (written[1] or library)
    )
    return Prompts(tuple(dict.fromkeys(normal)), tuple(dict.fromkeys(anomalous)))


def writer_request(name: str, defects: Sequence[str]) -> str:
    """What the language model is asked: short visual descriptions, one per line, marked by state."""
    known = f" Known defect types: {', '.join(defects)}." if defects else ""
    return (
        f"Describe how a {name} looks in a close-up industrial inspection photo.{known} Write up to "
        f"{MAX_WRITTEN} short phrases per state, one per line, each starting with 'normal:' for a defect-free "
        f"{name} or 'anomalous:' for a defective one, and each naming the {name}, e.g. "
        f"'anomalous: {name} with a deep scratch'."
    )


_LINE = re.compile(r"^[\W\d_]*(normal|anomalous|defective|defect)\s*[:\-–]\s*(.+)$", re.IGNORECASE)


def _ask_writer(writer: Writer, name: str, defects: Sequence[str]) -> tuple[list[str], list[str]]:
    """(normal, anomalous) phrases parsed from the model's reply; lines that follow no format are ignored."""
    normal: list[str] = []
    anomalous: list[str] = []
    for line in writer(writer_request(name, defects)).splitlines():
        match = _LINE.match(line.strip())
        if not match:
            continue
        phrase = _clean(match.group(2))
        if phrase:
            (normal if match.group(1).lower() == "normal" else anomalous).append(phrase)
    return normal[:MAX_WRITTEN], anomalous[:MAX_WRITTEN]


def _clean(phrase: str) -> str:
    """One lower-case phrase with no quotes, trailing full stop or leading article (templates add their own)."""
    phrase = " ".join(phrase.strip().strip("\"'").rstrip(".").split()).lower()
    return re.sub(r"^(a|an|the)\s+", "", phrase)
