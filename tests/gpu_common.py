"""Shared by the GPU tests (tests/test_gpu_hf.py, tests/test_gpu_unsloth.py): the tiny run they train and
the checks of a trained stage. Importing it imports neither unsloth nor transformers."""

import json
import os

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
    p.sft.lora.finetune_vision_layers = True  # as the paper profile
    p.sft.lora.modules_to_save = []  # as the paper profile: LoRA alone
    for k in (1, 2, 3):
        p.sft.stage(k).max_steps = 3
        p.sft.stage(k).learning_rate = 1e-2
    return p


def build_run(root):
    """A run folder with the tiny base (built with the hf path) and two stage datasets."""
    from dicrepro.paths import RunPaths
    from dicrepro.train.box_diagrams import box_dataset
    from dicrepro.train.tiny_model import build_tiny_base

    p = gpu_params(root, "hf")
    paths = RunPaths(root)
    general = box_dataset(8, 0, seed=1, domain="general")
    build_tiny_base(p, general, paths.base_model, tokenizer_corpus=list(general["train"]["target"]))
    for k in (1, 2):
        box_dataset(12, 2, seed=20 + k).save_to_disk(str(paths.stage_data(k)))
    return root


def expected_lora_modules(params) -> list[str]:
    """The modules both backends must adapt: lora_target_names on the base model's shapes (meta device)."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    from dicrepro.paths import RunPaths
    from dicrepro.train.backends import lora_target_names

    cfg = AutoConfig.from_pretrained(RunPaths(params.run_dir).base_model)
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(cfg)
    return lora_target_names(model, params.sft.lora)


def train_two_stages(params):
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
