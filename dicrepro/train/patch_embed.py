"""Qwen2.5-VL's patch embedding computed as one matrix product.

Qwen2.5-VL embeds every 2x14x14 patch with a ``Conv3d`` whose kernel equals both its stride and the patch
it is given, which is a plain (3*2*14*14 -> hidden) linear map. On a CPU, oneDNN runs that convolution
slowly: in the tiny stand-in's vision tower it took 40% of a training step's time (forward and backward,
batches of 16 diagrams), more than the attention blocks. The same weight viewed as a matrix gives the same
embedding (up to the order of float additions) in a fraction of the time. Only the forward is replaced:
the weights, their names and the saved checkpoint stay those of Qwen2.5-VL.
"""

from __future__ import annotations

import logging
import types

import torch

log = logging.getLogger(__name__)


def _matmul_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
    weight = self.proj.weight
    return torch.nn.functional.linear(hidden_states.to(weight.dtype).reshape(-1, weight[0].numel()),
                                      weight.reshape(weight.shape[0], -1))


def use_matmul_patch_embed(model) -> int:
    """Make every Qwen2-VL-style patch embedding of ``model`` (a ``Conv3d`` with kernel == stride and no
    bias) run as a matrix product; returns how many were changed. Other modules are left alone."""
    changed = 0
    for module in model.modules():
        proj = getattr(module, "proj", None)
        if not (type(module).__name__.endswith("VisionPatchEmbed") and isinstance(proj, torch.nn.Conv3d)):
            continue
        if proj.bias is not None or tuple(proj.kernel_size) != tuple(proj.stride) or proj.groups != 1:
            continue
        module.forward = types.MethodType(_matmul_forward, module)
        changed += 1
    if changed:
        log.debug("patch embedding runs as a matrix product (%d module(s))", changed)
    return changed
