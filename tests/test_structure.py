"""Structure F1 (image -> Mermaid task): a diagram against itself is 1, losing an edge or a label costs,
relaxed matching forgives a typo, and a prediction that does not parse scores zero, not an error."""

import copy
import random

import pytest

from dicrepro.diagrams.mermaid import to_mermaid
from dicrepro.diagrams.render import MermaidRenderer
from dicrepro.diagrams.sample import BUILDERS, sample_diagram
from dicrepro.evaluate.structure import aggregate, structure_f1, structure_from_mermaid


def all_f1(res: dict) -> list[float]:
    return [res[f"{level}_f1"][mode] for level in ("node", "edge", "triple") for mode in ("strict", "relaxed")]


@pytest.mark.parametrize("dtype", sorted(BUILDERS))
def test_a_diagram_against_itself_is_one_and_without_an_edge_is_less(dtype):
    d = sample_diagram(random.Random(1), dtype, min_elements=4, max_elements=8)
    assert all_f1(structure_f1(d, d)) == ([1.0] * 6 if d.edges else [1.0, 1.0] + [None] * 4)
    if d.edges:
        fewer = copy.deepcopy(d)
        fewer.edges.pop()
        res = structure_f1(d, fewer)
        assert res["edge_f1"]["strict"] < 1.0 and res["triple_f1"]["strict"] < 1.0
        assert res["node_f1"]["strict"] == 1.0


def test_a_level_the_reference_lacks_is_not_scored_so_a_reply_without_edges_earns_nothing_there(renderer):
    pie = sample_diagram(random.Random(4), "pie", min_elements=4, max_elements=6)
    flow = sample_diagram(random.Random(4), "flowchart", min_elements=4, max_elements=6)
    # a pie has no edges: a wrong reply without edges used to score edge and triple F1 of 1.0 here
    rows = structure_from_mermaid([(to_mermaid(pie), "timeline\n  n1"), (to_mermaid(pie), "pie\n  oops :"),
                                   (to_mermaid(flow), "timeline\n  n1")], renderer=renderer)
    assert rows[0]["parsed"] and all_f1(rows[0]) == [0.0, 0.0] + [None] * 4
    assert rows[1]["parsed"] is False and all_f1(rows[1]) == [0.0, 0.0] + [None] * 4
    assert rows[2]["parsed"] and all_f1(rows[2]) == [0.0] * 6
    agg = aggregate(rows)
    assert agg["node_f1"]["strict"] == 0.0 and agg["edge_f1"]["strict"] == 0.0  # the flowchart's edges alone
    assert aggregate(rows[:2])["edge_f1"]["strict"] is None


def test_relaxed_forgives_a_typo_strict_does_not():
    d = sample_diagram(random.Random(2), "sequence", min_elements=4, max_elements=6)
    typo = copy.deepcopy(d)
    typo.nodes[0].label = typo.nodes[0].label + "x"
    res = structure_f1(d, typo)
    assert res["node_f1"]["strict"] < 1.0 and res["node_f1"]["relaxed"] == 1.0
    swapped = copy.deepcopy(d)
    e = swapped.edges[0]
    e.src, e.dst = e.dst, e.src
    assert structure_f1(d, swapped)["triple_f1"]["relaxed"] < 1.0


@pytest.fixture(scope="module")
def renderer():
    with MermaidRenderer(workers=1, progress=False) as r:
        yield r


def test_mermaid_pairs_parse_score_and_keep_going(renderer):
    d = sample_diagram(random.Random(3), "flowchart", min_elements=4, max_elements=6)
    src = to_mermaid(d)
    rows = structure_from_mermaid([(src, src), (src, "flowchart LR\n  A -->"), ("nonsense", src),
                                   (src, src.replace("-->", "-.->", 1)),
                                   (src, f"Here it is:\n```mermaid\n{src}```\nDone.")], renderer=renderer)
    assert rows[0]["parsed"] and all_f1(rows[0]) == [1.0] * 6
    assert rows[1]["parsed"] is False and all_f1(rows[1]) == [0.0] * 6 and "parse error" in rows[1]["error"]
    assert "reference does not parse" in rows[2]["error"] and "parsed" not in rows[2]
    assert all_f1(rows[3]) == [1.0] * 6  # a dotted arrow is the same edge
    assert all_f1(rows[4]) == [1.0] * 6  # a fenced block in a chatty reply is found
    agg = aggregate(rows)
    assert agg["n"] == 4 and agg["parse_rate"] == pytest.approx(3 / 4)
    assert agg["node_f1"]["strict"] == pytest.approx(3 / 4)
