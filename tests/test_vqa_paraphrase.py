"""Paraphrasing VQA question wording through a real OpenAI-compatible server on loopback: faithful
rewordings are kept, ones that could change the answer are rejected and the original question kept."""

from __future__ import annotations

import random
import re

import pytest
from chat_server import ChatServer, Reply, completion
from test_describe import fixture_diagrams

from dicrepro.data.vqa import make_vqa
from dicrepro.data.vqa_paraphrase import check_paraphrase, paraphrase_items, question_labels
from dicrepro.params import DescribeParams

pytestmark = pytest.mark.timeout(60)

LEXICON = ["SMF", "UDM", "Nsmf_PDUSession_CreateSMContext", "会话管理功能"]
POOL = ["PCF", "NRF", "UDM", "HSS", "SMSF", "NSSF", "Paging", "Handover Request", "RRC Release"]
UNTOUCHED = ("id", "diagram_id", "options", "answer_key", "answer", "target", "kind", "qtype", "dimension",
             "objective", "language", "diagram_type")


@pytest.fixture(scope="module")
def diagrams():
    return {f"{lang}-{d.diagram_type}": d for lang in ("en", "zh") for d in fixture_diagrams(lang)}


@pytest.fixture(scope="module")
def items(diagrams):
    return make_vqa(sorted(diagrams.items()), random.Random(7), questions_per_diagram=5, distractor_pool=POOL)


def faithful(question: str, language: str) -> str:
    """A rewording that keeps every label, number and negation, in order."""
    if language == "zh":
        return "根据图示，" + question
    return "Looking at the diagram, " + question[0].lower() + question[1:]


# ---- the check on its own: one English true/false question, hand-written rewordings -------------------

SEQ_Q = 'True or false: "AMF" sends "Registration Accept" to "UE".'


@pytest.mark.parametrize("reworded, problems", [
    ('Is it true that "AMF" sends "Registration Accept" to "UE"?', set()),
    ('Is it true that AMF sends the Registration Accept message to UE?', set()),  # quotes are optional
    ('Is it true that "AMF" sends a message to "UE"?', {"missing"}),
    ('Is it true that "UE" sends "Registration Accept" to "AMF"?', {"order"}),
    ('Is it true that "AMF" sends "Registration Accept" to "UE" via "SMF"?', {"invented"}),
    ('Is it true that "AMF" sends "Registration Accept" to "UE" via "Relay X"?', {"invented"}),
    ('Is it true that "AMF" sends "Registration Accept" to "UE" via "gNB"?', {"extra"}),
    ('Is it true that "AMF" does not send "Registration Accept" to "UE"?', {"negation"}),
    ('Is it true that "AMF" sends "Registration Accept" to "UE" 2 times?', {"numbers"}),
    ("“AMF”是否把“Registration Accept”发给了“UE”？", {"language"}),
    ('Sure! Here it is:\nIs it true that "AMF" sends "Registration Accept" to "UE"?', {"format"}),
])
def test_a_rewording_is_checked_against_the_question_and_the_diagram(diagrams, reworded, problems):
    got = check_paraphrase(diagrams["en-sequence"], SEQ_Q, reworded, lexicon=LEXICON)
    assert set(got) == problems, got


def test_chinese_questions_keep_whether_words_and_numbers_outside_labels(diagrams):
    d = diagrams["zh-sequence"]
    q = "判断正误：“AMF”向“UE”发送“Registration Accept”。"
    assert question_labels(q) == ["AMF", "UE", "Registration Accept"]
    assert check_paraphrase(d, q, "“AMF”是否向“UE”发送了“Registration Accept”？", lexicon=LEXICON) == {}
    assert set(check_paraphrase(d, q, "“AMF”没有向“UE”发送“Registration Accept”。", lexicon=LEXICON)) == {"negation"}
    packet = diagrams["en-packet"]
    bits = next(n for n in packet.nodes if int(n.attrs.get("start", -1)) == 0)
    q = f"Which field occupies bits 0-{bits.attrs['end']}?"
    assert check_paraphrase(packet, q, f"Which field spans bits 0-{bits.attrs['end']}?", lexicon=LEXICON) == {}
    assert set(check_paraphrase(packet, q, "Which field spans bits 0-7?", lexicon=LEXICON)) == {"numbers"}


# ---- end to end through the loopback server ---------------------------------------------------------------

def _asked(body: dict) -> tuple[str, str]:
    """(diagram type, question) of a request: together they name one item of the fixture set."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    return (re.search(r"about an? (\w+) diagram", user).group(1),
            re.search(r"Question:\n(.*?)\n\nRules:", user, re.DOTALL).group(1))


def _key(it: dict) -> tuple[str, str]:
    return it["diagram_type"], it["question"]


def _script(items: list[dict]) -> dict[tuple[str, str], tuple]:
    """Replies for chosen questions (others get a faithful rewording): each breaks one rule."""
    en = [it for it in items if it["language"] == "en"]
    zh = sorted((it for it in items if it["language"] == "zh"), key=lambda it: -len(question_labels(it["question"])))
    no_digits = [it for it in en if not re.search(r"\d", it["question"])]
    one = next(it for it in no_digits if len(question_labels(it["question"])) == 1)
    two = next(it for it in no_digits if len(set(question_labels(it["question"]))) >= 2 and it is not one)
    neg = next(it for it in no_digits if it["kind"] == "tf" and it not in (one, two))
    num = next(it for it in en if re.search(r"\d", re.sub(r'"[^"]*"', "", it["question"])))
    seq = [it for it in no_digits if it["diagram_id"] == "en-sequence" and "gNB" not in it["question"]
           and it not in (one, two, neg)]
    a, b = question_labels(two["question"])[:2]
    swap = two["question"].replace(f'"{a}"', "\0").replace(f'"{b}"', f'"{a}"').replace("\0", f'"{b}"')
    cases = [
        (one, "missing", one["question"].replace(f'"{question_labels(one["question"])[0]}"', "it")),
        (two, "order", swap),
        (seq[0], "invented", seq[0]["question"].rstrip("?.") + ', according to "SMF"?'),
        (seq[1], "extra", seq[1]["question"].rstrip("?.") + ', as seen by "gNB"?'),
        (neg, "negation", neg["question"].replace("True or false: ", "True or false: it is not the case that ")),
        (num, "numbers", re.sub(r"\d+", lambda m: str(int(m.group()) + 1), num["question"], count=1)),
        (en[-1], "language", "根据图示，" + "、".join(f"“{x}”" for x in question_labels(en[-1]["question"])) + "是什么？"),
        (zh[0], "language", "According to the diagram, what about "
         + " and ".join(f"“{x}”" for x in question_labels(zh[0]["question"])) + "?"),
        (zh[1], "format", "好的！\n" + zh[1]["question"]),
        (zh[2], "error", Reply(400, {"error": {"message": "context length exceeded"}})),
        (zh[3], "unchanged", zh[3]["question"]),
    ]
    return {_key(it): (why, reply) for it, why, reply in cases}


def _server(items: list[dict], script: dict) -> ChatServer:
    def respond(body: dict, n: int) -> Reply:
        key = _asked(body)
        lang = "zh" if "in Simplified Chinese" in body["messages"][1]["content"] else "en"
        _, reply = script.get(key, (None, faithful(key[1], lang)))
        return reply if isinstance(reply, Reply) else Reply(200, completion(reply))

    return ChatServer(respond)


def _params(server: ChatServer) -> DescribeParams:
    return DescribeParams(backend="openai", base_url=server.base_url, model="scripted", concurrency=4,
                          timeout_s=5.0, max_retries=0)


def test_paraphrases_are_kept_only_when_they_ask_the_same_and_a_rerun_is_free(items, diagrams, tmp_path):
    script = _script(items)
    assert len(script) == 11 and len({s[0] for s in script.values()}) == 10  # two language cases
    cache = tmp_path / "stage3_paraphrase_cache.jsonl"
    with _server(items, script) as server:
        out, stats = paraphrase_items(items, diagrams, _params(server), cache_path=cache, progress=False,
                                      lexicon=LEXICON)
        assert len(server.requests) == stats["requests"] == len(items)
        # The chat holds the question only: no options, no answer instruction.
        assert not any("Answer with" in m["content"] or "\nA. " in m["content"]
                       for b in server.requests for m in b["messages"])

        assert stats["items"] == len(out) == len(items)
        assert stats["errors"] == 1 and stats["unchanged"] == 1
        assert stats["rejections"] == {"missing": 1, "order": 1, "invented": 1, "extra": 1, "negation": 1,
                                       "numbers": 1, "language": 2, "format": 1}
        assert stats["rejected"] == 9 and stats["accepted"] == len(items) - 11
        rejected = {r["id"]: r for r in stats["rejected_items"]}
        for old, new in zip(items, out):
            assert all(new[k] == old[k] for k in UNTOUCHED)  # answer keys and options never change
            why = script.get(_key(old), ("faithful",))[0]
            if why in ("faithful",):
                assert new["question"] == faithful(old["question"], old["language"]) != old["question"]
                assert new["prompt"] == new["question"] + old["prompt"][len(old["question"]):]
            else:
                assert new == old  # rejected, failed or unchanged: the item exactly as generated
            if why not in ("faithful", "error", "unchanged"):
                assert set(rejected[old["id"]]["problems"]) == {why}, rejected[old["id"]]
        assert any(it["language"] == "zh" and it["question"].startswith("根据图示") for it in out)

        again, stats2 = paraphrase_items(items, diagrams, _params(server), cache_path=cache, progress=False,
                                         lexicon=LEXICON)
        # Every answered request comes from the cache; only the failed one is asked again.
        assert stats2["requests"] == 1 and stats2["cache_hits"] == len(items) - 1
        assert len(server.requests) == len(items) + 1
        assert again == out


def test_a_rejected_rewording_can_be_retried_with_the_reasons(items, diagrams, tmp_path):
    some = [it for it in items if it["diagram_id"] == "en-sequence"][:3]
    target = next(it for it in some if question_labels(it["question"]))
    label = question_labels(target["question"])[0]

    def respond(body: dict, n: int) -> Reply:
        _, q = _asked(body)
        if q == target["question"] and len(body["messages"]) == 2:  # first try drops the label
            return Reply(200, completion(q.replace(f'"{label}"', "it")))
        return Reply(200, completion(faithful(q, "en")))

    with ChatServer(respond) as server:
        out, stats = paraphrase_items(some, diagrams, _params(server), cache_path=tmp_path / "c.jsonl",
                                      progress=False, lexicon=LEXICON, retries=1)
    assert stats["accepted"] == 3 and stats["retried"] == 1 and stats["rejected"] == 0
    kept = next(it for it in out if it["id"] == target["id"])
    assert kept["question"] == faithful(target["question"], "en")  # the corrected answer was kept
    retry = next(b for b in server.requests if len(b["messages"]) == 4)
    assert retry["messages"][2]["role"] == "assistant" and "labels missing" in retry["messages"][3]["content"]
    assert label in retry["messages"][3]["content"]


def test_the_verbalizer_backend_leaves_every_question_as_generated(items, diagrams, tmp_path):
    cache = tmp_path / "cache.jsonl"
    out, stats = paraphrase_items(items, diagrams, DescribeParams(), cache_path=cache, progress=False)
    assert out == items and out is not items
    assert stats["backend"] == "verbalizer" and stats["paraphrased"] is False
    assert stats["unchanged"] == len(items) and stats["accepted"] == stats["requests"] == 0
    assert not cache.exists()


def test_items_that_do_not_fit_their_diagrams_are_named(items, diagrams, tmp_path):
    with ChatServer(lambda body, n: Reply(200, completion("x"))) as server:
        p = _params(server)
        with pytest.raises(ValueError, match=r"item 'en-architecture-q00'.*diagram_id 'en-architecture'"):
            paraphrase_items(items[:1], {}, p, cache_path=tmp_path / "c.jsonl", progress=False)
        broken = [{**items[0], "prompt": "something else"}]
        with pytest.raises(ValueError, match="'prompt' does not start with its 'question'"):
            paraphrase_items(broken, diagrams, p, cache_path=tmp_path / "c.jsonl", progress=False)
        with pytest.raises(ValueError, match="unknown describe backend 'gpt'"):
            paraphrase_items(items, diagrams, p, backend="gpt", cache_path=tmp_path / "c.jsonl")
