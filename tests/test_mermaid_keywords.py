"""Labels that start like a Mermaid keyword are written so mermaid.js reads them as text."""

from dicrepro.diagrams.graph import Diagram, Edge, Node
from dicrepro.diagrams.mermaid import to_mermaid
from dicrepro.diagrams.parse import parse_mermaid


def test_gantt_tasks_named_call_or_click_parse_and_keep_their_text():
    # "Call back customer" (a KB task) made the whole gantt a parse error: 2 of 2,000 plain paper samples
    d = Diagram("gantt", "Repair", "t", "a", nodes=[
        Node("a", "Call back customer", "task", {"start": "2024-01-01", "days": 1}),
        Node("b", "click-through check", "task", {"start": "2024-01-02", "days": 2}),
        Node("c", "Recall units", "task", {"start": "2024-01-04", "days": 1})], edges=[Edge("a", "b", "", "after")])
    src = to_mermaid(d)
    assert "#67;all back customer" in src and "Recall units" in src
    [res] = parse_mermaid([src], workers=1)
    assert res.ok and [n.label for n in res.diagram.nodes] == ["Call back customer", "click-through check",
                                                               "Recall units"]
