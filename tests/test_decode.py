"""Decoded predictions hold whole characters: a multi-byte character cut by the token limit, or stray bytes
from a tiny model, never show up as U+FFFD."""

from __future__ import annotations

import pytest

from dicrepro.evaluate.predict import decode_text
from dicrepro.train.tiny_tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(["这是一张饼图，展示了流量的分配。", "This is a pie chart of traffic."] * 20, 300)


def test_a_character_cut_at_the_end_is_trimmed_not_replaced(tok):
    text = "这是一张饼图 hello"
    ids = tok.encode(text)
    cut = [ids[:k] for k in range(1, len(ids) + 1)]
    broken = [c for c in cut if "\ufffd" in tok.decode(c, skip_special_tokens=True)]
    assert broken, "the fixture must contain a cut character, or this test checks nothing"
    for c in cut:
        got = decode_text(tok, c)
        assert "\ufffd" not in got and text.startswith(got)
    assert decode_text(tok, ids) == text


def test_stray_bytes_inside_are_dropped_and_special_tokens_skipped(tok):
    ids = tok.encode("饼")
    stray = ids[-1:] if len(ids) > 1 else tok.convert_tokens_to_ids(["\u00a5"])  # a lone continuation byte
    end = tok.convert_tokens_to_ids("<|im_end|>")
    seq = tok.encode("ok ") + stray + tok.encode(" fine") + [end]
    assert "\ufffd" in tok.decode(seq, skip_special_tokens=True)
    assert decode_text(tok, seq) == "ok  fine"
