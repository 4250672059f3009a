"""The offline verbalizer: rule-based descriptions of a diagram, derived from its graph only.

``describe(diagram, rng)`` returns three views and a fluent training target:

- ``global``: what the diagram is, its purpose and its elements (participants, states, tasks...);
- ``partial``: each phase / subgraph / section / period (or, for types without groups, each natural unit
  such as a decision, a class or a quadrant), in order;
- ``detail``: every node, edge, message and transition in the diagram's logical order, labels verbatim
  (sequences: also block conditions, notes and which participant is active over which messages);
- ``description``: the three woven into one text (group introductions appear where a group starts).

Each construct is phrased by one of at least five templates (``phrasings_en`` / ``phrasings_zh``), chosen
with the caller's ``rng``: the same rng state gives the same text, and a model cannot learn one template.
``style="expert"`` adds purpose and reasoning (why a check exists, what a failure branch does) in the
manner of expert annotations, without inventing any label the diagram does not hold.
"""

from __future__ import annotations

import random

from dicrepro.diagrams.graph import Diagram
from dicrepro.diagrams.knowledge import load_kb
from dicrepro.text.describe_types import build
from dicrepro.text.say import STYLES, Parts, Say, Section, Sentence  # noqa: F401  (public names of the verbalizer)

_CAPTION_PROMPTS = {
    "en": [
        "Describe this diagram in detail.",
        "Explain what this ICT diagram shows, covering its overall purpose, its parts and every element.",
        "Write a complete description of the diagram in the image.",
        "What does this diagram show? Describe it globally, part by part and in detail.",
        "Caption this technical diagram: its purpose, its structure and all of its labelled elements.",
    ],
    "zh": [
        "请详细描述这张图。",
        "请说明这张ICT图表展示的内容，包括整体目的、各个部分以及每个元素。",
        "请为图中的图表写一段完整的描述。",
        "这张图展示了什么？请从整体、局部和细节三个层面进行描述。",
        "请为这张技术图表撰写说明：它的用途、结构以及所有带标签的元素。",
    ],
}


def caption_prompt(language: str, rng: random.Random | None = None) -> str:
    """The user instruction for captioning, in ``language``; the first variant when ``rng`` is None."""
    options = _CAPTION_PROMPTS["zh" if language.startswith("zh") else "en"]
    return options[0] if rng is None else rng.choice(options)


def diagram_labels(diagram: Diagram) -> list[str]:
    """Every label a faithful description must contain, in first-seen order, without duplicates.

    Node, edge (message, transition, relation) and group labels, plus class members and ER field names,
    since those are printed in the diagram too. Empty labels (start/end states) are skipped.
    """
    out: list[str] = []
    for n in diagram.nodes:
        out.append(n.label)
        if diagram.diagram_type == "class":
            out += [str(x) for x in n.attrs.get("fields", [])] + [str(x) for x in n.attrs.get("methods", [])]
        elif diagram.diagram_type == "er":
            out += [str(f[1]) for f in n.attrs.get("fields", []) if len(f) > 1]
    out += [e.label for e in diagram.ordered_edges()]
    out += [g.label for g in diagram.groups]
    # conditions of sequence blocks and the text of notes are drawn too (sample_realism / parse)
    out += [br.get("condition", "") for b in diagram.meta.get("blocks", []) for br in b.get("branches", [])]
    out += [nt.get("text", "") for nt in diagram.meta.get("notes", [])]
    seen: set[str] = set()
    return [x for x in out if x.strip() and not (x in seen or seen.add(x))]


def display_names(diagram: Diagram) -> tuple[str, str]:
    """(topic, area) as a reader would name them, in the diagram's language, from the knowledge base;
    ids with underscores never reach the text."""
    lang = "zh" if diagram.language == "zh" else "en"
    topic = diagram.topic.replace("_", " ")
    if diagram.meta.get("topics"):  # a composite of several topics is titled after its area
        topic = diagram.title
    area = diagram.area.replace("_", " ")
    try:
        for domain in ("ict", "general"):
            kb = load_kb(domain)
            if diagram.area not in kb["areas"]:
                continue
            topics = kb["topics"]
            t = (topics.get(diagram.topic) if isinstance(topics, dict)
                 else next((t for t in topics if t.get("id") == diagram.topic), None))
            if t and not diagram.meta.get("topics"):
                topic = t.get(f"title_{lang}") or topic
            area = kb["areas"][diagram.area].get(lang) or area
            break
    except (KeyError, ValueError, OSError, ImportError):
        pass
    return topic, area


def describe_parts(diagram: Diagram, rng: random.Random, style: str = "structural") -> Parts:
    """The building blocks of a description (views as lists of sentences and sections)."""
    say = Say(diagram.language, rng, style)
    tname, tbare, what, noun, gnoun = say.type_info(diagram.diagram_type)
    topic, area = display_names(diagram)
    ctx = dict(tname=tname, tbare=tbare, what=what, noun=noun, gnoun=gnoun, title=diagram.title,
               topic=topic, area=area)
    if say.expert:
        glob = [say("x_open", **ctx), say("x_purpose", **ctx)]
    else:
        glob = [say("open", **ctx), say("purpose", **ctx)]
    detail, sections, elements = build(diagram, say)
    if elements:
        glob.append(say("elements", n=len(elements), noun=noun, list=say.join(elements)))
    if diagram.groups:
        k = len(diagram.groups)
        glob.append(say("groups", n=k, gnoun=gnoun, gnouns=gnoun if k == 1 or say.lang == "zh" else gnoun + "s",
                        are="is" if k == 1 else "are", list=say.join([_q(say, g.label) for g in diagram.groups])))
    detail = _cover_missing(diagram, say, detail)
    intros = {}
    parents = diagram.meta.get("group_parents") or {}  # nested subgraphs (sample_realism / parse)
    glabels = {g.id: g.label for g in diagram.groups}
    for gi, g in enumerate(diagram.groups):
        members = _member_labels(diagram, g.members)
        key = "x_group" if say.expert else "group_intro"
        intros[gi] = say(key, gnoun=gnoun, group=g.label, list=say.join(members))
        if parents.get(g.id) in glabels:
            intros[gi] = say.text([intros[gi], say("group_nested", gnoun=gnoun, group=g.label,
                                                   parent=glabels[parents[g.id]])])
    if diagram.groups and diagram.diagram_type == "timeline":
        # A period's sentence already names it; an introduction would only repeat it.
        sections = [Section(g.label, gnoun, s.text, s.ids) for g, s in zip(diagram.groups, detail)]
    elif diagram.groups:
        sections = [
            Section(g.label, gnoun, say.text([intros[gi]] + [s.text for s in detail if s.group == gi]),
                    set().union(*[s.ids for s in detail if s.group == gi], set()))
            for gi, g in enumerate(diagram.groups)
        ]
    closing = say("x_close" if say.expert else "close", topic=topic, title=diagram.title)
    return Parts(glob, sections, detail, intros, closing)


def describe(diagram: Diagram, rng: random.Random, style: str = "structural") -> dict[str, str]:
    """Describe ``diagram`` from its graph: ``{"global", "partial", "detail", "description"}``.

    Text follows ``diagram.language`` (en/zh); every label is kept verbatim. ``style`` is "structural"
    (stage 1) or "expert" (purpose and reasoning; the stage-2 stand-in). Deterministic given ``rng``.
    """
    parts = describe_parts(diagram, rng, style)
    say = Say(diagram.language, rng, style)
    body: list[str] = []
    seen_groups: set[int] = set()
    for s in parts.detail:
        # A group's introduction goes where its first element is described, so the text reads in order.
        if s.group is not None and s.group not in seen_groups and diagram.diagram_type != "timeline":
            seen_groups.add(s.group)
            body.append(parts.group_intros[s.group])
        body.append(s.text)
    body += [parts.group_intros[gi] for gi in parts.group_intros
             if gi not in seen_groups and diagram.diagram_type != "timeline"]
    return {
        "global": say.text(parts.global_),
        "partial": say.text([s.text for s in parts.sections]),
        "detail": say.text([s.text for s in parts.detail]),
        "description": say.text(parts.global_ + body + [parts.closing]),
    }


def _q(say: Say, label: str) -> str:
    return f"“{label}”" if say.lang == "zh" else f'"{label}"'


def _member_labels(diagram: Diagram, members: list[str]) -> list[str]:
    """Group members as text: node labels, or for sequence phases the messages they hold."""
    ids = {n.id: n for n in diagram.nodes}
    out = []
    for m in members:
        if m in ids:
            out.append(ids[m].label or m)
        elif diagram.diagram_type == "sequence" and str(m).isdigit() and int(m) < len(diagram.edges):
            out.append(diagram.edges[int(m)].label)
        else:
            out.append(str(m))
    return out


def _cover_missing(diagram: Diagram, say: Say, detail: list[Sentence]) -> list[Sentence]:
    """Safety net: any node or edge label not yet said gets an 'also present' sentence."""
    said = " ".join(s.text for s in detail)
    missing_nodes = [n for n in diagram.nodes if n.label.strip() and n.label not in said]
    missing_edges = [e.label for e in diagram.edges if e.label.strip() and e.label not in said]
    labels = [n.label for n in missing_nodes] + list(dict.fromkeys(missing_edges))
    if labels:
        detail = detail + [Sentence(say("also", list=say.join(labels)), {n.id for n in missing_nodes})]
    return detail
