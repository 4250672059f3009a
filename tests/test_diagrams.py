"""Diagram sampling and Mermaid writing: determinism, sizes, escaping, and every type rendered by the real
mermaid.js (through dicrepro.diagrams.render) to a non-blank PNG."""

from __future__ import annotations

import copy
import io
import itertools
import random
import re

import pytest
from PIL import Image

from dicrepro.diagrams.graph import Diagram
from dicrepro.diagrams.knowledge import topic as kb_topic
from dicrepro.diagrams.sample import (
    element_count,
    example_diagrams,
    render_config,
    sample_diagram,
    supported_types,
    to_mermaid,
    topics_for,
)


def topic_area(topic_id: str) -> str:
    return kb_topic(topic_id)["area"]

TYPES = supported_types()
NASTY = 'Port #1 "core" (a) [b] {c}; x:y <z> & 5%, 中文'


def test_supported_types_cover_the_issue():
    need = {"flowchart", "sequence", "state", "class", "er", "gantt", "pie", "mindmap", "timeline", "block",
            "architecture", "xychart", "quadrant", "requirement", "packet"}
    assert need <= set(TYPES)
    assert [d.diagram_type for d in example_diagrams()] == TYPES


@pytest.mark.parametrize("dtype", TYPES)
def test_same_seed_same_json_and_mermaid(dtype):
    a = sample_diagram(random.Random(42), dtype, language="zh", max_elements=20)
    b = sample_diagram(random.Random(42), dtype, language="zh", max_elements=20)
    assert a.to_json() == b.to_json() and to_mermaid(a) == to_mermaid(b)
    assert Diagram.from_json(a.to_json()).to_json() == a.to_json()
    others = {sample_diagram(random.Random(s), dtype).to_json() for s in range(8)}
    assert len(others) >= 4  # seeds do vary the output


@pytest.mark.parametrize("dtype", TYPES)
@pytest.mark.parametrize("domain", ["ict", "general"])
def test_sizes_stay_within_bounds(dtype, domain):
    rng = random.Random(7)
    for lo, hi in ((3, 5), (6, 12)):
        if not topics_for(dtype, domain, lo):
            continue
        for _ in range(5):
            d = sample_diagram(rng, dtype, domain=domain, min_elements=lo, max_elements=hi)
            assert lo <= element_count(d) <= hi, (dtype, d.topic, element_count(d))
            assert d.area and d.topic and d.title


def test_large_diagrams_reach_forty_elements():
    d = sample_diagram(random.Random(3), "xychart", min_elements=40, max_elements=48)
    assert 40 <= element_count(d) <= 48
    with pytest.raises(ValueError, match="no ict topic can fill a pie"):
        sample_diagram(random.Random(3), "pie", min_elements=200, max_elements=300)


AREA_TYPES = ["flowchart", "sequence", "mindmap", "block", "architecture", "gantt"]


def _check_conventions(d: Diagram) -> None:
    """The graph.py / diagrams.py conventions the verbalizer and VQA rely on."""
    ids = [n.id for n in d.nodes]
    assert len(ids) == len(set(ids)), d.topic
    for e in d.edges:
        assert e.src in ids and e.dst in ids, (d.diagram_type, e)
    if d.diagram_type == "sequence":
        covered = [int(m) for g in d.groups for m in g.members]
        assert covered == sorted(covered) and all(b - a == 1 for a, b in itertools.pairwise(covered))
        assert [e.order for e in d.edges] == list(range(len(d.edges)))
    else:
        for g in d.groups:
            assert g.members and set(g.members) <= set(ids), (d.diagram_type, g)
    if d.diagram_type == "flowchart":
        assert not {m for g in d.groups for m in g.members} & {"start", "end"}
    if d.diagram_type == "mindmap":
        assert d.nodes[0].id == "root" and all(e.dst != "root" for e in d.edges)
    if d.diagram_type == "architecture":
        assert all(not e.label and e.kind == "link" and len(e.attrs["sides"]) == 2 for e in d.edges)


@pytest.mark.parametrize("dtype", AREA_TYPES)
def test_area_level_diagrams_reach_forty_elements(dtype):
    for seed in range(4):
        lang = "zh" if seed % 2 else "en"
        d = sample_diagram(random.Random(seed), dtype, language=lang, min_elements=40, max_elements=45)
        assert 40 <= element_count(d) <= 45, (dtype, d.topic, element_count(d))
        again = sample_diagram(random.Random(seed), dtype, language=lang, min_elements=40, max_elements=45)
        assert again.to_json() == d.to_json() and to_mermaid(again) == to_mermaid(d)
        _check_conventions(d)
        if "topics" in d.meta:  # combined from several topics of one area (family)
            assert len(d.meta["topics"]) >= 2 and d.topic == "+".join(d.meta["topics"])


def test_chained_procedures_keep_their_order_and_grouping():
    d = sample_diagram(random.Random(5), "sequence", min_elements=40, max_elements=45)
    assert len(d.meta["topics"]) >= 2 and len({topic_area(t) for t in d.meta["topics"]}) == 1
    first = kb_topic(d.meta["topics"][0])
    assert [e.label for e in d.edges[:len(first["messages"])]] == [m["name"] for m in first["messages"]]
    g = sample_diagram(random.Random(5), "gantt", min_elements=40, max_elements=45)
    titles = [kb_topic(t)["title_en"] for t in g.meta["topics"]]
    # one section per procedure that has steps, in the order the procedures run
    assert len(g.groups) >= 2 and [titles.index(sec.label) for sec in g.groups] == sorted(
        titles.index(sec.label) for sec in g.groups)
    f = sample_diagram(random.Random(6), "flowchart", min_elements=40, max_elements=45)
    assert len(f.groups) >= 2 and all(sec.label in [kb_topic(t)["title_en"] for t in f.meta["topics"]]
                                      for sec in f.groups)


def test_general_domain_combines_topics_too():
    d = sample_diagram(random.Random(0), "gantt", domain="general", min_elements=30, max_elements=40)
    assert 30 <= element_count(d) <= 40 and len(d.meta["topics"]) >= 2
    _check_conventions(d)


def test_area_mindmap_has_one_branch_per_topic():
    d = sample_diagram(random.Random(2), "mindmap", language="zh", min_elements=60, max_elements=70)
    assert 60 <= element_count(d) <= 70
    _check_conventions(d)
    branches = [e.dst for e in d.edges if e.src == "root"]
    assert [d.label_of(b) for b in branches] == [kb_topic(t)["title_zh"] for t in d.meta["topics"]]
    assert d.nodes[0].label == d.title  # the root is the area


def test_timeline_beyond_one_topic_is_a_chronological_history():
    d = sample_diagram(random.Random(0), "timeline", min_elements=15, max_elements=20)
    assert 15 <= element_count(d) <= 20
    years = [int(re.search(r"\d{4}", g.label).group(0)) for g in d.groups]
    assert years == sorted(years)


def test_sizes_one_topic_can_fill_still_come_from_one_topic():
    for dtype in AREA_TYPES + ["state", "timeline"]:
        for seed in range(5):
            d = sample_diagram(random.Random(seed), dtype, min_elements=3, max_elements=12)
            assert "topics" not in d.meta and "+" not in d.topic, (dtype, d.topic)
    with pytest.raises(ValueError, match="no ict topic can fill a state"):
        sample_diagram(random.Random(0), "state", min_elements=40, max_elements=45)


def test_chinese_labels_and_english_message_names():
    d = sample_diagram(random.Random(1), "sequence", language="zh", topic="5g_registration", min_elements=8)
    assert d.edges[0].label == "RRCSetupRequest"  # message names stay in their standard English form
    assert any("\u4e00" <= ch <= "\u9fff" for ch in d.title)
    f = sample_diagram(random.Random(1), "flowchart", language="zh", topic="ospf_adjacency")
    assert any("\u4e00" <= ch <= "\u9fff" for n in f.nodes for ch in n.label)


def test_gantt_dates_respect_dependencies():
    from datetime import date, timedelta
    for s in range(10):
        d = sample_diagram(random.Random(s), "gantt", max_elements=10)
        for e in d.edges:
            a, b = d.node(e.src), d.node(e.dst)
            end_a = date.fromisoformat(a.attrs["start"]) + timedelta(days=a.attrs["days"])
            assert date.fromisoformat(b.attrs["start"]) >= end_a


def test_unknown_type_and_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="unknown diagram type 'venn'"):
        sample_diagram(random.Random(0), "venn")
    with pytest.raises(ValueError, match="language"):
        sample_diagram(random.Random(0), "pie", language="fr")
    with pytest.raises(ValueError, match="no Mermaid writer"):
        to_mermaid(Diagram("venn", "t", "x", "y"))


def _nasty(d: Diagram) -> Diagram:
    """The same diagram with grammar-breaking characters in every free-text label."""
    d = copy.deepcopy(d)
    for i, n in enumerate(d.nodes):
        if d.diagram_type != "er" and n.label:
            n.label = f"{NASTY} {i}".replace('"', "'") if d.diagram_type == "architecture" else f"{NASTY} {i}"
    for e in d.edges:
        if e.label:
            e.label = NASTY
    for g in d.groups:
        g.label = NASTY.replace('"', "'") if d.diagram_type == "architecture" else NASTY
    return d


def test_escaping_keeps_statements_on_one_line():
    for d in example_diagrams():
        text = to_mermaid(_nasty(d))
        assert NASTY not in text.replace("#quot;", '"') or d.diagram_type == "architecture", d.diagram_type
        assert "#35;1" in text or d.diagram_type in ("architecture", "er"), d.diagram_type
    # In a sequence message, ';' would end the statement and '#' start an entity: both must be codes.
    seq = to_mermaid(_nasty(example_diagrams()[1]))
    message = next(line for line in seq.splitlines() if "->>" in line).split(": ", 1)[1]
    assert not set(re.sub(r"#\w+;", "", message)) & set(";#:<>")


# --- real mermaid.js --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def renderer():
    render = pytest.importorskip("dicrepro.diagrams.render")
    with render.MermaidRenderer(workers=2, timeout_s=30, width=600, progress=False) as r:
        yield r


def _assert_renders(renderer, diagrams):
    results = renderer.render_batch([(to_mermaid(d), render_config(d)) for d in diagrams], progress=False)
    for d, res in zip(diagrams, results):
        assert res.ok, (d.diagram_type, d.language, d.topic, res.error, to_mermaid(d))
        img = Image.open(io.BytesIO(res.png)).convert("L")
        lo, hi = img.getextrema()
        assert hi - lo > 100 and img.width > 50 and img.height > 30, (d.diagram_type, img.size, (lo, hi))


def test_every_type_renders_small_large_en_zh(renderer):
    rng = random.Random(2024)
    samples = []
    for t in TYPES:
        samples.append(sample_diagram(rng, t, language="en", min_elements=3, max_elements=5))
        samples.append(sample_diagram(rng, t, language="zh", min_elements=3, max_elements=5))
        lo = 12 if topics_for(t, "ict", 12) else 3
        samples.append(sample_diagram(rng, t, language=rng.choice(["en", "zh"]), min_elements=lo, max_elements=45))
    samples.append(sample_diagram(rng, "flowchart", domain="general", language="zh"))
    _assert_renders(renderer, samples)


def test_forty_element_diagrams_render(renderer):
    _assert_renders(renderer, [sample_diagram(random.Random(11), t, language="zh" if i % 2 else "en",
                                              min_elements=40, max_elements=45) for i, t in enumerate(AREA_TYPES)])


def test_examples_and_nasty_labels_render(renderer):
    _assert_renders(renderer, example_diagrams("en") + example_diagrams("zh")
                    + [_nasty(d) for d in example_diagrams("en")])
