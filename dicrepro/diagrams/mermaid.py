"""Graph -> Mermaid text, one writer per diagram type, and the mermaid config of a sample.

The structural types (flowchart, block, architecture, sequence, state, class, er) are written here, the
chart and plan types in :mod:`dicrepro.diagrams.mermaid_charts`; both escape every label with
:mod:`dicrepro.diagrams.mermaid_text`, so the text mermaid.js draws is exactly the label in the graph.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from dicrepro.diagrams.graph import Diagram, Node
from dicrepro.diagrams.mermaid_charts import WRITERS as CHART_WRITERS
from dicrepro.diagrams.mermaid_text import IDENT, bare, esc, frontmatter, node_ids, q, two_lines

# --- flowchart and block -----------------------------------------------------------------------------

SHAPES = {
    "rect": '["{}"]', "round": '("{}")', "stadium": '(["{}"])', "subroutine": '[["{}"]]',
    "cylinder": '[("{}")]', "circle": '(("{}"))', "rhombus": '{{"{}"}}', "hexagon": '{{{{"{}"}}}}',
    "parallelogram": '[/"{}"/]', "parallelogram_alt": '[\\"{}"\\]', "trapezoid": '[/"{}"\\]',
    "asymmetric": '>"{}"]',
}
DEFAULT_SHAPE = {"process": "rect", "default": "rect", "decision": "rhombus", "start": "stadium",
                 "end": "stadium", "io": "parallelogram", "subroutine": "subroutine", "database": "cylinder",
                 "server": "rect", "cloud": "round", "disk": "cylinder", "internet": "hexagon"}
ARROWS = {"solid": "-->", "dotted": "-.->", "thick": "==>"}


def _node_decl(n: Node, nid: str, shapes: dict[str, str], breaks: bool = False) -> str:
    shape = shapes.get(n.kind) or DEFAULT_SHAPE.get(n.kind, "rect")
    return nid + SHAPES[shape].format(two_lines(esc(n.label), breaks))


_CLASS_DEFS = {"decision": "fill:#fff4ce,stroke:#b58900", "terminal": "fill:#e6f4ea,stroke:#1e8e3e",
               "store": "fill:#e8f0fe,stroke:#1a73e8"}


def _flowchart(d: Diagram) -> str:
    ids, shapes = node_ids(d), d.meta.get("shapes", {})
    breaks = bool(d.meta.get("label_breaks"))
    lines = [f"flowchart {d.meta.get('direction', 'TD')}"]
    grouped = {m for g in d.groups for m in g.members}
    for n in d.nodes:
        if n.id not in grouped:
            lines.append("  " + _node_decl(n, ids[n.id], shapes, breaks))
    parents = d.meta.get("group_parents", {})
    index = {g.id: i for i, g in enumerate(d.groups)}

    def subgraph(i: int, depth: int) -> None:  # nested subgraphs inside their parent's block
        g, pad = d.groups[i], "  " * depth
        lines.append(f"{pad}subgraph g{i}[{q(g.label)}]")
        lines.extend(pad + "  " + _node_decl(d.node(m), ids[m], shapes, breaks) for m in g.members)
        for c in d.groups:
            if parents.get(c.id) == g.id:
                subgraph(index[c.id], depth + 1)
        lines.append(f"{pad}end")

    for i, g in enumerate(d.groups):
        if g.id not in parents:
            subgraph(i, 1)
    arrow = ARROWS[d.meta.get("edge_style", "solid")]
    for e in d.edges:
        label = f"|{q(e.label)}|" if e.label else ""
        lines.append(f"  {ids[e.src]} {arrow}{label} {ids[e.dst]}")
    if d.meta.get("class_defs"):
        kinds = {"decision": "decision", "start": "terminal", "end": "terminal", "database": "store"}
        members: dict[str, list[str]] = {}
        for n in d.nodes:
            if n.kind in kinds:
                members.setdefault(kinds[n.kind], []).append(ids[n.id])
        for cls, nids in members.items():
            lines.append(f"  classDef {cls} {_CLASS_DEFS[cls]}")
            lines.append(f"  class {','.join(nids)} {cls}")
    return "\n".join(lines)


def _block(d: Diagram) -> str:
    ids, shapes = node_ids(d), d.meta.get("shapes", {})
    lines = ["block-beta", f"  columns {int(d.meta.get('columns', 3))}"]
    lines += ["  " + _node_decl(n, ids[n.id], shapes) for n in d.nodes]
    for e in d.edges:
        mid = f' -- {q(e.label)} --> ' if e.label else " --> "
        lines.append(f"  {ids[e.src]}{mid}{ids[e.dst]}")
    return "\n".join(lines)


# --- architecture ------------------------------------------------------------------------------------

ARCH_ICONS = ("cloud", "database", "disk", "internet", "server")


def _arch_label(label: str) -> str:
    # architecture-beta draws its labels without decoding entity codes: raw text in quotes, and a
    # double quote cannot be written at all.
    if '"' in label or "\n" in label:
        raise ValueError(f"architecture label {label!r} cannot hold a double quote or newline")
    return f'"{label}"'


def _architecture(d: Diagram) -> str:
    ids = node_ids(d)
    lines = ["architecture-beta"]
    zone = {}
    for i, g in enumerate(d.groups):
        lines.append(f"  group g{i}(cloud)[{_arch_label(g.label)}]")
        zone.update({m: f"g{i}" for m in g.members})
    for n in d.nodes:
        icon = n.kind if n.kind in ARCH_ICONS else "server"
        where = f" in {zone[n.id]}" if n.id in zone else ""
        lines.append(f"  service {ids[n.id]}({icon})[{_arch_label(n.label)}]{where}")
    for e in d.edges:
        a, b = e.attrs.get("sides", ["R", "L"])
        lines.append(f"  {ids[e.src]}:{a} --> {b}:{ids[e.dst]}")
    return "\n".join(lines)


# --- sequence ----------------------------------------------------------------------------------------

SEQ_ARROWS = {"sync": "->>", "async": "-)", "reply": "-->>", "default": "->>"}
_PHASE_COLORS = ("rgba(66,133,244,0.10)", "rgba(52,168,83,0.10)", "rgba(251,188,4,0.12)",
                 "rgba(234,67,53,0.08)", "rgba(128,128,128,0.10)")


def _sequence(d: Diagram) -> str:
    ids = node_ids(d)
    lines = ["sequenceDiagram"]
    if d.meta.get("autonumber"):
        lines.append("  autonumber")
    for n in d.nodes:
        word = "actor" if n.kind == "actor" else "participant"
        lines.append(f"  {word} {ids[n.id]} as {bare(n.label)}")
    edges = d.ordered_edges()
    # Phases are contiguous runs of message indices (the sampler guarantees it); drawn as a tinted
    # rect with a note naming the phase over the participants it spans.
    starts = {min(int(m) for m in g.members): g for g in d.groups if g.members}
    # Blocks (alt/opt/loop/par, parents first), notes and activations of sample_realism / parse.
    blocks = d.meta.get("blocks", [])
    opens: dict[int, list[str]] = {}
    closes: dict[int, int] = {}
    for b in blocks:
        for k, br in enumerate(b["branches"]):
            word = b["kind"] if k == 0 else _NEXT_BRANCH.get(b["kind"], "else")
            cond = f" {bare(br['condition'])}" if br["condition"] else ""
            opens.setdefault(min(br["messages"]), []).append(word + cond)
        last = max(b["branches"][-1]["messages"])
        closes[last] = closes.get(last, 0) + 1
    notes: dict[int, list[dict]] = {}
    for nt in d.meta.get("notes", []):
        notes.setdefault(int(nt["after"]), []).append(nt)
    acts = d.meta.get("activations", [])
    breaks = bool(d.meta.get("label_breaks"))
    open_until = -1
    for i, e in enumerate(edges):
        if i in starts:
            g = starts[i]
            members = sorted(int(m) for m in g.members)
            span = [x for k in members for x in (edges[k].src, edges[k].dst)]
            order = [n.id for n in d.nodes if n.id in span]
            lines.append(f"  rect {_PHASE_COLORS[len(lines) % len(_PHASE_COLORS)]}")
            over = ids[order[0]] if len(order) == 1 else f"{ids[order[0]]},{ids[order[-1]]}"
            lines.append(f"  Note over {over}: {bare(g.label)}")
            open_until = members[-1]
        lines.extend(f"  {line}" for line in opens.get(i, []))
        lines.extend(_seq_note(nt, ids, breaks) for nt in notes.get(i, []))
        arrow = SEQ_ARROWS.get(e.kind, "->>")
        lines.append(f"  {ids[e.src]}{arrow}{ids[e.dst]}: {two_lines(bare(e.label), breaks, 30)}")
        lines.extend(f"  activate {ids[a[0]]}" for a in acts if a[1] == i)
        lines.extend(f"  deactivate {ids[a[0]]}" for a in acts if a[2] == i)
        lines.extend(["  end"] * closes.get(i, 0))
        if i == open_until:
            lines.append("  end")
            open_until = -1
    lines.extend(_seq_note(nt, ids, breaks) for k, ns in notes.items() if k >= len(edges) for nt in ns)
    return "\n".join(lines)


_NEXT_BRANCH = {"alt": "else", "par": "and", "critical": "option"}


def _seq_note(nt: dict, ids: dict[str, str], breaks: bool) -> str:
    where = ",".join(ids[x] for x in nt["over"])
    return f"  Note {nt.get('position', 'over')} {where}: {two_lines(bare(nt['text']), breaks)}"


# --- state -------------------------------------------------------------------------------------------

def _state(d: Diagram) -> str:
    ids = node_ids(d)
    lines = ["stateDiagram-v2"]
    if d.meta.get("direction"):
        lines.append(f"  direction {d.meta['direction']}")
    ref = {}
    # composite states (sample_realism / parse): a node and a group of the same id, children inside it
    inside = {m: g.id for g in d.groups for m in g.members}
    composite = {g.id: g for g in d.groups}

    def decl(n: Node) -> str:
        if n.kind == "choice":
            return f"state {ids[n.id]} <<choice>>"
        return f"state {q(n.label)} as {ids[n.id]}"

    for n in d.nodes:
        ref[n.id] = "[*]" if n.kind in ("start", "end") else ids[n.id]
    for n in d.nodes:
        if n.kind in ("start", "end") or n.id in inside:
            continue
        if n.id in composite:
            lines.append(f"  state {q(n.label)} as {ids[n.id]} {{")
            lines.extend("    " + decl(d.node(m)) for m in composite[n.id].members)
            lines.extend(f"    {ref[e.src]} --> {ref[e.dst]}" + (f" : {bare(e.label)}" if e.label else "")
                         for e in d.edges if inside.get(e.src) == n.id and inside.get(e.dst) == n.id)
            lines.append("  }")
        else:
            lines.append("  " + decl(n))
    for e in d.edges:
        if inside.get(e.src) is not None and inside.get(e.src) == inside.get(e.dst):
            continue  # written inside its composite
        label = f" : {bare(e.label)}" if e.label else ""
        lines.append(f"  {ref[e.src]} --> {ref[e.dst]}{label}")
    return "\n".join(lines)


# --- class and er ------------------------------------------------------------------------------------

CLASS_ARROWS = {"inheritance": "<|--", "composition": "*--", "aggregation": "o--", "association": "-->",
                "dependency": "..>", "realization": "<|..", "default": "-->"}


def _class(d: Diagram) -> str:
    ids = node_ids(d)
    lines = ["classDiagram"]
    if d.meta.get("direction"):
        lines.append(f"  direction {d.meta['direction']}")
    for n in d.nodes:
        members = list(n.attrs.get("fields", [])) + list(n.attrs.get("methods", []))
        if not members:
            lines.append(f"  class {ids[n.id]}[{q(n.label)}]")
            continue
        lines.append(f"  class {ids[n.id]}[{q(n.label)}] {{")
        lines += [f"    {esc(m, '#<>{};')}" for m in members]
        lines.append("  }")
    for e in d.edges:
        label = " : " + esc(e.label, '#<>:;"') if e.label else ""
        if e.kind in ("inheritance", "realization"):  # child -> parent in the graph, parent first here
            lines.append(f"  {ids[e.dst]} {CLASS_ARROWS[e.kind]} {ids[e.src]}{label}")
        else:
            lines.append(f"  {ids[e.src]} {CLASS_ARROWS.get(e.kind, '-->')} {ids[e.dst]}{label}")
    return "\n".join(lines)


_ER_CARD = re.compile(r"^(\|\||\|o|o\||\}o|o\{|\}\||\|\{)(--|\.\.)(\|\||\|o|o\||\}o|o\{|\}\||\|\{)$")


def _er(d: Diagram) -> str:
    ids = node_ids(d)
    lines = ["erDiagram"]
    if d.meta.get("direction"):
        lines.append(f"  direction {d.meta['direction']}")
    for n in d.nodes:
        lines.append(f"  {ids[n.id]}[{q(n.label)}] {{")
        for f in n.attrs.get("fields", []):
            typ, name, key = (list(f) + ["", ""])[:3]
            if not (IDENT.match(typ) and IDENT.match(name)):
                raise ValueError(f"er entity {n.label!r}: field {f!r} needs identifier type and name")
            lines.append(f"    {typ} {name}{' ' + key if key else ''}")
        lines.append("  }")
    for e in d.edges:
        card = e.attrs.get("cardinality", "||--o{")
        if not _ER_CARD.match(card):
            raise ValueError(f"er relationship {e.src}->{e.dst}: bad cardinality {card!r}")
        lines.append(f"  {ids[e.src]} {card} {ids[e.dst]} : {q(e.label or '-')}")
    return "\n".join(lines)


WRITERS: dict[str, Callable[[Diagram], str]] = {
    "flowchart": _flowchart, "sequence": _sequence, "state": _state, "class": _class, "er": _er,
    "block": _block, "architecture": _architecture, **CHART_WRITERS,
}
# Types whose grammar has its own title line; the rest get a YAML front-matter title.
_OWN_TITLE = {"gantt", "pie", "timeline", "xychart", "quadrant", "packet"}


def to_mermaid(d: Diagram) -> str:
    """The Mermaid source of ``d`` (deterministic: the same graph always gives the same text)."""
    try:
        writer = WRITERS[d.diagram_type]
    except KeyError:
        raise ValueError(f"no Mermaid writer for diagram type {d.diagram_type!r}; "
                         f"supported: {sorted(WRITERS)}") from None
    body = writer(d)
    head = "" if d.diagram_type in _OWN_TITLE else frontmatter(d)
    return head + body + "\n"


def render_config(d: Diagram) -> dict:
    """The mermaid.initialize() config for this sample, from its presentation meta."""
    cfg: dict = {"theme": d.meta.get("theme", "default")}
    if d.meta.get("themeVariables"):
        cfg["themeVariables"] = dict(d.meta["themeVariables"])
    if d.meta.get("look"):
        cfg["look"] = d.meta["look"]
    if d.diagram_type == "flowchart" and d.meta.get("curve"):
        cfg["flowchart"] = {"curve": d.meta["curve"]}
    if d.diagram_type == "sequence":
        cfg["sequence"] = {"mirrorActors": bool(d.meta.get("mirror_actors", False))}
    return cfg
