"""Samplers of the structural diagram types (flowchart, sequence, state, class, er, mindmap, block,
architecture) from one knowledge-base topic. Each ``build_<type>(rng, topic, lang, n, common)`` returns a
Diagram with about ``n`` elements (see :func:`dicrepro.diagrams.sample.element_count`) and no presentation meta;
``CAPACITY[type](topic)`` says how many elements a topic can give (0: the type does not fit the topic).
"""

from __future__ import annotations

import random

from dicrepro.diagrams.graph import Diagram, Edge, Group, Node


def pick(pair: list | tuple, lang: str) -> str:
    """[en, zh] -> the label in ``lang``."""
    return pair[1] if lang == "zh" else pair[0]


def ent_label(e: dict, lang: str, full: bool = False) -> str:
    """An entity's label: its short name, or (``full``) its full name where the KB has one."""
    if full and "full_en" in e:
        return e["full_zh"] if lang == "zh" else e["full_en"]
    return e[lang]


def _diagram(t: dict, dtype: str, lang: str, **kw) -> Diagram:
    return Diagram(dtype, t[f"title_{lang}"], t["id"], t["area"], language=lang, **kw)


# --- flowchart -----------------------------------------------------------------------------------------

def _flow_cap(t: dict) -> int:
    if len(t["steps"]) < 2:
        return 0
    return 2 + len(t["steps"]) + sum(s["kind"] == "decision" for s in t["steps"])


def build_flowchart(rng: random.Random, t: dict, lang: str, n: int, c: dict) -> Diagram:
    """Start -> steps -> End; a decision's "no" branch runs its remedial action, which either ends the
    flow or loops back to re-check (as troubleshooting procedures do)."""
    with_ends = n >= 4 and rng.random() < 0.85
    budget = n - 2 if with_ends else n
    steps, used = [], 0
    for s in t["steps"]:
        cost = 2 if s["kind"] == "decision" else 1
        if used + cost > budget:
            continue  # a decision that does not fit is left out; later single steps may still fit
        steps.append(s)
        used += cost
    nodes, edges = [], []
    if with_ends:
        nodes.append(Node("start", pick(c["start"], lang), "start"))
    prev: str | None = "start" if with_ends else None
    pending: list[tuple[str, str]] = []  # (node id, edge label) waiting to be linked to the next node
    side_ends = []
    for i, s in enumerate(steps):
        sid = f"s{i}"
        kind = "decision" if s["kind"] == "decision" else rng.choice(["process"] * 6 + ["io", "subroutine"])
        nodes.append(Node(sid, s[lang], kind))
        if prev:
            edges.append(Edge(prev, sid))
        for src, label in pending:
            edges.append(Edge(src, sid, label))
        pending, prev = [], sid
        if s["kind"] == "decision":
            fix = f"f{i}"
            nodes.append(Node(fix, s[f"else_{lang}"], "process"))
            edges.append(Edge(sid, fix, pick(c["no"], lang)))
            if rng.random() < 0.5:
                edges.append(Edge(fix, sid))  # fix, then check again
            else:
                side_ends.append(fix)
            pending, prev = [(sid, pick(c["yes"], lang))], None
    if with_ends:
        nodes.append(Node("end", pick(c["end"], lang), "end"))
        tail = [(prev, "")] if prev else []
        for src, label in tail + pending + [(f, "") for f in side_ends]:
            edges.append(Edge(src, "end", label))
    d = _diagram(t, "flowchart", lang, nodes=nodes, edges=edges)
    body = [nd.id for nd in nodes if nd.kind not in ("start", "end")]
    if len(body) >= 6 and rng.random() < 0.35:
        cut = len(body) // 2
        names = c["gantt_sections"]
        d.groups = [Group("g0", pick(names[0], lang), body[:cut]), Group("g1", pick(names[1], lang), body[cut:])]
    return d


# --- sequence ------------------------------------------------------------------------------------------

def build_sequence(rng: random.Random, t: dict, lang: str, n: int, c: dict) -> Diagram:
    """The first ``n`` messages of the procedure (procedures are told from their beginning)."""
    msgs = t["messages"][:n]
    ents = {e["key"]: e for e in t["entities"]}
    order = []
    for m in msgs:
        for k in (m["src"], m["dst"]):
            if k not in order:
                order.append(k)
    full = rng.random() < 0.15
    nodes = [Node(k, ent_label(ents[k], lang, full), "actor" if ents[k]["kind"] in ("device", "role") and
                  rng.random() < 0.5 else "participant") for k in order]
    edges = [Edge(m["src"], m["dst"], m["name"], m["kind"], i) for i, m in enumerate(msgs)]
    groups = []
    if t["phases"] and rng.random() < 0.7:
        bounds = [p for p in t["phases"] if p[0] < len(msgs)]
        for j, (k, en, zh) in enumerate(bounds):
            stop = bounds[j + 1][0] if j + 1 < len(bounds) else len(msgs)
            groups.append(Group(f"p{j}", zh if lang == "zh" else en, [str(x) for x in range(k, stop)]))
    return _diagram(t, "sequence", lang, nodes=nodes, edges=edges, groups=groups)


# --- state ---------------------------------------------------------------------------------------------

def _state_names(t: dict) -> list[str]:
    out = []
    for tr in t["transitions"]:
        for s in (tr["src"], tr["dst"]):
            if s not in out:
                out.append(s)
    return out


def build_state(rng: random.Random, t: dict, lang: str, n: int, c: dict) -> Diagram:
    keep = _state_names(t)[:max(2, n)]
    ids = {s: f"st{i}" for i, s in enumerate(keep)}
    nodes = [Node("start", "", "start")] + [Node(ids[s], t["states"][s][lang], "state") for s in keep]
    edges = [Edge("start", ids[keep[0]])]
    edges += [Edge(ids[tr["src"]], ids[tr["dst"]], tr[lang]) for tr in t["transitions"]
              if tr["src"] in ids and tr["dst"] in ids]
    return _diagram(t, "state", lang, nodes=nodes, edges=edges)


# --- class and er --------------------------------------------------------------------------------------

def _class_kind(card: str) -> str:
    if ".." in card:
        return "dependency"
    if card.startswith("||") and card.endswith(("{", "o{")):
        return "composition"
    if "o" in card[:2]:
        return "aggregation"
    return "association"


def _model_keep(t: dict, n: int) -> list[str]:
    return list(t["model"])[:n]


def build_class(rng: random.Random, t: dict, lang: str, n: int, c: dict) -> Diagram:
    keep = _model_keep(t, n)
    vis = rng.choice(["+", "-", "#", "+"])
    style = rng.choice(["colon", "java"])
    nodes = []
    for name in keep:
        fields = [f"{vis}{f[1]}: {f[0]}" if style == "colon" else f"{vis}{f[0]} {f[1]}" for f in t["model"][name]]
        methods = [f"+{m}" if not m.startswith(("+", "-", "#")) else m for m in t["methods"].get(name, [])]
        nodes.append(Node(name, name, "class", {"fields": fields, "methods": methods}))
    edges = [Edge(r["a"], r["b"], r[lang] if rng.random() < 0.8 else "", _class_kind(r["card"]))
             for r in t["relations"] if r["a"] in keep and r["b"] in keep]
    return _diagram(t, "class", lang, nodes=nodes, edges=edges)


def build_er(rng: random.Random, t: dict, lang: str, n: int, c: dict) -> Diagram:
    keep = _model_keep(t, n)
    nodes = [Node(name, name, "entity", {"fields": [list(f) for f in t["model"][name]]}) for name in keep]
    edges = [Edge(r["a"], r["b"], r[lang], "relationship", attrs={"cardinality": r["card"]})
             for r in t["relations"] if r["a"] in keep and r["b"] in keep]
    return _diagram(t, "er", lang, nodes=nodes, edges=edges)


# --- mindmap -------------------------------------------------------------------------------------------

def _mind_branches(t: dict, lang: str) -> list[tuple[str, list[str]]]:
    out = [("entities", [ent_label(e, lang) for e in t["entities"]])]
    out.append(("messages", list(dict.fromkeys(m["name"] for m in t["messages"]))))
    out.append(("states", [s[lang] for s in t["states"].values()]))
    out.append(("steps", [s[lang] for s in t["steps"] if s["kind"] == "process"]))
    out.append(("kpis", [k[lang] for k in t["kpis"]]))
    out.append(("model", list(t["model"])))
    return [(k, v) for k, v in out if v]


def _mind_cap(t: dict) -> int:
    b = _mind_branches(t, "en")
    return 1 + len(b) + sum(len(v) for _, v in b) if len(b) >= 1 else 0


def build_mindmap(rng: random.Random, t: dict, lang: str, n: int, c: dict) -> Diagram:
    """Root = the topic; one branch per aspect the KB knows (participants, messages, states...)."""
    branches = _mind_branches(t, lang)
    rng.shuffle(branches)
    nodes = [Node("root", t[f"title_{lang}"], "root")]
    edges = []
    seen = {nodes[0].label}
    budget = n - 1
    chosen = branches[:max(1, min(len(branches), budget // 3 or 1))]
    budget -= len(chosen)
    for bi, (key, items) in enumerate(chosen):
        bid = f"b{bi}"
        nodes.append(Node(bid, pick(c["mindmap_branches"][key], lang), "branch"))
        edges.append(Edge("root", bid))
        seen.add(nodes[-1].label)
    deal_leaves([[x for x in items if x not in seen] for _, items in chosen], budget, seen, nodes, edges)
    return _diagram(t, "mindmap", lang, nodes=nodes, edges=edges)


def deal_leaves(queues: list[list[str]], budget: int, seen: set[str], nodes: list[Node],
                edges: list[Edge]) -> None:
    """Attach up to ``budget`` leaves to branches ``b0``, ``b1``... round-robin from their queues, so every
    branch gets some before any gets many; labels already ``seen`` are skipped."""
    k = 0
    while budget > 0 and any(queues):
        bi = k % len(queues)
        k += 1
        if queues[bi]:
            label = queues[bi].pop(0)
            if label in seen:
                continue
            seen.add(label)
            nodes.append(Node(f"l{len(nodes)}", label, "leaf"))
            edges.append(Edge(f"b{bi}", nodes[-1].id))
            budget -= 1


# --- architecture and block ----------------------------------------------------------------------------

def _topology(t: dict) -> list[tuple[str, str, str]]:
    """(a, b, interface label) links: the KB's links, else the distinct pairs that exchange messages."""
    if t["links"]:
        return [(ln["a"], ln["b"], ln["label"]) for ln in t["links"]]
    pairs = []
    for m in t["messages"]:
        p = (m["src"], m["dst"])
        if p[0] != p[1] and p not in pairs and p[::-1] not in pairs:
            pairs.append(p)
    return [(a, b, "") for a, b in pairs]


def _topo_cap(t: dict) -> int:
    used = {x for a, b, _ in _topology(t) for x in (a, b)}
    return len(used) if len(used) >= 2 else 0


def _topo_nodes(t: dict, n: int) -> tuple[list[dict], list[tuple[str, str, str]]]:
    links = _topology(t)
    order = []
    for a, b, _ in links:
        for k in (a, b):
            if k not in order:
                order.append(k)
    keep = order[:n]
    ents = {e["key"]: e for e in t["entities"]}
    return [ents[k] for k in keep], [ln for ln in links if ln[0] in keep and ln[1] in keep]


_ICON = {"database": "database", "cloud": "cloud", "internet": "internet", "storage": "disk", "app": "server"}


def build_architecture(rng: random.Random, t: dict, lang: str, n: int, c: dict) -> Diagram:
    ents, links = _topo_nodes(t, n)
    full = rng.random() < 0.15
    nodes = [Node(e["key"], ent_label(e, lang, full), _ICON.get(e["kind"], "server")) for e in ents]
    vertical = rng.random() < 0.3
    sides = ["B", "T"] if vertical else ["R", "L"]
    edges = [Edge(a, b, "", "link", attrs={"sides": list(sides)}) for a, b, _ in links]
    groups = []
    if rng.random() < 0.6:
        by_zone: dict[str, list[str]] = {}
        for e in ents:
            by_zone.setdefault(e["kind"], []).append(e["key"])
        if 2 <= len(by_zone) <= 4:
            groups = [Group(f"z{i}", pick(c["zones"].get(k, c["zones"].get("server")), lang), m)
                      for i, (k, m) in enumerate(by_zone.items()) if len(m) >= 1]
    return _diagram(t, "architecture", lang, nodes=nodes, edges=edges, groups=groups)


def build_block(rng: random.Random, t: dict, lang: str, n: int, c: dict) -> Diagram:
    ents, links = _topo_nodes(t, n)
    full = rng.random() < 0.15
    nodes = [Node(e["key"], ent_label(e, lang, full), _ICON.get(e["kind"], "server")) for e in ents]
    edges = [Edge(a, b, label if rng.random() < 0.8 else "", "link") for a, b, label in links]
    d = _diagram(t, "block", lang, nodes=nodes, edges=edges)
    d.meta["columns"] = min(len(nodes), rng.choice([2, 3, 3, 4, 5]))
    return d


BUILDERS = {"flowchart": build_flowchart, "sequence": build_sequence, "state": build_state,
            "class": build_class, "er": build_er, "mindmap": build_mindmap, "architecture": build_architecture,
            "block": build_block}
CAPACITY = {
    "flowchart": _flow_cap,
    "sequence": lambda t: len(t["messages"]) if len(t["messages"]) >= 2 else 0,
    "state": lambda t: len(_state_names(t)) if len(t["transitions"]) >= 2 else 0,
    "class": lambda t: len(t["model"]) if len(t["model"]) >= 2 else 0,
    "er": lambda t: len(t["model"]) if len(t["model"]) >= 2 and t["relations"] else 0,
    "mindmap": _mind_cap,
    "architecture": _topo_cap,
    "block": _topo_cap,
}
