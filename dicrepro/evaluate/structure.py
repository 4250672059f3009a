"""Structure F1: how much of a diagram's graph a model wrote back (image -> Mermaid), as FlowGen scores it.

``structure_f1(reference, prediction)`` compares two :class:`~dicrepro.diagrams.graph.Diagram`s on three
sets, each as precision/recall/F1:

- ``node``: node labels (empty ones, such as start/end pseudo-states, left out);
- ``edge``: (source label, target label) pairs;
- ``triple``: (source label, edge label, target label).

``strict`` matches after :func:`dicrepro.text.gate.normalize` (case, punctuation, spacing); ``relaxed``
matches labels whose rapidfuzz ``ratio`` (0-100, on the normalised text) is at least ``threshold``, an
edge or triple only when every part passes. Matching is one-to-one and greedy by similarity (ties in input
order), so a duplicate in the prediction cannot match one reference item twice. A level the reference does
not have (the edges of a pie chart) is not scored: its F1 is None and means leave it out. Scored as two
empty sets agreeing (1.0), any reply without edges, "timeline\n  n1" for a pie included, earned full edge
and triple F1 (the tiny stage-3 model's only non-zero structure scores came from that).

``structure_from_mermaid(ref_src, pred_src)`` parses both with mermaid.js's own parser
(:mod:`dicrepro.diagrams.parse`): a reference that does not parse is the caller's error (ValueError); a
prediction that does not parse scores ``parsed: False`` and zeros.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rapidfuzz import fuzz

from dicrepro.diagrams.graph import Diagram
from dicrepro.diagrams.parse import ParseResult, parse_mermaid
from dicrepro.diagrams.render import MermaidRenderer
from dicrepro.text.gate import normalize

DEFAULT_THRESHOLD = 80.0  # rapidfuzz ratio; FlowGen's relaxed match uses a similar fuzzy cut-off
LEVELS = ("node", "edge", "triple")


def _items(d: Diagram) -> dict[str, list[tuple[str, ...]]]:
    lab = {n.id: normalize(n.label) for n in d.nodes}
    nodes = [(v,) for v in lab.values() if v]
    edges, triples = [], []
    for e in d.ordered_edges():
        s, t = lab.get(e.src, ""), lab.get(e.dst, "")
        edges.append((s, t))
        triples.append((s, normalize(e.label), t))
    return {"node": nodes, "edge": edges, "triple": triples}


def _similarity(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    return min((100.0 if x == y else fuzz.ratio(x, y)) for x, y in zip(a, b))


def _matches(ref: list[tuple[str, ...]], pred: list[tuple[str, ...]], threshold: float | None) -> int:
    """Size of a one-to-one matching: exact (``threshold`` None) or greedy by similarity >= threshold."""
    if threshold is None:
        left = list(ref)
        hits = 0
        for p in pred:
            if p in left:
                left.remove(p)
                hits += 1
        return hits
    pairs = sorted(((_similarity(r, p), i, j) for i, r in enumerate(ref) for j, p in enumerate(pred)),
                   key=lambda x: (-x[0], x[1], x[2]))
    used_r, used_p, hits = set(), set(), 0
    for sim, i, j in pairs:
        if sim < threshold:
            break
        if i in used_r or j in used_p:
            continue
        used_r.add(i)
        used_p.add(j)
        hits += 1
    return hits


def _prf(hits: int, n_ref: int, n_pred: int) -> dict[str, float | None]:
    if n_ref == 0:  # nothing to find: not this level's sample (module doc)
        return {"precision": None, "recall": None, "f1": None}
    p = hits / n_pred if n_pred else 0.0
    r = hits / n_ref
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def structure_f1(reference: Diagram, prediction: Diagram, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """Node, edge and triple F1 of ``prediction`` against ``reference``, strict and relaxed (see module doc).

    Returns ``{"parsed": True, "type_match": bool, "node_f1": {"strict", "relaxed"}, "edge_f1": ...,
    "triple_f1": ..., "detail": {level: {mode: {precision, recall, f1}}}}``; None for a level the reference
    has nothing of.
    """
    ref, pred = _items(reference), _items(prediction)
    out: dict[str, Any] = {"parsed": True, "type_match": reference.diagram_type == prediction.diagram_type,
                           "detail": {}}
    for level in LEVELS:
        detail = {}
        for mode, thr in (("strict", None), ("relaxed", threshold)):
            detail[mode] = _prf(_matches(ref[level], pred[level], thr), len(ref[level]), len(pred[level]))
        out[f"{level}_f1"] = {mode: detail[mode]["f1"] for mode in detail}
        out["detail"][level] = detail
    return out


def unparsed(error: str, reference: Diagram | None = None) -> dict[str, Any]:
    """The score of a prediction that does not parse: zeros (None for a level ``reference`` has nothing
    of), and mermaid's message."""
    has = _items(reference) if reference is not None else None
    out: dict[str, Any] = {"parsed": False, "type_match": False, "error": error, "detail": {}}
    for level in LEVELS:
        v = None if has is not None and not has[level] else 0.0
        out[f"{level}_f1"] = {"strict": v, "relaxed": v}
        out["detail"][level] = {m: {"precision": v, "recall": v, "f1": v} for m in ("strict", "relaxed")}
    return out


def score_parsed(reference: ParseResult, prediction: ParseResult, threshold: float = DEFAULT_THRESHOLD,
                 reference_name: str = "reference") -> dict[str, Any]:
    """Structure F1 of two parse results; ValueError when the reference itself did not parse."""
    if not reference.ok:
        raise ValueError(f"{reference_name} does not parse as Mermaid: {reference.error}")
    if not prediction.ok:
        return unparsed(prediction.error or "parse error", reference.diagram)
    return structure_f1(reference.diagram, prediction.diagram, threshold)


_FENCE = re.compile(r"```[ \t]*(?:mermaid)?[ \t]*\n(.*?)(?:\n```|$)", re.S | re.I)


def mermaid_block(text: str) -> str:
    """The Mermaid a model wrote: the first fenced block (```mermaid ... ```) when there is one, else the
    whole reply (chat models fence code even when asked not to)."""
    m = _FENCE.search(text or "")
    return m.group(1) if m else (text or "")


def structure_from_mermaid(pairs: Sequence[tuple[str, str]], *, threshold: float = DEFAULT_THRESHOLD,
                           renderer: MermaidRenderer | None = None, **kw) -> list[dict[str, Any]]:
    """Score (reference source, prediction source) pairs, parsing all of them in one batch.

    A pair whose reference does not parse gets ``{"error": ...}`` (and no scores) instead of raising, so a
    batch goes on; the caller counts those rows as bad.
    """
    srcs = [s for ref, pred in pairs for s in (ref, mermaid_block(pred))]
    parsed = parse_mermaid(srcs, renderer=renderer, **kw)
    out = []
    for k in range(len(pairs)):
        ref, pred = parsed[2 * k], parsed[2 * k + 1]
        try:
            out.append(score_parsed(ref, pred, threshold))
        except ValueError as e:
            out.append({"error": str(e)})
    return out


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Parse rate and mean F1 per level and mode over scored rows (rows with a reference error skipped; a
    level's mean over the rows whose reference has that level)."""
    scored = [r for r in rows if "parsed" in r]
    out: dict[str, Any] = {"n": len(scored), "parse_rate": (sum(r["parsed"] for r in scored) / len(scored))
                           if scored else None}
    for level in LEVELS:
        out[f"{level}_f1"] = {}
        for mode in ("strict", "relaxed"):
            vals = [r[f"{level}_f1"][mode] for r in scored if r[f"{level}_f1"][mode] is not None]
            out[f"{level}_f1"][mode] = sum(vals) / len(vals) if vals else None
    return out


__all__ = ["structure_f1", "structure_from_mermaid", "mermaid_block", "score_parsed", "unparsed", "aggregate",
           "DEFAULT_THRESHOLD",
           "LEVELS"]
