"""Mermaid -> graph with mermaid.js's own parser: round trips of synthesized diagrams, real-diagram
constructs (blocks, notes, nested subgraphs, composite states), unsupported types, errors, hostile input."""

import random

import pytest

from dicrepro.diagrams.graph import Diagram
from dicrepro.diagrams.mermaid import to_mermaid
from dicrepro.diagrams.parse import SUPPORTED_TYPES, decode, parse_mermaid
from dicrepro.diagrams.render import MermaidRenderer
from dicrepro.diagrams.sample import BUILDERS, sample_diagram


@pytest.fixture(scope="module")
def renderer():
    with MermaidRenderer(workers=1, progress=False) as r:
        yield r


def signature(d: Diagram):
    """What a round trip must keep: node labels, edges by labels (in order for sequences), groups, title."""
    lab = {n.id: n.label for n in d.nodes}
    edges = [(lab.get(e.src), lab.get(e.dst), e.label) for e in d.ordered_edges()]
    if d.diagram_type != "sequence":
        edges = sorted(edges)
    ordered = d.ordered_edges()

    def member(m):
        return ordered[int(m)].label if d.diagram_type == "sequence" else lab.get(m, m)

    groups = sorted((g.label, tuple(sorted(member(m) for m in g.members))) for g in d.groups)
    title = d.title if d.meta.get("show_title", True) else ""
    return {"labels": sorted(lab.values()), "edges": edges, "groups": groups, "title": title}


def test_every_synthesized_type_is_mapped():
    assert set(BUILDERS) <= set(SUPPORTED_TYPES)


@pytest.mark.parametrize("dtype", sorted(BUILDERS))
def test_round_trip_of_synthesized_diagrams(renderer, dtype):
    diagrams = [sample_diagram(random.Random(seed), dtype, language=("zh" if seed % 2 else "en"),
                               min_elements=3, max_elements=12) for seed in range(6)]
    results = parse_mermaid([to_mermaid(d) for d in diagrams], renderer=renderer)
    for d, res in zip(diagrams, results):
        assert res.ok, (dtype, res.error)
        assert res.diagram.diagram_type == dtype
        assert signature(res.diagram) == signature(d), to_mermaid(d)


def test_sequence_blocks_notes_self_messages_and_aliases(renderer):
    src = """sequenceDiagram
  autonumber
  participant UE as UE #40;handset#41;
  actor OP as Operator
  participant AMF
  UE->>UE: Check credentials
  Note right of UE: keys in USIM #59; never sent
  alt subscriber known
    UE->>AMF: Registration Request
    loop every 30 s
      AMF--)UE: Keep-alive
    end
  else unknown
    UE-xAMF: Reject
  end
  par to OP
    AMF->>OP: Alarm
    activate OP
  and to UE
    AMF-->>UE: Registration Reject
    deactivate OP
  end
"""
    [res] = parse_mermaid([src], renderer=renderer)
    d = res.diagram
    assert [(n.id, n.label, n.kind) for n in d.nodes] == [
        ("UE", "UE (handset)", "participant"), ("OP", "Operator", "actor"), ("AMF", "AMF", "participant")]
    assert [(e.src, e.dst, e.label, e.order) for e in d.edges] == [
        ("UE", "UE", "Check credentials", 0), ("UE", "AMF", "Registration Request", 1),
        ("AMF", "UE", "Keep-alive", 2), ("UE", "AMF", "Reject", 3), ("AMF", "OP", "Alarm", 4),
        ("AMF", "UE", "Registration Reject", 5)]
    assert [e.kind for e in d.edges] == ["sync", "sync", "reply_async", "cross", "sync", "reply"]
    alt, loop, par = d.meta["blocks"]
    assert alt == {"kind": "alt", "parent": None, "branches": [
        {"condition": "subscriber known", "messages": [1, 2]}, {"condition": "unknown", "messages": [3]}]}
    assert loop == {"kind": "loop", "parent": 0, "branches": [{"condition": "every 30 s", "messages": [2]}]}
    assert [b["condition"] for b in par["branches"]] == ["to OP", "to UE"]
    assert d.meta["notes"] == [{"text": "keys in USIM ; never sent", "over": ["UE"], "position": "right of",
                                "after": 1}]
    assert d.meta["autonumber"] is True
    assert d.meta["activations"] == [["OP", 4, 5]]  # activated after message 4, deactivated after 5


def test_flowchart_shapes_edge_kinds_and_nested_subgraphs(renderer):
    src = """---
title: PDU session
---
flowchart LR
  subgraph core["5G core"]
    subgraph cp [Control plane]
      SMF{{SMF}}
    end
    UPF[(UPF)]
  end
  UE([UE]) -->|"PDU Session #quot;Establishment#quot;"| SMF
  SMF -.-> UPF
  UPF ==> DN>Data network<br/>internet]
  SMF --> D{Policy ok?}
"""
    [res] = parse_mermaid([src], renderer=renderer)
    d = res.diagram
    assert d.title == "PDU session"
    kinds = {n.id: (n.label, n.kind, n.attrs["shape"]) for n in d.nodes}
    assert kinds["UPF"] == ("UPF", "database", "cylinder")
    assert kinds["D"] == ("Policy ok?", "decision", "rhombus")
    assert kinds["DN"] == ("Data network internet", "process", "asymmetric")
    assert [(e.src, e.dst, e.label, e.kind) for e in d.edges] == [
        ("UE", "SMF", 'PDU Session "Establishment"', "solid"), ("SMF", "UPF", "", "dotted"),
        ("UPF", "DN", "", "thick"), ("SMF", "D", "", "solid")]
    assert [(g.id, g.label, g.members) for g in d.groups] == [("core", "5G core", ["UPF"]),
                                                              ("cp", "Control plane", ["SMF"])]
    assert d.meta["group_parents"] == {"cp": "core"}


def test_state_composite_choice_and_notes(renderer):
    src = """stateDiagram-v2
  [*] --> Idle
  Idle --> Connected : RRC Setup
  state Connected {
    [*] --> Active
    Active --> Inactive : suspend
  }
  state check <<choice>>
  Connected --> check
  check --> Idle : release
  note right of Idle : no RRC context
"""
    [res] = parse_mermaid([src], renderer=renderer)
    d = res.diagram
    assert not res.warnings
    by_id = {n.id: n for n in d.nodes}
    assert by_id["check"].kind == "choice" and by_id["Connected"].kind == "composite"
    assert [(g.id, g.members) for g in d.groups] == [("Connected", ["Connected_start", "Active", "Inactive"])]
    assert ("Active", "Inactive", "suspend") in [(e.src, e.dst, e.label) for e in d.edges]
    assert d.meta["notes"] == [{"text": "no RRC context", "over": ["Idle"], "position": "right of"}]


def test_unsupported_type_gives_labels_only_and_says_so(renderer):
    [res] = parse_mermaid(["journey\n  title Onboarding\n  section Day 1\n    Get SIM: 5: User\n"],
                          renderer=renderer)
    assert res.unsupported and res.error == "unsupported: journey" and not res.ok
    assert res.diagram.edges == [] and res.diagram.groups == []
    assert [n.label for n in res.diagram.nodes] == ["Get SIM"] and res.diagram.title == "Onboarding"


def test_bad_sources_are_errors_in_place_and_the_batch_goes_on(renderer):
    results = parse_mermaid(["not a diagram", "flowchart LR\n  A -->", "pie\n  \"a\" : 1\n"], renderer=renderer)
    assert results[0].error.startswith("parse error: No diagram type detected")
    assert results[1].error.startswith("parse error:") and results[1].diagram is None
    assert results[2].ok and results[2].diagram.nodes[0].attrs == {"value": 1}
    with pytest.raises(TypeError, match="item 0"):
        renderer.parse_batch([b"flowchart LR"])


def test_hostile_sources_run_nothing_and_request_nothing(renderer):
    before = renderer.blocked_requests
    hostile = [
        '%%{init: {"securityLevel": "loose"}}%%\nflowchart LR\n  A["<img src=\'http://evil.invalid/a.png\'>'
        ' x"] --> B\n  click A call window.fetch("http://evil.invalid/click")\n'
        '  click B "javascript:fetch(\'http://evil.invalid/js\')"\n',
        "sequenceDiagram\n  A->>B: <script>fetch('http://evil.invalid/s')</script>hi\n",
    ]
    results = parse_mermaid(hostile, renderer=renderer)
    assert all(r.ok for r in results)
    assert [n.label for n in results[0].diagram.nodes] == ["x", "B"]
    assert "<script" not in results[1].diagram.edges[0].label
    assert renderer.blocked_requests == before  # nothing was drawn, loaded or run


def test_decode_matches_what_mermaid_draws():
    assert decode("a\ufb02\u00b0\u00b058\u00b6\u00dfb \ufb02\u00b0quot\u00b6\u00df<br/>c") == 'a:b " c'


def test_official_examples_of_every_mapped_type_parse(renderer):
    from dicrepro.diagrams.mermaid_examples import coverage, official_examples
    from dicrepro.diagrams.parse_types import MAPPERS

    examples = [e for e in official_examples() if e.diagram_id in MAPPERS]
    results = parse_mermaid([e.code for e in examples], renderer=renderer)
    assert {MAPPERS[e.diagram_id][0] for e in examples} == set(SUPPORTED_TYPES)
    for e, res in zip(examples, results):
        assert res.ok and res.diagram.nodes, (e.diagram_id, e.title, res.error)
    assert all(row["error"] == 0 and row["fallback"] == 0 for row in coverage(examples, results))
