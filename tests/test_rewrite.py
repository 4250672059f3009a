"""Rewriting a dataset's descriptions through the gate, with the verbalizer and with a real
OpenAI-compatible server on loopback whose answers are faithful, fixable, hopeless or garbage."""

from __future__ import annotations

import io
import json
import random

import pytest
from chat_server import ChatServer, Reply, completion
from datasets import Dataset, DatasetDict, Features, Image, Value, load_from_disk
from PIL import Image as PILImage
from test_describe import fixture_diagrams

from dicrepro.diagrams.graph import Diagram
from dicrepro.params import DescribeParams
from dicrepro.text.describe import describe
from dicrepro.text.llm import LLMError
from dicrepro.text.rewrite import describe_main, rewrite_dataset
from dicrepro.text.rewrite_prompt import build_messages, load_prompt, parse_reply

pytestmark = pytest.mark.timeout(60)

LEXICON = ["SMF", "UDM", "Nsmf_PDUSession_CreateSMContext", "会话管理功能"]
FEATURES = Features({**{k: Value("string") for k in ("id", "graph", "source", "language", "description",
                                                     "view_global", "view_partial", "view_detail", "prompt", "target")},
                     "image": Image(), "seed": Value("int64")})
# How the scripted "LLM" answers each diagram type (others: faithful at once).
FIXABLE = {"flowchart", "state", "class"}  # first answer drops a label, the corrected one passes
HOPELESS = {"pie"}  # always invents a label
GARBAGE = {"mindmap"}  # never answers with JSON


def _png() -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (8, 8), "white").save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def dataset(tmp_path):
    rows = [{"id": f"s1-{lang}-{d.diagram_type}", "image": {"bytes": _png(), "path": None}, "graph": d.to_json(),
             "seed": i, "source": "synthetic", "language": lang, "description": "old", "view_global": "old",
             "view_partial": "old", "view_detail": "old", "prompt": "Describe this diagram.", "target": "old"}
            for lang in ("en", "zh") for i, d in enumerate(fixture_diagrams(lang))]
    path = tmp_path / "stage1"
    DatasetDict({"train": Dataset.from_list(rows[::2], features=FEATURES),
                 "test": Dataset.from_list(rows[1::2], features=FEATURES)}).save_to_disk(str(path))
    return path


def _diagrams_by_title() -> dict[str, Diagram]:
    return {d.title: d for lang in ("en", "zh") for d in fixture_diagrams(lang)}


def scripted_llm(body: dict, n: int) -> Reply:
    """A deterministic stand-in for an LLM: reads the diagram's title from the prompt and answers."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    title = next(line[len("title: "):] for line in user.splitlines() if line.startswith("title: "))
    d = _diagrams_by_title()[title]
    views = describe(d, random.Random(99))
    is_retry = len(body["messages"]) > 2
    if d.diagram_type in GARBAGE:
        return Reply(200, completion("Sure! Here is a lovely description of the diagram."))
    if d.diagram_type in HOPELESS:
        extra = "此外还涉及会话管理功能。" if d.language == "zh" else " The SMF is involved too."
        views = {k: v + extra for k, v in views.items()}
    elif d.diagram_type in FIXABLE and not is_retry:
        dropped = d.nodes[-1].label or d.nodes[-2].label
        views = {k: v.replace(dropped, "") for k, v in views.items()}
    return Reply(200, completion("```json\n" + json.dumps(views, ensure_ascii=False) + "\n```"))


def _params(server, **kw) -> DescribeParams:
    return DescribeParams(**{"backend": "openai", "base_url": server.base_url, "model": "scripted",
                             "concurrency": 2, "timeout_s": 5.0, "max_retries": 1, **kw})


def _columns(path) -> dict:
    dd = load_from_disk(str(path))
    return {s: dd[s].select_columns(["id", "description", "view_global", "view_partial", "view_detail",
                                     "target"]).to_list() for s in dd}


def test_the_verbalizer_backend_fills_every_column_deterministically(dataset):
    before = load_from_disk(str(dataset))["train"]
    images_before, columns_before = before["image"][0], before.column_names
    stats = rewrite_dataset(dataset, DescribeParams(), progress=False, lexicon=LEXICON)
    assert stats["rows"] == 30 and stats["accepted"] == 30 and stats["replaced"] == 0
    assert stats["requests"] == 0
    first = _columns(dataset)
    for row in first["train"] + first["test"]:
        assert row["description"] != "old" and row["target"] == row["description"]
        assert all(row[k] and row[k] != "old" for k in ("view_global", "view_partial", "view_detail"))
    dd = load_from_disk(str(dataset))
    assert dd["train"].column_names == columns_before  # same columns, same order
    assert dd["train"]["image"][0] == images_before and dd["train"]["prompt"][0] == "Describe this diagram."
    rewrite_dataset(dataset, DescribeParams(), progress=False, lexicon=LEXICON)
    assert _columns(dataset) == first
    saved = json.loads((dataset.parent / "stage1_describe.json").read_text())
    assert saved["accepted"] == 30 and saved["backend"] == "verbalizer"


def test_llm_texts_are_gated_retried_and_replaced_and_a_rerun_is_free(dataset):
    n_fix, n_bad = 2 * len(FIXABLE), 2 * len(HOPELESS | GARBAGE)  # both languages
    with ChatServer(scripted_llm) as server:
        stats = rewrite_dataset(dataset, _params(server), progress=False, lexicon=LEXICON,
                                backend_options={"backoff_s": 0.01})
        assert stats["rows"] == 30
        assert stats["accepted_first_try"] == 30 - n_fix - n_bad
        assert stats["accepted"] == 30 - n_bad
        assert stats["retried"] == n_fix + n_bad
        assert stats["replaced"] == n_bad
        # Rejected replies per problem: hopeless and garbage rows fail both tries, fixable ones once.
        assert stats["rejections"] == {"format": 2 * 2, "invented": 2 * 2, "missing": n_fix}
        assert stats["requests"] == len(server.requests) == 30 + n_fix + n_bad

        cols = {r["id"]: r for s in _columns(dataset).values() for r in s}
        pie = cols["s1-en-pie"]
        assert "SMF" not in pie["description"]  # replaced by the verbalizer's text
        assert cols["s1-zh-pie"]["description"] == describe(
            next(d for d in fixture_diagrams("zh") if d.diagram_type == "pie"),
            random.Random("6:s1-zh-pie:describe"))["description"]  # row seed 6, row id
        assert cols["s1-en-sequence"]["description"] == describe(
            fixture_diagrams("en")[1], random.Random(99))["description"]  # the LLM's text, accepted

        # The retry of a fixable row carried the rejected answer and the gate's reasons.
        retry = next(b for b in server.requests if len(b["messages"]) == 4 and "Registration check" in
                     b["messages"][1]["content"])
        assert retry["messages"][2]["role"] == "assistant"
        assert "labels missing" in retry["messages"][3]["content"] and "End" in retry["messages"][3]["content"]

        before = len(server.requests)
        again = rewrite_dataset(dataset, _params(server), progress=False, lexicon=LEXICON)
        assert len(server.requests) == before and again["requests"] == 0
        assert again["cache_hits"] == 30 + n_fix + n_bad
        assert {k: again[k] for k in ("accepted", "retried", "replaced")} == \
            {k: stats[k] for k in ("accepted", "retried", "replaced")}
        assert {r["id"]: r for s in _columns(dataset).values() for r in s} == cols


def test_a_crash_loses_no_reply_and_leaves_the_dataset_untouched(dataset):
    state = {"deny_from": 5}

    def flaky(body, n):  # the key is revoked after five replies, then restored
        if n >= state["deny_from"]:
            return Reply(401, {"error": {"message": "invalid key"}})
        return scripted_llm(body, n)

    good = {"sequence", "er", "gantt", "timeline", "block"}
    keep = lambda t: t in good  # noqa: E731 - only types the scripted LLM answers faithfully
    dd = load_from_disk(str(dataset))
    DatasetDict({s: dd[s].filter(lambda g: keep(json.loads(g)["diagram_type"]), input_columns="graph")
                 for s in dd}).save_to_disk(str(dataset.with_name("small")))
    small = dataset.with_name("small")
    with ChatServer(flaky) as server:
        with pytest.raises(LLMError, match="HTTP 401"):
            rewrite_dataset(small, _params(server, concurrency=1), progress=False, lexicon=LEXICON)
        assert all(r["description"] == "old" for s in _columns(small).values() for r in s)
        cached = (small.parent / "small_llm_cache.jsonl").read_text().splitlines()
        assert len(cached) == 5
        state["deny_from"] = 10**6
        stats = rewrite_dataset(small, _params(server), progress=False, lexicon=LEXICON)
    assert stats["rows"] == 10 and stats["cache_hits"] == 5 and stats["requests"] == 5
    assert stats["accepted"] == 10


def test_describe_main_reads_the_params_file_and_the_backend_override(dataset, tmp_path):
    params = tmp_path / "p.yaml"
    with ChatServer(scripted_llm) as server:
        params.write_text(f"describe:\n  backend: openai\n  base_url: {server.base_url}\n  model: scripted\n")
        stats = describe_main(dataset, backend="verbalizer", params_path=params, progress=False, lexicon=LEXICON)
        assert stats["backend"] == "verbalizer" and not server.requests


def test_the_prompt_is_versioned_and_shows_structure_labels_and_order():
    p = load_prompt("rewrite_v1")
    assert p.version == "rewrite_v1" and "$" not in p.system
    d = fixture_diagrams("zh")[1]
    msgs = build_messages(d, describe(d, random.Random(0)), p, ["UE", "RRC Setup"])
    user = msgs[1]["content"]
    assert "Simplified Chinese" in user and '"RRC Setup"' in user
    assert "RRC Setup Request -> RRC Setup -> Registration Request" in user
    assert "title: 初始注册" in user and "$" not in user


def test_bad_templates_and_replies_are_explained(tmp_path):
    bad = tmp_path / "p.txt"
    bad.write_text("=== system ===\nhi\n")
    with pytest.raises(ValueError, match="version: NAME"):
        load_prompt(bad)
    bad.write_text("version: x\n=== system ===\nhi\n=== user ===\nu\n")
    with pytest.raises(ValueError, match="missing section.*retry"):
        load_prompt(bad)
    with pytest.raises(FileNotFoundError, match="rewrite_v999"):
        load_prompt("rewrite_v999")
    views = {"global": "g", "partial": "p", "detail": "d", "description": "x"}
    assert parse_reply("<think>hmm {}</think>\n```json\n" + json.dumps(views) + "\n```") == views
    with pytest.raises(ValueError, match="detail"):
        parse_reply(json.dumps({**views, "detail": ""}))
    with pytest.raises(ValueError, match="not a JSON object"):
        parse_reply("no braces here")


def test_a_dataset_without_graphs_is_named(tmp_path):
    Dataset.from_list([{"id": "a", "text": "x"}]).save_to_disk(str(tmp_path / "plain"))
    with pytest.raises(ValueError, match=r"plain \[train\].*graph"):
        rewrite_dataset(tmp_path / "plain", DescribeParams(), progress=False, lexicon=LEXICON)
