"""The mappers of :mod:`dicrepro.diagrams.parse`: one function per mermaid diagram type, from the values
of its db getters (as JSON) to a :class:`~dicrepro.diagrams.graph.Diagram`, and :func:`decode`, which
turns a label back into the text mermaid draws. ``MAPPERS`` says, per mermaid type, our diagram type, the
mapper and the getters it reads (the page reads only those).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from dicrepro.diagrams.graph import Diagram, Edge, Group, Node

# mermaid's own markers for entity codes (encodeEntities in the page), decoded as mermaid does before drawing.
_NUM_ENTITY = re.compile("\ufb02\u00b0\u00b0(\\+?\\d+)\u00b6\u00df")
_NAMED_ENTITY = re.compile("\ufb02\u00b0(\\w+)\u00b6\u00df")
_BREAK = re.compile(r"<br\s*/?>", re.I)
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")


def decode(text: Any) -> str:
    """A label as mermaid draws it: markup out (``<br/>`` as a space, other tags dropped: the drawn text is
    what the reader sees), then entity codes (``#58;``, ``#quot;``) and HTML entities decoded."""
    if text is None:
        return ""
    s = _TAG.sub("", _BREAK.sub(" ", str(text)))
    s = _NUM_ENTITY.sub(lambda m: chr(int(m.group(1))), s)
    s = _NAMED_ENTITY.sub(lambda m: html.unescape(f"&{m.group(1)};"), s)
    return " ".join(html.unescape(s).split())



# --- flowchart -----------------------------------------------------------------------------------------

# mermaid's vertex types -> (our shape name as in mermaid.SHAPES, node kind)
_FLOW_SHAPES = {
    "square": ("rect", "process"), "round": ("round", "process"), "stadium": ("stadium", "start"),
    "subroutine": ("subroutine", "subroutine"), "cylinder": ("cylinder", "database"),
    "circle": ("circle", "start"), "doublecircle": ("circle", "end"), "diamond": ("rhombus", "decision"),
    "hexagon": ("hexagon", "process"), "lean_right": ("parallelogram", "io"),
    "lean_left": ("parallelogram_alt", "io"), "trapezoid": ("trapezoid", "io"),
    "inv_trapezoid": ("trapezoid_alt", "io"), "odd": ("asymmetric", "process"), "rect": ("rect", "process"),
}
_STROKES = {"normal": "solid", "dotted": "dotted", "thick": "thick", "invisible": "invisible"}
_DIRECTIONS = {"TB": "TD"}


def _flowchart(db: dict, d: Diagram) -> None:
    verts = db.get("getVertices") or {}
    for vid, v in verts.items():
        shape, kind = _FLOW_SHAPES.get(v.get("type") or "square", (v.get("type") or "rect", "process"))
        d.nodes.append(Node(vid, decode(v.get("text", vid)), kind, {"shape": shape}))
    for e in db.get("getEdges") or []:
        attrs = {"arrow": e.get("type", "")}
        d.edges.append(Edge(e["start"], e["end"], decode(e.get("text")), _STROKES.get(e.get("stroke"), "solid"),
                            None, attrs))
    subs = {s["id"]: s for s in db.get("getSubGraphs") or []}
    parent = {c: sid for sid, s in subs.items() for c in s.get("nodes", []) if c in subs}
    order: list[str] = []

    def visit(sid: str) -> None:  # parents before children, siblings in mermaid's order
        order.append(sid)
        for c in subs[sid].get("nodes", []):
            if c in subs and parent.get(c) == sid:
                visit(c)

    for sid in subs:
        if sid not in parent:
            visit(sid)
    for sid in order:
        s = subs[sid]
        d.groups.append(Group(sid, decode(s.get("title")), [m for m in s.get("nodes", []) if m in verts]))
    if parent:
        d.meta["group_parents"] = parent
    d.meta["direction"] = _DIRECTIONS.get(db.get("getDirection") or "TB", db.get("getDirection") or "TD")


# --- sequence ------------------------------------------------------------------------------------------

_SEQ_KINDS = {"SOLID": "sync", "DOTTED": "reply", "SOLID_POINT": "async", "DOTTED_POINT": "reply_async",
              "SOLID_CROSS": "cross", "DOTTED_CROSS": "reply_cross", "SOLID_OPEN": "open",
              "DOTTED_OPEN": "reply_open", "BIDIRECTIONAL_SOLID": "bidirectional",
              "BIDIRECTIONAL_DOTTED": "reply_bidirectional"}
_BLOCK_START = {"LOOP_START": "loop", "ALT_START": "alt", "OPT_START": "opt", "PAR_START": "par",
                "PAR_OVER_START": "par", "CRITICAL_START": "critical", "BREAK_START": "break",
                "RECT_START": "rect"}
_BLOCK_NEXT = {"ALT_ELSE", "PAR_AND", "CRITICAL_OPTION"}
_BLOCK_END = {"LOOP_END", "ALT_END", "OPT_END", "PAR_END", "CRITICAL_END", "BREAK_END", "RECT_END"}
_PLACEMENT = {0: "left of", 1: "right of", 2: "over"}


def _sequence(db: dict, d: Diagram) -> None:
    names = {v: k for k, v in (db.get("LINETYPE") or {}).items()}
    for aid, a in (db.get("getActors") or {}).items():
        kind = "actor" if a.get("type") == "actor" else "participant"
        d.nodes.append(Node(aid, decode(a.get("description") or aid), kind))
    blocks: list[dict] = []
    notes: list[dict] = []
    stack: list[int] = []
    active: dict[str, list[int]] = {}
    activations: list[list] = []  # [participant, activated after message i, deactivated after message j]
    n_msg = 0
    items = db.get("getMessages") or []
    for i, m in enumerate(items):
        t = names.get(m.get("type"), "")
        if t == "AUTONUMBER":
            d.meta["autonumber"] = True
        elif t == "ACTIVE_START" and m.get("from"):  # activated after the message before it
            active.setdefault(m["from"], []).append(n_msg - 1)
        elif t == "ACTIVE_END" and m.get("from"):
            if active.get(m["from"]):
                activations.append([m["from"], active[m["from"]].pop(), n_msg - 1])
        elif t in _BLOCK_START:
            blocks.append({"kind": _BLOCK_START[t], "parent": stack[-1] if stack else None,
                           "branches": [{"condition": decode(m.get("message")) if t != "RECT_START" else "",
                                         "messages": []}]})
            stack.append(len(blocks) - 1)
        elif t in _BLOCK_NEXT and stack:
            blocks[stack[-1]]["branches"].append({"condition": decode(m.get("message")), "messages": []})
        elif t in _BLOCK_END and stack:
            stack.pop()
        elif t == "NOTE":
            over = [x for x in (m.get("from"), m.get("to")) if x]
            notes.append({"text": decode(m.get("message")), "over": list(dict.fromkeys(over)),
                          "position": _PLACEMENT.get(m.get("placement"), "over"), "after": n_msg,
                          "in_block": stack[-1] if stack else None, "first_in_block": _first_in_block(items, i, names)})
        elif m.get("from") and m.get("to") and t not in ("ACTIVE_START", "ACTIVE_END"):
            kind = _SEQ_KINDS.get(t, t.lower() or "sync")
            d.edges.append(Edge(m["from"], m["to"], decode(m.get("message")), kind, n_msg, {"arrow": t}))
            for b in stack:  # a message belongs to every enclosing block's current branch
                blocks[b]["branches"][-1]["messages"].append(n_msg)
            n_msg += 1
    # A rect opened by a Note is a phase (how to_mermaid writes phases): a group named by the note.
    phase_notes = set()
    for k, b in enumerate(blocks):
        if b["kind"] != "rect":
            continue
        lead = next((j for j, nt in enumerate(notes) if nt["in_block"] == k and nt["first_in_block"]), None)
        if lead is not None and b["branches"][0]["messages"]:
            phase_notes.add(lead)
            d.groups.append(Group(f"p{len(d.groups)}", notes[lead]["text"],
                                  [str(x) for x in b["branches"][0]["messages"]]))
    kept = [k for k, b in enumerate(blocks) if not (b["kind"] == "rect" and any(
        notes[j]["in_block"] == k for j in phase_notes))]
    renum = {k: i for i, k in enumerate(kept)}
    out_blocks = []
    for k in kept:
        b = dict(blocks[k])
        p = b["parent"]
        while p is not None and p not in renum:  # a phase rect is a group, not a block: skip it as parent
            p = blocks[p]["parent"]
        b["parent"] = renum.get(p) if p is not None else None
        out_blocks.append(b)
    if out_blocks:
        d.meta["blocks"] = out_blocks
    rest = [{k: v for k, v in nt.items() if k not in ("in_block", "first_in_block")}
            for j, nt in enumerate(notes) if j not in phase_notes]
    if rest:
        d.meta["notes"] = rest
    activations += [[p, i, n_msg - 1] for p, starts in active.items() for i in starts]  # never deactivated
    if activations:
        d.meta["activations"] = sorted(activations, key=lambda a: (a[1], a[2], a[0]))


def _first_in_block(items: list[dict], i: int, names: dict) -> bool:
    return i > 0 and names.get(items[i - 1].get("type"), "") == "RECT_START"


# --- state ---------------------------------------------------------------------------------------------

_STATE_SHAPES = {"stateStart": "start", "stateEnd": "end", "choice": "choice", "fork": "fork", "join": "join",
                 "divider": "divider"}


def _state(db: dict, d: Diagram) -> None:
    data = db.get("getData") or {}
    states = db.get("getStates") or {}
    notes = []
    members: dict[str, list[str]] = {}
    for n in data.get("nodes", []):
        shape = n.get("shape", "")
        if shape in ("note", "noteGroup"):
            if shape == "note":
                notes.append({"text": decode(n.get("label")), "over": [n["id"].split("----")[0]],
                              "position": n.get("position", "")})
            continue
        kind = _STATE_SHAPES.get(shape, "composite" if n.get("isGroup") else "state")
        label = "" if kind in ("start", "end", "fork", "join", "choice", "divider") else decode(n.get("label"))
        if kind == "choice":  # a choice has no text of its own; keep a description if one was given
            label = decode(" ".join((states.get(n["id"]) or {}).get("descriptions") or []))
        d.nodes.append(Node(n["id"], label, kind))
        if n.get("parentId") and not str(n["parentId"]).endswith("----parent"):
            members.setdefault(n["parentId"], []).append(n["id"])
    for e in data.get("edges", []):
        if "----" in e["start"] or "----" in e["end"]:  # the line from a state to its note
            continue
        d.edges.append(Edge(e["start"], e["end"], decode(e.get("label"))))
    for n in d.nodes:
        if n.kind == "composite":
            d.groups.append(Group(n.id, n.label, members.get(n.id, [])))
    if notes:
        d.meta["notes"] = notes
    if db.get("getDirectionStatement"):
        d.meta["direction"] = db.get("getDirection")


# --- class and er --------------------------------------------------------------------------------------

_CLASS_REL = {0: "aggregation", 1: "inheritance", 2: "composition", 3: "dependency", 4: "lollipop"}


def _member(m: dict, method: bool) -> str:
    text = decode(m.get("id") or m.get("text"))
    if method:
        text = f"{text}({decode(m.get('parameters'))})" + (f" {decode(m['returnType'])}" if m.get("returnType") else "")
    return (m.get("visibility") or "") + text + (m.get("classifier") or "")


def _class(db: dict, d: Diagram) -> None:
    for cid, c in (db.get("getClasses") or {}).items():
        attrs = {"fields": [_member(m, False) for m in c.get("members", [])],
                 "methods": [_member(m, True) for m in c.get("methods", [])]}
        if c.get("annotations"):
            attrs["annotations"] = [decode(a) for a in c["annotations"]]
        d.nodes.append(Node(cid, decode(c.get("label") or cid), "class", attrs))
    for r in db.get("getRelations") or []:
        rel = r.get("relation", {})
        t1, t2, dotted = rel.get("type1"), rel.get("type2"), rel.get("lineType") == 1
        label = decode(r.get("title"))
        if t1 == 1:  # "Parent <|-- Child": the graph points child -> parent
            d.edges.append(Edge(r["id2"], r["id1"], label, "realization" if dotted else "inheritance"))
        elif t1 in (0, 2):
            d.edges.append(Edge(r["id1"], r["id2"], label, _CLASS_REL[t1]))
        elif t2 == 3:
            d.edges.append(Edge(r["id1"], r["id2"], label, "dependency" if dotted else "association"))
        elif t2 == 1:
            d.edges.append(Edge(r["id1"], r["id2"], label, "realization" if dotted else "inheritance"))
        elif t2 in (0, 2):
            d.edges.append(Edge(r["id2"], r["id1"], label, _CLASS_REL[t2]))
        else:
            d.edges.append(Edge(r["id1"], r["id2"], label, "link_dotted" if dotted else "link"))
    if db.get("getDirection") and db.get("getDirection") != "TB":
        d.meta["direction"] = db["getDirection"]


_ER_LEFT = {"ONLY_ONE": "||", "ZERO_OR_ONE": "|o", "ONE_OR_MORE": "}|", "ZERO_OR_MORE": "}o",
            "MD_PARENT": "u|"}
_ER_RIGHT = {"ONLY_ONE": "||", "ZERO_OR_ONE": "o|", "ONE_OR_MORE": "|{", "ZERO_OR_MORE": "o{",
             "MD_PARENT": "|u"}


def _er(db: dict, d: Diagram) -> None:
    ids = {}
    for key, ent in (db.get("getEntities") or {}).items():
        ids[ent.get("id", key)] = key
        fields = [[decode(a.get("type")), decode(a.get("name")), " ".join(a.get("keys") or [])]
                  for a in ent.get("attributes", [])]
        d.nodes.append(Node(key, decode(ent.get("alias") or key), "entity", {"fields": fields}))
    for r in db.get("getRelationships") or []:
        spec = r.get("relSpec", {})
        card = (_ER_LEFT.get(spec.get("cardB"), "||") + ("--" if spec.get("relType") == "IDENTIFYING" else "..")
                + _ER_RIGHT.get(spec.get("cardA"), "||"))
        label = decode(r.get("roleA"))
        d.edges.append(Edge(ids.get(r["entityA"], r["entityA"]), ids.get(r["entityB"], r["entityB"]),
                            "" if label in ("-", '""') else label, "relationship", None, {"cardinality": card}))
    if db.get("getDirection") and db.get("getDirection") != "TB":
        d.meta["direction"] = db["getDirection"]


# --- charts and plans ----------------------------------------------------------------------------------

def _day(iso: str | None) -> datetime | None:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")) if iso else None


def _gantt(db: dict, d: Diagram) -> None:
    sections: dict[str, list[str]] = {s: [] for s in (db.get("getSections") or [])}
    for t in db.get("getTasks") or []:
        start, end = _day(t.get("startTime")), _day(t.get("endTime"))
        attrs: dict[str, Any] = {}
        if start:
            attrs["start"] = start.date().isoformat()
        if start and end:
            attrs["days"] = round((end - start).total_seconds() / 86400)
        d.nodes.append(Node(t["id"], decode(t.get("task")), "milestone" if t.get("milestone") else "task", attrs))
        if t.get("section"):
            sections.setdefault(t["section"], []).append(t["id"])
        start_data = str(((t.get("raw") or {}).get("startTime") or {}).get("startData") or "")
        if start_data.startswith("after "):  # mermaid keeps "after a b" as written; ids are space-separated
            for p in start_data.split()[1:]:
                d.edges.append(Edge(p, t["id"], "", "after"))
    for i, (name, members) in enumerate(sections.items()):
        d.groups.append(Group(f"s{i}", decode(name), members))


def _pie(db: dict, d: Diagram) -> None:
    for i, (label, value) in enumerate((db.get("getSections") or {}).items()):
        d.nodes.append(Node(f"c{i}", decode(label), "slice", {"value": value}))
    d.meta["show_data"] = bool(db.get("getShowData"))


def _mindmap(db: dict, d: Diagram) -> None:
    def walk(n: dict, parent: str | None) -> None:
        nid = str(n.get("nodeId") or n.get("id"))
        d.nodes.append(Node(nid, decode(n.get("descr")), "root" if parent is None else "default"))
        if parent is not None:
            d.edges.append(Edge(parent, nid))
        for c in n.get("children") or []:
            walk(c, nid)

    if db.get("getMindmap"):
        walk(db["getMindmap"], None)


def _timeline(db: dict, d: Diagram) -> None:
    for i, t in enumerate(db.get("getTasks") or []):
        members = []
        for ev in t.get("events") or []:
            nid = f"e{len(d.nodes)}"
            d.nodes.append(Node(nid, decode(ev), "event"))
            members.append(nid)
        d.groups.append(Group(f"p{i}", decode(t.get("task")), members))
        if t.get("section"):
            d.meta.setdefault("sections", {}).setdefault(decode(t["section"]), []).append(f"p{i}")


def _block(db: dict, d: Diagram) -> None:
    flat = db.get("getBlocksFlat") or []
    for b in flat:
        if b.get("id") == "root":
            continue
        if b.get("type") == "composite":
            d.groups.append(Group(b["id"], decode(b.get("label")), [c["id"] for c in b.get("children") or []]))
        elif b.get("type") not in ("space", "edge", "column-setting"):
            d.nodes.append(Node(b["id"], decode(b.get("label") or b["id"]), "process", {"shape": b.get("type")}))
    for e in db.get("getEdges") or []:
        d.edges.append(Edge(e["start"], e["end"], decode(e.get("label"))))
    root = next((b for b in flat if b.get("id") == "root"), None)
    if root and root.get("columns"):
        d.meta["columns"] = root["columns"]


def _architecture(db: dict, d: Diagram) -> None:
    for s in db.get("getServices") or []:
        d.nodes.append(Node(s["id"], decode(s.get("title") or s["id"]), s.get("icon") or "server"))
    for j in db.get("getJunctions") or []:
        d.nodes.append(Node(j["id"], "", "junction"))
    groups = db.get("getGroups") or []
    for g in groups:
        members = [n.id for n in d.nodes if _arch_in(db, n.id) == g["id"]]
        members += [h["id"] for h in groups if h.get("in") == g["id"]]
        d.groups.append(Group(g["id"], decode(g.get("title")), members))
    for e in db.get("getEdges") or []:
        d.edges.append(Edge(e["lhsId"], e["rhsId"], decode(e.get("title")), "link", None,
                            {"sides": [e.get("lhsDir"), e.get("rhsDir")]}))


def _arch_in(db: dict, node_id: str) -> str | None:
    for s in (db.get("getServices") or []) + (db.get("getJunctions") or []):
        if s["id"] == node_id:
            return s.get("in")
    return None


def _xychart(db: dict, d: Diagram) -> None:
    data = db.get("getXYChartData") or {}
    x = data.get("xAxis") or {}
    cats = [decode(c) for c in x.get("categories") or []]
    plots = data.get("plots") or []
    values = (plots[0].get("data") or []) if plots else []
    for i, cat in enumerate(cats):
        v = values[i][1] if i < len(values) and isinstance(values[i], list) else None
        d.nodes.append(Node(f"x{i}", cat, "point", {"value": v}))
    if plots:
        d.meta["kind"] = plots[0].get("type", "bar")
    y = data.get("yAxis") or {}
    if y.get("title"):
        d.meta["y_label"] = decode(y["title"])
    if x.get("title"):
        d.meta["x_label"] = decode(x["title"])
    if data.get("title") and not d.title:
        d.title = decode(data["title"])
    d.meta["horizontal"] = (data.get("chartOrientation") or data.get("orientation")) == "horizontal"


def _quadrant(db: dict, d: Diagram) -> None:
    q = db.get("getQuadrantData") or {}
    quads = q.get("quadrants") or []
    xs = [a["x"] for a in quads] + [a["x"] + a["width"] for a in quads]
    ys = [a["y"] for a in quads] + [a["y"] + a["height"] for a in quads]
    for i, p in enumerate(reversed(q.get("points") or [])):  # mermaid keeps points newest first
        attrs = {}
        if xs and ys and max(xs) > min(xs) and max(ys) > min(ys):
            attrs = {"x": round((p["x"] - min(xs)) / (max(xs) - min(xs)), 2),
                     "y": round(1 - (p["y"] - min(ys)) / (max(ys) - min(ys)), 2)}
        d.nodes.append(Node(f"p{i}", decode((p.get("text") or {}).get("text")), "point", attrs))
    d.meta["quadrants"] = [decode((a.get("text") or {}).get("text")) for a in quads]
    labels = [decode(a.get("text")) for a in q.get("axisLabels") or []]
    if len(labels) >= 4:
        d.meta["x_axis"], d.meta["y_axis"] = labels[:2], labels[2:4]


_REQ_TYPES = {"Requirement": "requirement", "Functional Requirement": "functionalRequirement",
              "Interface Requirement": "interfaceRequirement", "Performance Requirement": "performanceRequirement",
              "Physical Requirement": "physicalRequirement", "Design Constraint": "designConstraint"}


def _requirement(db: dict, d: Diagram) -> None:
    for name, r in (db.get("getRequirements") or {}).items():
        d.nodes.append(Node(name, decode(name), "requirement", {
            "req_id": decode(r.get("requirementId")), "text": decode(r.get("text")), "risk": r.get("risk", ""),
            "verify_method": r.get("verifyMethod", ""), "req_type": _REQ_TYPES.get(r.get("type"), r.get("type"))}))
    for name, e in (db.get("getElements") or {}).items():
        d.nodes.append(Node(name, decode(name), "element", {"type": decode(e.get("type"))}))
    for r in db.get("getRelationships") or []:
        d.edges.append(Edge(r["src"], r["dst"], "", r.get("type", "")))


def _packet(db: dict, d: Diagram) -> None:
    for row in db.get("getPacket") or []:
        for f in row:
            last = d.nodes[-1] if d.nodes else None
            # mermaid splits a field that crosses a row boundary into one piece per row: join them back
            if last and last.label == decode(f.get("label")) and last.attrs["end"] + 1 == f["start"]:
                last.attrs["end"] = f["end"]
                last.attrs["bits"] = last.attrs["end"] - last.attrs["start"] + 1
                continue
            d.nodes.append(Node(f"f{len(d.nodes)}", decode(f.get("label")), "field",
                                {"start": f["start"], "end": f["end"], "bits": f["end"] - f["start"] + 1}))


# mermaid's diagram type -> (our diagram_type, mapper, the db getters it reads)
MAPPERS: dict[str, tuple[str, Callable[[dict, Diagram], None], list[str]]] = {
    "flowchart-v2": ("flowchart", _flowchart, ["getVertices", "getEdges", "getSubGraphs", "getDirection"]),
    "flowchart": ("flowchart", _flowchart, ["getVertices", "getEdges", "getSubGraphs", "getDirection"]),
    "flowchart-elk": ("flowchart", _flowchart, ["getVertices", "getEdges", "getSubGraphs", "getDirection"]),
    "sequence": ("sequence", _sequence, ["getActors", "getMessages"]),
    "stateDiagram": ("state", _state, ["getData", "getStates", "getDirection", "getDirectionStatement"]),
    "state": ("state", _state, ["getData", "getStates", "getDirection", "getDirectionStatement"]),
    "classDiagram": ("class", _class, ["getClasses", "getRelations", "getDirection"]),
    "class": ("class", _class, ["getClasses", "getRelations", "getDirection"]),
    "er": ("er", _er, ["getEntities", "getRelationships", "getDirection"]),
    "gantt": ("gantt", _gantt, ["getSections", "getTasks"]),
    "pie": ("pie", _pie, ["getSections", "getShowData"]),
    "mindmap": ("mindmap", _mindmap, ["getMindmap"]),
    "timeline": ("timeline", _timeline, ["getTasks"]),
    "block": ("block", _block, ["getBlocksFlat", "getEdges"]),
    "architecture": ("architecture", _architecture, ["getServices", "getJunctions", "getGroups", "getEdges"]),
    "xychart": ("xychart", _xychart, ["getXYChartData"]),
    "quadrantChart": ("quadrant", _quadrant, ["getQuadrantData"]),
    "requirement": ("requirement", _requirement, ["getRequirements", "getElements", "getRelationships"]),
    "packet": ("packet", _packet, ["getPacket"]),
}
