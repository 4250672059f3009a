"""Sampling diagrams from the knowledge base: ``sample_diagram(rng, type, ...) -> Diagram``.

A topic of the knowledge base (:mod:`dicrepro.diagrams.knowledge`) is picked among those that can fill the
requested type at the requested size, a builder (:mod:`dicrepro.diagrams.sample_structure`,
:mod:`dicrepro.diagrams.sample_charts`) turns it into a typed graph, and presentation choices (theme,
themeVariables, direction, node shapes, look) are drawn into ``diagram.meta``. All randomness comes from
the ``rng`` passed in, so the same seed gives the same Diagram JSON and the same Mermaid text
(:func:`dicrepro.diagrams.mermaid.to_mermaid`).

Conventions added to those of :mod:`dicrepro.diagrams.graph` (generators, verbalizer and VQA rely on them):

- ``meta["show_title"]``: whether the title is drawn. Always False for mindmap, block and architecture,
  whose grammars draw no title; the title is still the topic's title.
- Size: :func:`element_count` is what ``min_elements``/``max_elements`` bound: the number of messages
  for ``sequence``, of states (without the start/end pseudo-states) for ``state``, and of nodes for every
  other type.
- ``flowchart``: a decision's edge to its remedial action is labelled with the "no" word of the language,
  the edge to the next step with "yes"; node kinds process/decision/start/end/io/subroutine.
  ``meta["shapes"]`` maps node kind -> Mermaid shape name (see ``mermaid.SHAPES``), ``meta["edge_style"]``
  solid/dotted/thick. Subgraph groups only hold non-start/end nodes.
- ``sequence``: phases are contiguous runs of message indices; participants listed in order of first
  appearance. Message labels are the standard (English) message names in both languages.
- ``state``: node ids ``st<i>``; the start pseudo-state has id ``start``. No end pseudo-state.
- ``class``: node kind ``class``; fields are strings like ``+supi: string`` or ``+string supi``; methods
  like ``+register()``. ``er``: node kind ``entity``, edge kind ``relationship``.
- ``gantt``: edge kind ``after``; node kind ``task``; ``attrs["start"]`` is consistent with the
  dependencies (a task starts when its last predecessor ends).
- ``pie``: node kind ``slice``; values are integers. ``xychart``: node kind ``point``; ``meta`` also has
  ``unit``, ``kpi`` (the KPI name), optional ``x_label``, ``horizontal``.
- ``architecture``: edges have no labels (architecture-beta cannot draw them), kind ``link``,
  ``attrs["sides"]`` = [side at src, side at dst]. ``block``: edges may carry the interface name.
- ``requirement``: requirement ``attrs`` also hold ``req_id`` and ``req_type`` (Mermaid keyword);
  element ``attrs["type"]``. Node labels are unique within a diagram (relations refer to them).
- ``packet``: ``attrs["bits"]`` = end - start + 1.
- ``timeline``: periods are years/releases for history topics, change-window marks (``T-1d``, ``T0``...)
  for procedures.
- Sizes beyond one topic: when no topic reaches ``min_elements``, flowchart, sequence, gantt, mindmap,
  block, architecture and timeline combine consecutive topics of an area (or area family)
  (:mod:`dicrepro.diagrams.sample_composite`); such a diagram's ``topic`` is the topic ids joined by ``+``, its
  title the area's, ``meta["topics"]`` lists the ids, a chained flowchart/gantt has one
  subgraph/section per procedure and an area architecture one group per topic.
"""

from __future__ import annotations

import logging
import random

from dicrepro.diagrams import sample_composite as _composite
from dicrepro.diagrams.examples import EXAMPLE_TYPES, example_diagrams  # noqa: F401 - re-exported
from dicrepro.diagrams.graph import Diagram
from dicrepro.diagrams.knowledge import common, load_kb
from dicrepro.diagrams.mermaid import SHAPES, render_config, to_mermaid  # noqa: F401 - re-exported
from dicrepro.diagrams.sample_charts import BUILDERS as _CHART_BUILDERS
from dicrepro.diagrams.sample_charts import CAPACITY as _CHART_CAPACITY
from dicrepro.diagrams.sample_structure import BUILDERS as _STRUCT_BUILDERS
from dicrepro.diagrams.sample_structure import CAPACITY as _STRUCT_CAPACITY

log = logging.getLogger(__name__)

BUILDERS = {**_STRUCT_BUILDERS, **_CHART_BUILDERS}
CAPACITY = {**_STRUCT_CAPACITY, **_CHART_CAPACITY}
_NO_TITLE = {"mindmap", "block", "architecture"}
THEMES = ("default", "default", "neutral", "forest", "dark", "base", "base")
_PALETTES = [  # themeVariables for the 'base' theme: (primary, text, border/line, secondary, tertiary)
    ("#e3f2fd", "#0d47a1", "#1565c0", "#fff3e0", "#f1f8e9"),
    ("#fce4ec", "#880e4f", "#ad1457", "#e8f5e9", "#fffde7"),
    ("#ede7f6", "#311b92", "#4527a0", "#e0f7fa", "#fbe9e7"),
    ("#f5f5f5", "#212121", "#424242", "#e0e0e0", "#fafafa"),
    ("#e0f2f1", "#004d40", "#00695c", "#fff8e1", "#f3e5f5"),
    ("#fff8e1", "#3e2723", "#6d4c41", "#e8eaf6", "#e0f7fa"),
]
_FONT_SIZES = ("14px", "16px", "16px", "18px")
_SHAPE_CHOICES = {
    "process": ["rect", "rect", "round"], "decision": ["rhombus", "rhombus", "hexagon"],
    "start": ["stadium", "circle", "round"], "end": ["stadium", "circle", "round"],
    "io": ["parallelogram", "parallelogram_alt", "trapezoid"], "subroutine": ["subroutine"],
    "server": ["rect", "round", "subroutine"], "database": ["cylinder"], "cloud": ["round", "stadium"],
    "internet": ["hexagon", "asymmetric", "round"], "disk": ["cylinder"],
}


def supported_types() -> list[str]:
    """Diagram types that :func:`sample_diagram` and :func:`to_mermaid` support."""
    return list(EXAMPLE_TYPES)


def element_count(d: Diagram) -> int:
    """The size that ``min_elements``/``max_elements`` bound (see the module docstring)."""
    if d.diagram_type == "sequence":
        return len(d.edges)
    if d.diagram_type == "state":
        return sum(n.kind not in ("start", "end") for n in d.nodes)
    return len(d.nodes)


def topics_for(diagram_type: str, domain: str = "ict", min_elements: int = 1) -> list[dict]:
    """Topics that can fill ``diagram_type`` with at least ``min_elements`` elements."""
    if diagram_type not in CAPACITY:
        raise ValueError(f"unknown diagram type {diagram_type!r}; supported: {supported_types()}")
    return [t for t in load_kb(domain)["topics"] if CAPACITY[diagram_type](t) >= max(1, min_elements)]


def sample_diagram(rng: random.Random, diagram_type: str, *, domain: str = "ict", language: str = "en",
                   min_elements: int = 3, max_elements: int = 12, topic: str | dict | None = None) -> Diagram:
    """A technically plausible diagram of ``diagram_type`` from a topic of the ``domain`` knowledge base.

    ``topic`` (an id or a topic dict) fixes the topic; otherwise one is drawn among those that support the
    type with at least ``min_elements`` elements. The size is drawn in [min_elements, max_elements] and
    capped by what the topic holds; ValueError if no topic can reach ``min_elements``.
    """
    if language not in ("en", "zh"):
        raise ValueError(f"language must be 'en' or 'zh', got {language!r}")
    if min_elements < 1 or max_elements < min_elements:
        raise ValueError(f"need 1 <= min_elements <= max_elements, got {min_elements}, {max_elements}")
    if isinstance(topic, str):
        candidates = [t for t in load_kb(domain)["topics"] if t["id"] == topic]
        if not candidates:
            raise KeyError(f"no {domain} topic {topic!r}")
    elif isinstance(topic, dict):
        candidates = [topic]
    else:
        candidates = topics_for(diagram_type, domain, min_elements)
        if not candidates:
            # Only sizes no single topic can fill come here, so smaller diagrams stay reproducible.
            chains = _composite.composite_candidates(diagram_type, domain, min_elements, _chain_capacity)
            if not chains:
                raise ValueError(f"no {domain} topic can fill a {diagram_type} with >= {min_elements} elements")
            return _sample_composite(rng, diagram_type, domain, language, min_elements, max_elements, chains)
    t = rng.choice(candidates)
    cap = CAPACITY[diagram_type](t)
    if cap == 0:
        raise ValueError(f"topic {t['id']!r} cannot make a {diagram_type} diagram")
    n = min(rng.randint(min_elements, max_elements), cap)
    d = BUILDERS[diagram_type](rng, t, language, n, common(domain))
    _style(rng, d)
    return d


def _chain_capacity(diagram_type: str, chain: list[dict]) -> int:
    """How many elements a chain of topics can give (see :mod:`dicrepro.diagrams.sample_composite`)."""
    if diagram_type == "mindmap":
        return _composite.mindmap_cap(chain)
    return CAPACITY[diagram_type](_composite.merge_topics(chain))


def _sample_composite(rng: random.Random, diagram_type: str, domain: str, language: str, min_elements: int,
                      max_elements: int, chains: list[tuple[int, int]]) -> Diagram:
    """An area-level diagram from a chain of consecutive topics that together reach the drawn size."""
    fi, si = rng.choice(chains)
    family = _composite.families(domain, diagram_type)[fi]
    n = rng.randint(min_elements, max_elements)
    chain = _composite.chain_from(diagram_type, family, si, n, _chain_capacity)
    n = min(n, _chain_capacity(diagram_type, chain))
    merged = _composite.merge_topics(chain, domain)
    if diagram_type == "mindmap":
        d = _composite.build_area_mindmap(rng, merged, language, n, common(domain))
    else:
        d = BUILDERS[diagram_type](rng, merged, language, n, common(domain))
    if diagram_type in ("flowchart", "gantt"):
        _composite.regroup_by_procedure(d, merged, language)
    elif diagram_type == "architecture":
        _composite.spread_sides(d)
        _composite.group_by_topic(d, merged, language)
    d.meta["topics"] = [t["id"] for t in chain]
    log.debug("composite %s of %d topics: %s", diagram_type, len(chain), d.topic)
    _style(rng, d)
    return d


def _style(rng: random.Random, d: Diagram) -> None:
    """Presentation choices: they change pixels, never content."""
    theme = rng.choice(THEMES)
    meta = {"theme": theme, "themeVariables": {}, "show_title": d.diagram_type not in _NO_TITLE
            and rng.random() < 0.85}
    if theme == "base":
        p, text, line, sec, ter = rng.choice(_PALETTES)
        meta["themeVariables"] = {"primaryColor": p, "primaryTextColor": text, "primaryBorderColor": line,
                                  "lineColor": line, "secondaryColor": sec, "tertiaryColor": ter}
    if rng.random() < 0.3:
        meta["themeVariables"]["fontSize"] = rng.choice(_FONT_SIZES)
    t = d.diagram_type
    if t == "flowchart":
        meta["direction"] = rng.choice(["TD", "TD", "LR", "LR", "BT", "RL"])
        meta["shapes"] = {k: rng.choice(v) for k, v in _SHAPE_CHOICES.items()}
        meta["edge_style"] = rng.choice(["solid", "solid", "solid", "dotted", "thick"])
        meta["curve"] = rng.choice(["basis", "linear", "step", "cardinal"])
        if rng.random() < 0.1:
            meta["look"] = "handDrawn"
    elif t == "block":
        meta["shapes"] = {k: rng.choice(v) for k, v in _SHAPE_CHOICES.items()}
    elif t in ("state", "class", "er"):
        if rng.random() < 0.5:
            meta["direction"] = rng.choice(["TB", "LR"])
        if t == "state" and rng.random() < 0.1:
            meta["look"] = "handDrawn"
    elif t == "sequence":
        meta["autonumber"] = rng.random() < 0.4
        meta["mirror_actors"] = rng.random() < 0.3
    elif t == "mindmap":
        meta["level_shapes"] = [rng.choice(["circle", "hexagon", "bang", "cloud"]),
                                rng.choice(["round", "rect", "hexagon"]), rng.choice(["rect", "round"])]
    elif t == "xychart":
        meta["horizontal"] = rng.random() < 0.2
    elif t == "pie":
        meta["show_data"] = rng.random() < 0.4
    elif t == "gantt":
        meta["axis_format"] = rng.choice(["%m-%d", "%b %d", "%Y-%m-%d"])
    elif t == "requirement" and rng.random() < 0.5:
        meta["direction"] = rng.choice(["TB", "LR"])
    d.meta = {**meta, **{k: v for k, v in d.meta.items() if k not in meta}}
