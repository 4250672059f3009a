"""The faithfulness gate: does a description say what the diagram holds, all of it, and nothing else?

``check_faithful(diagram, text)`` compares a text with the diagram's graph (never with pixels):

- **missing**: every label a description must carry (``describe.diagram_labels``: nodes, participants,
  messages, transitions, groups, class members, ER fields) is present. Matching is on normalised text:
  Unicode NFKC (full-width -> half-width), case-folded, punctuation and symbols as spaces, whitespace
  collapsed, no spaces around Chinese characters. Latin labels match on word boundaries ("AMF" is not
  found in "AMFs"), and a label only counts where it stands on its own, not inside a longer label of
  the diagram ("AMF" inside "Upgrade AMF" does not prove "AMF" was described).
- **invented**: domain-lexicon entries (labels the knowledge base can produce) that appear in the text
  but nowhere in the diagram (title, labels, attributes, meta). Ordinary words are not labels: the
  default lexicon leaves out single plain words (see :func:`candidate_labels`).
- **order**: sequence messages (and any edges with an explicit ``order``, and timeline periods) are
  mentioned in their logical order, i.e. the text holds them as an in-order subsequence. Summaries that
  name a later message early do not fail this, a swapped pair of messages does.
- **language**: a ``zh`` diagram is described in Chinese, an ``en`` one in English.

The gate is pure and deterministic; it serves the LLM rewriting loop (``dicrepro.text.rewrite``) and users
who want to audit any (graph, text) pair.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from dicrepro.diagrams.graph import Diagram
from dicrepro.diagrams.knowledge import lexicon
from dicrepro.diagrams.sample_realism import vocabulary
from dicrepro.text import phrasings_en, phrasings_zh
from dicrepro.text.describe import diagram_labels, display_names

log = logging.getLogger(__name__)

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_LATIN = "0-9a-z\u00c0-\u024f"
_SPACE_NEAR_HAN = re.compile(rf"(?<=[{_HAN}]) +| +(?=[{_HAN}])")


@dataclass
class GateResult:
    """The verdict on one text. ``reasons`` are short sentences, fit to feed back to an LLM."""

    ok: bool
    missing: list[str] = field(default_factory=list)
    invented: list[str] = field(default_factory=list)
    order_ok: bool = True
    reasons: list[str] = field(default_factory=list)


def normalize(text: str) -> str:
    """Matching form of a text or label: NFKC, case-folded, punctuation as spaces, tidy spacing."""
    s = unicodedata.normalize("NFKC", text).casefold()
    # Punctuation (P*) and symbols (S*) become spaces: "“RRC_IDLE”" and "RRC IDLE" read the same.
    s = "".join(" " if unicodedata.category(c)[0] in "PSZC" else c for c in s)
    s = " ".join(s.split())
    return _SPACE_NEAR_HAN.sub("", s)


@functools.lru_cache(maxsize=65536)
def _pattern(norm_label: str) -> re.Pattern:
    # Boundaries only on a Latin/digit edge: Chinese has no spaces, so "UE已鉴权" still holds "UE".
    head = rf"(?<![{_LATIN}])" if re.match(rf"[{_LATIN}]", norm_label) else ""
    tail = rf"(?![{_LATIN}])" if re.search(rf"[{_LATIN}]$", norm_label) else ""
    return re.compile(head + re.escape(norm_label) + tail)


def _spans(norm_label: str, norm_text: str) -> list[tuple[int, int]]:
    if not norm_label or norm_label not in norm_text:  # cheap pre-filter before the regex
        return []
    return [m.span() for m in _pattern(norm_label).finditer(norm_text)]


def _contains(norm_haystack: str, norm_needle: str) -> bool:
    return bool(_spans(norm_needle, norm_haystack))


def diagram_strings(diagram: Diagram) -> list[str]:
    """Every string the diagram holds (title, topic, area, labels, attributes, meta): what a text may name."""

    out: list[str] = [diagram.title, diagram.topic, diagram.area, *display_names(diagram)]

    def walk(x) -> None:
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, (int, float)) and not isinstance(x, bool):
            out.append(str(x))
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)

    for n in diagram.nodes:
        out.append(n.label)
        walk(n.attrs)
    for e in diagram.edges:
        out.append(e.label)
        walk(e.attrs)
    for g in diagram.groups:
        out.append(g.label)
    walk(diagram.meta)
    return [s for s in dict.fromkeys(out) if s.strip()]


def ordered_labels(diagram: Diagram) -> list[str]:
    """Labels whose order a description must keep: sequence messages, explicitly ordered edges,
    timeline periods. Empty for types whose edges have no meaningful order (flowchart branches)."""
    if diagram.diagram_type == "sequence":
        return [e.label for e in diagram.ordered_edges() if e.label.strip()]
    if diagram.diagram_type == "timeline":
        return [g.label for g in diagram.groups if g.label.strip()]
    if diagram.edges and all(e.order is not None for e in diagram.edges):
        return [e.label for e in diagram.ordered_edges() if e.label.strip()]
    return []


def detail_labels(diagram: Diagram) -> list[str]:
    """The labels a detailed view must carry: ``diagram_labels`` without group names (phases, sections),
    which belong to the partial view, unless a node or edge carries the same label."""
    own = {n.label for n in diagram.nodes} | {e.label for e in diagram.edges}
    groups = {g.label for g in diagram.groups} - own
    return [lab for lab in diagram_labels(diagram) if lab not in groups]


@functools.lru_cache(maxsize=1)
def _phrasing_words() -> str:
    """All words of the verbalizer's phrasing tables, normalised: connective language, never a label."""

    parts: list[str] = []
    for mod in (phrasings_en, phrasings_zh):
        for table in ("TYPES", "RELATIONS", "P", "WORDS", "GENERIC_TYPE"):
            obj = getattr(mod, table, None)
            stack = [obj]
            while stack:
                x = stack.pop()
                if isinstance(x, str):
                    parts.append(re.sub(r"\{[^}]*\}", " ", x))
                elif isinstance(x, dict):
                    stack.extend(x.values())
                elif isinstance(x, (list, tuple)):
                    stack.extend(x)
    return normalize(" | ".join(parts))


def candidate_labels(entries: Iterable[str]) -> list[str]:
    """Lexicon entries specific enough that finding one in a text means a label was named.

    Kept: acronyms and mixed case ("AMF", "gNB"), entries with digits or underscores ("N3",
    "RRC_IDLE"), multi-word entries ("Registration Request") and Chinese entries of three or more
    characters. Left out: single plain words ("Router", "Start", "开始"), which prose uses freely, and
    anything the verbalizer's own phrasing tables say.
    """
    stop = _phrasing_words()
    out = []
    for raw in dict.fromkeys(entries):
        raw = str(raw).strip()
        norm = normalize(raw)
        if not norm or _contains(stop, norm):
            continue
        if re.fullmatch(r"[\d\s.,:%/-]+", norm):  # bare numbers and dates: prose states counts freely
            continue
        han = len(re.findall(f"[{_HAN}]", norm))
        if han:
            keep = len(norm) >= 3
        else:
            word = raw.strip()
            keep = (len(norm.split()) >= 2 or any(c.isdigit() for c in word) or "_" in word
                    or any(c.isupper() for c in word[1:]))
        if keep:
            out.append(raw)
    return out


@functools.lru_cache(maxsize=1)
def default_lexicon() -> tuple[str, ...]:
    """Candidate labels from the knowledge base (``dicrepro.diagrams.knowledge.lexicon()``) and the texts the
    realism tables add (conditions, notes, qualifiers: ``sample_realism.vocabulary()``), filtered."""
    return tuple(candidate_labels([*sorted(lexicon()), *vocabulary()]))


@functools.lru_cache(maxsize=8)
def _normalized(entries: tuple) -> tuple[tuple[str, str], ...]:
    # A lexicon has thousands of entries: normalise them once, not once per text.
    pairs = ((str(e), normalize(str(e))) for e in entries)
    return tuple((e, n) for e, n in pairs if n)


def _standalone(norm_label: str, norm_text: str, longer: list[str]) -> list[int]:
    """Start positions of the label that are not inside an occurrence of a longer diagram label."""
    spans = _spans(norm_label, norm_text)
    if not spans:
        return []
    cover = [sp for lg in longer for sp in _spans(lg, norm_text)]
    return [s for s, e in spans if not any(cs <= s and e <= ce for cs, ce in cover)]


def _language_reason(diagram: Diagram, norm_text: str, allowed: list[str]) -> str | None:
    prose = norm_text
    for s in sorted(allowed, key=len, reverse=True):  # the labels may be in either language
        prose = _pattern(s).sub(" ", prose) if s and s in prose else prose
    han = len(re.findall(f"[{_HAN}]", prose))
    latin = len(re.findall(r"[a-z]", prose))
    if diagram.language.startswith("zh"):
        if han < 0.5 * (han + latin) or han == 0:
            return "the diagram is Chinese (zh) but the text is not written in Chinese"
    elif han > max(2, 0.1 * (han + latin)):
        return "the diagram is English (en) but the text is written in Chinese"
    return None


def check_faithful(diagram: Diagram, text: str, *, lexicon: Iterable[str] | None = None,
                   require_all: bool = True, check_order: bool = True,
                   required: Iterable[str] | None = None) -> GateResult:
    """Check ``text`` against ``diagram``: labels present, none invented, order kept, right language.

    ``lexicon``: labels to look for as inventions (default: :func:`default_lexicon`; an explicit list is
    used as given). ``require_all=False`` skips the missing-label and order checks, for partial views
    (a global or per-phase summary need not name everything, but must not invent). ``required``: the
    labels that must be present (default ``describe.diagram_labels``; see :func:`detail_labels`).
    """
    norm_text = normalize(text or "")
    if not norm_text:
        must = list(required) if required is not None else diagram_labels(diagram)
        return GateResult(False, must if require_all else [], [], not (require_all and check_order),
                          ["the text is empty"])
    reasons: list[str] = []
    labels = list(dict.fromkeys(required)) if required is not None else diagram_labels(diagram)
    norm_labels = {lab: normalize(lab) for lab in labels}

    allowed = [normalize(s) for s in diagram_strings(diagram)]
    allowed = [s for s in dict.fromkeys(allowed) if s]

    def positions(nl: str) -> list[int]:
        # Where the label stands on its own: not inside a longer string of the diagram that holds it.
        longer = [o for o in allowed if len(o) > len(nl) and _contains(o, nl)]
        return _standalone(nl, norm_text, longer)

    missing: list[str] = []
    if require_all:
        missing = [lab for lab, nl in norm_labels.items() if nl and not positions(nl)]
        if missing:
            reasons.append("labels missing (each must appear verbatim): " + "; ".join(missing))
    invented: list[str] = []
    for entry, ne in _normalized(default_lexicon() if lexicon is None else tuple(lexicon)):
        if ne not in norm_text or any(_contains(a, ne) for a in allowed):
            continue
        if _spans(ne, norm_text):
            invented.append(entry)
    # "SMF selection" and "SMF" both invented: report the longest only, it explains the other.
    # Entries that differ only in case or punctuation ("Retry up to 3 times", "retry up to 3 times") are one
    # invention: compared by their normal form (they used to discard each other and none was reported).
    invented = [x for x in invented if not any(normalize(y) != normalize(x) and _contains(normalize(y), normalize(x))
                                               for y in invented)]
    invented = list({normalize(x): x for x in reversed(invented)}.values())[::-1]
    if invented:
        reasons.append("labels invented (not in the diagram): " + "; ".join(invented))

    order_ok = True
    if require_all and check_order:
        pos = -1
        seq = ordered_labels(diagram)
        for i, lab in enumerate(seq):
            nl = normalize(lab)
            if not nl or lab in missing or lab not in norm_labels:  # absent: reported as missing
                continue
            nxt = [p for p in positions(nl) if p > pos]
            if not nxt:
                order_ok = False
                prev = seq[i - 1] if i else ""
                reasons.append(f"order not kept: {lab!r} (#{i + 1}) must be described after {prev!r} (#{i})")
                break
            pos = nxt[0]

    lang = _language_reason(diagram, norm_text, allowed)
    if lang:
        reasons.append(lang)
    return GateResult(not reasons, missing, invented, order_ok, reasons)
