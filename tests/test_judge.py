"""LLM-as-judge against a loopback OpenAI-compatible server: the rubric goes out, verdicts come back,
replies are cached by content, and a reply that ignores the rubric is an error row, not a crash."""

from __future__ import annotations

import json

import pytest
from chat_server import ChatServer, Reply, completion

from dicrepro.evaluate.judge import RUBRIC, judge_captions, parse_verdicts, score_verdicts
from dicrepro.params import JudgeParams, ParamsError, load_params

pytestmark = pytest.mark.timeout(60)

MERMAID = "sequenceDiagram\n  UE->>AMF: Registration Request\n  AMF-->>UE: Registration Accept"


def grade(body: dict, n: int) -> Reply:
    """A judge that calls a statement wrong when it names the SMF (not in the diagram)."""
    caption = body["messages"][1]["content"].split("Caption:\n", 1)[1]
    statements = [s.strip() for s in caption.split(".") if s.strip()]
    verdicts = [{"text": s, "verdict": "wrong" if "SMF" in s else "correct"} for s in statements]
    return Reply(200, completion("```json\n" + json.dumps({"statements": verdicts}) + "\n```"))


def params(server) -> JudgeParams:
    return JudgeParams(enabled=True, base_url=server.base_url, model="judge", max_retries=0)


def test_captions_are_graded_statement_by_statement_and_cached(tmp_path):
    items = [{"id": "a", "mermaid": MERMAID, "caption": "The UE sends a Registration Request to the AMF. The AMF accepts."},
             {"id": "b", "mermaid": MERMAID, "caption": "The UE registers. The SMF allocates an address."},
             {"id": "c", "mermaid": MERMAID, "caption": "  "}]
    with ChatServer(grade) as server:
        rows = judge_captions(items, params(server), tmp_path / "judge.jsonl", progress=False)
        assert len(server.requests) == 2  # the empty caption is not sent
        sent = server.requests[0]
        assert sent["messages"][0]["content"] == RUBRIC and sent["temperature"] == 0
        assert "```mermaid\nsequenceDiagram" in sent["messages"][1]["content"]
        assert [r["judge_score"] for r in rows] == [1.0, 0.5, 0.0]
        assert (rows[1]["correct"], rows[1]["wrong"]) == (1, 1) and rows[2]["error"] == "empty caption"
        again = judge_captions(items, params(server), tmp_path / "judge.jsonl", progress=False)
        assert again == rows and len(server.requests) == 2  # every reply came from the cache


def test_a_reply_that_ignores_the_rubric_is_an_error_row(tmp_path):
    with ChatServer(lambda b, n: Reply(200, completion("Looks fine to me!"))) as server:
        rows = judge_captions([{"id": "x", "mermaid": MERMAID, "caption": "The UE registers."}], params(server),
                              progress=False)
    assert rows[0]["judge_score"] == 0.0 and "no JSON object" in rows[0]["error"]


def test_verdicts_are_checked_and_scored():
    assert score_verdicts(parse_verdicts('{"statements": [{"text": "a", "verdict": "Correct"}, '
                                         '{"text": "b", "verdict": "partial"}]}')) == 0.75
    with pytest.raises(ValueError, match="verdict 'maybe'"):
        parse_verdicts('{"statements": [{"text": "a", "verdict": "maybe"}]}')
    assert score_verdicts([]) == 0.0


def test_the_judge_is_off_by_default_and_needs_an_endpoint_when_on(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("eval:\n  judge:\n    enabled: true\n")
    with pytest.raises(ParamsError, match="eval.judge"):
        load_params(p)
    p.write_text("seed: 1\n")
    assert load_params(p).eval.judge.enabled is False


def test_every_model_is_judged_per_diagram_type(tmp_path):
    from dicrepro.evaluate.judge import judge_table

    meta = [{"id": "a", "diagram_type": "sequence"}, {"id": "b", "diagram_type": "sequence"},
            {"id": "c", "diagram_type": "flowchart"}]
    preds = {"base": {"a": "The SMF registers.", "b": "The UE registers.", "c": "The UE registers."},
             "stage3": {"a": "The UE registers.", "b": "The UE registers.", "c": "The UE registers."}}
    with ChatServer(grade) as server:
        t = judge_table(meta, [MERMAID, MERMAID, ""], preds, params(server), tmp_path / "cache.jsonl")
    overall = t[t.group_by == "overall"].set_index("model")
    assert overall.loc["base", "judge_score"] == 0.5 and overall.loc["stage3", "judge_score"] == 1.0
    assert list(overall["n"]) == [2, 2]  # the row without a Mermaid source is not judged
    assert set(t[t.group_by == "diagram_type"]["group"]) == {"sequence"}
