"""Graph -> Mermaid text for the chart and plan types: gantt, pie, mindmap, timeline, xychart, quadrant,
requirement, packet (the structural types are in :mod:`dicrepro.diagrams.mermaid`, which dispatches to both)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta

from dicrepro.diagrams.graph import Diagram
from dicrepro.diagrams.mermaid_text import bare, esc, node_ids, q


def _head(keyword: str, d: Diagram, quote=bare) -> list[str]:
    """A chart's first lines: its keyword, then its title unless the sample hides it."""
    return [keyword, f"  title {quote(d.title)}"] if d.meta.get("show_title", True) else [keyword]


def _gantt(d: Diagram) -> str:
    ids = node_ids(d)
    lines = _head("gantt", d)
    lines += ["  dateFormat YYYY-MM-DD", f"  axisFormat {d.meta.get('axis_format', '%m-%d')}"]
    preds: dict[str, list[str]] = {}
    for e in d.edges:
        preds.setdefault(e.dst, []).append(ids[e.src])
    grouped = [(g.label, g.members) for g in d.groups] or [("", [n.id for n in d.nodes])]
    for label, members in grouped:
        if label:
            lines.append(f"  section {bare(label)}")
        for m in members:
            n = d.node(m)
            when = f"after {' '.join(preds[m])}" if m in preds else n.attrs["start"]
            lines.append(f"  {_gantt_task(n.label)} :{ids[m]}, {when}, {int(n.attrs['days'])}d")
    return "\n".join(lines)


def _gantt_task(label: str) -> str:
    # gantt's lexer takes a line starting with "call" or "click" (any case) for a callback statement:
    # "Call back customer" was a parse error. The first letter as an entity code draws the same text.
    text = bare(label)
    return f"#{ord(text[0])};{text[1:]}" if re.match(r"(?i)(call|click)\b", text) else text


def _pie(d: Diagram) -> str:
    lines = _head("pie showData" if d.meta.get("show_data") else "pie", d)
    lines += [f"  {q(n.label)} : {n.attrs['value']}" for n in d.nodes]
    return "\n".join(lines)


def _mindmap(d: Diagram) -> str:
    ids = node_ids(d)
    children: dict[str, list[str]] = {}
    for e in d.edges:
        children.setdefault(e.src, []).append(e.dst)
    shapes = d.meta.get("level_shapes", ["circle", "round", "rect"])
    forms = {"circle": '(("{}"))', "round": '("{}")', "rect": '["{}"]', "hexagon": '{{{{"{}"}}}}',
             "bang": '))"{}"((', "cloud": ')"{}"('}
    lines = ["mindmap"]

    def walk(nid: str, depth: int) -> None:
        shape = shapes[min(depth, len(shapes) - 1)]
        lines.append("  " * (depth + 1) + ids[nid] + forms[shape].format(esc(d.node(nid).label)))
        for c in children.get(nid, []):
            walk(c, depth + 1)

    walk(d.nodes[0].id, 0)
    return "\n".join(lines)


def _timeline(d: Diagram) -> str:
    lines = _head("timeline", d)
    for g in d.groups:
        events = " : ".join(bare(d.node(m).label) for m in g.members)
        lines.append(f"  {bare(g.label)} : {events}")
    return "\n".join(lines)


def _xychart(d: Diagram) -> str:
    lines = _head("xychart-beta" + (" horizontal" if d.meta.get("horizontal") else ""), d, quote=q)
    cats = ", ".join(q(n.label) for n in d.nodes)
    x_label = f"{q(d.meta['x_label'])} " if d.meta.get("x_label") else ""
    lines.append(f"  x-axis {x_label}[{cats}]")
    values = [float(n.attrs["value"]) for n in d.nodes]
    top = d.meta.get("y_max") or max(values) * 1.15 or 1
    lines.append(f"  y-axis {q(d.meta.get('y_label', 'value'))} 0 --> {_num(top)}")
    lines.append(f"  {d.meta.get('kind', 'bar')} [{', '.join(_num(v) for v in values)}]")
    return "\n".join(lines)


def _num(v: float) -> str:
    v = round(float(v), 2)
    return str(int(v)) if v.is_integer() else f"{v:.2f}".rstrip("0").rstrip(".")


def _quadrant(d: Diagram) -> str:
    lines = _head("quadrantChart", d)
    xa, ya = d.meta["x_axis"], d.meta["y_axis"]
    lines.append(f"  x-axis {q(xa[0])} --> {q(xa[1])}")
    lines.append(f"  y-axis {q(ya[0])} --> {q(ya[1])}")
    lines += [f"  quadrant-{i + 1} {q(name)}" for i, name in enumerate(d.meta["quadrants"][:4])]
    lines += [f"  {q(n.label)}: [{n.attrs['x']:.2f}, {n.attrs['y']:.2f}]" for n in d.nodes]
    return "\n".join(lines)


REQ_TYPES = ("requirement", "functionalRequirement", "interfaceRequirement", "performanceRequirement",
             "physicalRequirement", "designConstraint")


def _requirement(d: Diagram) -> str:
    lines = ["requirementDiagram"]
    if d.meta.get("direction"):
        lines.append(f"  direction {d.meta['direction']}")
    for n in d.nodes:
        if n.kind == "requirement":
            rtype = n.attrs.get("req_type", "requirement")
            lines += [f"  {rtype} {q(n.label)} {{", f"    id: {q(n.attrs.get('req_id', n.id))}",
                      f"    text: {q(n.attrs.get('text', n.label))}",
                      f"    risk: {str(n.attrs.get('risk', 'Medium')).lower()}",
                      f"    verifymethod: {str(n.attrs.get('verify_method', 'Test')).lower()}", "  }"]
        else:
            lines += [f"  element {q(n.label)} {{", f"    type: {q(n.attrs.get('type', 'element'))}", "  }"]
    for e in d.edges:
        lines.append(f"  {q(d.label_of(e.src))} - {e.kind} -> {q(d.label_of(e.dst))}")
    return "\n".join(lines)


def _packet(d: Diagram) -> str:
    lines = _head("packet-beta", d)
    for n in d.nodes:
        s, e = int(n.attrs["start"]), int(n.attrs["end"])
        lines.append(f"  {s}{'' if s == e else f'-{e}'}: {q(n.label)}")
    return "\n".join(lines)


WRITERS: dict[str, Callable[[Diagram], str]] = {
    "gantt": _gantt, "pie": _pie, "mindmap": _mindmap, "timeline": _timeline, "xychart": _xychart,
    "quadrant": _quadrant, "requirement": _requirement, "packet": _packet,
}


def gantt_dates(start: str, days: list[int], preds: list[list[int]]) -> list[str]:
    """Start dates (YYYY-MM-DD) of tasks given durations and predecessor indices (each after all preds)."""
    t0 = date.fromisoformat(start)
    ends: list[date] = []
    starts: list[str] = []
    for dur, ps in zip(days, preds):
        s = max((ends[p] for p in ps), default=t0)
        starts.append(s.isoformat())
        ends.append(s + timedelta(days=int(dur)))
    return starts
