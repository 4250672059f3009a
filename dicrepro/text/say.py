"""Sentences, sections and the phrasing helper ``Say`` shared by the verbalizer (``describe``) and its
per-type builders (``describe_types``): one module below both, so neither imports the other."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from dicrepro.text import phrasings_en, phrasings_zh

STYLES = ("structural", "expert")


@dataclass
class Sentence:
    """One detail sentence and the node ids it talks about (used for per-element VQA answers)."""

    text: str
    ids: set[str] = field(default_factory=set)
    group: int | None = None  # index into diagram.groups when the sentence belongs to a group


@dataclass
class Section:
    """A partial view: a group (or natural unit) with its introduction and sentences."""

    title: str  # the group label or the unit's label, verbatim
    noun: str  # what the unit is ("phase", "subgraph", "decision"...), in the diagram's language
    text: str
    ids: set[str] = field(default_factory=set)


@dataclass
class Parts:
    """Everything describe() composes; vqa.py takes open-question reference answers from it."""

    global_: list[str]
    sections: list[Section]
    detail: list[Sentence]
    group_intros: dict[int, str]
    closing: str


class Say:
    """Phrasing helper bound to one language, one style and one rng."""

    def __init__(self, language: str, rng: random.Random, style: str = "structural"):
        if style not in STYLES:
            raise ValueError(f"unknown description style {style!r}; expected one of {STYLES}")
        self.lang = "zh" if language.startswith("zh") else "en"
        self.mod = phrasings_zh if self.lang == "zh" else phrasings_en
        self.rng = rng
        self.expert = style == "expert"

    def __call__(self, key: str, **kw) -> str:
        return self.rng.choice(self.mod.P[key]).format(**kw)

    def word(self, key: str) -> str:
        return self.mod.WORDS[key]

    def rel(self, kind: str) -> str:
        return self.mod.RELATIONS.get(kind, self.mod.RELATIONS["default"])

    def type_info(self, diagram_type: str) -> tuple[str, str, str, str, str]:
        return self.mod.TYPES.get(diagram_type, self.mod.GENERIC_TYPE)

    def join(self, items: list[str]) -> str:
        """'A, B and C' / 'A、B和C'."""
        items = [str(i) for i in items]
        if not items:
            return self.word("none")
        if len(items) == 1:
            return items[0]
        sep = "、" if self.lang == "zh" else ", "
        conj = "和" if self.lang == "zh" else " and "
        return sep.join(items[:-1]) + conj + items[-1]

    def text(self, sentences: list[str]) -> str:
        return ("" if self.lang == "zh" else " ").join(s for s in sentences if s)
