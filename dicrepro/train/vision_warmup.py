"""Vision-first warm-up of the tiny stand-in: its vision tower learns to tell diagram types apart before
the language model is trained on any text.

Why: trained from random weights only through the captioning loss, the tiny model never looked at its
images. Its language model learnt each description template within a few dozen steps, which leaves the
image tokens nothing to explain but the type word; 2 layers given a few hundred steps did not learn to
find that in 64 nearly identical image tokens (issue 19: 5% right types, chance 10%, and identical
captions for a blank image). Here the vision tower and its merger (the part that makes the LM's image
tokens) are trained first as a classifier of the diagram type, on mean-pooled image tokens and a linear
head that is thrown away afterwards; the image tokens then carry the type linearly, and the LM learns to
read it in its own pre-training. The saved model is a plain Qwen2.5-VL checkpoint: nothing of the head
is kept.

The tower's patch embedding is trained blind to the brightness of the page: each of its filters sums to
zero, so a patch of uniform grey (white paper, a dark theme's background, black) embeds to nothing, while
colour and what changes inside a patch (lines, edges, text) get through. Why: white paper was already
zero input (``tiny_model.DIAGRAM_MEAN``), but a dark theme's background is a large constant in every
patch, which the blocks' RMS norms turned into nearly the same token everywhere: a linear probe on the
tiny base's image tokens told the type of 88-94% of the light ICT diagrams and of 12-14% of the dark ones
(16% of stage 1). Filters blind to every uniform colour (zero sum per colour channel) read the dark ones
too but lost the stand-in's document pages (a probe fitted on 100 pages read 50% of the 20 test pages,
70% before): a fill's colour survives blur and JPEG where edges do not. With zero-sum filters the warm-up
fits all of its 2,400 rows (91% before) and the probe reads 78.5% of the 65 dark stage-1 training
diagrams (12.3% before) and 86.9% of the light ones (87.8%). The weights are left constrained, as plain
``Conv3d`` weights; nothing of the constraint is saved.

With ``token_loss`` > 0 the same head also has to tell the type from each image token on its own (that
loss, times ``token_loss``, added to the mean's). Why: the language model does not average the image
tokens, it attends to some of them; with the type in every token, the tiny base named the right type in
76.7% of its ICT test captions instead of 55.0%, and its stage-3 model in 73.3% instead of 68.3% (one
run each, the same seed), although a linear probe on the *mean* then reads fewer of the stage-1 test
diagrams (82.5% against 90.0%). Weight 3 read fewer of the stand-in's pages (50% of the stage-3
captions against 65%).

The rows are the general (non-ICT) pre-training diagrams, each also in a document look (page context,
scan noise, JPEG: ``dicrepro.data.augment.document_look``) so that the types are recognised in the
stage-2 stand-in's pages too. Deterministic on CPU given the seed.
"""

from __future__ import annotations

import logging
import random

import torch
from torch.nn.utils import parametrize

from dicrepro.data.augment import document_look_image
from dicrepro.train.collate import rgb

log = logging.getLogger(__name__)


def _pixels_each(processor, images: list) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(pixel_values, image_grid_thw)`` of each image, the image processor called once for all of them
    (faster per image than one call each)."""
    x = processor.image_processor(images=[rgb(im) for im in images], return_tensors="pt")
    sizes = x["image_grid_thw"].prod(-1).tolist()
    return [(pv, grid[None]) for pv, grid in zip(torch.split(x["pixel_values"], sizes), x["image_grid_thw"])]


def _pixels(processor, image) -> tuple[torch.Tensor, torch.Tensor]:
    return _pixels_each(processor, [image])[0]


def document_looks(images: list, copies: int, seed: int) -> list:
    """``copies`` document-look versions of every image (page context, scan noise, JPEG), as PIL images:
    all images' first copies, then all second copies. Deterministic given ``seed``; the warm-up's own."""
    rng = random.Random(seed)
    return [document_look_image(rgb(img), rng) for _ in range(copies) for img in images]


def image_tokens(model, batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, list[int]]:
    """Every image's merged tokens (what the language model receives), all images' stacked, and how many
    each image has."""
    pv = torch.cat([p for p, _ in batch]).to(model.device)
    grid = torch.cat([g for _, g in batch]).to(model.device)
    out = model.model.visual(pv, grid_thw=grid)
    tokens = out if torch.is_tensor(out) else out.pooler_output
    merge = model.config.vision_config.spatial_merge_size ** 2
    return tokens, (grid.prod(-1) // merge).tolist()


def pooled_image_tokens(model, batch: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Mean of each image's merged tokens (what the language model receives), one row per image."""
    return _mean_per_image(*image_tokens(model, batch))


def _mean_per_image(tokens: torch.Tensor, counts: list[int]) -> torch.Tensor:
    return torch.stack([t.mean(0) for t in torch.split(tokens, counts)])


class _ZeroSumFilters(torch.nn.Module):
    """A ``Conv3d`` weight ``(out, channels, t, h, w)`` with each output's filter summing to zero: a
    uniform grey patch in, zero out."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight - weight.mean(dim=tuple(range(1, weight.dim())), keepdim=True)


def flip_pixels(pixel_values: torch.Tensor, grid_thw, *, left_right: bool, upside_down: bool, channels: int = 3,
                patch_size: int = 14, temporal_patch_size: int = 2, merge_size: int = 2) -> torch.Tensor:
    """One image's Qwen2-VL ``pixel_values`` (patches in merge-window order) as the processor would give them
    for the image flipped: the same tensor as processing the mirrored picture, without processing again."""
    t, h, w = (int(v) for v in torch.as_tensor(grid_thw).reshape(-1))
    # the processor's order: (t, h/merge, w/merge, merge, merge) patches of (channel, t-patch, row, column)
    x = pixel_values.reshape(t, h // merge_size, w // merge_size, merge_size, merge_size, channels,
                             temporal_patch_size, patch_size, patch_size)
    dims = ([2, 4, 8] if left_right else []) + ([1, 3, 7] if upside_down else [])
    return x.flip(dims).reshape(pixel_values.shape) if dims else pixel_values


def augmented(item: tuple[torch.Tensor, torch.Tensor], gen: torch.Generator, *, flips: bool, erase: float,
              vision_config) -> tuple[torch.Tensor, torch.Tensor]:
    """A random variant of one image's ``(pixel_values, image_grid_thw)``: flipped left-right and upside-down
    at even odds each (``flips``), and each merged token's square of patches blanked with odds ``erase``
    (to 0, the processor's mean: white paper for the tiny model)."""
    pv, grid = item
    if flips:
        lr, ud = (torch.rand(2, generator=gen) < 0.5).tolist()
        p, tp = vision_config.patch_size, vision_config.temporal_patch_size
        pv = flip_pixels(pv, grid, left_right=lr, upside_down=ud, channels=pv.shape[1] // (tp * p * p),
                         patch_size=p, temporal_patch_size=tp, merge_size=vision_config.spatial_merge_size)
    if erase:
        square = vision_config.spatial_merge_size ** 2  # consecutive patches of one merged token
        keep = torch.rand(pv.shape[0] // square, generator=gen) >= erase
        pv = pv * keep.repeat_interleave(square).to(pv.dtype)[:, None]
    return pv, grid


def vision_warmup(model, processor, images: list, labels: list[str], *, epochs: int, lr: float, seed: int,
                  batch_size: int = 16, token_loss: float = 0.0, flips: bool = False,
                  erase: float = 0.0) -> list[dict]:
    """Train ``model``'s vision tower and merger to classify ``labels`` (diagram types) from ``images``
    (the tiny base passes each general diagram and its :func:`document_looks` copies), its patch embedding
    blind to uniform grey, from the mean of each image's tokens and, weighted ``token_loss``, from each
    token alone (module docstring); each epoch sees each image anew flipped (``flips``) and with a share
    ``erase`` of its token squares blanked (:func:`augmented`). Returns the curve (epoch, loss, train
    accuracy of the mean, on the augmented images)."""
    classes = sorted(set(labels))
    if len(classes) < 2 or epochs <= 0:
        log.info("vision warm-up skipped (%d type(s), %s epochs)", len(classes), epochs)
        return []
    proj = model.model.visual.patch_embed.proj
    parametrize.register_parametrization(proj, "weight", _ZeroSumFilters())
    try:
        return _train(model, processor, images, labels, classes, epochs=epochs, lr=lr, seed=seed,
                      batch_size=batch_size, token_loss=token_loss, flips=flips, erase=erase)
    finally:
        # the constrained values become the plain weight again: the checkpoint stays Qwen2.5-VL's
        parametrize.remove_parametrizations(proj, "weight", leave_parametrized=True)


def _train(model, processor, images, labels, classes, *, epochs, lr, seed, batch_size, token_loss, flips,
           erase) -> list[dict]:
    pairs = list(zip(images, labels))
    data = [x for i in range(0, len(pairs), batch_size)
            for x in _pixels_each(processor, [img for img, _ in pairs[i:i + batch_size]])]
    y = torch.tensor([classes.index(lab) for _, lab in pairs])
    torch.manual_seed(seed)
    head = torch.nn.Linear(model.config.vision_config.out_hidden_size, len(classes)).to(model.device)
    params = list(model.model.visual.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    per_epoch = -(-len(data) // batch_size)
    total = epochs * per_epoch
    # linear warm-up over 10 steps, then linear decay to 0
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / 10) * max(0.0, 1 - k / total))
    gen = torch.Generator().manual_seed(seed)
    # its own stream, so that the order of the rows is the same with augmentation as without
    draws = torch.Generator().manual_seed(seed + 1)
    vision_config = model.config.vision_config
    model.train()
    curve = []
    for epoch in range(epochs):
        order = torch.randperm(len(data), generator=gen).tolist()
        loss_sum, right = 0.0, 0
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            batch = [data[j] for j in idx]
            if flips or erase:
                batch = [augmented(x, draws, flips=flips, erase=erase, vision_config=vision_config) for x in batch]
            tokens, counts = image_tokens(model, batch)
            logits = head(_mean_per_image(tokens, counts))
            target = y[idx].to(logits.device)
            loss = torch.nn.functional.cross_entropy(logits, target)
            if token_loss:
                each = target.repeat_interleave(torch.tensor(counts, device=target.device))
                loss = loss + token_loss * torch.nn.functional.cross_entropy(head(tokens), each)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            loss_sum += loss.item() * len(idx)
            right += int((logits.argmax(1) == target).sum())
        curve.append({"epoch": epoch + 1, "loss": loss_sum / len(data), "accuracy": right / len(data)})
        log.info("vision warm-up epoch %d/%d: loss %.3f, type accuracy %.2f", epoch + 1, epochs,
                 curve[-1]["loss"], curve[-1]["accuracy"])
    return curve
