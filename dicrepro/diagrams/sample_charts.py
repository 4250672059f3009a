"""Samplers of the chart and plan diagram types (gantt, pie, xychart, quadrant, requirement, packet,
timeline) from one knowledge-base topic; same contract as :mod:`dicrepro.diagrams.sample_structure`."""

from __future__ import annotations

import random
from datetime import date, timedelta

from dicrepro.diagrams.graph import Diagram, Edge, Group, Node
from dicrepro.diagrams.mermaid_charts import gantt_dates
from dicrepro.diagrams.sample_structure import _diagram, ent_label, pick


def _plan_steps(t: dict) -> list[dict]:
    return [s for s in t["steps"] if s["kind"] == "process"]


def build_gantt(rng: random.Random, t: dict, lang: str, n: int, c: dict) -> Diagram:
    """The topic's steps as a work plan: mostly sequential, sometimes two tasks in parallel."""
    steps = _plan_steps(t)[:n]
    days = [rng.choice([1, 1, 2, 2, 3, 4, 5]) for _ in steps]
    preds: list[list[int]] = []
    for i in range(len(steps)):
        if i == 0:
            preds.append([])
        elif i >= 2 and rng.random() < 0.2:
            preds.append(list(preds[i - 1]))  # runs in parallel with the previous task
        else:
            preds.append([i - 1])
    t0 = date(2024, 1, 1) + timedelta(days=rng.randrange(0, 700))
    starts = gantt_dates(t0.isoformat(), days, preds)
    nodes = [Node(f"t{i}", s[lang], "task", {"start": starts[i], "days": days[i]}) for i, s in enumerate(steps)]
    edges = [Edge(f"t{p}", f"t{i}", "", "after") for i, ps in enumerate(preds) for p in ps]
    k = min(len(c["gantt_sections"]), max(1, len(steps) // 3), rng.choice([1, 2, 3, 3]))
    cuts = [round(j * len(steps) / k) for j in range(k + 1)]
    groups = [Group(f"sec{j}", pick(c["gantt_sections"][j], lang), [f"t{i}" for i in range(cuts[j], cuts[j + 1])])
              for j in range(k)] if k > 1 else []
    return _diagram(t, "gantt", lang, nodes=nodes, edges=edges, groups=groups)


def build_pie(rng: random.Random, t: dict, lang: str, n: int, c: dict) -> Diagram:
    cats = t["categories"][:n]
    values = sorted((rng.randint(3, 60) for _ in cats), reverse=rng.random() < 0.6)
    nodes = [Node(f"c{i}", x[lang], "slice", {"value": v}) for i, (x, v) in enumerate(zip(cats, values))]
    d = _diagram(t, "pie", lang, nodes=nodes)
    if t["chart"]:
        d.title = t["chart"][lang]
    return d


def _x_labels(rng: random.Random, n: int, lang: str, c: dict) -> tuple[list[str], str]:
    options = []
    if n <= 7:
        options.append(("weekdays", c["weekdays"][lang][:n]))
    if n <= 12:
        options.append(("months", c["months"][lang][:n]))
    if n <= 8:
        options.append(("cells", c["x_cells"][lang][:n]))
    if n <= 24:
        step = 1 if n > 12 else rng.choice([1, 2])
        options.append(("hours", [f"{(h * step) % 24:02d}:00" for h in range(n)]))
    pre, suf = pick(c["day_prefix"], lang), pick(c["day_suffix"], lang)
    options.append(("days", [f"{pre} {i + 1}" if lang == "en" else f"{pre}{i + 1}{suf}" for i in range(n)]))
    kind, labels = rng.choice(options)
    return labels, kind


def build_xychart(rng: random.Random, t: dict, lang: str, n: int, c: dict) -> Diagram:
    """One KPI over ``n`` periods (or cells), as a random walk inside the KPI's plausible range."""
    k = rng.choice(t["kpis"])
    labels, xkind = _x_labels(rng, n, lang, c)
    lo, hi = k["low"], k["high"]
    v = rng.uniform(lo, hi)
    ints = hi - lo >= 20
    values = []
    for _ in labels:
        v = min(hi, max(lo, v + rng.gauss(0, (hi - lo) / 8)))
        values.append(int(round(v)) if ints else round(v, 2))
    nodes = [Node(f"x{i}", lab, "point", {"value": val}) for i, (lab, val) in enumerate(zip(labels, values))]
    d = _diagram(t, "xychart", lang, nodes=nodes)
    d.title = t["chart"][lang] if t["chart"] and rng.random() < 0.5 else k[lang]
    d.meta.update({"y_label": f"{k[lang]} ({k['unit']})", "kind": rng.choice(["bar", "line"]), "unit": k["unit"],
                   "kpi": k[lang]})
    if xkind in c["x_titles"] and rng.random() < 0.6:
        d.meta["x_label"] = pick(c["x_titles"][xkind], lang)
    return d


def _points(t: dict, lang: str) -> list[str]:
    return list(dict.fromkeys([ent_label(e, lang) for e in t["entities"]] + [x[lang] for x in t["categories"]]))


def build_quadrant(rng: random.Random, t: dict, lang: str, n: int, c: dict) -> Diagram:
    axes = rng.choice(c["quadrant_axes"])
    labels = _points(t, lang)[:n]
    nodes = [Node(f"p{i}", lab, "point", {"x": round(rng.uniform(0.05, 0.95), 2), "y": round(rng.uniform(0.05, 0.95), 2)})
             for i, lab in enumerate(labels)]
    d = _diagram(t, "quadrant", lang, nodes=nodes)
    d.meta.update({"x_axis": [pick(x, lang) for x in axes["x"]], "y_axis": [pick(y, lang) for y in axes["y"]],
                   "quadrants": [pick(q, lang) for q in axes["q"]]})
    return d


def build_requirement(rng: random.Random, t: dict, lang: str, n: int, c: dict) -> Diagram:
    """KPI targets as performance requirements, satisfied by the topic's entities and verified by a test."""
    n_req = max(1, min(len(t["kpis"]), (n + 1) // 2))
    n_el = max(1, min(len(t["entities"]), n - n_req - 1))
    nodes, edges = [], []
    for i, k in enumerate(t["kpis"][:n_req]):
        bound = rng.choice(["min", "max"])
        value = round(rng.uniform(k["low"], k["high"]), 0 if k["high"] - k["low"] >= 20 else 2)
        value = int(value) if float(value).is_integer() else value
        text = pick(c["requirement_text"][bound], lang).format(kpi=k[lang], value=value, unit=k["unit"])
        nodes.append(Node(f"r{i}", k[lang], "requirement", {
            "req_id": f"REQ-{i + 1}", "text": text, "risk": rng.choice(c["risks"]),
            "verify_method": rng.choice(c["verify_methods"]),
            "req_type": rng.choice(["performanceRequirement", "requirement", "functionalRequirement"])}))
    reqs = [x.id for x in nodes]
    types = c["element_types"]
    for j, e in enumerate(t["entities"][:n_el]):
        nodes.append(Node(f"e{j}", ent_label(e, lang), "element",
                          {"type": pick(types.get(e["kind"], types["default"]), lang)}))
        edges.append(Edge(f"e{j}", reqs[j % len(reqs)], "", "satisfies"))
    if len(nodes) < n:
        v = rng.choice(c["req_verifiers"])
        nodes.append(Node("v0", pick(v, lang), "element", {"type": pick(["test", "测试"], lang)}))
        edges += [Edge("v0", r, "", "verifies") for r in reqs]
    if len(reqs) >= 2 and rng.random() < 0.5:
        edges.append(Edge(reqs[1], reqs[0], "", rng.choice(["derives", "refines", "traces"])))
    return _diagram(t, "requirement", lang, nodes=nodes, edges=edges)


def build_packet(rng: random.Random, t: dict, lang: str, n: int, c: dict) -> Diagram:
    nodes, bit = [], 0
    for i, h in enumerate(t["header"][:n]):
        nodes.append(Node(f"f{i}", h["name"], "field", {"start": bit, "end": bit + h["bits"] - 1, "bits": h["bits"]}))
        bit += h["bits"]
    return _diagram(t, "packet", lang, nodes=nodes)


def _timeline_cap(t: dict) -> int:
    if len(t["milestones"]) >= 2:
        return len(t["milestones"])
    return len(_plan_steps(t)) if len(_plan_steps(t)) >= 3 else 0


def build_timeline(rng: random.Random, t: dict, lang: str, n: int, c: dict) -> Diagram:
    """Milestones by period; for procedures without history, the steps on a change-window clock
    (T-1d, T0, T+1h...)."""
    if len(t["milestones"]) >= 2:
        items = [(m["period"], m[lang]) for m in t["milestones"][:n]]
    else:
        steps = _plan_steps(t)[:n]
        periods = c["timeline_periods"]
        start = rng.randrange(0, max(1, len(periods) - len(steps) + 1))
        per, items, k = periods[start:], [], 0
        for s in steps:
            items.append((per[min(k, len(per) - 1)], s[lang]))
            if rng.random() < 0.7:
                k += 1
    nodes, groups = [], []
    for i, (period, label) in enumerate(items):
        nodes.append(Node(f"e{i}", label, "event"))
        if groups and groups[-1].label == period:
            groups[-1].members.append(f"e{i}")
        else:
            groups.append(Group(f"p{len(groups)}", period, [f"e{i}"]))
    return _diagram(t, "timeline", lang, nodes=nodes, groups=groups)


BUILDERS = {"gantt": build_gantt, "pie": build_pie, "xychart": build_xychart, "quadrant": build_quadrant,
            "requirement": build_requirement, "packet": build_packet, "timeline": build_timeline}
CAPACITY = {
    "gantt": lambda t: len(_plan_steps(t)) if len(_plan_steps(t)) >= 2 else 0,
    "pie": lambda t: len(t["categories"]) if len(t["categories"]) >= 2 else 0,
    "xychart": lambda t: 60 if t["kpis"] else 0,
    "quadrant": lambda t: len(_points(t, "en")) if len(_points(t, "en")) >= 3 else 0,
    "requirement": lambda t: len(t["kpis"]) + len(t["entities"]) + 1 if t["kpis"] else 0,
    "packet": lambda t: len(t["header"]) if len(t["header"]) >= 2 else 0,
    "timeline": _timeline_cap,
}
