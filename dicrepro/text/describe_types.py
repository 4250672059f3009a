"""Per-diagram-type sentence builders for the verbalizer (see dicrepro.text.describe).

Each builder turns one diagram type's graph (conventions in dicrepro.diagrams.graph) into detail sentences in
logical order, natural-unit sections for types without groups, and the list of element labels for the
global view. Builders are plain functions in a dict, keyed by diagram type; unknown types use the
flow-like builder, which still mentions every node and edge.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from dicrepro.diagrams.graph import Diagram
from dicrepro.text.say import Say, Section, Sentence

# Branch labels that mean "something went wrong"; expert prose explains these as recovery paths.
_FAILURE = re.compile(r"\b(no|fail\w*|error|reject\w*|timeout|time-out|invalid|false|nok|deny|denied)\b|"
                      r"否|失败|错误|拒绝|超时|无效|不通过|异常", re.IGNORECASE)

Built = tuple[list[Sentence], list[Section], list[str]]


def _lab(d: Diagram, node_id: str, say: Say | None = None) -> str:
    n = d.node(node_id)
    if n.label.strip():
        return n.label
    if say is not None and n.kind in ("start", "end"):
        return say.word("initial" if n.kind == "start" else "final")
    return n.id


def _node_groups(d: Diagram) -> dict[str, int]:
    out: dict[str, int] = {}
    for gi, g in enumerate(d.groups):
        for m in g.members:
            out.setdefault(str(m), gi)
    return out


def _units(d: Diagram, say: Say, detail: list[Sentence], unit_ids: list[str], noun: str,
           owners: list[set[str]] | None = None) -> list[Section]:
    """Sections for types without groups: one per unit node, holding the sentences about it.

    ``owners[k]`` says which units sentence k belongs to (default: every node it mentions).
    """
    owners = owners if owners is not None else [s.ids for s in detail]
    sections = []
    for uid in unit_ids:
        sents = [s for s, own in zip(detail, owners) if uid in own]
        if not sents:
            continue
        title = _lab(d, uid, say)
        sections.append(Section(title, noun, say.text([say("unit_intro", a=title)] + [s.text for s in sents]),
                                set().union(*[s.ids for s in sents])))
    return sections


def _flow(d: Diagram, say: Say) -> Built:
    linky = d.diagram_type in ("block", "architecture")
    groups = _node_groups(d)
    detail = []
    for e in d.ordered_edges():
        a, b = _lab(d, e.src, say), _lab(d, e.dst, say)
        src_kind = d.node(e.src).kind
        if e.label and src_kind == "decision":
            if say.expert:
                key = "x_failure" if _FAILURE.search(e.label) else "x_decision"
            else:
                key = "decision"
        elif e.label:
            key = "link_labelled" if linky else "edge_labelled"
        else:
            key = "link" if linky else "edge"
        detail.append(Sentence(say(key, a=a, b=b, label=e.label), {e.src, e.dst}, groups.get(e.src)))
    # Without groups, a flowchart's natural units are its decisions (each with its branches), else
    # each node with what follows it.
    srcs = [{e.src} for e in d.ordered_edges()]
    decisions = [n.id for n in d.nodes if n.kind == "decision"]
    units = decisions or list(dict.fromkeys(e.src for e in d.ordered_edges()))
    sections = _units(d, say, detail, units, say.type_info(d.diagram_type)[3], owners=srcs)
    return detail, sections, [_lab(d, n.id, say) for n in d.nodes]


def _sequence(d: Diagram, say: Say) -> Built:
    msg_group = {}
    for gi, g in enumerate(d.groups):
        for m in g.members:
            if str(m).isdigit():
                msg_group.setdefault(int(m), gi)
    index = {id(e): k for k, e in enumerate(d.edges)}
    detail, owners = [], []
    before = _block_sentences(d, say)
    after = _activation_sentences(d, say)
    for i, e in enumerate(d.ordered_edges(), start=1):
        for text, ids in before.get(i - 1, []):  # blocks opening and notes placed before this message
            detail.append(Sentence(text, ids, msg_group.get(index[id(e)])))
            owners.append({e.src})
        a, b = _lab(d, e.src), _lab(d, e.dst)
        if e.src == e.dst:
            key = "msg_self"
        elif e.kind == "reply":
            key = "x_reply" if say.expert else "msg_reply"
        elif e.kind == "async":
            key = "msg_async"
        else:
            key = "x_request" if say.expert else "msg"
        detail.append(Sentence(say(key, a=a, b=b, m=e.label, i=i), {e.src, e.dst}, msg_group.get(index[id(e)])))
        owners.append({e.src})
        for text, ids in after.get(i - 1, []):  # activations that end with this message
            detail.append(Sentence(text, ids, msg_group.get(index[id(e)])))
            owners.append({e.src})
    for text, ids in before.get(len(d.edges), []):
        detail.append(Sentence(text, ids))
        owners.append(ids)
    senders = []
    for e in d.ordered_edges():
        if e.src not in senders:
            senders.append(e.src)
    sections = _units(d, say, detail, senders, say.type_info("sequence")[3], owners=owners)
    return detail, sections, [_lab(d, n.id) for n in d.nodes]


def _block_sentences(d: Diagram, say: Say) -> dict[int, list[tuple[str, set[str]]]]:
    """Sentences to say before message k (0-based): each block branch opening there (its condition; for a
    loop, how many messages it repeats), then each note placed there. Empty without blocks and notes."""
    out: dict[int, list[tuple[str, set[str]]]] = {}
    edges = d.ordered_edges()
    for b in d.meta.get("blocks", []):
        for k, br in enumerate(b.get("branches", [])):
            msgs = [int(m) for m in br.get("messages", []) if 0 <= int(m) < len(edges)]
            if not msgs:
                continue
            c, kind = br.get("condition", ""), b.get("kind", "")
            ids = {x for m in msgs for x in (edges[m].src, edges[m].dst)}
            if kind == "alt":
                key = "blk_alt" if k == 0 else ("blk_else" if c else "blk_else_plain")
            elif kind == "par":
                key = "blk_par" if k == 0 else "blk_and"
            elif kind in ("loop", "opt") and k == 0:
                key = f"blk_{kind}"
            elif kind == "rect" and not c:
                continue  # a tinted background says nothing
            else:
                key = "blk_other"
            n = len(msgs)
            count = (f"{n}条消息" if say.lang == "zh" else ("message" if n == 1 else f"{n} messages"))
            out.setdefault(min(msgs), []).append((say(key, c=c, n=count, k=kind), ids))
    for nt in d.meta.get("notes", []):
        names = [_lab(d, x) for x in nt.get("over", []) if any(n.id == x for n in d.nodes)]
        after = min(int(nt.get("after", 0)), len(edges))
        out.setdefault(after, []).append((say("note", a=say.join(names), t=nt.get("text", "")),
                                          set(nt.get("over", []))))
    return out


def _activation_sentences(d: Diagram, say: Say) -> dict[int, list[tuple[str, set[str]]]]:
    """Sentences to say right after message k (0-based): which participant was active over which messages.

    ``meta["activations"]`` holds ``[participant, from, to]``: activated with message ``from`` (``-1``:
    before the first message), deactivated after message ``to``. Said once the span is over, so the text
    names only messages it has already described and the first mention of every message keeps its place.
    """
    out: dict[int, list[tuple[str, set[str]]]] = {}
    edges = d.ordered_edges()
    ids = {n.id for n in d.nodes}
    for act in d.meta.get("activations", []):
        who, lo, hi = act[0], max(int(act[1]), 0), int(act[2])
        if who not in ids or not lo <= hi < len(edges):
            continue
        kw = {"p": _lab(d, who), "i": lo + 1, "j": hi + 1, "m1": edges[lo].label, "m2": edges[hi].label}
        out.setdefault(hi, []).append((say("act" if hi > lo else "act_one", **kw), {who}))
    return out


def _state(d: Diagram, say: Say) -> Built:
    groups = _node_groups(d)
    detail = []
    for e in d.ordered_edges():
        src, dst = d.node(e.src), d.node(e.dst)
        a, b = _lab(d, e.src, say), _lab(d, e.dst, say)
        if src.kind == "start":
            text = say("st_initial", b=b)
        elif dst.kind == "end" and not e.label:
            text = say("st_final", a=a)
        elif e.label:
            text = say("x_trans" if say.expert else "st_trans", a=a, b=b, label=e.label)
        else:
            text = say("st_trans_plain", a=a, b=b)
        detail.append(Sentence(text, {e.src, e.dst}, groups.get(e.src, groups.get(e.dst))))
    states = [n for n in d.nodes if n.kind not in ("start", "end")]
    sections = _units(d, say, detail, [n.id for n in states], say.type_info("state")[3],
                      owners=[{e.src} for e in d.ordered_edges()])
    return detail, sections, [_lab(d, n.id, say) for n in states]


def _class(d: Diagram, say: Say) -> Built:
    groups = _node_groups(d)
    detail = []
    for n in d.nodes:
        fields, methods = n.attrs.get("fields", []), n.attrs.get("methods", [])
        if fields and methods:
            text = say("cls_members", a=n.label, fields=say.join(fields), methods=say.join(methods))
        elif fields:
            text = say("cls_fields", a=n.label, list=say.join(fields))
        elif methods:
            text = say("cls_methods", a=n.label, list=say.join(methods))
        else:
            text = say("cls_bare", a=n.label)
        detail.append(Sentence(text, {n.id}, groups.get(n.id)))
    detail += _relations(d, say, groups)
    sections = _units(d, say, detail, [n.id for n in d.nodes], say.type_info("class")[3])
    return detail, sections, [n.label for n in d.nodes]


def _relations(d: Diagram, say: Say, groups: dict[str, int]) -> list[Sentence]:
    # Read every relation as "src <relation> dst" (e.g. src inherits from dst, src satisfies dst).
    out = []
    for e in d.ordered_edges():
        kw = dict(a=_lab(d, e.src), b=_lab(d, e.dst), rel=say.rel(e.kind), label=e.label)
        out.append(Sentence(say("rel_labelled" if e.label else "rel", **kw), {e.src, e.dst}, groups.get(e.src)))
    return out


def _er(d: Diagram, say: Say) -> Built:
    groups = _node_groups(d)
    detail = []
    for n in d.nodes:
        fields = []
        for f in n.attrs.get("fields", []):
            ftype, name, key = (list(f) + ["", "", ""])[:3]
            fields.append(f"{name} ({ftype}{', ' + key if key else ''})" if ftype else str(name))
        text = say("er_entity", a=n.label, list=say.join(fields)) if fields else say("cls_bare", a=n.label)
        detail.append(Sentence(text, {n.id}, groups.get(n.id)))
    for e in d.ordered_edges():
        a, b = _lab(d, e.src), _lab(d, e.dst)
        if e.label:
            text = say("er_rel", a=a, b=b, label=e.label, card=e.attrs.get("cardinality", "?"))
        else:
            text = say("rel", a=a, b=b, rel=say.rel("default"))
        detail.append(Sentence(text, {e.src, e.dst}, groups.get(e.src)))
    sections = _units(d, say, detail, [n.id for n in d.nodes], say.type_info("er")[3])
    return detail, sections, [n.label for n in d.nodes]


def _gantt(d: Diagram, say: Say) -> Built:
    groups = _node_groups(d)
    # Tasks in section order (ungrouped tasks last), each followed by what it waits for.
    order = sorted(range(len(d.nodes)), key=lambda k: (groups.get(d.nodes[k].id, len(d.groups)), k))
    detail = []
    for k in order:
        n = d.nodes[k]
        days = n.attrs.get("days", "?")
        dur = f"{days}天" if say.lang == "zh" else f"{days} day{'' if days == 1 else 's'}"
        detail.append(Sentence(say("gantt_task", a=n.label, start=n.attrs.get("start", "?"), dur=dur),
                               {n.id}, groups.get(n.id)))
        for e in d.ordered_edges():
            if e.dst == n.id:
                detail.append(Sentence(say("gantt_after", a=_lab(d, e.src), b=n.label), {e.src, e.dst},
                                       groups.get(n.id)))
    return detail, _units(d, say, detail, [n.id for n in d.nodes], say.type_info("gantt")[3]), \
        [n.label for n in d.nodes]


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _pie(d: Diagram, say: Say) -> Built:
    total = sum(float(n.attrs.get("value", 0)) for n in d.nodes) or 1.0
    detail = [Sentence(say("pie_slice", a=n.label, v=_fmt(n.attrs.get("value", 0)),
                           pct=f"{100 * float(n.attrs.get('value', 0)) / total:.1f}"), {n.id})
              for n in d.nodes]
    return detail, _units(d, say, detail, [n.id for n in d.nodes], say.type_info("pie")[3]), \
        [n.label for n in d.nodes]


def _mindmap(d: Diagram, say: Say) -> Built:
    if not d.nodes:
        return [], [], []
    root = d.nodes[0].id
    children: dict[str, list[str]] = {}
    for e in d.ordered_edges():
        children.setdefault(e.src, []).append(e.dst)
    detail = [Sentence(say("mm_root", a=_lab(d, root)), {root})]
    branch_of: dict[str, str] = {}
    queue, seen = [root], {root}
    while queue:  # breadth first: the centre, then each level outwards
        p = queue.pop(0)
        kids = [c for c in children.get(p, []) if c not in seen]
        if kids:
            detail.append(Sentence(say("mm_branch", a=_lab(d, p), list=say.join([_lab(d, c) for c in kids])),
                                   {p, *kids}))
        for c in kids:
            seen.add(c)
            branch_of[c] = c if p == root else branch_of.get(p, c)
            queue.append(c)
    first = children.get(root, [])
    sections = []
    for b in first:
        members = {n for n, br in branch_of.items() if br == b}
        sents = [s for s in detail if s.ids & members and root not in s.ids]
        intro = say("unit_intro", a=_lab(d, b))
        sections.append(Section(_lab(d, b), say.type_info("mindmap")[4],
                                say.text([intro] + [s.text for s in sents]) if sents else intro + _lab(d, b),
                                members))
    return detail, sections, [_lab(d, n.id) for n in d.nodes]


def _timeline(d: Diagram, say: Say) -> Built:
    detail = []
    for gi, g in enumerate(d.groups):
        events = [_lab(d, m) for m in g.members if any(n.id == m for n in d.nodes)]
        detail.append(Sentence(say("tl_period", a=g.label, list=say.join(events)), set(g.members), gi))
    return detail, [], [n.label for n in d.nodes]


def _xychart(d: Diagram, say: Say) -> Built:
    kind = say.word("line" if d.meta.get("kind") == "line" else "bar")
    detail = [Sentence(say("xy_intro", y=d.meta.get("y_label", say.word("value")), kind=kind), set())]
    detail += [Sentence(say("xy_point", a=n.label, v=_fmt(n.attrs.get("value", "?"))), {n.id}) for n in d.nodes]
    return detail, _units(d, say, detail, [n.id for n in d.nodes], say.type_info("xychart")[3]), \
        [n.label for n in d.nodes]


def quadrant_index(x: float, y: float) -> int:
    """Mermaid's numbering: 0 = quadrant-1 (top right), 1 = top left, 2 = bottom left, 3 = bottom right."""
    if y >= 0.5:
        return 0 if x >= 0.5 else 1
    return 2 if x < 0.5 else 3


def _quadrant(d: Diagram, say: Say) -> Built:
    names = list(d.meta.get("quadrants", [])) + [f"quadrant-{k}" for k in range(1, 5)]
    detail = []
    xa, ya = d.meta.get("x_axis"), d.meta.get("y_axis")
    if xa and ya:
        detail.append(Sentence(say("qd_axes", x0=xa[0], x1=xa[1], y0=ya[0], y1=ya[1]), set()))
    by_quad: dict[int, list[str]] = {}
    for n in d.nodes:
        x, y = float(n.attrs.get("x", 0)), float(n.attrs.get("y", 0))
        q = quadrant_index(x, y)
        by_quad.setdefault(q, []).append(n.id)
        detail.append(Sentence(say("qd_point", a=n.label, x=_fmt(x), y=_fmt(y), quad=names[q]), {n.id}))
    sections = []
    for q in sorted(by_quad):
        sents = [s for s in detail if s.ids & set(by_quad[q])]
        sections.append(Section(names[q], say.type_info("quadrant")[4],
                                say.text([say("unit_intro", a=names[q])] + [s.text for s in sents]),
                                set(by_quad[q])))
    return detail, sections, [n.label for n in d.nodes]


def _requirement(d: Diagram, say: Say) -> Built:
    groups = _node_groups(d)
    detail = []
    for n in d.nodes:
        if n.kind == "requirement":
            text = say("req_node", a=n.label, risk=n.attrs.get("risk", "?"), vm=n.attrs.get("verify_method", "?"),
                       text=str(n.attrs.get("text", "")).rstrip(".。") or n.label)
        else:
            text = say("req_element", a=n.label)
        detail.append(Sentence(text, {n.id}, groups.get(n.id)))
    detail += _relations(d, say, groups)
    reqs = [n.id for n in d.nodes if n.kind == "requirement"]
    return detail, _units(d, say, detail, reqs, say.type_info("requirement")[3]), [n.label for n in d.nodes]


def _packet(d: Diagram, say: Say) -> Built:
    detail, rows = [], {}
    for n in d.nodes:
        s, e = int(n.attrs.get("start", 0)), int(n.attrs.get("end", 0))
        detail.append(Sentence(say("pk_field", a=n.label, start=s, end=e, bits=e - s + 1), {n.id}))
        rows.setdefault(s // 32, []).append(n.id)  # packet diagrams draw 32-bit rows
    sections = []
    for r, ids in sorted(rows.items()):
        title = f"第{32 * r}-{32 * r + 31}位" if say.lang == "zh" else f"bits {32 * r}-{32 * r + 31}"
        sents = [s for s in detail if s.ids & set(ids)]
        sections.append(Section(title, say.type_info("packet")[3],
                                say.text([say("unit_intro", a=title)] + [s.text for s in sents]), set(ids)))
    return detail, sections, [n.label for n in d.nodes]


BUILDERS: dict[str, Callable[[Diagram, Say], Built]] = {
    "flowchart": _flow, "block": _flow, "architecture": _flow, "sequence": _sequence, "state": _state,
    "class": _class, "er": _er, "gantt": _gantt, "pie": _pie, "mindmap": _mindmap, "timeline": _timeline,
    "xychart": _xychart, "quadrant": _quadrant, "requirement": _requirement, "packet": _packet,
}


def build(d: Diagram, say: Say) -> Built:
    """Detail sentences, natural-unit sections and element labels for ``d`` (flow-like if type unknown)."""
    return BUILDERS.get(d.diagram_type, _flow)(d, say)

