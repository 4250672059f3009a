"""bench/sft_backends.py on CPU: the hf anchor trains and is measured, GPU-only variants say why they were
skipped, and the 3B/7B shapes it builds for a GPU have the published parameter counts."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dicrepro.params import Params
from dicrepro.train.box_diagrams import box_dataset
from dicrepro.train.tiny_model import build_tiny_base

os.environ["HF_HUB_OFFLINE"] = "1"
REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "sft_backends.py"


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_sft_backends", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    p = Params(run_dir=root, seed=2)
    p.model.tiny = p.model.tiny.model_copy(update=dict(
        vocab_size=600, hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, vision_depth=1, vision_hidden_size=32, vision_heads=2, pretrain_samples=0))
    p.model.max_pixels = 12544
    general = box_dataset(8, 0, seed=1, domain="general")
    base = build_tiny_base(p, general, root / "base", tokenizer_corpus=list(general["train"]["target"]))
    data = root / "data"
    box_dataset(8, 2, seed=3).save_to_disk(str(data))
    return base, data


@pytest.mark.parametrize("shape, billions", [("3b", 3.75), ("7b", 8.29)])
def test_gpu_shapes_have_the_published_sizes(tiny, shape, billions):
    from transformers import Qwen2_5_VLForConditionalGeneration

    cfg = _bench_module().shape_config(shape, tiny[0])
    with torch.device("meta"):  # shapes only, no memory
        model = Qwen2_5_VLForConditionalGeneration._from_config(cfg)
    assert sum(p.numel() for p in model.parameters()) / 1e9 == pytest.approx(billions, abs=0.01)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU run")
def test_cpu_run_measures_the_anchor_and_names_what_it_skipped(tiny, tmp_path):
    base, data = tiny
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--model", str(base), "--data", str(data), "--params",
         str(REPO / "params" / "tiny.yaml"), "--steps", "2", "--warmup", "1", "--batch-size", "2",
         "--variants", "hf,unsloth-qlora", "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["anchor"] == "hf"
    hf, unsloth = result["rows"]
    assert hf["variant"] == "hf" and hf["steps"] == 2 and hf["samples"] == 4
    assert hf["samples_per_s"] > 0 and hf["peak_rss_gib"] > 0 and hf["trainable_params"] > 0
    assert unsloth == {"variant": "unsloth-qlora", "skipped": "skipped: needs a CUDA GPU"}
    assert "| hf | " in proc.stdout and "| 1.00 |" in proc.stdout
