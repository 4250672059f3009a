"""The typed graph behind every diagram.

A `Diagram` is the single source of truth for a sample: Mermaid source, descriptions and VQA answer keys
are all derived from it, never parsed back from pixels. One shape serves every diagram type. Conventions per ``diagram_type`` (generators, verbalizer and VQA
all rely on them):

- ``flowchart``: nodes kind in process/decision/start/end/io/subroutine/database; edges labelled
  arrows (decision branches labelled e.g. "yes"/"no"); groups = subgraphs (members: node ids);
  meta["direction"] TD/LR/BT/RL.
- ``sequence``: nodes = participants (kind participant/actor); edges = messages, ``order`` = time order,
  kind sync/async/reply; groups = phases, members = message indices as strings; meta["autonumber"].
- ``state``: nodes = states (kind state/start/end/choice; start/end have empty labels); edges =
  transitions labelled with the event.
- ``class``: nodes = classes, attrs["fields"], attrs["methods"] (lists of str); edges kind in
  inheritance/composition/aggregation/association/dependency, optional label.
- ``er``: nodes = entities, attrs["fields"] = list of [type, name, key] (key "PK"/"FK"/""); edges =
  relationships, label = verb phrase, attrs["cardinality"] = Mermaid ER marker like "||--o{".
- ``gantt``: nodes = tasks, attrs start (YYYY-MM-DD), days (int); groups = sections; edges = "after"
  dependencies (src must finish before dst).
- ``pie``: nodes = slices with attrs["value"] (number).
- ``mindmap``: nodes[0] is the root; edges parent -> child.
- ``timeline``: groups = periods (label = the period), nodes = events (members of their period).
- ``block`` / ``architecture``: like flowchart; nodes kind server/database/cloud/disk/internet/...;
  groups = zones.
- ``xychart``: nodes = x categories (label) with attrs["value"]; meta["y_label"], meta["kind"] bar/line.
- ``quadrant``: nodes = points with attrs x, y in 0..1; meta x_axis, y_axis (pairs), quadrants (4 names).
- ``requirement``: nodes kind requirement/element, attrs risk, verify_method, text; edges kind
  satisfies/verifies/traces/contains/derives/refines.
- ``packet``: nodes = header fields in bit order, attrs start, end (bit offsets).

``meta`` also holds presentation choices (theme, direction, look) that change pixels but not content.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Node:
    """An element of a diagram: a process step, participant, state, class, task, slice..."""

    id: str
    label: str
    kind: str = "default"
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Edge:
    """A directed relation: arrow, message, transition, dependency or relation."""

    src: str
    dst: str
    label: str = ""
    kind: str = "default"
    order: int | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Group:
    """A named set of members: subgraph, phase, section, period."""

    id: str
    label: str
    members: list[str] = field(default_factory=list)


@dataclass
class Diagram:
    """A diagram's logical content, independent of how it is drawn."""

    diagram_type: str
    title: str
    topic: str
    area: str
    language: str = "en"
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def node(self, node_id: str) -> Node:
        """Return the node with this id (KeyError names the id if absent)."""
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(f"diagram {self.title!r} has no node {node_id!r}")

    def label_of(self, node_id: str) -> str:
        return self.node(node_id).label

    def ordered_edges(self) -> list[Edge]:
        """Edges in their logical order (explicit ``order`` first, then insertion order)."""
        indexed = list(enumerate(self.edges))
        indexed.sort(key=lambda ie: (ie[1].order if ie[1].order is not None else ie[0], ie[0]))
        return [e for _, e in indexed]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no whitespace variance) so hashes and bytes are reproducible."""
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Diagram:
        return cls(
            diagram_type=d["diagram_type"],
            title=d["title"],
            topic=d["topic"],
            area=d["area"],
            language=d.get("language", "en"),
            nodes=[Node(**n) for n in d.get("nodes", [])],
            edges=[Edge(**e) for e in d.get("edges", [])],
            groups=[Group(**g) for g in d.get("groups", [])],
            meta=dict(d.get("meta", {})),
        )

    @classmethod
    def from_json(cls, s: str) -> Diagram:
        return cls.from_dict(json.loads(s))
