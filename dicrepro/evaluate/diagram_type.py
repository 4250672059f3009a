"""Diagram-type accuracy: does a caption name the right kind of diagram?

The first diagram-type name a caption mentions (English or Chinese; the verbalizer's names from
``dicrepro.text.phrasings_en/zh.TYPES`` plus common synonyms such as "bar chart", "mindmap", "序列图",
"脑图") is read as the type the model saw. It is the one part of a caption that a model cannot get from
the description template alone: a model that ignores the image names the wrong type about as often as
chance allows, whatever its BLEU.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from dicrepro.text.phrasings_en import TYPES as TYPES_EN
from dicrepro.text.phrasings_zh import TYPES as TYPES_ZH

# Synonyms a user's model or an LLM rewrite may use besides the verbalizer's names (lower case for en).
_SYNONYMS_EN = {
    "flowchart": ["flow chart", "flow diagram", "process flow", "process diagram", "activity diagram"],
    "sequence": ["sequence chart", "message sequence chart", "message sequence diagram", "ladder diagram"],
    "state": ["state machine", "state chart", "statechart", "state transition diagram"],
    "class": ["uml class diagram"],
    "er": ["er diagram", "e-r diagram", "erd", "entity relationship diagram", "entity-relationship model"],
    "gantt": ["gantt diagram", "gantt"],
    "pie": ["pie graph", "pie diagram", "donut chart"],
    "mindmap": ["mindmap", "mind-map", "mind map"],
    "timeline": ["time line", "timeline chart"],
    "block": ["block chart", "function block diagram"],
    "architecture": ["architecture chart", "system architecture", "network diagram", "topology diagram"],
    "xychart": ["xy chart", "x-y chart", "bar chart", "line chart", "bar graph", "line graph", "column chart"],
    "quadrant": ["quadrant diagram", "2x2 matrix"],
    "requirement": ["requirements diagram"],
    "packet": ["packet format", "packet header diagram", "packet structure diagram", "header format"],
}
_SYNONYMS_ZH = {
    "flowchart": ["流程示意图", "流程框图", "活动图"],
    "sequence": ["序列图", "顺序图", "信令流程图", "消息时序图"],
    "state": ["状态机", "状态转换图", "状态迁移图"],
    "class": ["UML类图"],
    "er": ["ER图", "E-R图", "实体-关系图", "实体联系图"],
    "gantt": ["甘特图", "横道图"],
    "pie": ["饼状图", "扇形图"],
    "mindmap": ["脑图", "心智图"],
    "timeline": ["时间轴", "时间线图"],
    "block": ["方框图", "模块图", "功能框图"],
    "architecture": ["架构示意图", "体系结构图", "拓扑图", "组网图"],
    "xychart": ["XY图", "柱状图", "折线图", "条形图"],
    "quadrant": ["四象限图"],
    "requirement": ["需求关系图"],
    "packet": ["报文结构图", "报文格式图", "包结构图", "帧结构图"],
}


def _names() -> list[tuple[str, str]]:
    """(name, type) pairs; longer names first so that "state diagram" wins over "state chart"'s prefix."""
    pairs = set()
    for t, row in TYPES_EN.items():  # the name with its article ("an entity-relationship diagram") and bare
        pairs.update({(re.sub(r"^(an?|the) ", "", row[0].lower()), t), (row[1].lower(), t)})
        pairs.update((s.lower(), t) for s in _SYNONYMS_EN.get(t, []))
    for t, row in TYPES_ZH.items():
        pairs.update({(re.sub(r"^一[张条幅个]", "", row[0].lower()), t), (row[1].lower(), t)})
        pairs.update((s.lower(), t) for s in _SYNONYMS_ZH.get(t, []))
    return sorted(pairs, key=lambda p: (-len(p[0]), p[0]))


_NAMES = _names()
# English names must stand as words ("classes" is not "class diagram"'s problem, but "erd" inside
# "ordered" is); Chinese names have no word boundaries to check.
_PATTERN = re.compile("|".join(
    (rf"(?<![a-z0-9]){re.escape(n)}(?![a-z0-9])" if n.isascii() else re.escape(n)) for n, _ in _NAMES))
_TYPE_OF = dict(_NAMES)
_QUOTED = re.compile(r'"[^"\n]*"|“[^”\n]*”|「[^」\n]*」')
KNOWN_TYPES = tuple(TYPES_EN)


def caption_type(text: str) -> str | None:
    """The diagram type named first in ``text`` (a key of ``phrasings_en.TYPES``), or None if none is."""
    # Quoted text is a label (a title such as "NR RRC state machine"), not what the caption says the
    # diagram is; an unclosed quote (a caption cut off) keeps its text. A model's stray quotes can pair up
    # around the caption's own words (' " is a block diagram named "X" ...'), so when nothing is left
    # outside quotes the whole text is read.
    low = (text or "").lower()
    m = _PATTERN.search(_QUOTED.sub(" ", low)) or _PATTERN.search(low)
    return _TYPE_OF[m.group(0)] if m else None


def type_marks(types: list[str], texts: list[str]) -> list[bool | None]:
    """Per caption: True when it names ``types[i]`` first, False when it names another type or none, None
    when the reference type is not one the reader knows (such rows are left out of the accuracy)."""
    if len(types) != len(texts):
        raise ValueError(f"{len(types)} diagram types but {len(texts)} captions")
    return [None if t not in _TYPE_OF.values() else caption_type(x) == t for t, x in zip(types, texts)]


def type_accuracy(types: Iterable[str], texts: Iterable[str]) -> dict:
    """``accuracy`` (share of captions naming the right type first), ``n`` (captions of a known type),
    ``unnamed`` (share naming no type at all) and ``chance`` (1 / number of distinct types in the set)."""
    types, texts = list(types), list(texts)
    marks = type_marks(types, texts)
    known = [(t, x, m) for t, x, m in zip(types, texts, marks) if m is not None]
    n = len(known)
    if not n:
        return {"accuracy": float("nan"), "n": 0, "unnamed": float("nan"), "chance": float("nan")}
    return {"accuracy": sum(m for _, _, m in known) / n, "n": n,
            "unnamed": sum(caption_type(x) is None for _, x, _ in known) / n,
            "chance": 1 / len({t for t, _, _ in known})}
