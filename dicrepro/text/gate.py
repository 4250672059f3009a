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
from itertools import chain

from dicrepro.diagrams.graph import Diagram
from dicrepro.diagrams.knowledge import lexicon
from dicrepro.diagrams.sample_realism import vocabulary
from dicrepro.text import phrasings_en, phrasings_zh
from dicrepro.text.describe import diagram_labels, display_names
from dicrepro.text.han import HAN, HAN_CHAR

log = logging.getLogger(__name__)

_LATIN = "0-9a-z\u00c0-\u024f"
_SPACE_NEAR_HAN = re.compile(rf"(?<=[{HAN}]) +| +(?=[{HAN}])")


@dataclass
class GateResult:
    """The verdict on one text. ``reasons`` are short sentences, fit to feed back to an LLM."""

    ok: bool
    missing: list[str] = field(default_factory=list)
    invented: list[str] = field(default_factory=list)
    order_ok: bool = True
    reasons: list[str] = field(default_factory=list)


class _SpaceOutTable(dict):
    """``str.translate`` table: punctuation (P*), symbols (S*), separators (Z*) and controls (C*) become a
    space, every other character stays; each character's category is looked up once per process."""

    def __missing__(self, code: int) -> str:
        c = chr(code)
        out = self[code] = " " if unicodedata.category(c)[0] in "PSZC" else c
        return out


_SPACE_OUT = _SpaceOutTable()


def normalize(text: str) -> str:
    """Matching form of a text or label: NFKC, case-folded, punctuation as spaces, tidy spacing."""
    s = unicodedata.normalize("NFKC", text).casefold()
    # Punctuation (P*) and symbols (S*) become spaces: "“RRC_IDLE”" and "RRC IDLE" read the same.
    # (One C-level translate instead of a category lookup per character: texts are scored by the thousand.)
    s = s.translate(_SPACE_OUT)
    s = " ".join(s.split())
    return _SPACE_NEAR_HAN.sub("", s) if HAN_CHAR.search(s) else s


@functools.lru_cache(maxsize=65536)
def _pattern(norm_label: str) -> re.Pattern:
    # Boundaries only on a Latin/digit edge: Chinese has no spaces, so "UE已鉴权" still holds "UE".
    head = rf"(?<![{_LATIN}])" if re.match(rf"[{_LATIN}]", norm_label) else ""
    tail = rf"(?![{_LATIN}])" if re.search(rf"[{_LATIN}]$", norm_label) else ""
    return re.compile(head + re.escape(norm_label) + tail)


def _latin(c: str) -> bool:
    return "0" <= c <= "9" or "a" <= c <= "z" or "\u00c0" <= c <= "\u024f"  # the class _LATIN


def _spans(norm_label: str, norm_text: str) -> list[tuple[int, int]]:
    """Where ``_pattern(norm_label)`` matches (left to right, not overlapping), found with ``str.find``
    and a look at the character on each side: no regex to compile for each of thousands of labels."""
    if not norm_label or norm_label not in norm_text:
        return []
    n, end = len(norm_label), len(norm_text)
    head, tail = _latin(norm_label[0]), _latin(norm_label[-1])
    out = []
    i = norm_text.find(norm_label)
    while i >= 0:
        if (head and i > 0 and _latin(norm_text[i - 1])) or (tail and i + n < end and _latin(norm_text[i + n])):
            i = norm_text.find(norm_label, i + 1)
        else:
            out.append((i, i + n))
            i = norm_text.find(norm_label, i + n)
    return out


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
        han = len(HAN_CHAR.findall(norm))
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


_LATIN_RUN = re.compile(rf"[{_LATIN}]+")
_TWO_WORDS = re.compile(rf"([{_LATIN}]+) ([{_LATIN}]+)")  # an entry's first two words
_WORD_PAIRS = re.compile(rf"(?<![{_LATIN}])([{_LATIN}]+) (?=([{_LATIN}]+))")  # a text's words side by side
_LATIN_TEXT = re.compile(rf"[{_LATIN}]+(?: [{_LATIN}]+)*")


@functools.lru_cache(maxsize=8)
def _build_lexicon_index(entries: tuple):
    """(entries normalised, positions by first words, positions by first two characters, first characters
    of those). An entry that starts with a Latin letter or digit is named only from the start of a word,
    and then that word *is* its own first word (the match ends where the entry's first word does), and
    the text's next word its second, when the entry has one after a space; any other entry (Chinese) is
    looked up by its first two characters (a one-character entry: its character)."""
    pairs = _normalized(entries)
    by_word: dict[str | tuple[str, str], list[int]] = {}
    by_head: dict[str, list[int]] = {}
    for i, (_, ne) in enumerate(pairs):
        m = _TWO_WORDS.match(ne) or _LATIN_RUN.match(ne)
        if m:  # "registration request" by ("registration", "request"): named where those two words stand
            by_word.setdefault(m.groups() or m.group(), []).append(i)
        else:
            by_head.setdefault(ne[:2], []).append(i)
    return pairs, by_word, by_head, frozenset(h[0] for h in by_head)


_LAST_INDEX: list = [None]  # (entries, index) of the last call: the same tuple, again and again


def _lexicon_index(entries: tuple):
    # Looking a tuple of thousands of entries up in an lru_cache hashes and compares all of them on each
    # call; the default lexicon is one tuple object, recognised by identity.
    last = _LAST_INDEX[0]
    if last is not None and last[0] is entries:
        return last[1]
    index = _build_lexicon_index(entries)
    _LAST_INDEX[0] = (entries, index)
    return index


def lexicon_hits(norm_text: str, entries: tuple) -> list[tuple[str, str]]:
    """The ``(entry, normalised entry)`` pairs of ``entries`` that ``norm_text`` names (on word
    boundaries, as the gate matches), in lexicon order: ``[(e, n) for e, n in _normalized(entries) if
    _spans(n, norm_text)]``, asked only of the entries whose first word or characters the text holds."""
    pairs, by_word, by_head, head_chars = _lexicon_index(entries)
    cand: set[int] = set()
    if _LATIN_TEXT.fullmatch(norm_text):
        # Words and single spaces only (English): an entry is named where it stands between spaces (or the
        # ends), which one substring test of the padded forms says.
        words = norm_text.split(" ")
        cand.update(chain.from_iterable(map(by_word.__getitem__, (set(words) | set(zip(words, words[1:])))
                                            & by_word.keys())))
        padded = f" {norm_text} "
        return [pairs[i] for i in sorted(cand) if f" {pairs[i][1]} " in padded]
    named = set(_LATIN_RUN.findall(norm_text)) | set(_WORD_PAIRS.findall(norm_text))
    cand.update(chain.from_iterable(map(by_word.__getitem__, named & by_word.keys())))
    chars = set(norm_text)
    if chars & head_chars:  # (an English text holds no Chinese character: nothing to look up)
        heads = chars | set(map("".join, zip(norm_text, norm_text[1:])))
        cand.update(chain.from_iterable(map(by_head.__getitem__, heads & by_head.keys())))
    return [pairs[i] for i in sorted(cand) if pairs[i][1] in norm_text and _spans(pairs[i][1], norm_text)]


def invented_labels(norm_text: str, allowed: list[str], lexicon: Iterable[str] | None = None,
                    contained: dict[str, bool] | None = None) -> list[str]:
    """Lexicon entries (default :func:`default_lexicon`) that ``norm_text`` names (on word boundaries) but
    no string of the diagram (``allowed``, normalised) holds; the longest of overlapping ones. ``contained``
    remembers per entry whether ``allowed`` holds it: a caller scoring many texts against one diagram
    passes the same dict each time."""
    invented: list[tuple[str, str]] = []  # (entry, its normal form)
    for entry, ne in lexicon_hits(norm_text, default_lexicon() if lexicon is None else tuple(lexicon)):
        inside = contained.get(ne) if contained is not None else None
        if inside is None:
            inside = any(_contains(a, ne) for a in allowed)
            if contained is not None:
                contained[ne] = inside
        if not inside:
            invented.append((entry, ne))
    # "SMF selection" and "SMF" both invented: report the longest only, it explains the other.
    # Entries that differ only in case or punctuation ("Retry up to 3 times", "retry up to 3 times") are one
    # invention: compared by their normal form (they used to discard each other and none was reported).
    invented = [(x, nx) for x, nx in invented
                if not any(ny != nx and nx in ny and _contains(ny, nx) for _, ny in invented)]
    return list({nx: x for x, nx in reversed(invented)}.values())[::-1]


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
    han = len(HAN_CHAR.findall(prose))
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
    invented = invented_labels(norm_text, allowed, lexicon)
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
