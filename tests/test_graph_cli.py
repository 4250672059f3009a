"""`dicrepro faithfulness` and `dicrepro structure`: JSON on stdout, exit 2 with one line on bad input,
JSONL batches that go on past bad rows and count them."""

import json
import random

import pytest

from dicrepro.cli import main
from dicrepro.diagrams.mermaid import to_mermaid
from dicrepro.diagrams.sample import sample_diagram
from dicrepro.text.describe import describe

SEQ = "sequenceDiagram\n  participant UE\n  participant AMF\n  UE->>AMF: Registration Request\n  AMF-->>UE: Registration Accept\n"
GOOD = '1. UE sends "Registration Request" to AMF. 2. AMF replies to UE with "Registration Accept".'


@pytest.fixture()
def files(tmp_path):
    (tmp_path / "d.mmd").write_text(SEQ, encoding="utf-8")
    (tmp_path / "good.txt").write_text(GOOD, encoding="utf-8")
    (tmp_path / "bad.txt").write_text(GOOD.replace("AMF replies to UE", "UE replies to AMF") + " PCF too.",
                                      encoding="utf-8")
    (tmp_path / "empty.txt").write_text(" \n", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 UE".encode("latin-1"))
    (tmp_path / "zh.txt").write_text("用户设备向接入和移动性管理功能发送注册请求。", encoding="utf-8")
    (tmp_path / "broken.mmd").write_text("flowchart LR\n  A -->\n", encoding="utf-8")
    return tmp_path


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_faithfulness_of_one_pair(files, capsys):
    code, out, _ = run(capsys, "faithfulness", "--mermaid", str(files / "d.mmd"), "--caption", str(files / "good.txt"))
    good = json.loads(out)
    assert code == 0 and good["label_recall"] == 1.0 and good["relation_recall"] == 1.0 and good["order_tau"] == 1.0
    assert list(good)[:5] == ["label_recall", "hallucination_rate", "hallucinated", "relation_recall", "order_tau"]
    code, out, _ = run(capsys, "faithfulness", "--mermaid", str(files / "d.mmd"), "--caption", str(files / "bad.txt"))
    bad = json.loads(out)
    assert bad["relation_recall"] == 0.5 and bad["hallucinated"] == ["PCF"] and bad["faithfulness"] < good["faithfulness"]


@pytest.mark.parametrize("caption, message", [("empty.txt", "the caption is empty"),
                                              ("latin1.txt", "is not UTF-8 text"),
                                              ("missing.txt", "caption file not found"),
                                              ("zh.txt", "not in the diagram's language")])
def test_faithfulness_bad_input_exits_2_with_one_line(files, capsys, caption, message):
    code, out, err = run(capsys, "faithfulness", "--mermaid", str(files / "d.mmd"), "--caption", str(files / caption))
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1


def test_structure_of_one_pair_and_its_bad_inputs(files, capsys):
    code, out, _ = run(capsys, "structure", "--reference", str(files / "d.mmd"), "--prediction", str(files / "d.mmd"))
    res = json.loads(out)
    assert code == 0 and res["parsed"] and res["triple_f1"] == {"strict": 1.0, "relaxed": 1.0}
    code, out, _ = run(capsys, "structure", "--reference", str(files / "d.mmd"), "--prediction",
                       str(files / "broken.mmd"))
    res = json.loads(out)
    assert code == 0 and res["parsed"] is False and res["node_f1"] == {"strict": 0.0, "relaxed": 0.0}
    code, out, err = run(capsys, "structure", "--reference", str(files / "broken.mmd"), "--prediction",
                         str(files / "d.mmd"))
    assert code == 2 and "broken.mmd does not parse as Mermaid" in err and len(err.strip().splitlines()) == 1


def test_batches_go_on_past_bad_rows(tmp_path, capsys):
    d = sample_diagram(random.Random(4), "state", language="zh", min_elements=3, max_elements=5)
    cap = describe(d, random.Random(1))["description"]
    rows = [{"id": "a", "graph": d.to_json(), "caption": cap},
            {"id": "b", "mermaid": SEQ, "caption": GOOD},
            {"id": "c", "mermaid": SEQ, "caption": ""},
            "not an object",
            {"id": "e", "mermaid": "nonsense", "caption": GOOD}]
    lines = [json.dumps(r, ensure_ascii=False) for r in rows] + ["{broken json"]
    (tmp_path / "f.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, err = run(capsys, "faithfulness", "--jsonl", str(tmp_path / "f.jsonl"))
    res = json.loads(out)
    assert code == 0 and [r["id"] for r in res["rows"]] == ["a", "b"]
    assert res["rows"][0]["faithfulness"] == 1.0 and res["summary"]["bad"] == 4 and res["summary"]["scored"] == 2
    assert [b["line"] for b in res["bad_rows"]] == [3, 4, 5, 6] and "f.jsonl:5" in err
    pairs = [{"id": "x", "reference": to_mermaid(d), "prediction": to_mermaid(d)},
             {"id": "y", "reference": "nonsense", "prediction": SEQ},
             {"id": "z", "reference": SEQ, "prediction": "flowchart LR\n  A -->"}]
    (tmp_path / "s.jsonl").write_text("\n".join(json.dumps(p) for p in pairs), encoding="utf-8")
    code, out, _ = run(capsys, "structure", "--jsonl", str(tmp_path / "s.jsonl"))
    res = json.loads(out)
    assert code == 0 and res["summary"]["n"] == 2 and res["summary"]["bad"] == 1
    assert res["summary"]["parse_rate"] == 0.5 and res["bad_rows"][0]["line"] == 2
