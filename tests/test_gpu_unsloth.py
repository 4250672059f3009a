"""The unsloth backend's GPU path: Unsloth's 4-bit QLoRA with dicrepro's collator and with Unsloth's own,
each training the tiny model through train_stage. unsloth is imported by the fixture, not when pytest
collects this module, so tests/test_gpu_hf.py (which must not see it) can share a pytest run with it.
CUDA only (skipped elsewhere); run by scripts/device_gpu_check.sh in a process of its own."""

import importlib.util
import json
import shutil

import pytest
import torch
from gpu_common import build_run, expected_lora_modules, gpu_params, train_two_stages

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(importlib.util.find_spec("unsloth") is None, reason="unsloth not installed"),
    pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes not installed"),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import unsloth  # noqa: F401  (first, as preload_unsloth does in the pipeline)

    return build_run(tmp_path_factory.mktemp("gpu_run"))


@pytest.fixture
def params(run, tmp_path):
    root = tmp_path / "run"
    shutil.copytree(run, root)
    return gpu_params(root, "unsloth")


def test_unsloth_adapts_the_same_modules_as_the_hf_backend(params):
    from dicrepro.train.backends import adapted_module_names, load_unsloth

    model, _ = load_unsloth(params, params.run_dir / "models" / "base", None)
    assert adapted_module_names(model) == expected_lora_modules(params)


def test_unsloth_backend_trains_in_4bit(params):
    from dicrepro.train.backends import resolve_backend

    assert resolve_backend("auto") == "unsloth"
    train_two_stages(params)


def test_unsloth_backend_trains_with_unsloths_collator(params):
    from dicrepro.train.sft import train_stage

    params.sft.collator = "unsloth"  # Unsloth's notebook recipe, end to end
    lineage = json.loads((train_stage(params, 1) / "lineage.json").read_text())
    assert lineage["collator"] == "unsloth" and lineage["global_step"] == 3
    assert lineage["final_loss"] == lineage["final_loss"]  # not NaN
