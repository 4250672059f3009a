"""Mermaid source -> :class:`~dicrepro.diagrams.graph.Diagram`, with mermaid.js's own parser.

No grammar of ours: each source goes through ``mermaid.mermaidAPI.getDiagramFromText`` in the same pinned
mermaid.js and the same locked-down Chromium page as rendering (:mod:`dicrepro.diagrams.render`:
securityLevel strict, every request refused, nothing drawn), and the diagram's db is read through its
getters. This module only maps those db values onto the graph, one mapper per diagram type:

    with MermaidRenderer(workers=1) as r:
        [res] = parse_mermaid(["sequenceDiagram\\n  A->>B: Hello"], renderer=r)
    res.ok, res.diagram.edges[0].label   # True, "Hello"

What the graph gains from real Mermaid, beyond the conventions of :mod:`dicrepro.diagrams.graph`:

- ``sequence``: node ids are mermaid's participant names, labels their aliases; edges are messages in
  document order (``order`` 0, 1, ...; self-messages have ``src == dst``; ``kind`` sync/reply/async or the
  arrow's own name, ``attrs["arrow"]`` mermaid's line type). A ``rect`` whose first line is a Note is a
  phase (a :class:`Group`, members = message indices), the way :func:`~dicrepro.diagrams.mermaid.to_mermaid`
  writes phases. ``meta["blocks"]``: alt/opt/loop/par/critical/break/rect blocks, each
  ``{"kind", "parent" (index of the enclosing block or None), "branches": [{"condition", "messages"}]}``
  (``else``/``and``/``option`` open a new branch); ``meta["notes"]``: ``{"text", "over" [ids],
  "position" left of/right of/over, "after" (messages before it)}``; ``meta["activations"]``:
  ``[participant id, activated after message i, deactivated after message j]``; ``meta["autonumber"]``.
- ``flowchart``: ``kind`` from the shape (decision, database, subroutine, io, start/end for stadium and
  circle, process otherwise), ``attrs["shape"]`` the shape's name in :data:`~dicrepro.diagrams.mermaid.SHAPES`
  terms; edge ``kind`` the stroke (solid/dotted/thick/invisible), ``attrs["arrow"]`` mermaid's arrow type;
  groups = subgraphs (members: their own nodes), ``meta["group_parents"]`` maps a nested subgraph to its parent.
- ``state``: composite states are a node and a group of the same id; notes in ``meta["notes"]``.
- any other type mermaid knows but we do not map: ``ParseResult.unsupported`` says so, ``error`` reads
  ``unsupported: <type>`` and ``diagram`` holds the labels only (nodes of kind ``label``, no edges), never a
  guessed structure.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dicrepro.diagrams.graph import Diagram, Node
from dicrepro.diagrams.parse_types import MAPPERS, decode
from dicrepro.diagrams.render import MermaidRenderer

log = logging.getLogger(__name__)


@dataclass
class ParseResult:
    """One source's outcome: ``diagram`` (None when it does not parse) and ``error`` saying why."""

    diagram: Diagram | None
    error: str | None = None
    mermaid_type: str = ""
    unsupported: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.diagram is not None and self.error is None


_FRONTMATTER = re.compile(r"^\s*-{3}\s*[\n\r](.*?)[\n\r]-{3}\s*([\n\r]|$)", re.S)


def frontmatter_title(source: str) -> str:
    """The ``title:`` of a YAML front matter block, '' when there is none (YAML, not Mermaid grammar)."""
    m = _FRONTMATTER.match(source)
    if not m:
        return ""
    import yaml

    try:
        data = yaml.safe_load(m.group(1))
    except yaml.YAMLError:
        return ""
    return str(data.get("title", "") or "") if isinstance(data, dict) else ""


SUPPORTED_TYPES = sorted({t for t, _, _ in MAPPERS.values()})
_LABEL_KEYS = ("label", "text", "title", "descr", "description", "message", "task", "name", "alias")


def _getters() -> dict[str, list[str]]:
    return {k: v[2] for k, v in MAPPERS.items()}


def labels_only(db: Any) -> list[str]:
    """Every label-like string in a db snapshot (values under label/text/title/... keys), first-seen order."""
    out: list[str] = []

    def walk(x: Any, key: str = "") -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                walk(v, k)
        elif isinstance(x, list):
            for v in x:
                walk(v, key)
        elif isinstance(x, str) and key in _LABEL_KEYS:
            s = decode(x)
            if s and not s.startswith(("fill:", "stroke")):
                out.append(s)

    walk(db)
    return list(dict.fromkeys(out))


def from_snapshot(raw: dict, source: str = "") -> ParseResult:
    """Map one raw db snapshot (:meth:`MermaidRenderer.parse_batch`) onto a Diagram."""
    if raw.get("error"):
        return ParseResult(None, str(raw["error"]).splitlines()[0] if raw["error"] else "parse error")
    mtype, db = raw.get("type", ""), raw.get("db") or {}
    title = frontmatter_title(source) or decode(raw.get("title") or db.get("getDiagramTitle"))
    if mtype not in MAPPERS:
        labels = labels_only(db)
        d = Diagram(diagram_type=mtype, title=title, topic="", area="",
                    nodes=[Node(f"l{i}", lab, "label") for i, lab in enumerate(labels)],
                    meta={"unsupported": True})
        return ParseResult(d, f"unsupported: {mtype}", mtype, unsupported=True)
    dtype, mapper, _ = MAPPERS[mtype]
    d = Diagram(diagram_type=dtype, title=title, topic="", area="")
    d.meta["show_title"] = bool(title)
    warnings = []
    broken = [k for k, v in db.items() if isinstance(v, dict) and set(v) == {"error"}]
    if broken:
        warnings.append("getters failed: " + ", ".join(broken))
    mapper(db, d)
    known = {n.id for n in d.nodes}
    dangling = [e for e in d.edges if e.src not in known or e.dst not in known]
    if dangling:  # e.g. a gantt 'after' naming an unknown task: drop the edge, say so
        warnings.append(f"{len(dangling)} edges name unknown nodes and were dropped")
        d.edges = [e for e in d.edges if e not in dangling]
    return ParseResult(d, None, mtype, warnings=warnings)


def parse_mermaid(sources: Sequence[str], renderer: MermaidRenderer | None = None, **kw) -> list[ParseResult]:
    """Parse Mermaid ``sources`` -> one :class:`ParseResult` per source, in order; never raises on bad input.

    ``renderer``: a started :class:`MermaidRenderer` to reuse (its pages also render); without one a
    renderer is started with ``kw`` (e.g. ``workers=1``) and closed afterwards.
    """
    sources = list(sources)
    if renderer is None:
        kw.setdefault("progress", False)
        with MermaidRenderer(**kw) as r:
            return parse_mermaid(sources, renderer=r)
    raws = renderer.parse_batch(sources, _getters())
    out = []
    for src, raw in zip(sources, raws):
        try:
            out.append(from_snapshot(raw, src))
        except (KeyError, TypeError, ValueError, AttributeError) as e:  # a db shape this mermaid build changed
            log.warning("mapping a parsed %s diagram failed: %s", raw.get("type"), e)
            out.append(ParseResult(None, f"map error: {raw.get('type')}: {type(e).__name__}: {e}",
                                   str(raw.get("type", ""))))
    return out


def parse_one(source: str, renderer: MermaidRenderer | None = None, **kw) -> ParseResult:
    """Parse one Mermaid source (see :func:`parse_mermaid`)."""
    return parse_mermaid([source], renderer=renderer, **kw)[0]


__all__ = ["ParseResult", "parse_mermaid", "parse_one", "from_snapshot", "decode", "frontmatter_title",
           "labels_only", "SUPPORTED_TYPES", "MAPPERS"]
