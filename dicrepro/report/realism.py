"""``dicrepro realism DATASET [--against DATASET]``: how real a diagram dataset looks, measured on its graphs.

The statistics of ../shared/REALISM.md (type mix, sequence messages/blocks/notes/activations/autonumber/
participants, flowchart nodes/subgraphs/edge labels/classDef, state transitions/composites/[*], label
lengths, line breaks), computed the same way for any dataset: by default each row's Mermaid is parsed
again with mermaid.js (:func:`dicrepro.diagrams.parse.parse_mermaid`), so a synthesized and a harvested set
are measured alike; ``graphs=True`` reads the stored ``graph`` column instead (fast, for synthesized
sets). What the graph does not hold (classDef/style lines, ``<br>`` breaks, activations) is read from
the Mermaid source.

    stats = dataset_stats(load_rows("data/s1"))
    table = realism_table({"synthesized": stats}, TARGETS)   # Markdown, with a within-tolerance column

Tolerance, as REALISM.md asks: a count within ±20% of its target, a share within ±5 points.
"""

from __future__ import annotations

import os
import logging
import re
import statistics
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

from dicrepro.diagrams.graph import Diagram

log = logging.getLogger(__name__)

# (key, what it is, kind) in table order; kind "share" (0..1) or "count"
STATS: list[tuple[str, str, str]] = [
    ("type_flowchart", "type mix: flowchart/graph", "share"),
    ("type_sequence", "type mix: sequence", "share"),
    ("type_state", "type mix: state", "share"),
    ("type_other", "type mix: class/er/other", "share"),
    ("seq_messages_median", "sequence: messages per diagram, median", "count"),
    ("seq_messages_p25", "sequence: messages per diagram, p25", "count"),
    ("seq_messages_p75", "sequence: messages per diagram, p75", "count"),
    ("seq_with_blocks", "sequence: with alt/opt/loop/par/critical/break", "share"),
    ("seq_with_notes", "sequence: with Note", "share"),
    ("seq_with_activations", "sequence: with activations", "share"),
    ("seq_with_autonumber", "sequence: with autonumber", "share"),
    ("seq_participants_median", "sequence: participants, median", "count"),
    ("flow_nodes_median", "flowchart: nodes, median", "count"),
    ("flow_nodes_p75", "flowchart: nodes, p75", "count"),
    ("flow_with_subgraph", "flowchart: with subgraph", "share"),
    ("flow_with_edge_labels", "flowchart: with edge labels", "share"),
    ("flow_with_classdef", "flowchart: with classDef/style", "share"),
    ("state_transitions_median", "state: transitions, median", "count"),
    ("state_with_composite", "state: with composite states", "share"),
    ("state_with_start_end", "state: use [*]", "share"),
    ("label_chars_median", "labels: characters (CJK count 2), median", "count"),
    ("labels_over_30", "labels: share over 30 characters", "share"),
    ("diagrams_with_label_over_30", "diagrams with a label over 30 characters", "share"),
    ("diagrams_with_line_breaks", "diagrams with line breaks in labels", "share"),
]
# ../shared/REALISM.md, "real ICT docs" column (ranges as their middle: nodes 7-8 -> 7.5, edge labels 67-69%)
TARGETS: dict[str, float] = {
    "type_flowchart": 0.54, "type_sequence": 0.40, "type_state": 0.04, "type_other": 0.02,
    "seq_messages_median": 9, "seq_messages_p25": 6, "seq_messages_p75": 13, "seq_with_blocks": 0.34,
    "seq_with_notes": 0.49, "seq_with_activations": 0.30, "seq_with_autonumber": 0.17,
    "seq_participants_median": 4, "flow_nodes_median": 7.5, "flow_nodes_p75": 10, "flow_with_subgraph": 0.45,
    "flow_with_edge_labels": 0.68, "flow_with_classdef": 0.20, "state_transitions_median": 8,
    "state_with_composite": 0.13, "state_with_start_end": 0.69, "label_chars_median": 15, "labels_over_30": 0.20,
    "diagrams_with_label_over_30": 0.60, "diagrams_with_line_breaks": 0.25,
}
KIND = {k: kind for k, _, kind in STATS}
_BREAK = re.compile(r"<br\s*/?>", re.I)
_CLASSDEF = re.compile(r"^\s*(classDef|style|class|linkStyle)\s", re.M)
_ACTIVATION = re.compile(r"^\s*(activate|deactivate)\s|(->>|-->>|->|-->|-\)|--\))[+-]", re.M)
_BLOCK_KINDS = {"alt", "opt", "loop", "par", "critical", "break"}


def within(key: str, value: float | None, target: float) -> bool | None:
    """REALISM.md's tolerance: a share within 5 points, a count within 20% (None: nothing to measure)."""
    if value is None:
        return None
    if KIND[key] == "share":
        return abs(value - target) <= 0.05 + 1e-9
    return abs(value - target) <= 0.2 * target + 1e-9


def _q(values: list[float], p: float) -> float | None:
    """The p-quantile (0.25, 0.5 or 0.75) of ``values``, inclusive method; None when there are none."""
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=4, method="inclusive")[{0.25: 0, 0.5: 1, 0.75: 2}[p]])


def _share(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def _labels(d: Diagram) -> list[str]:
    """Every text drawn in the diagram: node, edge and group labels, block conditions, notes."""
    out = [n.label for n in d.nodes] + [e.label for e in d.edges] + [g.label for g in d.groups]
    out += [br.get("condition", "") for b in d.meta.get("blocks", []) for br in b.get("branches", [])]
    out += [nt.get("text", "") for nt in d.meta.get("notes", [])]
    return [x for x in out if x.strip()]


def width(label: str) -> int:
    """A label's length in character cells: a Chinese character counts two (East Asian wide), as it is
    drawn; so "30 characters" means the same space in an English and a Chinese diagram."""
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in label)


def dataset_stats(rows: Iterable[tuple[Diagram, str]]) -> dict:
    """The statistics of :data:`STATS` over ``rows`` of (graph, Mermaid source); ``None`` where a type is
    absent. Also ``n`` (diagrams) and ``n_<type>`` counts."""
    rows = list(rows)
    types = [d.diagram_type for d, _ in rows]
    seq = [(d, s) for d, s in rows if d.diagram_type == "sequence"]
    flow = [(d, s) for d, s in rows if d.diagram_type == "flowchart"]
    state = [(d, s) for d, s in rows if d.diagram_type == "state"]
    msgs = [len(d.edges) for d, _ in seq]
    nodes = [len(d.nodes) for d, _ in flow]
    labels = [lab for d, _ in rows for lab in _labels(d)]
    out: dict = {"n": len(rows), "n_sequence": len(seq), "n_flowchart": len(flow), "n_state": len(state)}
    n = len(rows) or 1
    out |= {
        "type_flowchart": types.count("flowchart") / n if rows else None,
        "type_sequence": types.count("sequence") / n if rows else None,
        "type_state": types.count("state") / n if rows else None,
        "type_other": sum(t not in ("flowchart", "sequence", "state") for t in types) / n if rows else None,
        "seq_messages_median": _q(msgs, 0.5), "seq_messages_p25": _q(msgs, 0.25), "seq_messages_p75": _q(msgs, 0.75),
        "seq_messages_max": max(msgs) if msgs else None,
        "seq_with_blocks": _share([any(b.get("kind") in _BLOCK_KINDS for b in d.meta.get("blocks", []))
                                   for d, _ in seq]),
        "seq_with_notes": _share([bool(d.meta.get("notes")) for d, _ in seq]),
        "seq_with_activations": _share([bool(_ACTIVATION.search(s)) for _, s in seq]),
        "seq_with_autonumber": _share([bool(d.meta.get("autonumber")) for d, _ in seq]),
        "seq_participants_median": _q([len(d.nodes) for d, _ in seq], 0.5),
        "flow_nodes_median": _q(nodes, 0.5), "flow_nodes_p75": _q(nodes, 0.75),
        "flow_with_subgraph": _share([bool(d.groups) for d, _ in flow]),
        "flow_with_edge_labels": _share([any(e.label.strip() for e in d.edges) for d, _ in flow]),
        "flow_with_classdef": _share([bool(_CLASSDEF.search(s)) for _, s in flow]),
        "state_transitions_median": _q([len(d.edges) for d, _ in state], 0.5),
        "state_with_composite": _share([any(nd.kind == "composite" for nd in d.nodes) or bool(d.groups)
                                        for d, _ in state]),
        "state_with_start_end": _share([any(nd.kind in ("start", "end") for nd in d.nodes) for d, _ in state]),
        "label_chars_median": _q([width(x) for x in labels], 0.5),
        "labels_over_30": _share([width(x) > 30 for x in labels]),
        "diagrams_with_label_over_30": _share([any(width(x) > 30 for x in _labels(d)) for d, _ in rows]),
        "diagrams_with_line_breaks": _share([bool(_BREAK.search(s)) for _, s in rows]),
    }
    return out


def load_rows(dataset: str | Path, *, split: str = "all", graphs: bool = False, renderer=None) -> list[tuple[Diagram, str]]:
    """(graph, Mermaid) of every row of a saved dataset (``split``: train, test or all).

    Without ``graphs`` the Mermaid is parsed again (rows that do not parse are skipped with a warning);
    with it, the stored ``graph`` column is used."""
    from datasets import load_from_disk

    dd = load_from_disk(str(dataset))
    parts = [dd] if not hasattr(dd, "keys") else [dd[k] for k in dd if split in ("all", k)]
    if not parts:
        raise ValueError(f"{dataset}: no split {split!r} (has {', '.join(dd)})")
    cols = [(g, m) for ds in parts for g, m in zip(ds["graph"], ds["mermaid"])]
    if graphs:
        return [(Diagram.from_json(g), m) for g, m in cols]
    from dicrepro.diagrams.parse import parse_mermaid

    results = parse_mermaid([m for _, m in cols], renderer=renderer, workers=1) if renderer is None else \
        parse_mermaid([m for _, m in cols], renderer=renderer)
    out = []
    for (_, m), res in zip(cols, results):
        if res.diagram is None:
            log.warning("%s: a row does not parse (%s); left out", dataset, res.error)
            continue
        out.append((res.diagram, m))
    return out


def _fmt(key: str, v) -> str:
    if v is None:
        return "–"
    return f"{100 * v:.0f}%" if KIND[key] == "share" else f"{v:g}"


def realism_table(columns: dict[str, dict], targets: dict[str, float] = TARGETS) -> str:
    """Markdown: one row per statistic; the target, each column's value, and whether the first column is
    within tolerance (✓ / ✗, – where the type is absent)."""
    names = list(columns)
    head = "| statistic | target (real ICT docs) | " + " | ".join(names) + f" | {names[0]} within tolerance |"
    lines = [head, "|" + "---|" * (3 + len(names))]
    for key, what, _ in STATS:
        ok = within(key, columns[names[0]].get(key), targets[key])
        mark = "–" if ok is None else ("✓" if ok else "✗")
        vals = " | ".join(_fmt(key, columns[c].get(key)) for c in names)
        lines.append(f"| {what} | {_fmt(key, targets[key])} | {vals} | {mark} |")
    ns = ", ".join(f"{c}: {s['n']} diagrams ({s['n_sequence']} sequence, {s['n_flowchart']} flowchart, "
                   f"{s['n_state']} state)" for c, s in columns.items())
    return "\n".join(lines) + f"\n\n{ns}. Tolerance: counts ±20% of the target, shares ±5 points.\n"


def realism_figure(columns: dict[str, dict], path: str | Path, targets: dict[str, float] = TARGETS) -> Path:
    """Each statistic as a ratio to its target (1 = the real docs), one marker per dataset, the tolerance band
    shaded; PNG (+ PDF beside it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = [k for k, _, _ in STATS]
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(keys) + 1.2))
    for y, k in enumerate(keys):
        t = targets[k]
        lo, hi = ((t - 0.05) / t, (t + 0.05) / t) if KIND[k] == "share" else (0.8, 1.2)
        ax.fill_betweenx([y - 0.4, y + 0.4], max(lo, 0), hi, color="#cfe8cf", lw=0)
    markers = "os^D"
    for j, (name, stats) in enumerate(columns.items()):
        xs, ys = [], []
        for y, k in enumerate(keys):
            if stats.get(k) is not None:
                xs.append(min(stats[k] / targets[k], 3.0))
                ys.append(y)
        ax.scatter(xs, ys, marker=markers[j % len(markers)], label=name, zorder=3)
    ax.axvline(1.0, color="#555", lw=0.8)
    ax.set_yticks(range(len(keys)), [w for _, w, _ in STATS], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("value / real-docs target (green: within tolerance; capped at 3)")
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130, metadata={"Software": None})
    fig.savefig(path.with_suffix(".pdf"), metadata={"CreationDate": None, "Producer": None, "Creator": None})
    plt.close(fig)
    return path


def realism_main(dataset: str, against: Sequence[str] = (), *, md: str | Path | None = None,
                 figure: str | Path | None = None, split: str = "all", graphs: bool = False) -> dict:
    """The ``dicrepro realism`` command: statistics of ``dataset`` (and each of ``against``), a Markdown
    table (``md``, default ``<dataset>_realism.md``), a figure and a JSON record beside the table."""
    from dicrepro.atomic import write_bytes_atomic, write_json_atomic

    names = [dataset, *against]
    cols: dict[str, dict] = {}
    renderer = None
    if not graphs:
        from dicrepro.diagrams.render import MermaidRenderer

        renderer = MermaidRenderer(workers=1, progress=False).start()
    try:
        for name in names:
            label = Path(name).name
            while label in cols:
                label += "'"
            cols[label] = dataset_stats(load_rows(name, split=split, graphs=graphs, renderer=renderer))
    finally:
        if renderer is not None:
            renderer.close()
    md = Path(md) if md else Path(dataset).with_name(f"{Path(dataset).name}_realism.md")
    figure = Path(figure) if figure else md.with_suffix(".png")
    realism_figure(cols, figure)
    table = realism_table(cols)
    how = "stored graphs" if graphs else "graphs parsed again from the Mermaid with mermaid.js"
    rel = os.path.relpath(figure, md.parent)
    text = (f"# Realism: {', '.join(cols)} against ../shared/REALISM.md\n\nGenerated by `dicrepro realism "
            f"{' '.join([dataset] + [f'--against {a}' for a in against])} --md {md} --figure {figure}` ({how}, split {split}).\n\n"
            f"{table}\n![value / target per statistic]({rel})\n")
    md.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(md, text.encode("utf-8"))
    write_json_atomic(md.with_suffix(".json"), {"targets": TARGETS, "datasets": cols})
    failed = [k for k, _, _ in STATS if within(k, cols[next(iter(cols))].get(k), TARGETS[k]) is False]
    return {"md": str(md), "figure": str(figure), "stats": cols, "outside_tolerance": failed}


__all__ = ["STATS", "TARGETS", "dataset_stats", "load_rows", "realism_table", "realism_figure", "realism_main",
           "within"]
