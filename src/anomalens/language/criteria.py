"""Normality criteria for a product class, written by a person (the GPT-4V study's prompts): what a
normal part looks like and which defects are known. One small YAML file per class:

    name: metal plate
    description: A flat stainless plate with four round holes, one in each corner; brushed surface.
    defects:
      - name: scratch
        description: a thin bright or dark line across the brushed grain
      - name: dent
        description: a small round depression that catches the light

Used by the language layer's prompts and by zero-shot prompt generation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml


class CriteriaError(ValueError):
    """A criteria file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class DefectType:
    name: str
    description: str = ""


@dataclass(frozen=True)
class Criteria:
    name: str
    description: str = ""
    defects: tuple[DefectType, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "defects": [{"name": d.name, "description": d.description} for d in self.defects],
        }


def load_criteria(path: str | Path) -> Criteria:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CriteriaError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CriteriaError(path, f"cannot read: {error}") from None
    except yaml.YAMLError as error:
        raise CriteriaError(path, f"not valid YAML: {error}") from None
    return parse_criteria(data, path)


def parse_criteria(data, source: str | Path = "criteria") -> Criteria:
    if not isinstance(data, dict):
        raise CriteriaError(source, "expected a mapping with 'name', 'description' and 'defects'")
    unknown = set(data) - {"name", "description", "defects"}
    if unknown:
        raise CriteriaError(source, f"unknown field(s): {', '.join(sorted(unknown))}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise CriteriaError(source, "'name' (the product class) is required and must be text")
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise CriteriaError(source, "'description' must be text")
    defects = []
    for i, item in enumerate(data.get("defects") or []):
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip():
            raise CriteriaError(source, f"defects[{i}] needs a 'name' (text)")
        if not isinstance(item.get("description", ""), str):
            raise CriteriaError(source, f"defects[{i}].description must be text")
        defects.append(DefectType(item["name"].strip(), item.get("description", "").strip()))
    return Criteria(name.strip(), description.strip(), tuple(defects))
