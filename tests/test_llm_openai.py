"""The OpenAI-compatible client against a real chat-completions server on loopback: retries, timeouts,
errors, malformed replies, concurrency and the on-disk reply cache."""

from __future__ import annotations

import json
import socket
import time
from collections import Counter

import httpx
import pytest
from chat_server import ChatServer, Reply, completion

from dicrepro.params import DescribeParams
from dicrepro.text.llm import ChatRequest, LLMError, ReplyCache, openai_backend, post_chat

pytestmark = pytest.mark.timeout(60)


def _params(server: ChatServer, **kw) -> DescribeParams:
    base = dict(backend="openai", base_url=server.base_url, model="test-model", api_key_env="DICREPRO_TEST_KEY",
                concurrency=2, timeout_s=5.0, max_retries=3)
    return DescribeParams(**{**base, **kw})


def _echo(body: dict, n: int) -> Reply:
    """Answers with the last user message, upper-cased: deterministic, and says which request it was."""
    return Reply(200, completion(body["messages"][-1]["content"].upper(), body["model"]))


def _chat(server: ChatServer, text: str = "hello", *, timeout: float = 5.0, retries: int = 3, stats=None):
    with httpx.Client(timeout=timeout) as client:
        return post_chat(client, server.base_url + "/chat/completions",
                         {"model": "test-model", "messages": [{"role": "user", "content": text}]},
                         "s1-000007", max_retries=retries, backoff_s=0.01, stats=stats)


def test_a_reply_is_the_first_choice_and_the_request_speaks_the_protocol(monkeypatch):
    monkeypatch.setenv("DICREPRO_TEST_KEY", "sk-test")
    with ChatServer(_echo) as server:
        complete = openai_backend(_params(server), cache=None, prompt_version="v1", progress=False)
        out = complete([ChatRequest("a", [{"role": "system", "content": "be brief"},
                                          {"role": "user", "content": "hello"}])])
    assert out == ["HELLO"]
    body = server.requests[0]
    assert body["model"] == "test-model" and body["temperature"] == 0
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert server.auth == ["Bearer sk-test"]


def test_no_key_in_the_environment_sends_no_authorization(monkeypatch):
    monkeypatch.delenv("DICREPRO_TEST_KEY", raising=False)
    with ChatServer(_echo) as server:
        openai_backend(_params(server), cache=None, prompt_version="v1", progress=False)(
            [ChatRequest("a", [{"role": "user", "content": "x"}])])
    assert server.auth == [None]


def test_a_500_is_retried_then_succeeds():
    stats = Counter()
    with ChatServer(lambda b, n: Reply(500, "upstream crashed") if n == 0 else _echo(b, n)) as server:
        text, usage = _chat(server, stats=stats)
    assert text == "HELLO" and usage["completion_tokens"] == 7
    assert len(server.requests) == 2 and stats["http_retries"] == 1


def test_a_429_waits_for_retry_after():
    busy = Reply(429, {"error": {"message": "rate limited"}}, headers={"Retry-After": "1"})
    with ChatServer(lambda b, n: busy if n == 0 else _echo(b, n)) as server:
        t0 = time.monotonic()
        text, _ = _chat(server)
        waited = time.monotonic() - t0
    assert text == "HELLO" and len(server.requests) == 2
    assert 0.9 <= waited < 5  # the server's Retry-After, not the 0.01 s backoff


def test_a_hanging_reply_times_out_and_is_retried():
    with ChatServer(lambda b, n: Reply(200, completion("late"), delay=3.0) if n == 0 else _echo(b, n)) as server:
        t0 = time.monotonic()
        text, _ = _chat(server, timeout=0.5)
        elapsed = time.monotonic() - t0
    assert text == "HELLO" and len(server.requests) == 2
    assert elapsed < 2.5  # did not wait for the hanging reply


def test_retries_are_bounded_and_the_error_names_the_sample():
    with ChatServer(lambda b, n: Reply(503, "overloaded")) as server:
        with pytest.raises(LLMError, match=r"s1-000007.*gave up.*4 attempts.*503") as err:
            _chat(server, retries=3)
    assert len(server.requests) == 4 and not err.value.fatal


@pytest.mark.parametrize("payload, what", [
    ("{not json", "not JSON"),
    ({"choices": []}, "no choices"),
    ({"choices": [{"message": {"role": "assistant", "content": None}}]}, "empty or non-text"),
])
def test_a_malformed_reply_is_a_clear_error_without_retry(payload, what):
    with ChatServer(lambda b, n: Reply(200, payload)) as server:
        with pytest.raises(LLMError, match=f"s1-000007: malformed reply .*{what}") as err:
            _chat(server)
    assert len(server.requests) == 1 and not err.value.fatal


def test_a_401_is_fatal_and_not_retried():
    deny = Reply(401, {"error": {"message": "Incorrect API key provided"}})
    with ChatServer(lambda b, n: deny) as server:
        complete = openai_backend(_params(server), cache=None, prompt_version="v1", progress=False)
        with pytest.raises(LLMError, match=r"sample a: HTTP 401 .*API key.*Incorrect API key") as err:
            complete([ChatRequest("a", [{"role": "user", "content": "x"}])])
    assert err.value.fatal and len(server.requests) == 1


def test_an_unreachable_server_is_fatal():
    with socket.socket() as s:  # a loopback port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    params = DescribeParams(backend="openai", base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=1)
    complete = openai_backend(params, cache=None, prompt_version="v1", progress=False, backoff_s=0.01)
    with pytest.raises(LLMError, match=r"sample x: cannot reach .*base_url") as err:
        complete([ChatRequest("x", [{"role": "user", "content": "x"}])])
    assert err.value.fatal


def test_a_non_fatal_failure_is_returned_in_place_and_the_rest_go_on():
    def respond(body, n):
        return Reply(200, "garbage") if body["messages"][-1]["content"] == "bad" else _echo(body, n)

    with ChatServer(respond) as server:
        complete = openai_backend(_params(server), cache=None, prompt_version="v1", progress=False)
        out = complete([ChatRequest(i, [{"role": "user", "content": i}]) for i in ("one", "bad", "two")])
    assert out[0] == "ONE" and out[2] == "TWO"
    assert isinstance(out[1], LLMError) and "sample bad" in str(out[1])


def test_concurrency_is_limited():
    with ChatServer(lambda b, n: Reply(200, completion("ok"), delay=0.2)) as server:
        complete = openai_backend(_params(server, concurrency=3), cache=None, prompt_version="v1", progress=False)
        complete([ChatRequest(str(i), [{"role": "user", "content": str(i)}]) for i in range(9)])
    assert len(server.requests) == 9
    assert server.max_in_flight == 3


def test_the_cache_makes_a_rerun_free_and_survives_a_restart(tmp_path):
    cache_path = tmp_path / "replies.jsonl"
    reqs = [ChatRequest(str(i), [{"role": "user", "content": f"text {i}"}]) for i in range(4)]
    with ChatServer(_echo) as server:
        params = _params(server)
        first = openai_backend(params, cache=ReplyCache(cache_path), prompt_version="v1", progress=False)(reqs)
        assert len(server.requests) == 4
        stats = Counter()
        again = openai_backend(params, cache=ReplyCache(cache_path), prompt_version="v1", stats=stats,
                               progress=False)(reqs)
        assert again == first and len(server.requests) == 4 and stats["cache_hits"] == 4
        # A new prompt version is a different prompt: asked again.
        openai_backend(params, cache=ReplyCache(cache_path), prompt_version="v2", progress=False)(reqs[:1])
        assert len(server.requests) == 5
    rows = [json.loads(line) for line in cache_path.read_text().splitlines()]
    assert len(rows) == 5 and rows[0]["reply"] in first and rows[-1]["prompt_version"] == "v2"


def test_a_torn_last_cache_line_is_ignored_but_a_torn_middle_one_is_an_error(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"key": "k1", "reply": "r1"}\n{"key": "k2", "rep')
    assert ReplyCache(path).get("k1") == "r1" and len(ReplyCache(path)) == 1
    path.write_text('{"key": "k1", "rep\n{"key": "k2", "reply": "r2"}\n')
    with pytest.raises(ValueError, match=r"c.jsonl:1"):
        ReplyCache(path)


def test_missing_settings_are_named():
    with pytest.raises(ValueError, match="describe.base_url"):
        openai_backend(DescribeParams(backend="openai", model="m"), cache=None, prompt_version="v1")
    with pytest.raises(ValueError, match="describe.model"):
        openai_backend(DescribeParams(backend="openai", base_url="http://127.0.0.1:1/v1"), cache=None,
                       prompt_version="v1")
