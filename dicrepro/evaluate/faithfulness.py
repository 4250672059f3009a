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
diagram's content (:func:`graph_index`); phrasings are looked up by the words a sentence holds
(:mod:`dicrepro.evaluate.caption_reading`: keys, sentences, phrasings as templates), lexicon entries by
their first words (:func:`dicrepro.text.gate.lexicon_hits`). The scores are those of the straightforward
computation (tests compare both).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dicrepro.diagrams.graph import Diagram
from dicrepro.evaluate import caption_reading
from dicrepro.evaluate.caption_reading import (
    caption_key,
    fits,
    key,
    occurrences,
    phrasing_keys,
    read_by_template,
    slots,
    split_sentences,
    standalone_among,
    templates_in,
)
from dicrepro.text.describe import diagram_labels
from dicrepro.text.gate import diagram_strings, invented_labels, normalize, ordered_labels
from dicrepro.text.han import HAN_CHAR

_NO_LATIN_LETTERS = str.maketrans("", "", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_QUOTED = re.compile(r'"([^"\n]{1,80})"|“([^”\n]{1,80})”|「([^」\n]{1,80})」')
# A word (letters, digits, _) that reads as an acronym: two capitals, or a capital and a digit ("PCF", "N4")
_ACRONYM = re.compile(r"(?<![A-Za-z0-9_])(?=[A-Za-z0-9_]*[A-Z])(?=[A-Za-z0-9_]*(?:[A-Z][A-Za-z0-9_]*[A-Z]|[0-9]))"
                      r"[A-Za-z0-9_]+")
METRICS = ("label_recall", "hallucination_rate", "relation_recall", "order_tau", "faithfulness")


# --- the score -----------------------------------------------------------------------------------------

def graph_labels(diagram: Diagram) -> list[str]:
    """Every label a caption should mention: ``diagram_labels`` plus block conditions (``meta["blocks"]``)."""
    labels = diagram_labels(diagram)
    for b in diagram.meta.get("blocks") or []:
        labels += [br.get("condition", "") for br in b.get("branches", [])]
    return [x for x in dict.fromkeys(labels) if x.strip()]


def _hallucinations(g: GraphIndex, caption: str, cap_key: str, lexicon) -> list[str]:
    allowed_keys, allowed_blob = g.allowed, g.allowed_blob
    invented = invented_labels(normalize(caption or ""), g.gate_allowed, lexicon, g.lexicon_inside)
    spans = [sp for a in allowed_keys for sp in occurrences(a, cap_key)] if invented else []
    out: dict[str, str] = {}
    for x in invented:
        # An entry that only ever straddles the edge of a diagram label is no mention of its own: in
        # Chinese "报告" + "于" reads as the entry "报告于", across sentences "Serial number. ONU" as another.
        occ = occurrences(key(x), cap_key)
        if occ and all(any(s < ae and e > as_ for as_, ae in spans) for s, e in occ):
            continue
        out[key(x)] = x
    for m in _QUOTED.finditer(caption):
        q = next(grp for grp in m.groups() if grp is not None).strip()
        kq = key(q)
        if kq and kq not in allowed_blob and kq not in out and kq.strip() not in phrasing_keys():
            out[kq] = q
    for m in _ACRONYM.finditer(caption):
        w = m.group(0)
        kw = key(w)
        if kw in allowed_blob or any(kw in k for k in out) or kw.strip() in phrasing_keys():
            continue
        out[kw] = w
    return list(out.values())


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
    for pieces, _ in templates_in(sent_key):
        has_a, has_b, has_label, has_list = slots(pieces)
        if bool(ks) != has_a or bool(kl) != has_label:
            continue
        if not kd and has_b or kd and kd != ks and not has_b and not has_list:
            continue  # (a self-message "A handles X locally" has no target slot)
        if fits(pieces, {k: v for k, v in values.items() if k in pieces[1::2]}, sent_key):
            return True
    if read_by_template(sent_key):  # (asked only of sentences that name both ends)
        return False
    pa = standalone_among(f" {ks} ", sent_key, g.longer(f" {ks} ")) if ks else [0]
    pb = standalone_among(f" {kd} ", sent_key, g.longer(f" {kd} ")) if kd else [len(sent_key)]
    if not pa or not pb or (kl and f" {kl} " not in sent_key):
        return False
    return min(pa) < max(pb) if ks and kd and ks != kd else True


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
        label_han=len(HAN_CHAR.findall(" ".join(labels))))


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
    """Forget every diagram index and memoised key and sentence (tests compare a cold score with a warm one)."""
    _INDEXES.clear()
    caption_reading.clear_caches()


def faithfulness(diagram: Diagram, caption: str, *, lexicon: Iterable[str] | None = None) -> dict[str, Any]:
    """Score ``caption`` against ``diagram``'s graph (see the module doc). Raises ValueError on an empty caption."""
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError("the caption is empty")
    g = graph_index(diagram)
    sentences = split_sentences(caption)
    sent_keys = [key(s) for s in sentences]
    cap_key = caption_key(sent_keys)
    labels = g.labels
    found = [lab for lab, k in g.label_keys.items() if k and standalone_among(k, cap_key, g.longer(k))]
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
            if not standalone_among(cond, sk, g.longer(cond)):
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
        pos = [next((i for i, sk in enumerate(sent_keys) if period and standalone_among(period, sk, g.longer(period))
                     and any(ev in sk for ev in events)), None)
               for period, events in g.timeline]
        order_tau = _kendall_tau([p for p in pos if p is not None])
    elif g.ordered:
        pos = [standalone_among(k, cap_key, g.longer(k)) for k in g.ordered]
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
    han = len(HAN_CHAR.findall(caption))
    latin = len(caption) - len(caption.translate(_NO_LATIN_LETTERS))  # (counted without a list of them)
    if label_han is None:
        label_han = len(HAN_CHAR.findall(label_text))
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
           "caption_key", "language_ok", "METRICS"]
