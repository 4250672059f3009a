"""Qwen2.5-VL's patch embedding run as one matrix product (a CPU speed-up): same numbers, same weights."""

from __future__ import annotations

import torch
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionPatchEmbed

from dicrepro.train.patch_embed import use_matmul_patch_embed


def test_the_matrix_product_gives_the_convolutions_embedding_and_gradients():
    torch.manual_seed(0)
    conv = Qwen2_5_VisionPatchEmbed(patch_size=14, temporal_patch_size=2, in_channels=3, embed_dim=32)
    fast = Qwen2_5_VisionPatchEmbed(patch_size=14, temporal_patch_size=2, in_channels=3, embed_dim=32)
    fast.load_state_dict(conv.state_dict())
    holder = torch.nn.Sequential(fast)

    assert use_matmul_patch_embed(holder) == 1

    x = torch.randn(50, 3 * 2 * 14 * 14)
    want, got = conv(x), fast(x)
    assert got.shape == want.shape == (50, 32)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    want.square().sum().backward()
    got.square().sum().backward()
    torch.testing.assert_close(fast.proj.weight.grad, conv.proj.weight.grad, rtol=1e-4, atol=1e-4)
    # the checkpoint is still Qwen2.5-VL's: same parameter names and shapes
    assert {k: v.shape for k, v in fast.state_dict().items()} == {k: v.shape for k, v in conv.state_dict().items()}


def test_other_convolutions_are_left_alone():
    with_bias = Qwen2_5_VisionPatchEmbed(patch_size=14, temporal_patch_size=2, in_channels=3, embed_dim=8)
    with_bias.proj = torch.nn.Conv3d(3, 8, kernel_size=(2, 14, 14), stride=(2, 14, 14), bias=True)
    plain = torch.nn.Conv3d(3, 8, kernel_size=3)
    assert use_matmul_patch_embed(torch.nn.Sequential(with_bias, plain)) == 0
