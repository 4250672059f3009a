"""The local transformers backend on a tiny random causal LM saved to disk (no hub, no GPU)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from datasets import Dataset, DatasetDict, load_from_disk
from test_describe import fixture_diagrams

from dicrepro.params import DescribeParams
from dicrepro.text.describe import describe
from dicrepro.text.llm import ChatRequest, ReplyCache, hf_backend
from dicrepro.text.rewrite import rewrite_dataset

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """A 1-layer Qwen2 causal LM with a locally trained tokenizer and a chat template."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from dicrepro.train.tiny_tokenizer import train_tokenizer

    corpus = [describe(d, random.Random(0))["description"] for lang in ("en", "zh") for d in fixture_diagrams(lang)]
    tok = train_tokenizer(corpus, vocab_size=400)
    config = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    import torch

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "tiny-lm"
    Qwen2ForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_greedy_replies_are_deterministic_and_cached(tiny_lm, tmp_path):
    params = DescribeParams(backend="hf", hf_path=tiny_lm)
    reqs = [ChatRequest("a", [{"role": "user", "content": "Describe the AMF."}]),
            ChatRequest("b", [{"role": "user", "content": "Describe the UPF."}])]
    stats = Counter()
    first = hf_backend(params, cache=ReplyCache(tmp_path / "c.jsonl"), prompt_version="v1", stats=stats,
                       progress=False, max_new_tokens=12)(reqs)
    assert all(isinstance(t, str) for t in first) and stats["requests"] == 2
    assert 0 < stats["completion_tokens"] <= 24
    again = Counter()
    assert hf_backend(params, cache=ReplyCache(tmp_path / "c.jsonl"), prompt_version="v1", stats=again,
                      progress=False, max_new_tokens=12)(reqs) == first
    assert again == Counter(cache_hits=2)  # answered from the cache: the model was never loaded
    fresh = hf_backend(params, cache=None, prompt_version="v1", progress=False, max_new_tokens=12)(reqs)
    assert fresh == first  # greedy: the same prompt gives the same text


def test_a_random_model_is_gated_out_and_replaced(tiny_lm, tmp_path):
    rows = [{"id": f"r{i}", "graph": d.to_json(), "seed": i, "source": "synthetic", "description": "",
             "view_global": "", "view_partial": "", "view_detail": "", "target": ""}
            for i, d in enumerate(fixture_diagrams("en")[:3])]
    DatasetDict({"train": Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "ds"))
    stats = rewrite_dataset(tmp_path / "ds", DescribeParams(backend="hf", hf_path=tiny_lm), progress=False,
                            lexicon=["SMF"], backend_options={"max_new_tokens": 8})
    assert stats["rows"] == 3 and stats["replaced"] == 3 and stats["retried"] == 3 and stats["accepted"] == 0
    assert stats["rejections"] == {"format": 6}
    assert all(load_from_disk(str(tmp_path / "ds"))["train"]["description"])


def test_a_missing_model_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="describe.hf_path"):
        hf_backend(DescribeParams(backend="hf", hf_path=tmp_path / "nope"), cache=None, prompt_version="v1")
    with pytest.raises(ValueError, match="describe.hf_path is required"):
        hf_backend(DescribeParams(backend="hf"), cache=None, prompt_version="v1")
