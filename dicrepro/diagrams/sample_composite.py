"""Area-level diagrams that combine several topics, for sizes one topic of the knowledge base cannot fill.

A *chain* is a run of consecutive topics of one area (or of a family of neighbouring areas, such as radio
access + core network), in knowledge-base order, which is the order procedures happen in (registration,
then session establishment, then service request...). The chain is merged into one topic-shaped dict
(:func:`merge_topics`) that the ordinary builders of :mod:`dicrepro.diagrams.sample_structure` and
:mod:`dicrepro.diagrams.sample_charts` turn into a diagram:

- flowchart: the procedures' steps chained end to end, one subgraph per procedure;
- sequence: the procedures' messages concatenated in order, each procedure's phases kept;
- gantt: a change programme, one section per procedure, each starting after the previous one;
- architecture / block: the union of the area's network functions and their interfaces (architecture:
  one group per topic, links spread over the four sides so services do not land on one spot);
- mindmap: root = the area, one branch per topic, its participants/steps/KPIs as leaves;
- timeline: the milestones of the domain's dated history topics, in chronological order.

:func:`dicrepro.diagrams.sample.sample_diagram` uses this only when no single topic reaches ``min_elements``, so
the diagrams of sizes one topic can fill (and the datasets made of them) are unchanged.
"""

from __future__ import annotations

import functools
import random
import re

from dicrepro.diagrams.graph import Diagram, Edge, Group, Node
from dicrepro.diagrams.knowledge import DOMAINS, load_kb
from dicrepro.diagrams.sample_structure import _diagram, _mind_branches, _topology, deal_leaves

# Areas whose topics chain into one end-to-end picture (a chain may cross from one to the next).
AREA_FAMILIES = [("5g_ran", "5g_core"), ("services", "cloud_nfv_sdn"), ("switching", "ip_routing"),
                 ("ip_routing", "transport_security"), ("optical", "ip_routing")]
# State machines are not merged: two protocols' machines sharing a generic state name ("Up") are still two
# machines, so a state diagram stays as large as its topic's machine.
COMPOSABLE = ("flowchart", "sequence", "gantt", "architecture", "block", "mindmap", "timeline")
_WITHIN_AREA = ("flowchart", "sequence")
_YEAR = re.compile(r"(19|20)\d\d")


@functools.cache
def families(domain: str, diagram_type: str) -> tuple[tuple[dict, ...], ...]:
    """Topic lists to draw chains from. Procedures (flowchart, sequence) chain only within one area, so
    the chained procedures belong together; network views and programmes (architecture, block, mindmap,
    gantt) may also span an area family; a timeline draws on every dated history of the domain."""
    kb = load_kb(domain)
    if diagram_type == "timeline":
        return (tuple(kb["topics"]),)
    by_area: dict[str, list[dict]] = {}
    for t in kb["topics"]:
        by_area.setdefault(t["area"], []).append(t)
    fams = [tuple(ts) for ts in by_area.values() if len(ts) >= 2]
    if diagram_type not in _WITHIN_AREA:
        fams += [tuple(t for a in fam for t in by_area[a]) for fam in AREA_FAMILIES
                 if all(a in by_area for a in fam)]
    return tuple(fams)


def _fits(diagram_type: str, chain: list[dict], t: dict) -> bool:
    """Whether ``t`` may join ``chain`` for this type: it must add content the type draws (so a chained
    sequence names only procedures whose messages it shows), and timelines take only dated history."""
    if diagram_type == "timeline":
        return len(t["milestones"]) >= 1 and all(_YEAR.search(m["period"]) for m in t["milestones"])
    if diagram_type == "sequence":
        return len(t["messages"]) >= 2
    if diagram_type == "flowchart":
        return len(t["steps"]) >= 2
    if diagram_type == "gantt":
        return sum(s["kind"] == "process" for s in t["steps"]) >= 2
    if diagram_type in ("architecture", "block"):
        return len(_topology(t)) >= 1
    return True


def chain_from(diagram_type: str, family: tuple[dict, ...], start: int, n: int, capacity) -> list[dict]:
    """Topics of ``family`` from ``start`` on that fit the type, added until ``capacity(merged) >= n``."""
    chain: list[dict] = []
    for t in family[start:]:
        if not _fits(diagram_type, chain, t):
            continue
        chain.append(t)
        if len(chain) >= 2 and capacity(diagram_type, chain) >= n:
            break
    return chain


@functools.cache
def composite_candidates(diagram_type: str, domain: str, min_elements: int, capacity) -> tuple[tuple[int, int], ...]:
    """(family index, start index) pairs whose chain can reach ``min_elements``; deterministic order.

    Cached: ``capacity(type, chain)`` must be a pure function of its arguments."""
    if diagram_type not in COMPOSABLE:
        return []
    out = []
    for fi, fam in enumerate(families(domain, diagram_type)):
        for si in range(len(fam)):
            if not _fits(diagram_type, [], fam[si]):
                continue
            chain = chain_from(diagram_type, fam, si, min_elements, capacity)
            if len(chain) >= 2 and capacity(diagram_type, chain) >= min_elements:
                out.append((fi, si))
    return tuple(out)


def merge_topics(chain: list[dict], domain: str = "ict") -> dict:
    """One topic-shaped dict holding the content of every topic of ``chain``, in order, de-duplicated.

    Steps and messages remember their source topic (``_src``, an index into ``chain``) so builders'
    output can be grouped by procedure.
    """
    area_titles: dict[str, dict] = {}  # the chain's own domain first; capacity checks may not name it
    for d in (domain, *DOMAINS):
        for a, x in load_kb(d)["areas"].items():
            area_titles.setdefault(a, x)
    areas = list(dict.fromkeys(t["area"] for t in chain))
    titles = [area_titles[a] for a in areas]
    if len(titles) > 2:  # a domain-wide history: the area list would be an unreadable title
        titles = [{"en": "Technology milestones", "zh": "技术发展里程碑"}]
    m: dict = {"id": "+".join(t["id"] for t in chain), "area": areas[0], "chart": None, "header": [],
               "title_en": " / ".join(x["en"] for x in titles), "title_zh": " / ".join(x["zh"] for x in titles),
               "entities": [], "messages": [], "phases": [], "transitions": [], "states": {}, "steps": [],
               "kpis": [], "categories": [], "milestones": [], "model": {}, "methods": {}, "relations": [],
               "links": [], "_chain": chain}
    seen_ent, seen_step, seen_kpi, seen_link, seen_tr = set(), set(), set(), set(), set()
    for i, t in enumerate(chain):
        for e in t["entities"]:
            if e["key"] not in seen_ent:
                seen_ent.add(e["key"])
                m["entities"].append(e)
        off = len(m["messages"])
        phases = t["phases"] or [(0, t["title_en"], t["title_zh"])]
        if t["messages"]:
            m["phases"] += [(k + off, en, zh) for k, en, zh in phases]
        m["messages"] += [{**x, "_src": i} for x in t["messages"]]
        for s in t["steps"]:
            if s["en"] not in seen_step:  # a step shared by two procedures is done once
                seen_step.add(s["en"])
                m["steps"].append({**s, "_src": i})
        for tr in t["transitions"]:
            key = (tr["src"], tr["dst"], tr["en"])
            if key not in seen_tr:
                seen_tr.add(key)
                m["transitions"].append(tr)
        for k, v in t["states"].items():
            m["states"].setdefault(k, v)
        for k in t["kpis"]:
            if k["en"] not in seen_kpi:
                seen_kpi.add(k["en"])
                m["kpis"].append(k)
        m["categories"] += [c for c in t["categories"] if c not in m["categories"]]
        m["milestones"] += t["milestones"]
        for a, b, label in _topology(t):
            if frozenset((a, b)) not in seen_link:
                seen_link.add(frozenset((a, b)))
                m["links"].append({"a": a, "b": b, "label": label})
        for name, fields in t["model"].items():
            m["model"].setdefault(name, fields)
            m["methods"].setdefault(name, t["methods"].get(name, []))
        m["relations"] += [r for r in t["relations"] if r not in m["relations"]]
    # History told in time order: stable sort on the first year each period names.
    m["milestones"] = sorted(m["milestones"], key=lambda x: int(_YEAR.search(x["period"]).group(0))
                             if _YEAR.search(x["period"]) else 0)
    return m


def regroup_by_procedure(d: Diagram, merged: dict, lang: str) -> None:
    """Give a chained flowchart one subgraph, or a chained gantt one section, per source procedure."""
    chain = merged["_chain"]
    src_of = {s[lang]: s["_src"] for s in merged["steps"]}
    members: dict[int, list[str]] = {}
    for nd in d.nodes:
        if nd.kind in ("start", "end"):
            continue
        if nd.id.startswith("f"):  # a remedial action goes with its decision
            src = next(k for k, v in members.items() if f"s{nd.id[1:]}" in v)
        else:
            src = src_of[nd.label]
        members.setdefault(src, []).append(nd.id)
    d.groups = [Group(f"g{j}", chain[i][f"title_{lang}"], ids) for j, (i, ids) in enumerate(sorted(members.items()))]


_SIDE_PAIRS = (("R", "L"), ("B", "T"), ("L", "R"), ("T", "B"))


def spread_sides(d: Diagram) -> None:
    """Give an architecture's links distinct sides at each node where possible: architecture-beta places
    two services linked to the same side of a node on the same spot, which a large area view would hit
    for most of its hubs (UPF, AMF...)."""
    used: dict[str, set[str]] = {}
    for e in d.edges:
        a, b = used.setdefault(e.src, set()), used.setdefault(e.dst, set())
        pair = next((p for p in _SIDE_PAIRS if p[0] not in a and p[1] not in b), e.attrs["sides"])
        e.attrs["sides"] = list(pair)
        a.add(pair[0])
        b.add(pair[1])


def group_by_topic(d: Diagram, merged: dict, lang: str) -> None:
    """One architecture group per source topic (a service joins the first topic that links it): the
    compound layout keeps each topic's network functions together instead of one tangle."""
    ids = {nd.id for nd in d.nodes}
    groups: list[Group] = []
    placed: set[str] = set()
    for t in merged["_chain"]:
        members = [k for a, b, _ in _topology(t) for k in (a, b) if k in ids and k not in placed]
        members = list(dict.fromkeys(members))
        if members:
            placed.update(members)
            groups.append(Group(f"z{len(groups)}", t[f"title_{lang}"].replace('"', "'"), members))
    d.groups = groups


def build_area_mindmap(rng: random.Random, merged: dict, lang: str, n: int, c: dict) -> Diagram:
    """Root = the area; one branch per topic of the chain; leaves = each topic's participants, steps,
    states, KPIs... dealt round-robin so every topic gets some before any gets many."""
    chain = merged["_chain"]
    nodes = [Node("root", merged[f"title_{lang}"], "root")]
    edges = []
    seen = {nodes[0].label}
    for bi, t in enumerate(chain):
        nodes.append(Node(f"b{bi}", t[f"title_{lang}"], "branch"))
        edges.append(Edge("root", f"b{bi}"))
        seen.add(t[f"title_{lang}"])
    queues = []
    for t in chain:
        branches = _mind_branches(t, lang)
        rng.shuffle(branches)
        # interleave the topic's aspects so its leaves are not all participants
        items = [x for group in zip(*[v + [None] * (40 - len(v)) for _, v in branches]) for x in group if x]
        queues.append(items)
    deal_leaves(queues, n - len(nodes), seen, nodes, edges)
    return _diagram(merged, "mindmap", lang, nodes=nodes, edges=edges)


def mindmap_cap(chain: list[dict]) -> int:
    labels = {x for t in chain for _, v in _mind_branches(t, "en") for x in v}
    return 1 + len(chain) + len(labels)


