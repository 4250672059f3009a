"""The GPU paths, on a CUDA machine only (skipped elsewhere): Unsloth's 4-bit QLoRA (with our collator and
with Unsloth's own) and the hf backend's bitsandbytes 4-bit, each training a tiny model through
train_stage, saving an adapter that changed the weights and a merged model that reloads.

Run on a lent GPU with ``python3 -m pytest -m gpu tests/test_gpu.py`` (scripts/device_gpu_check.sh)."""

import importlib.util
import json
import os

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
if torch.cuda.is_available() and importlib.util.find_spec("unsloth") is not None:
    import unsloth  # noqa: F401  (before transformers, as preload_unsloth does in the pipeline)

needs_unsloth = pytest.mark.skipif(importlib.util.find_spec("unsloth") is None, reason="unsloth not installed")
needs_bnb = pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes not installed")
os.environ["HF_HUB_OFFLINE"] = "1"


def gpu_params(run_dir, backend: str):
    from dicrepro.params import Params

    p = Params(run_dir=run_dir, seed=7)
    # big enough for the 4-bit kernels' block sizes (multiples of 64), small enough to load in seconds
    p.model.tiny = p.model.tiny.model_copy(update=dict(
        vocab_size=600, hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vision_depth=1, vision_hidden_size=64, vision_heads=2, pretrain_samples=8,
        pretrain_epochs=1.0))
    p.model.max_pixels = 12544
    p.sft.backend = backend
    p.sft.load_in_4bit = True
    p.sft.bf16 = True
    p.sft.batch_size = 4
    p.sft.logging_steps = 1
    p.sft.lora.r = 8
    p.sft.lora.modules_to_save = []  # as the paper profile: LoRA alone
    for k in (1, 2, 3):
        p.sft.stage(k).max_steps = 3
        p.sft.stage(k).learning_rate = 1e-2
    return p


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from dicrepro.paths import RunPaths
    from dicrepro.train.box_diagrams import box_dataset
    from dicrepro.train.tiny_model import build_tiny_base

    root = tmp_path_factory.mktemp("gpu_run")
    p = gpu_params(root, "hf")
    paths = RunPaths(root)
    general = box_dataset(8, 0, seed=1, domain="general")
    build_tiny_base(p, general, paths.base_model, tokenizer_corpus=list(general["train"]["target"]))
    for k in (1, 2):
        box_dataset(12, 2, seed=20 + k).save_to_disk(str(paths.stage_data(k)))
    return root


def _train_two_stages(params):
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    from dicrepro.train.sft import train_stage

    for stage in (1, 2):
        out = train_stage(params, stage)
        lineage = json.loads((out / "lineage.json").read_text())
        assert lineage["backend"] == params.sft.backend and lineage["global_step"] == 3
        assert lineage["final_loss"] == lineage["final_loss"]  # not NaN
        # LoRA's B matrices start at zero: any non-zero one was trained
        adapter = load_file(out / "adapter" / "adapter_model.safetensors")
        lora_b = [v for k, v in adapter.items() if "lora_B" in k]
        assert lora_b and any(v.abs().sum() > 0 for v in lora_b)
        merged = AutoModelForImageTextToText.from_pretrained(out / "merged")
        assert merged.config.model_type == "qwen2_5_vl"


@needs_bnb
def test_hf_backend_trains_in_4bit(run, tmp_path):
    import shutil

    from dicrepro.train.backends import load_hf

    root = tmp_path / "run"
    shutil.copytree(run, root)
    params = gpu_params(root, "hf")
    model, _ = load_hf(params, root / "models" / "base", None)
    assert any(type(m).__name__ == "Linear4bit" for m in model.modules())
    del model
    _train_two_stages(params)


@needs_unsloth
@needs_bnb
def test_unsloth_backend_trains_in_4bit(run, tmp_path):
    import shutil

    from dicrepro.train.backends import resolve_backend

    assert resolve_backend("auto") == "unsloth"
    root = tmp_path / "run"
    shutil.copytree(run, root)
    _train_two_stages(gpu_params(root, "unsloth"))


@needs_unsloth
@needs_bnb
def test_unsloth_backend_trains_with_unsloths_collator(run, tmp_path):
    import shutil

    from dicrepro.train.sft import train_stage

    root = tmp_path / "run"
    shutil.copytree(run, root)
    params = gpu_params(root, "unsloth")
    params.sft.collator = "unsloth"  # Unsloth's notebook recipe, end to end
    lineage = json.loads((train_stage(params, 1) / "lineage.json").read_text())
    assert lineage["collator"] == "unsloth" and lineage["global_step"] == 3
    assert lineage["final_loss"] == lineage["final_loss"]  # not NaN
