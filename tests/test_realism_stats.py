"""dicrepro realism: REALISM.md's statistics computed from the graphs (a hand-checkable fixture), the
tolerance rule, and the command on a small synthesized dataset (table + figure)."""

import json

import pytest

from dicrepro.cli import main
from dicrepro.diagrams.graph import Diagram, Edge, Group, Node
from dicrepro.report.realism import TARGETS, dataset_stats, realism_table, width, within


def seq(n_msgs: int, blocks=(), notes=(), autonumber=False) -> Diagram:
    d = Diagram("sequence", "t", "x", "a", nodes=[Node("A", "Client"), Node("B", "Server")],
                edges=[Edge("A", "B", f"m{i}", "sync", i) for i in range(n_msgs)])
    d.meta.update({"blocks": list(blocks), "notes": list(notes), "autonumber": autonumber})
    return d


def fixture_rows():
    loop = {"kind": "loop", "parent": None, "branches": [{"condition": "Every 30 s", "messages": [0]}]}
    rect = {"kind": "rect", "parent": None, "branches": [{"condition": "", "messages": [0]}]}
    note = {"text": "x" * 31, "over": ["A"], "position": "over", "after": 1}
    s1 = seq(4, [loop], [note], autonumber=True)
    s2 = seq(8, [rect])
    s3 = seq(12)
    f1 = Diagram("flowchart", "t", "x", "a", nodes=[Node(f"n{i}", "Step") for i in range(5)],
                 edges=[Edge("n0", "n1", "yes"), Edge("n1", "n2")], groups=[Group("g0", "Zone", ["n0"])])
    f2 = Diagram("flowchart", "t", "x", "a", nodes=[Node(f"n{i}", "认证服务器功能认证服务器功能认证服务") for i in range(3)],
                 edges=[Edge("n0", "n1")])
    st = Diagram("state", "t", "x", "a", nodes=[Node("start", "", "start"), Node("s", "Idle", "state")],
                 edges=[Edge("start", "s")])
    pie = Diagram("pie", "t", "x", "a", nodes=[Node("c0", "Share")])
    return [(s1, "sequenceDiagram\n  A->>+B: m0\n"), (s2, ""), (s3, ""),
            (f1, "flowchart LR\n  classDef hot fill:#f00\n"), (f2, 'flowchart LR\n  n0["a<br/>b"]\n'),
            (st, ""), (pie, "")]


def test_statistics_are_counted_from_the_graphs():
    s = dataset_stats(fixture_rows())
    assert s["n"] == 7 and (s["n_sequence"], s["n_flowchart"], s["n_state"]) == (3, 2, 1)
    assert s["type_sequence"] == pytest.approx(3 / 7) and s["type_other"] == pytest.approx(1 / 7)
    assert (s["seq_messages_p25"], s["seq_messages_median"], s["seq_messages_p75"], s["seq_messages_max"]) == \
        (6, 8, 10, 12)
    assert s["seq_with_blocks"] == pytest.approx(1 / 3)  # a plain rect is not a block
    assert s["seq_with_notes"] == pytest.approx(1 / 3) and s["seq_with_autonumber"] == pytest.approx(1 / 3)
    assert s["seq_with_activations"] == pytest.approx(1 / 3)  # ->>+ in the source
    assert s["seq_participants_median"] == 2
    assert (s["flow_nodes_median"], s["flow_with_subgraph"], s["flow_with_edge_labels"]) == (4, 0.5, 0.5)
    assert s["flow_with_classdef"] == 0.5 and s["diagrams_with_line_breaks"] == pytest.approx(1 / 7)
    assert (s["state_transitions_median"], s["state_with_start_end"], s["state_with_composite"]) == (1, 1.0, 0.0)
    # 18 CJK characters are 36 cells: over 30, like the 31-character note
    assert width("认证服务器功能认证服务器功能认证服务") == 36
    assert s["diagrams_with_label_over_30"] == pytest.approx(2 / 7)


def test_tolerance_is_20_percent_for_counts_and_5_points_for_shares():
    assert within("seq_messages_median", 10.8, 9) and not within("seq_messages_median", 10.9, 9)
    assert within("seq_with_notes", 0.44, 0.49) and not within("seq_with_notes", 0.43, 0.49)
    assert within("flow_with_subgraph", None, 0.45) is None
    table = realism_table({"mine": dataset_stats(fixture_rows())})
    assert "| sequence: messages per diagram, median | 9 | 8 | ✓ |" in table
    assert "| sequence: with Note | 49% | 33% | ✗ |" in table


def test_realism_command_on_a_synthesized_dataset(tmp_path, capsys):
    data = tmp_path / "s1"
    assert main(["synth", "--n", "6", "--out", str(data)]) == 0
    md = tmp_path / "docs" / "realism.md"
    assert main(["realism", str(data), "--md", str(md), "--against", str(data)]) == 0
    assert "outside tolerance:" in capsys.readouterr().out  # the tiny profile is not made to match docs
    text = md.read_text()
    assert "| type mix: flowchart/graph | 54% |" in text and "![value / target per statistic](realism.png)" in text
    assert (tmp_path / "docs" / "realism.png").stat().st_size > 1000
    rec = json.loads(md.with_suffix(".json").read_text())
    assert rec["targets"] == TARGETS and rec["datasets"]["s1"]["n"] == 6
    assert rec["datasets"]["s1"] == rec["datasets"]["s1'"]
