"""The hf backend's GPU path (transformers + PEFT + bitsandbytes 4-bit), as a user of ``sft.backend: hf``
gets it: in a process where unsloth was never imported (Unsloth patches transformers, PEFT and TRL when
imported, so a test that shares its process with tests/test_gpu_unsloth.py would test Unsloth's patched
path). When pytest runs both modules in one process and unsloth is already in, the test reruns itself in
a fresh interpreter. CUDA only (skipped elsewhere); run by scripts/device_gpu_check.sh."""

import importlib.util
import os
import subprocess
import sys

import pytest
import torch
from gpu_common import build_run, expected_lora_modules, gpu_params, train_two_stages

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes not installed"),
]


def _in_a_fresh_process(request) -> bool:
    """Rerun this test alone in a new interpreter when unsloth was imported here; True if it did."""
    if "unsloth" not in sys.modules:
        return False
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", request.node.nodeid],
                          cwd=request.config.rootpath, capture_output=True, text=True, env=os.environ.copy())
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return True


def test_hf_backend_trains_in_4bit_without_unsloth(request, tmp_path):
    if _in_a_fresh_process(request):
        return
    from dicrepro.train.backends import adapted_module_names, load_hf

    root = build_run(tmp_path / "run")
    params = gpu_params(root, "hf")
    model, _ = load_hf(params, root / "models" / "base", None)
    assert any(type(m).__name__ == "Linear4bit" for m in model.modules())
    assert adapted_module_names(model) == expected_lora_modules(params)
    # k-bit preparation: frozen 16-bit weights stay 16-bit, only norms and LoRA are float32
    fp32 = [n for n, p in model.named_parameters() if p.dtype == torch.float32]
    assert fp32 and all("lora_" in n or "norm" in n or ".ln_q." in n for n in fp32), fp32[:5]
    del model
    torch.cuda.empty_cache()
    train_two_stages(params)
    assert "unsloth" not in sys.modules  # the plain path, start to end
