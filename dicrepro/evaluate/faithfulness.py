"""Is a caption right about its diagram? Faithfulness scored against the graph, not a reference text.

``faithfulness(diagram, caption)`` returns, per sample (values 0-1, ``None`` where a part does not apply):

- ``label_recall``: share of the graph's labels (nodes, participants, states, edge and message labels,
  class members and ER fields as :func:`dicrepro.text.describe.diagram_labels` lists them, and block
  conditions) the caption mentions. Matching is on :func:`dicrepro.text.gate.normalize`d tokens (case,
  punctuation, hyphen = space), with plural -s/-es/-ies folded and Chinese matched character by
  character, so "AMFs" names "AMF", "keep alive" names "Keep-alive" and no whitespace is needed in
  Chinese. A label counts only where it stands on its own, not inside a longer string of the diagram that
  holds it ("gNB" inside "Source gNB" does not prove "gNB" was mentioned).
- ``hallucination_rate`` and ``hallucinated``: label-like mentions that match nothing in the graph
  (knowledge-base lexicon entries found by the faithfulness gate :func:`dicrepro.text.gate.check_faithful`,
  quoted names and acronyms such as "PCF" or "N4" that no string of the diagram holds), as a share of all
  label-like mentions (found labels + hallucinated ones) and as the list of offending spans.
- ``relation_recall``: share of the edges (messages, transitions, relations, links) the caption states
  with the right source, target and label, plus alt/par/critical branches stated with their condition.
  An edge is stated by a sentence that reads as one of the verbalizer's phrasings
  (:mod:`dicrepro.text.phrasings_en`, :mod:`dicrepro.text.phrasings_zh`) with the edge's source, target and
  label in the template's ``{a}``, ``{b}`` and ``{label}`` slots (so "B receives X from A" states A -> B
  and "B sends X to A" does not); a sentence no phrasing reads counts when it names source, label and
  target, source first.
- ``order_tau``: Kendall's tau between the diagram's order (sequence messages, timeline periods) and the
  order in which the caption states them; ``None`` below two matched items.
- ``faithfulness``: the mean of the parts that apply (recall, 1 - hallucination rate, relation recall,
  (tau + 1) / 2): one matching score per sample. A caption that names no label at all gets 0, not 1, for
  the hallucination part (saying nothing is not precision).

Speed: one diagram is scored against many captions (the reference, every model's, the blind ones), so
everything that depends on the graph alone (label keys, the longer strings that cover each, edge keys,
branches, the gate's normalised strings) is built once per diagram and kept in a small cache keyed by the
diagram's content (:func:`graph_index`); phrasings are looked up by the words a sentence holds, lexicon
entries by their first characters (:func:`dicrepro.text.gate.lexicon_hits`). The scores are those of the
straightforward computation (tests compare both).
"""

from __future__ import annotations

import functools
import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from dicrepro.diagrams.graph import Diagram
from dicrepro.text import phrasings_en, phrasings_zh
from dicrepro.text.describe import diagram_labels
from dicrepro.text.gate import diagram_strings, invented_labels, normalize, ordered_labels

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_HAN}]|[^\W_{_HAN}]+")
_HAN_CHAR = re.compile(f"[{_HAN}]")
_NO_LATIN_LETTERS = str.maketrans("", "", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
# Sentences end at a full stop ('?' and '!' end labels like "Load below threshold?" too often to split on).
_SENTENCE_END = re.compile(r"(?<=[.])\s+|(?<=[。])\s*|\n+")
_SENTENCE_END_NO_ZH = re.compile(r"(?<=[.])\s+|\n+")
_NUMBERING = re.compile(r"(?:^|[:：]\s*)\d+[.)]$")  # "3." alone, or a lead-in "... happen: 5."
_QUOTED = re.compile(r'"([^"\n]{1,80})"|“([^”\n]{1,80})”|「([^」\n]{1,80})」')
# A word (letters, digits, _) that reads as an acronym: two capitals, or a capital and a digit ("PCF", "N4")
_ACRONYM = re.compile(r"(?<![A-Za-z0-9_])(?=[A-Za-z0-9_]*[A-Z])(?=[A-Za-z0-9_]*(?:[A-Z][A-Za-z0-9_]*[A-Z]|[0-9]))"
                      r"[A-Za-z0-9_]+")
METRICS = ("label_recall", "hallucination_rate", "relation_recall", "order_tau", "faithfulness")


@functools.lru_cache(maxsize=65536)
def _stem(tok: str) -> str:
    """Plural folded: 'policies' -> 'policy', 'switches' -> 'switch', 'AMFs' -> 'amf' (after casefold)."""
    if len(tok) > 4 and tok.endswith("ies"):
        return tok[:-3] + "y"
    if len(tok) > 4 and tok.endswith(("ches", "shes", "sses", "xes", "zes")):
        return tok[:-2]
    if len(tok) > 2 and tok.endswith("s") and not tok.endswith(("ss", "us", "is")) and tok[-2].isalpha():
        return tok[:-1]
    return tok


@functools.lru_cache(maxsize=1024)
def _normalize(text: str) -> str:
    # a caption is normalised for its key and again for the gate's lexicon: once
    return normalize(text)


@functools.lru_cache(maxsize=65536)
def key(text: str) -> str:
    """Matching form: normalised tokens (Chinese one per character), plural folded, space-joined and
    space-padded, so ``key(label) in key(text)`` means the label's tokens stand in the text in a row."""
    toks = _TOKEN.findall(_normalize(text or ""))
    return " " + " ".join(map(_stem, toks)) + " " if toks else ""


def _occurrences(k: str, text_key: str) -> list[tuple[int, int]]:
    out, i = [], text_key.find(k)
    while k and i >= 0:
        out.append((i, i + len(k)))
        i = text_key.find(k, i + 1)
    return out


def _standalone(k: str, text_key: str, covers: Iterable[str]) -> list[int]:
    """Start offsets of ``k`` in ``text_key`` that are not inside an occurrence of a longer string."""
    return _standalone_among(k, text_key, [c for c in covers if len(c) > len(k) and k in c])


def _standalone_among(k: str, text_key: str, longer: list[str]) -> list[int]:
    """:func:`_standalone` with the longer strings that hold ``k`` already chosen."""
    spans = _occurrences(k, text_key)
    if not spans:
        return []
    cover = [sp for c in longer for sp in _occurrences(c, text_key)]
    return [s for s, e in spans if not any(cs <= s and e <= ce for cs, ce in cover)]


def caption_key(sentence_keys: list[str]) -> str:
    """``key(caption)`` from the keys of its sentences (:func:`split_sentences`): a sentence ends at
    whitespace or after "。", where no token goes on and no character changes the next one's normal form,
    so the caption's tokens are its sentences' tokens in a row (tests check both ways agree)."""
    inner = [k[1:-1] for k in sentence_keys if k]
    return " " + " ".join(inner) + " " if inner else ""


def split_sentences(text: str) -> list[str]:
    """Sentences of a caption ('1.' step numbers stay with their sentence), in order."""
    text = text or ""
    # (without a "。" the pattern's empty-after-"。" branch never matches: a simpler scan, the same split)
    parts = [p.strip() for p in (_SENTENCE_END if "。" in text else _SENTENCE_END_NO_ZH).split(text) if p and p.strip()]
    out: list[str] = []
    for p in parts:
        if out and _NUMBERING.search(out[-1]):  # "2." was a step number, not a sentence end
            out[-1] = out[-1] + " " + p
        else:
            out.append(p)
    return out


# --- relation templates from the verbalizer's phrasing tables -----------------------------------------

_SLOT = re.compile(r"\{(\w+)\}")
_ROLE = {"a": "a", "b": "b", "label": "label", "m": "label", "list": "list"}


@functools.lru_cache(maxsize=2)
def _templates(relational: bool = True) -> tuple[tuple[tuple[str, ...], str], ...]:
    """The verbalizer's phrasings as (pieces, longest literal): pieces alternate literal key text and slot
    names (``a``, ``b``, ``label``, ``list`` or ``*`` for any other slot). ``relational``: only those with
    a source or target slot; else all of them."""
    out = []
    for mod in (phrasings_en, phrasings_zh):
        for templates in mod.P.values():
            # "{a} {rel} {b}" with {rel} left open would read "B can only start after A" as a relation
            # A -> B: one template per relation phrase instead.
            expanded = [t.replace("{rel}", r) if "{rel}" in t else t
                        for t in (templates if isinstance(templates, (list, tuple)) else [templates])
                        for r in (sorted(set(mod.RELATIONS.values())) if "{rel}" in t else [""])]
            for t in dict.fromkeys(expanded):
                if relational and not ({"a", "b"} & set(_SLOT.findall(t))):
                    continue
                pieces: list[str] = []
                for i, part in enumerate(_SLOT.split(t)):
                    pieces.append(key(part).strip() if i % 2 == 0 else _ROLE.get(part, "*"))
                literal = max(pieces[::2], key=len)
                out.append((tuple(pieces), literal))
    return tuple(out)


def _fits(pieces: tuple[str, ...], values: dict[str, str], sentence: str) -> bool:
    """Does ``sentence`` (a key) read as this template with ``values`` in its slots (others: anything)?
    Known text between wildcards must appear in order; the first and last pieces anchor the ends."""
    segs: list[str] = []  # known text, with None for a wildcard between
    cur: list[str] = []
    for i, p in enumerate(pieces):
        if i % 2 == 0:
            if p:
                cur.append(p)
        elif p in values:
            if values[p]:
                cur.append(values[p])
        else:
            segs.append(" ".join(cur))
            segs.append(None)
            cur = []
    segs.append(" ".join(cur))
    text = sentence.strip()
    if len(segs) == 1:  # no open slot: the sentence is exactly the template
        return text == segs[0]
    pos = 0
    for i, seg in enumerate(segs):
        if seg is None:
            continue
        if i == 0:
            if not (text == seg or text.startswith(seg + " ") or not seg):
                return False
            pos = len(seg)
        elif i == len(segs) - 1:
            if seg and not (text.endswith(" " + seg) or text == seg) or text.rfind(seg) < pos:
                return False
        else:
            j = text.find(seg, pos) if seg else pos
            if j < 0:
                return False
            pos = j + len(seg)
    return True


@functools.lru_cache(maxsize=2)
def _template_index(relational: bool) -> tuple[dict[str, list[int]], list[int]]:
    """Positions in :func:`_templates` by the rarest word of their longest literal (a literal stands in a
    sentence only if each of its words does), and those without a literal."""
    templates = _templates(relational)
    freq: dict[str, int] = {}
    for _, literal in templates:
        for w in set(literal.split()):
            freq[w] = freq.get(w, 0) + 1
    by_word: dict[str, list[int]] = {}
    bare = []
    for i, (_, literal) in enumerate(templates):
        if literal:
            by_word.setdefault(min(literal.split(), key=lambda w: (freq[w], w)), []).append(i)
        else:
            bare.append(i)
    return by_word, bare


@functools.lru_cache(maxsize=65536)
def _templates_in(sentence: str, relational: bool = True) -> tuple[tuple[tuple[str, ...], str], ...]:
    """The phrasings of :func:`_templates` whose longest literal stands in this sentence (a key), or that
    have none, in their order: ``f" {literal} " in sentence`` asked only of those whose literal's rarest
    word the sentence holds."""
    by_word, bare = _template_index(relational)
    # (filter, not ``keys() & words``: intersecting a dict's keys with a list first copies all the keys)
    cand = set(bare).union(chain.from_iterable(map(by_word.__getitem__,
                                                   filter(by_word.__contains__, set(sentence.split())))))
    templates = _templates(relational)
    return tuple(templates[i] for i in sorted(cand) if not templates[i][1] or f" {templates[i][1]} " in sentence)


@functools.lru_cache(maxsize=65536)
def _read_by_template(sentence: str) -> bool:
    """Whether some phrasing with text of its own reads this sentence (whatever its slots hold): such a
    sentence states what its template says ("There are 4 components: A, B" states no link A -> B)."""
    return any(lit and _fits(p, {}, sentence) for p, lit in _templates_in(sentence, False))


# --- the score -----------------------------------------------------------------------------------------

def graph_labels(diagram: Diagram) -> list[str]:
    """Every label a caption should mention: ``diagram_labels`` plus block conditions (``meta["blocks"]``)."""
    labels = diagram_labels(diagram)
    for b in diagram.meta.get("blocks") or []:
        labels += [br.get("condition", "") for br in b.get("branches", [])]
    return [x for x in dict.fromkeys(labels) if x.strip()]


def _hallucinations(g: GraphIndex, caption: str, cap_key: str, lexicon) -> list[str]:
    allowed_keys, allowed_blob = g.allowed, g.allowed_blob
    invented = invented_labels(_normalize(caption or ""), g.gate_allowed, lexicon, g.lexicon_inside)
    spans = [sp for a in allowed_keys for sp in _occurrences(a, cap_key)] if invented else []
    out: dict[str, str] = {}
    for x in invented:
        # An entry that only ever straddles the edge of a diagram label is no mention of its own: in
        # Chinese "报告" + "于" reads as the entry "报告于", across sentences "Serial number. ONU" as another.
        occ = _occurrences(key(x), cap_key)
        if occ and all(any(s < ae and e > as_ for as_, ae in spans) for s, e in occ):
            continue
        out[key(x)] = x
    for m in _QUOTED.finditer(caption):
        q = next(grp for grp in m.groups() if grp is not None).strip()
        kq = key(q)
        if kq and kq not in allowed_blob and kq not in out and kq.strip() not in _phrasing_keys():
            out[kq] = q
    for m in _ACRONYM.finditer(caption):
        w = m.group(0)
        kw = key(w)
        if kw in allowed_blob or any(kw in k for k in out) or kw.strip() in _phrasing_keys():
            continue
        out[kw] = w
    return list(out.values())


@functools.lru_cache(maxsize=1)
def _phrasing_keys() -> frozenset[str]:
    """Tokens of the verbalizer's own connective language (never a label)."""
    words: set[str] = set()
    for mod in (phrasings_en, phrasings_zh):
        stack = [getattr(mod, t, None) for t in ("TYPES", "RELATIONS", "P", "WORDS", "GENERIC_TYPE")]
        while stack:
            x = stack.pop()
            if isinstance(x, str):
                words |= set(key(_SLOT.sub(" ", x)).split())
            elif isinstance(x, dict):
                stack.extend(x.values())
            elif isinstance(x, (list, tuple)):
                stack.extend(x)
    return frozenset(words)


def _kendall_tau(positions: list[float]) -> float | None:
    n = len(positions)
    if n < 2:
        return None
    conc = disc = 0
    for i in range(n):
        for j in range(i + 1, n):
            d = positions[j] - positions[i]
            conc += d > 0
            disc += d < 0
    return (conc - disc) / (n * (n - 1) / 2)


def _edge_stated(ks: str, kd: str, kl: str, sent_key: str, g: GraphIndex) -> bool:
    """Does this sentence state the edge (its source, target and label as stripped keys): through a
    phrasing template with source, target and label in their slots, or (a sentence no template reads)
    naming source, label and target, source first."""
    if ks and f" {ks} " not in sent_key or kd and f" {kd} " not in sent_key:
        return False
    values = {"a": ks, "b": kd, "label": kl}
    for pieces, _ in _templates_in(sent_key):
        has_a, has_b, has_label, has_list = _slots(pieces)
        if bool(ks) != has_a or bool(kl) != has_label:
            continue
        if not kd and has_b or kd and kd != ks and not has_b and not has_list:
            continue  # (a self-message "A handles X locally" has no target slot)
        if _fits(pieces, {k: v for k, v in values.items() if k in pieces[1::2]}, sent_key):
            return True
    if _read_by_template(sent_key):  # (asked only of sentences that name both ends)
        return False
    pa = _standalone_among(f" {ks} ", sent_key, g.longer(f" {ks} ")) if ks else [0]
    pb = _standalone_among(f" {kd} ", sent_key, g.longer(f" {kd} ")) if kd else [len(sent_key)]
    if not pa or not pb or (kl and f" {kl} " not in sent_key):
        return False
    return min(pa) < max(pb) if ks and kd and ks != kd else True


@functools.lru_cache(maxsize=4096)
def _slots(pieces: tuple[str, ...]) -> tuple[bool, bool, bool, bool]:
    """Which of the slots a (source), b (target), label and list the template has."""
    slots = set(pieces[1::2])
    return "a" in slots, "b" in slots, "label" in slots, "list" in slots


# --- what a diagram alone decides, built once per diagram -------------------------------------------------

@dataclass
class GraphIndex:
    """What the score needs of one diagram, independent of any caption (see the module doc's Speed)."""

    diagram_type: str
    labels: list[str]
    label_keys: dict[str, str]
    allowed: list[str]  # keys of every string the diagram holds (what a caption may name)
    allowed_blob: str
    gate_allowed: list[str]  # the same strings as the gate normalises them
    edges: list[tuple[str, str, str, str, str]]  # (source, target, label) keys, stripped, of edges with a
    # named end, and source and target as they stand in a key (" amf ", or "" for no name: in every key)
    all_msgs: list[str]
    branches: list[tuple[str, list[str]]]  # (condition key, message keys) of block branches
    timeline: list[tuple[str, list[str]]]  # (period key, event keys)
    ordered: list[str]  # keys of gate.ordered_labels
    label_text: str  # the labels joined, and their Chinese characters counted, for language_ok
    label_han: int
    lexicon_inside: dict[str, bool] = field(default_factory=dict)  # entry -> a diagram string holds it
    _longer: dict[str, list[str]] = field(default_factory=dict)

    def longer(self, k: str) -> list[str]:
        """The strings of the diagram (keys) longer than ``k`` that hold it."""
        hit = self._longer.get(k)
        if hit is None:
            hit = self._longer[k] = [c for c in self.allowed if len(c) > len(k) and k in c]
        return hit


def _build_index(diagram: Diagram) -> GraphIndex:
    labels = graph_labels(diagram)
    allowed = [k for k in dict.fromkeys(key(s) for s in diagram_strings(diagram) + labels) if k]
    lab = {n.id: n.label for n in diagram.nodes}
    ordered_edges = diagram.ordered_edges()
    edges = []
    for e in ordered_edges:
        if lab.get(e.src, "").strip() or lab.get(e.dst, "").strip():
            ks, kd, kl = (key(x).strip() for x in (lab.get(e.src, ""), lab.get(e.dst, ""), e.label))
            edges.append((ks, kd, kl, f" {ks} " if ks else "", f" {kd} " if kd else ""))
    branches = []
    for b in diagram.meta.get("blocks") or []:
        for br in b.get("branches", []):
            msgs = [key(ordered_edges[i].label) for i in br.get("messages", []) if i < len(diagram.edges)]
            branches.append((key(br.get("condition", "")), msgs))
    lab_key = {n.id: key(n.label) for n in diagram.nodes}
    timeline = [(key(g.label), [lab_key[m] for m in g.members if lab_key.get(m)]) for g in diagram.groups] \
        if diagram.diagram_type == "timeline" else []
    gate_allowed = [s for s in dict.fromkeys(normalize(s) for s in diagram_strings(diagram)) if s]
    return GraphIndex(
        diagram_type=diagram.diagram_type, labels=labels, label_keys={x: key(x) for x in labels},
        allowed=allowed, allowed_blob="|".join(allowed), gate_allowed=gate_allowed, edges=edges,
        all_msgs=[k for k in (key(e.label) for e in ordered_edges) if k], branches=branches, timeline=timeline,
        ordered=[key(x) for x in ordered_labels(diagram)], label_text=" ".join(labels),
        label_han=len(_HAN_CHAR.findall(" ".join(labels))))


_INDEXES: OrderedDict[str, GraphIndex] = OrderedDict()
INDEX_CACHE_SIZE = 4096  # diagrams kept: a test set's worth


def graph_index(diagram: Diagram) -> GraphIndex:
    """The diagram's :class:`GraphIndex`, from a cache keyed by its whole content (the dataclass repr:
    every field, in order; five times cheaper than its JSON): a diagram changed in place gets a new one."""
    content = repr(diagram)
    hit = _INDEXES.get(content)
    if hit is None:
        hit = _INDEXES[content] = _build_index(diagram)
        if len(_INDEXES) > INDEX_CACHE_SIZE:
            _INDEXES.popitem(last=False)
    else:
        _INDEXES.move_to_end(content)
    return hit


def clear_caches() -> None:
    """Forget every diagram index and memoised sentence (tests compare a cold score with a warm one)."""
    _INDEXES.clear()
    for f in (key, _normalize, _stem, _templates_in, _read_by_template):
        f.cache_clear()


def faithfulness(diagram: Diagram, caption: str, *, lexicon: Iterable[str] | None = None) -> dict[str, Any]:
    """Score ``caption`` against ``diagram``'s graph (see the module doc). Raises ValueError on an empty caption."""
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError("the caption is empty")
    g = graph_index(diagram)
    sentences = split_sentences(caption)
    sent_keys = [key(s) for s in sentences]
    cap_key = caption_key(sent_keys)
    labels = g.labels
    found = [lab for lab, k in g.label_keys.items() if k and _standalone_among(k, cap_key, g.longer(k))]
    label_recall = len(found) / len(labels) if labels else None

    hallucinated = _hallucinations(g, caption, cap_key, None if lexicon is None else tuple(lexicon))
    mentions = len(found) + len(hallucinated)
    hallucination_rate = len(hallucinated) / mentions if mentions else 0.0

    stated_at: list[int | None] = []
    taken: set[int] = set()
    for ks, kd, kl, at_s, at_d in g.edges:
        # (a sentence must hold both ends: checked here, before the call, for the many that do not)
        where = [i for i, sk in enumerate(sent_keys) if at_s in sk and at_d in sk and _edge_stated(ks, kd, kl, sk, g)]
        # A repeated message ("Response" twice) is placed at its own sentence, not the first one's.
        free = [i for i in where if i not in taken]
        stated_at.append(free[0] if free else (where[0] if where else None))
        taken.update(free[:1])
    hits, total = sum(w is not None for w in stated_at), len(g.edges)
    all_msgs = g.all_msgs
    for cond, msgs in g.branches:
        # A branch is stated with its condition and one of its messages in the same sentence, or, when the
        # condition's sentence is a lead-in that names no message ('If instead "X":'), in the next sentence
        # that names a message (a note may come between).
        if not cond or not msgs:
            continue
        total += 1
        for i, sk in enumerate(sent_keys):
            if not _standalone_among(cond, sk, g.longer(cond)):
                continue
            lead_in = not any(m in sk for m in all_msgs)
            nxt = next((t for t in sent_keys[i + 1:] if any(m in t for m in all_msgs)), "") if lead_in else ""
            if any(m and (m in sk or m in nxt) for m in msgs):
                hits += 1
                break
    relation_recall = hits / total if total else None

    order_tau = None
    if g.diagram_type == "sequence":
        order_tau = _kendall_tau([w for w in stated_at if w is not None])
    elif g.diagram_type == "timeline":  # a period is placed where it is stated with one of its events
        pos = [next((i for i, sk in enumerate(sent_keys) if period and _standalone_among(period, sk, g.longer(period))
                     and any(ev in sk for ev in events)), None)
               for period, events in g.timeline]
        order_tau = _kendall_tau([p for p in pos if p is not None])
    elif g.ordered:
        pos = [_standalone_among(k, cap_key, g.longer(k)) for k in g.ordered]
        order_tau = _kendall_tau([p[0] for p in pos if p])

    # A caption that names nothing of the diagram hallucinates nothing, but is not thereby precise.
    parts = [label_recall, (1 - hallucination_rate) if mentions else 0.0, relation_recall,
             None if order_tau is None else (order_tau + 1) / 2]
    parts = [p for p in parts if p is not None]
    return {
        "label_recall": label_recall, "hallucination_rate": hallucination_rate, "hallucinated": hallucinated,
        "relation_recall": relation_recall, "order_tau": order_tau, "faithfulness": sum(parts) / len(parts),
        "missing": [x for x in labels if x not in found], "labels": len(labels), "relations": total,
        "language_ok": _language_ok(diagram.language, g.label_text, caption, g.label_han),
    }


def language_ok(diagram: Diagram, caption: str) -> bool:
    """False when the graph's labels are Chinese and the caption is not, or a ``zh``/``en`` diagram is
    captioned in the other language (labels left out: a zh caption quotes English message names)."""
    return _language_ok(diagram.language, " ".join(graph_labels(diagram)), caption)


def _language_ok(language: str, label_text: str, caption: str, label_han: int | None = None) -> bool:
    han = len(_HAN_CHAR.findall(caption))
    latin = len(caption) - len(caption.translate(_NO_LATIN_LETTERS))  # (counted without a list of them)
    if label_han is None:
        label_han = len(_HAN_CHAR.findall(label_text))
    wants_zh = language.startswith("zh") or label_han > 0.3 * max(1, len(label_text.replace(" ", "")))
    if wants_zh:
        return han > 0
    return han <= max(2, 0.1 * (han + latin)) or label_han > 0


def aggregate(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Mean of each metric over the rows where it applies (``None`` where it applies to none)."""
    out: dict[str, float | None] = {}
    for m in METRICS:
        vals = [r[m] for r in rows if r.get(m) is not None]
        out[m] = sum(vals) / len(vals) if vals else None
    return out


__all__ = ["faithfulness", "aggregate", "graph_labels", "graph_index", "clear_caches", "key", "split_sentences",
           "language_ok", "METRICS"]
