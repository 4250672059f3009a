"""The embedded tiny model: a Qwen2.5-VL-*architecture* model small enough to train on a 2-core CPU.

It is built here, from nothing downloaded: a byte-level BPE tokenizer trained locally (with Qwen's special
tokens and chat template), a tiny Qwen2_5_VLConfig, random init from the run's seed, then a short full
pre-training on general (non-ICT) diagrams so that, like the paper's base model, it describes diagrams
in general but knows nothing about ICT. It is saved like any Hugging Face checkpoint (safetensors,
processor, model card), so every later step treats it exactly as it would treat Qwen2.5-VL-7B.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import shutil
from pathlib import Path

import torch
from transformers import (
    GenerationConfig,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
    Trainer,
    TrainingArguments,
    set_seed,
)

from dicrepro.atomic import read_json_record, replace_dir_atomic, write_json_atomic, write_text_atomic
from datasets import Dataset, Image, concatenate_datasets

from dicrepro.data.vqa_kinds import TYPE_QUESTION, type_answer
from dicrepro.text.phrasings_en import TYPES as TYPES_EN
from dicrepro.text.phrasings_zh import TYPES as TYPES_ZH
from dicrepro.train.collate import (
    VisionSFTCollator,
    labelled_positions,
    length_grouping_arg,
    logits_mask_supported,
    undecoded_images,
)
from dicrepro.train.patch_embed import use_matmul_patch_embed
from dicrepro.train.tiny_tokenizer import train_tokenizer
from dicrepro.train.train_log import LossCSVCallback, library_versions, read_loss_csv, tensorboard_callback
from dicrepro.train.vision_warmup import document_looks, vision_warmup

log = logging.getLogger(__name__)

PATCH_SIZE = 14  # Qwen2.5-VL's own values: a 28x28 pixel square becomes one merged image token.
MERGE_SIZE = 2
# The tiny model's pixel normalisation puts white paper at 0 (Qwen's CLIP mean/std put it at 1.93 in every
# channel). A diagram is mostly white: with CLIP's values every 14x14 patch embedding was dominated by that
# constant, all image tokens of all diagrams came out nearly identical (cosine 0.9999) and the model could
# not see anything. At 0, a white patch embeds to nothing and ink is the signal. Saved in the processor.
DIAGRAM_MEAN = [1.0, 1.0, 1.0]
DIAGRAM_STD = [0.5, 0.5, 0.5]
RECIPE_VERSION = 10  # bump when the way the base is built changes (part of base_recipe)
# Type reading: one pass over every warm-up diagram took its loss from 7.3 to 0.11, yet stage-3 captions named
# the type in 68% where a linear probe on the same image tokens read 85%; with a second pass, 71.7% and 70.0%
# (two runs). With the document-look copies in the rows, the base named the type of 68.8% of the stage-1
# training diagrams after two passes and 74.2% after three (62-67% of the stand-in's pages either way; 26 s
# more): hence the default of model.tiny.type_reading_epochs, 3 passes over 1,200 diagrams and their copies.
TINY_NOTE = ("THIS IS THE TINY RANDOM-INIT STAND-IN, NOT Qwen2.5-VL-7B. It has the Qwen2.5-VL architecture "
             "at toy size, a locally trained tokenizer and a few minutes of training on CPU; its outputs and "
             "scores show that the pipeline works, not what the paper's model achieves.")


def _mrope_section(head_dim: int) -> list[int]:
    # Qwen2.5-VL splits each head's rotary half-dim into (time, height, width) = 1/4, 3/8, 3/8
    # ([16, 24, 24] for head_dim 128); the tiny model keeps the proportions at its own head size.
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def tiny_config(params, tokenizer) -> Qwen2_5_VLConfig:
    """A Qwen2_5_VLConfig at the sizes in ``params.model.tiny``, token ids taken from ``tokenizer``."""
    t = params.model.tiny
    if t.hidden_size % t.num_attention_heads or t.num_attention_heads % t.num_key_value_heads:
        raise ValueError(f"model.tiny: hidden_size {t.hidden_size} must be divisible by num_attention_heads "
                         f"{t.num_attention_heads}, which must be divisible by num_key_value_heads "
                         f"{t.num_key_value_heads}")
    if t.vision_hidden_size % t.vision_heads or (t.vision_hidden_size // t.vision_heads) % 4:
        raise ValueError(f"model.tiny: vision_hidden_size / vision_heads must be a multiple of 4 "
                         f"(got {t.vision_hidden_size} / {t.vision_heads})")
    ids = tokenizer.convert_tokens_to_ids
    head_dim = t.hidden_size // t.num_attention_heads
    text = dict(
        vocab_size=len(tokenizer), hidden_size=t.hidden_size, intermediate_size=t.intermediate_size,
        num_hidden_layers=t.num_hidden_layers, num_attention_heads=t.num_attention_heads,
        num_key_value_heads=t.num_key_value_heads, max_position_embeddings=4096, rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                         "mrope_section": _mrope_section(head_dim)},
        bos_token_id=ids("<|endoftext|>"), eos_token_id=ids("<|im_end|>"), pad_token_id=ids("<|endoftext|>"),
    )
    vision = dict(
        depth=t.vision_depth, hidden_size=t.vision_hidden_size, intermediate_size=2 * t.vision_hidden_size,
        num_heads=t.vision_heads, out_hidden_size=t.hidden_size, patch_size=PATCH_SIZE,
        spatial_merge_size=MERGE_SIZE, temporal_patch_size=2,
        # As in the 7B model: windowed attention in most blocks, full attention in the last one (or in
        # every block: model.tiny.vision_full_attention). A 112-pixel window is 4x4 merged tokens.
        window_size=112,
        fullatt_block_indexes=list(range(t.vision_depth)) if t.vision_full_attention else [t.vision_depth - 1],
    )
    return Qwen2_5_VLConfig(
        text_config=text, vision_config=vision, image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"), vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"), tie_word_embeddings=False,
    )


def tiny_processor(params, tokenizer) -> Qwen2_5_VLProcessor:
    """Qwen2.5-VL's processor around ``tokenizer``, images capped at ``params.model.max_pixels``."""
    size = {"shortest_edge": params.model.min_pixels, "longest_edge": params.model.max_pixels}
    norm = {"image_mean": DIAGRAM_MEAN, "image_std": DIAGRAM_STD}
    image_processor = Qwen2VLImageProcessor(size=size, patch_size=PATCH_SIZE, merge_size=MERGE_SIZE,
                                            temporal_patch_size=2, **norm)
    video_processor = Qwen2VLVideoProcessor(size=size, patch_size=PATCH_SIZE, merge_size=MERGE_SIZE,
                                            temporal_patch_size=2, **norm)
    return Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                               video_processor=video_processor, chat_template=tokenizer.chat_template)


def init_tiny_model(params, tokenizer) -> Qwen2_5_VLForConditionalGeneration:
    """The tiny model with random weights drawn from ``params.seed`` (same seed, same weights)."""
    set_seed(params.seed)
    model = Qwen2_5_VLForConditionalGeneration(tiny_config(params, tokenizer))
    model.generation_config = GenerationConfig(
        do_sample=False, eos_token_id=[tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.pad_token_id],
        pad_token_id=tokenizer.pad_token_id, max_new_tokens=256)
    n = sum(p.numel() for p in model.parameters())
    log.info("tiny Qwen2.5-VL-architecture model: %.2fM parameters (random init, seed %d)", n / 1e6, params.seed)
    return model


def type_question_rows(train, looks: list | None = None) -> Dataset:
    """One "What kind of diagram is this?" row per pre-training diagram (en/zh as the diagram), answered
    with its type in the verbalizer's words ("This is a pie chart." / "这是一张饼图。"): the stage-3
    objective type question, asked and answered the same way (dicrepro.data.vqa_kinds). ``looks``: PIL
    images standing in for the diagrams' own, one per row of ``train`` (their document-look copies)."""
    rows = {"id": [], "image": [], "prompt": [], "target": []}
    # The images' PNG bytes are carried over as they are: decoded, each would be encoded again (12 s for
    # the 1,200 warm-up diagrams). Document looks are stored as JPEG (most went through JPEG already), faster to encode than PNG.
    view = train.cast_column("image", Image(decode=False)).select_columns(["id", "image", "language", "diagram_type"])
    if looks is not None:
        view = view.remove_columns("image").add_column("image", [_jpeg(im) for im in looks])
    for r in view:
        zh = str(r["language"]).startswith("zh")
        if r["diagram_type"] not in (TYPES_ZH if zh else TYPES_EN):
            continue
        rows["id"].append(f"{r['id']}-{'doc-' if looks is not None else ''}type")
        rows["image"].append(r["image"])
        rows["prompt"].append(TYPE_QUESTION["zh" if zh else "en"])
        rows["target"].append(type_answer(r["diagram_type"], zh))
    return Dataset.from_dict(rows, features=train.select_columns(list(rows)).features)


def _jpeg(img) -> dict:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=92)
    return {"bytes": buf.getvalue(), "path": None}


def logits_where_labelled(collate):
    """Wrap a collator so the model computes its output layer only at positions whose next token is a label.

    Why: the output layer and its cross-entropy took a quarter of a tiny training step at every position,
    image tokens and prompt included, where no loss is taken (the base's type questions are mostly image
    tokens). The batch gets ``logits_to_keep`` (those positions) and ``shift_labels`` (their labels, in the
    same order), which Qwen2.5-VL's forward and transformers' causal-LM loss take as they are: the same loss
    and gradients, in floating point up to summation order (test). A transformers that takes no such mask
    gets ``collate`` unchanged.
    """
    if not logits_mask_supported():
        return collate

    def call(rows):
        batch = collate(rows)
        batch["logits_to_keep"], batch["shift_labels"] = labelled_positions(batch["labels"])
        return batch
    return call


def pretrain(model, processor, train_rows, params, out_dir: Path, *, epochs: float | None = None,
             name: str = "loss") -> list[dict]:
    """Full fine-tuning (every weight that requires grad) on general image-text rows for ``epochs`` (default
    ``model.tiny.pretrain_epochs``); the loss curve goes to ``out_dir/<name>.csv`` and is returned."""
    t = params.model.tiny
    epochs = t.pretrain_epochs if epochs is None else epochs
    bs = params.sft.batch_size
    steps = max(1, math.ceil(len(train_rows) / bs) * epochs)
    args = TrainingArguments(
        output_dir=str(out_dir / "checkpoints"), per_device_train_batch_size=bs, num_train_epochs=epochs,
        learning_rate=t.pretrain_lr, lr_scheduler_type="cosine", warmup_steps=max(1, int(0.05 * steps)),
        weight_decay=0.0,
        # at least ~5 points on the curve, however short the run
        logging_steps=max(1, min(params.sft.logging_steps, int(steps) // 5)), save_strategy="no", report_to="none",
        seed=params.seed, data_seed=params.seed, use_cpu=not torch.cuda.is_available(),
        remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=False,
        # Random batches, not sft.group_by_length: with captions and type questions batched apart, the
        # base named the right type in 28% of its captions instead of 58% (one run each; its type questions
        # then weigh as much per batch as captions do).
        **length_grouping_arg(TrainingArguments, False),
    )
    loss_csv = out_dir / f"{name}.csv"
    collate = VisionSFTCollator(processor, params.sft.max_length, cache_mb=params.sft.cache_mb)
    trainer = Trainer(model=model, args=args,
                      train_dataset=undecoded_images(train_rows) if params.sft.cache_mb else train_rows,
                      data_collator=logits_where_labelled(collate),
                      callbacks=[LossCSVCallback(loss_csv), tensorboard_callback(out_dir / "tensorboard" / name)])
    trainer.train()
    collate.clear_cache()
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    return read_loss_csv(loss_csv)


def _model_card(params, n_train: int, n_warmup: int, losses: list[dict], type_reading: dict | None) -> str:
    t = params.model.tiny
    first = losses[0]["loss"] if losses else float("nan")
    last = losses[-1]["loss"] if losses else float("nan")
    reading = (f"then {type_reading['epochs']:g} epoch(s) of \"What kind of diagram is this?\" over "
               f"{type_reading['rows']} rows (each of them, and each document-look copy) "
               f"(loss {type_reading['loss_first']:.3f} -> {type_reading['loss_last']:.3f}); "
               if type_reading and type_reading["loss_first"] is not None else "")
    fixed = bool(t.freeze_vision_after_warmup and t.vision_warmup_epochs)
    frozen = ", then kept fixed while the language model learnt to read it" if fixed else ""
    but_tower = " but the vision tower's" if fixed else ""
    flips = ["random left-right and upside-down flips"] if t.vision_warmup_flips else []
    erased = [f"{t.vision_warmup_erase:.0%} of the token squares blanked"] if t.vision_warmup_erase else []
    augment = f"; each epoch {' and '.join(flips + erased)}" if flips or erased else ""
    return f"""---
library_name: transformers
pipeline_tag: image-text-to-text
license: apache-2.0
tags: [dicrepro, tiny-stand-in, qwen2_5_vl, random-init]
---

# dicrepro tiny base model — NOT Qwen2.5-VL-7B

> **{TINY_NOTE}**

## What it is
- Architecture: `Qwen2_5_VLForConditionalGeneration` at toy size (text: {t.num_hidden_layers} layers,
  hidden {t.hidden_size}, {t.num_attention_heads} heads; vision: {t.vision_depth} blocks, hidden
  {t.vision_hidden_size}); tokenizer: byte-level BPE ({t.vocab_size} tokens) trained locally with
  Qwen2.5-VL's special tokens and chat template.
- Weights: random init (seed {params.seed}), then pre-training of every weight{but_tower} on {n_train}
  *general* (non-ICT) diagram descriptions for {t.pretrain_epochs} epochs at lr {t.pretrain_lr}: loss {first:.3f} -> {last:.3f}.
  It is the zero-shot "general model" baseline of a dicrepro run: it can describe diagrams, it lacks ICT
  knowledge.
- Vision-first warm-up: before any text, the vision tower learnt to tell {n_warmup} general diagrams' types
  apart ({t.vision_warmup_epochs} epochs, lr {t.vision_warmup_lr}, plus {t.vision_warmup_copies} document-look
  copy per diagram; patch-embedding filters kept summing to zero, blind to a uniform grey such as the page;
  type loss on the mean of the image tokens plus {t.vision_warmup_token_loss:g} x that on each token alone{augment}){frozen}; {reading}pre-training also asks "What kind of diagram is this?" ({t.type_questions}).
- Images are resized to {params.model.min_pixels}..{params.model.max_pixels} pixels and normalised with
  white paper at 0 (mean {DIAGRAM_MEAN}, std {DIAGRAM_STD}), so that ink, not paper, is the signal.

## Use
```python
from transformers import AutoModelForImageTextToText, AutoProcessor
processor = AutoProcessor.from_pretrained("{{this folder}}")
model = AutoModelForImageTextToText.from_pretrained("{{this folder}}")
```
"""


def base_recipe(params, data_identity: str, tokenizer_corpus: list[str]) -> str:
    """Hash of everything the tiny base's bytes depend on: the seed, ``model.tiny``, the image size, the
    pre-training settings it borrows from ``sft`` (batch size, max length, logging steps), the
    pre-training data (``data_identity``), the tokenizer corpus and the library versions."""
    key = {"recipe_version": RECIPE_VERSION, "seed": params.seed, "tiny": params.model.tiny.model_dump(mode="json"),
           "pixels": [params.model.min_pixels, params.model.max_pixels],
           "sft": [params.sft.batch_size, params.sft.max_length, params.sft.logging_steps],
           "data": data_identity, "versions": library_versions(),
           "corpus": hashlib.sha256("\n".join(tokenizer_corpus).encode()).hexdigest()}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def build_tiny_base(params, pretrain_dataset, out_dir, tokenizer_corpus: list[str],
                    data_identity: str | None = None) -> Path:
    """Build, pre-train and save the tiny stand-in base model into ``out_dir``; returns ``out_dir``.

    ``pretrain_dataset`` is a DatasetDict (or Dataset) of general diagrams with ``image``, ``prompt`` and
    ``target``; its train split is used. ``tokenizer_corpus`` is the text the tokenizer is trained on.
    Deterministic on CPU from ``params.seed``. The folder reloads with ``AutoProcessor`` and
    ``AutoModelForImageTextToText`` and works offline. With ``data_identity`` (a content hash of the
    pre-training data) a model already in ``out_dir`` from the same :func:`base_recipe` is kept, not
    rebuilt.
    """
    out_dir = Path(out_dir)
    train = pretrain_dataset["train"] if hasattr(pretrain_dataset, "keys") else pretrain_dataset
    missing = [c for c in ("image", "prompt", "target") if c not in train.column_names]
    if missing:
        raise ValueError(f"pre-training data lacks column(s) {missing}; it has {train.column_names}")
    recipe = base_recipe(params, data_identity, tokenizer_corpus) if data_identity else None
    if recipe and _built_from(out_dir) == recipe:
        log.info("tiny base model already built from this recipe (%s): %s (delete it to rebuild)", recipe, out_dir)
        return out_dir
    tokenizer = train_tokenizer(tokenizer_corpus, params.model.tiny.vocab_size,
                                cjk_coverage=params.model.tiny.cjk_coverage)
    processor = tiny_processor(params, tokenizer)
    model = init_tiny_model(params, tokenizer)
    use_matmul_patch_embed(model)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    losses = []
    warmup: list[dict] = []
    type_reading: dict | None = None
    n_captioned = 0
    t = params.model.tiny
    typed = {"diagram_type", "language"} <= set(train.column_names)
    if len(train) and t.pretrain_samples > 0:
        looks = []  # the warm-up's document-look copies, also read in the type-reading phase
        if t.vision_warmup_epochs and typed:
            log.info("vision-first warm-up: %d epochs on the types of %d general diagrams", t.vision_warmup_epochs,
                     len(train))
            images, labels = list(train["image"]), list(train["diagram_type"])
            looks = document_looks(images, t.vision_warmup_copies, params.seed)
            warmup = vision_warmup(model, processor, images + looks, labels * (1 + t.vision_warmup_copies),
                                   epochs=t.vision_warmup_epochs, lr=t.vision_warmup_lr, seed=params.seed,
                                   token_loss=t.vision_warmup_token_loss, flips=t.vision_warmup_flips,
                                   erase=t.vision_warmup_erase)
        frozen = [q for q in model.model.visual.parameters() if q.requires_grad] \
            if warmup and t.freeze_vision_after_warmup else []
        for q in frozen:
            q.requires_grad_(False)
        if t.type_questions and typed and len(train) > t.pretrain_samples:
            # Short rows on their own: mixed into the caption rows, each would be padded to a caption's length.
            log.info("type-reading phase: 'What kind of diagram is this?' for %d general diagrams", len(train))
            # Over the warm-up's document-look copies too: read from the originals alone, the base named
            # the type of 52% of the stage-2 stand-in's pages (68% of stage-1 diagrams); with the copies,
            # 67% (69%), for 17 s more (a base built from the same warm-up, each way).
            n = len(train)
            type_rows = concatenate_datasets([type_question_rows(train)] + [
                type_question_rows(train, looks[k * n:(k + 1) * n]) for k in range(len(looks) // n)])
            type_losses = pretrain(model, processor, type_rows, params, tmp,
                                   epochs=t.type_reading_epochs, name="type_loss")
            type_reading = {"rows": len(type_rows), "epochs": t.type_reading_epochs,
                            "loss_first": type_losses[0]["loss"] if type_losses else None,
                            "loss_last": type_losses[-1]["loss"] if type_losses else None}
        captioned = train.select(range(min(len(train), t.pretrain_samples)))
        n_captioned = len(captioned)
        rows = captioned.select_columns(["id", "image", "prompt", "target"])
        if t.type_questions and typed:
            rows = concatenate_datasets([rows, type_question_rows(captioned)])
        log.info("pre-training the tiny base on %d general diagrams (%d rows)", len(captioned), len(rows))
        losses = pretrain(model, processor, rows, params, tmp)
        for q in frozen:
            q.requires_grad_(True)
    model.save_pretrained(tmp, safe_serialization=True)
    processor.save_pretrained(tmp)
    write_text_atomic(tmp / "README.md", _model_card(params, n_captioned, len(train), losses, type_reading))
    write_json_atomic(tmp / "dicrepro_model.json", {
        "kind": "tiny", "note": TINY_NOTE, "seed": params.seed, "tiny": params.model.tiny.model_dump(),
        "pretrain_rows": n_captioned, "pretrain_loss_first": losses[0]["loss"] if losses else None,
        "pretrain_loss_last": losses[-1]["loss"] if losses else None, "versions": library_versions(),
        "vision_warmup": warmup, "type_reading": type_reading, "warmup_rows": len(train),
        "recipe": recipe})
    replace_dir_atomic(tmp, out_dir)
    log.info("tiny base model saved to %s", out_dir)
    return out_dir


def _built_from(out_dir: Path) -> str | None:
    """The recipe hash of the finished tiny base in ``out_dir``, or None."""
    meta = read_json_record(out_dir / "dicrepro_model.json")
    if not (isinstance(meta, dict) and (out_dir / "model.safetensors").exists()):
        return None
    return meta.get("recipe")
