"""bench/sft_backends.py on CPU: the paper-shaped run at toy scale trains and is measured (samples/s,
tokens/s, peak memory, the LoRA modules), GPU-only variants say why they were skipped, each row is appended
to the JSONL as it ends; the 3B/7B shapes it builds for a GPU have the published parameter counts, and its
paper-scale rows have the paper's image sizes and token counts."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"
REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "sft_backends.py"


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_sft_backends", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bench():
    return _bench_module()


@pytest.fixture(scope="module")
def base(bench, tmp_path_factory):
    """Tokenizer, token ids and Qwen2.5-VL-7B-Instruct's processor settings, as the --paper run builds them."""
    return bench.paper_base(tmp_path_factory.mktemp("bench") / "base", vocab=1024)


@pytest.mark.parametrize("shape, billions", [("3b", 3.75), ("7b", 8.29)])
def test_gpu_shapes_have_the_published_sizes(bench, base, shape, billions):
    from transformers import Qwen2_5_VLForConditionalGeneration

    cfg = bench.shape_config(shape, base)
    with torch.device("meta"):  # shapes only, no memory
        model = Qwen2_5_VLForConditionalGeneration._from_config(cfg)
    assert sum(p.numel() for p in model.parameters()) / 1e9 == pytest.approx(billions, abs=0.01)


def test_paper_rows_have_the_papers_image_sizes_and_token_counts(bench, base, tmp_path, monkeypatch):
    from datasets import load_from_disk

    from dicrepro.params import load_params
    from dicrepro.train.collate import prompt_tokens
    from dicrepro.train.processor import image_tokens, load_processor

    monkeypatch.setenv("DICREPRO_BASE_MODEL", str(base))
    model_params = load_params(REPO / "params" / "paper.yaml").model
    processor = load_processor(base, model_params)  # the checkpoint's settings under the paper's limits
    rows = load_from_disk(str(bench.paper_rows(base, tmp_path / "rows", 4, "paper", seed=0)))
    for row in rows:
        w, h = row["image"].size
        assert 0.97e6 <= w * h <= 1.3e6
        prompt = prompt_tokens(processor, row["prompt"], w, h)
        answer = len(processor.tokenizer(row["target"], add_special_tokens=False)["input_ids"])
        assert 1000 <= image_tokens(w, h, model_params) <= 1280  # at max_pixels 1003520 (1280 x 28 x 28)
        assert 1200 <= prompt + answer <= 4096  # fits the paper profile's sft.max_length


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU run")
def test_the_paper_run_at_cpu_scale_measures_hf_and_names_what_it_skipped(tmp_path):
    out, jsonl = tmp_path / "bench.json", tmp_path / "bench.jsonl"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--paper", "--scale", "cpu", "--rows", "8", "--steps", "2", "--warmup", "1",
         "--batch-size", "2", "--grad-accum", "1", "--variants", "hf,hf-qlora,unsloth-qlora",
         "--work", str(tmp_path / "work"), "--out", str(out), "--jsonl", str(jsonl)],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["anchor"] == "hf" and result["scale"] == "cpu"
    hf, qlora, unsloth = result["rows"]
    assert hf["variant"] == "hf" and hf["steps"] == 2 and hf["samples"] == 4
    assert hf["samples_per_s"] > 0 and hf["tokens_per_s"] > hf["samples_per_s"] and hf["peak_rss_gib"] > 0
    assert 16 <= hf["image_tokens_per_sample"] <= 64  # 2-3e4-pixel images under max_pixels 50176
    assert hf["image_tokens_per_sample"] + 20 < hf["tokens_per_sample"] < 200
    assert hf["lora_modules"] > 0 and hf["trainable_params"] > 0
    assert qlora == {"variant": "hf-qlora", "skipped": "skipped: needs a CUDA GPU"}
    assert unsloth == {"variant": "unsloth-qlora", "skipped": "skipped: needs a CUDA GPU"}
    assert [json.loads(x)["variant"] for x in jsonl.read_text().splitlines()] == ["hf", "hf-qlora", "unsloth-qlora"]
    assert "| hf | " in proc.stdout and "| 1.00 |" in proc.stdout


def test_paper_scale_refuses_a_cpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("checks the CPU refusal")
    proc = subprocess.run([sys.executable, str(BENCH), "--paper", "--work", str(tmp_path)], capture_output=True,
                          text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2 and "--scale cpu" in proc.stderr
