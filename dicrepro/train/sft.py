"""Progressive SFT: ``train_stage(params, stage)`` trains one LoRA stage with TRL's SFTTrainer.

Stage 1 starts from the base model (the tiny stand-in, or ``model.path``), stage k from stage k-1's
result: its merged weights with a fresh adapter (``sft.continue_from: merged``) or its adapter trained
further on the original base (``adapter``). Every stage folder (``RunPaths.stage_model(k)``) holds::

    adapter/        PEFT adapter (save_pretrained)
    merged/         base + adapter merged, with the processor: a plain transformers checkpoint
    README.md       model card (front matter, params, data sizes, losses, the tiny-run note)
    loss.csv        step, epoch, loss
    tensorboard/    Trainer's tensorboard logs
    checkpoints/    Trainer checkpoints every ``sft.save_steps`` (resume after a kill), and
                    dicrepro_inputs.json: what they are made from (only the same inputs resume them)
    lineage.json    input model, previous stage, data hash, params hash, versions (written last)

Several processes (``accelerate launch -m dicrepro.train.launch``, DDP): every rank trains on its shard
of the data; only the main process writes the folder, after all ranks finished training, and every
rank returns once the folder is complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path

from accelerate import PartialState
from datasets import concatenate_datasets, load_from_disk

from dicrepro.atomic import matches_json_record, replace_dir_atomic, write_json_atomic, write_text_atomic
from dicrepro.manifest import folder_identity
from dicrepro.params import dump_params
from dicrepro.paths import RunPaths
from dicrepro.train.backends import (
    BACKENDS,
    cuda_available,
    make_collator,
    merge_adapter,
    resolve_backend,
    resolve_collator,
)
from dicrepro.train.collate import length_grouping_arg, rows_that_fit, undecoded_images, with_lengths
from dicrepro.train.model_folder import ModelFolderError, check_model_folder
from dicrepro.train.processor import load_processor
from dicrepro.train.tiny_model import TINY_NOTE
from dicrepro.train.train_log import (
    LossCSVCallback,
    dataset_hash,
    library_versions,
    read_loss_csv,
    tensorboard_callback,
)

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("id", "image", "prompt", "target")


class StageInputError(ValueError):
    """A stage's input (model folder, previous stage or dataset) is missing or malformed."""


def params_hash(params, stage: int) -> str:
    """Hash of the params that decide stage ``stage``'s weights, for lineage and skipping: the seed, the
    model and the sft section, without the other stages' ``sft.stageN`` entries and without
    ``sft.resume`` and ``sft.cache_mb`` (changing stage 3's learning rate must not retrain stages 1 and 2)."""
    d = dump_params(params)
    sft = {k: v for k, v in d["sft"].items()
           if k not in ("resume", "cache_mb") and not (k.startswith("stage") and k != f"stage{stage}")}
    key = json.dumps({"seed": d["seed"], "model": d["model"], "sft": sft}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def input_identity(inputs: dict) -> str:
    """What a stage starts from, as a hash that changes whenever that input changes: the previous stage's
    ``lineage.json`` (written anew by every training), or for stage 1 the base model folder
    (:func:`dicrepro.manifest.folder_identity`: by content for the tiny stand-in, rebuilt byte-identically
    from its seed). A stage whose input changed is trained again even though the input's path is the same."""
    if inputs["previous_stage"] is not None:
        return hashlib.sha256((Path(inputs["previous_stage"]) / "lineage.json").read_bytes()).hexdigest()[:16]
    return folder_identity(Path(inputs["model"]))


def load_stage_data(folder: Path):
    """The train split of a stage's DatasetDict, checked for the training columns."""
    folder = Path(folder)
    if not folder.exists():
        raise StageInputError(f"stage data folder {folder} does not exist: build it first (notebooks 01-03)")
    dd = load_from_disk(str(folder))
    if "train" not in dd:
        raise StageInputError(f"dataset {folder} has no 'train' split (splits: {list(dd)})")
    train = dd["train"]
    missing = [c for c in REQUIRED_COLUMNS if c not in train.column_names]
    if missing:
        raise StageInputError(f"dataset {folder} (train split) lacks column(s) {missing}; it has "
                              f"{train.column_names}")
    if len(train) == 0:
        raise StageInputError(f"dataset {folder} has an empty train split")
    return train


def replay_share(params) -> float:
    """``sft.replay``: rows from earlier stages mixed into stage k>1, as a share of stage k's rows.

    Default: 0 for a real model (the paper trains each stage on its own data); 0.3 for the tiny stand-in,
    whose few LoRA steps on short VQA answers otherwise overwrite its captioning (the stage-3 model would
    answer every caption prompt with an option letter).
    """
    value = getattr(params.sft, "replay", None)
    if value is None:
        return 0.3 if params.model.kind == "tiny" else 0.0
    return float(value)


def mix_replay(params, stage: int, train):
    """Stage ``stage``'s rows plus a seeded sample of earlier stages' rows (see :func:`replay_share`).

    Returns ``(dataset, n_replayed, {folder: hash})``; only the training columns are kept."""
    share = replay_share(params)
    train = train.select_columns(list(REQUIRED_COLUMNS))
    if stage == 1 or share <= 0:
        return train, 0, {}
    paths = RunPaths(Path(params.run_dir))
    folders = [paths.stage_data(k) for k in range(1, stage)]
    pool = concatenate_datasets([load_stage_data(f).select_columns(list(REQUIRED_COLUMNS)).cast(train.features)
                                 for f in folders])
    n = min(len(pool), round(share * len(train)))
    picked = pool.shuffle(seed=params.seed + stage).select(range(n))
    mixed = concatenate_datasets([train, picked]).shuffle(seed=params.seed)
    log.info("stage %d: %d rows + %d replayed from earlier stages", stage, len(train), n)
    return mixed, n, {str(f): dataset_hash(f) for f in folders}


def _base_model_path(params, paths: RunPaths) -> Path:
    if params.model.kind == "local":
        return Path(params.model.path).expanduser()
    return paths.base_model


def _check_model_dir(path: Path, what: str) -> None:
    if not (path / "config.json").exists():
        hint = "run 00_base_model first" if what == "base model" else "train the previous stage first"
        raise StageInputError(f"{what} not found: {path} has no config.json ({hint})")
    try:  # safetensors weights (never pickle), tokenizer and image processor, before any training starts
        check_model_folder(path)
    except ModelFolderError as e:
        raise StageInputError(f"{what}: {e}") from None


def stage_inputs(params, stage: int) -> dict:
    """Where stage ``stage`` starts: ``{"model": path to load, "adapter": adapter to continue or None,
    "base_model": the original base, "previous_stage": folder or None}``."""
    paths = RunPaths(Path(params.run_dir))
    base = _base_model_path(params, paths)
    if stage == 1:
        _check_model_dir(base, "base model")
        return {"model": base, "adapter": None, "base_model": base, "previous_stage": None}
    prev = paths.stage_model(stage - 1)
    lineage = prev / "lineage.json"
    if not lineage.exists():
        raise StageInputError(f"stage {stage} starts from stage {stage - 1}, but {prev} holds no finished "
                              f"stage (no lineage.json): train stage {stage - 1} first")
    prev_lineage = json.loads(lineage.read_text())
    if params.sft.continue_from == "adapter":
        root = Path(prev_lineage["base_model"])
        _check_model_dir(root, "base model")
        return {"model": root, "adapter": prev / "adapter", "base_model": root, "previous_stage": prev}
    _check_model_dir(prev / "merged", f"stage {stage - 1} merged model")
    return {"model": prev / "merged", "adapter": None, "base_model": Path(prev_lineage["base_model"]),
            "previous_stage": prev}


def _checkpointing_arg(config_cls, on: bool) -> dict:
    """``{name: on}`` for gradient checkpointing in this transformers: ``activation_checkpointing`` from
    5.2x on (``gradient_checkpointing`` is then a deprecated alias), ``gradient_checkpointing`` before
    (5.17, as on the lent GPU machine's image, has no ``activation_checkpointing`` argument)."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(config_cls)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": on}


def _sft_config(params, stage: int, out: Path, backend: str):
    from trl import SFTConfig

    s, st = params.sft, params.sft.stage(stage)
    cuda = cuda_available()
    return SFTConfig(
        output_dir=str(out / "checkpoints"), per_device_train_batch_size=s.batch_size,
        gradient_accumulation_steps=s.grad_accum, num_train_epochs=st.epochs, max_steps=st.max_steps,
        learning_rate=st.learning_rate, lr_scheduler_type="linear", warmup_steps=s.warmup_ratio,
        weight_decay=0.0, logging_steps=s.logging_steps, save_strategy="steps", save_steps=s.save_steps,
        save_total_limit=2, seed=params.seed, data_seed=params.seed, report_to="none",
        bf16=s.bf16 and cuda, use_cpu=not cuda, dataloader_num_workers=0,
        # Gradient checkpointing trades compute for memory: only worth it for large models on a GPU.
        # Unsloth brings its own (use_gradient_checkpointing="unsloth", offloaded to CPU RAM), set on
        # the model when it is loaded; the Trainer's would replace it with the plain one.
        **_checkpointing_arg(SFTConfig, cuda and backend != "unsloth"),
        **length_grouping_arg(SFTConfig, s.group_by_length),
        optim="adamw_8bit" if cuda and (backend == "unsloth" or s.load_in_4bit) else "adamw_torch",
        # The collator needs the raw columns (image, prompt, target): TRL must neither drop nor
        # pre-tokenize them. Truncation is the collator's job (it checks image tokens first).
        remove_unused_columns=False, dataset_text_field="", dataset_kwargs={"skip_prepare_dataset": True},
        max_length=None,
        # Under DDP every trainable parameter (LoRA, modules_to_save) is used in every forward pass, so
        # DDP need not search the graph for unused ones; that search also breaks activation checkpointing.
        ddp_find_unused_parameters=False,
    )


_CHECKPOINT_INPUTS = "dicrepro_inputs.json"


def _last_checkpoint(folder: Path) -> Path | None:
    cks = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])) if folder.exists() else []
    return cks[-1] if cks else None


def _resumable_checkpoint(folder: Path, expect: dict) -> Path | None:
    """The last checkpoint in ``folder`` if it was made from the inputs in ``expect`` (params, data and
    input model, recorded when that training started); None otherwise. A checkpoint of a training with
    other settings must not be continued: it would carry the old settings' weights (and step count) into
    a stage labelled with the new ones."""
    last = _last_checkpoint(folder)
    if last is None:
        return None
    if not matches_json_record(folder / _CHECKPOINT_INPUTS, expect):
        log.info("checkpoints in %s come from a training with other params, data or input model: starting "
                 "over", folder)
        return None
    return last


def _finished(out: Path, expect: dict) -> bool:
    f = out / "lineage.json"
    if not f.exists() or not (out / "merged" / "config.json").exists():
        return False
    got = json.loads(f.read_text())
    return all(got.get(k) == v for k, v in expect.items())


def train_stage(params, stage: int, *, callbacks: list | None = None) -> Path:
    """Train SFT stage ``stage`` (1, 2 or 3) and return its folder (see the module doc for its content).

    A stage already finished with the same inputs, data and params is not retrained. With
    ``sft.resume`` a killed stage continues from its last checkpoint. ``callbacks`` are extra
    ``transformers.TrainerCallback`` objects (early stopping, custom logging). Under ``accelerate launch``
    every rank calls this; the main process alone writes the stage folder (see the module doc).
    """
    from dicrepro.train.sft_trainer import sft_trainer_class  # noqa: PLC0415 (imports trl: seconds)

    if stage not in (1, 2, 3):
        raise ValueError(f"stage must be 1, 2 or 3, got {stage!r}")
    backend = resolve_backend(params.sft.backend)
    resolve_collator(params.sft.collator)
    paths = RunPaths(Path(params.run_dir))
    inputs = stage_inputs(params, stage)
    data_dir = paths.stage_data(stage)
    train, n_replay, replay_hashes = mix_replay(params, stage, load_stage_data(data_dir))
    out = paths.stage_model(stage)
    expect = {"status": "done", "params_hash": params_hash(params, stage), "data_hash": dataset_hash(data_dir),
              "replay_data_hashes": replay_hashes, "input_model": str(inputs["model"]),
              "input_adapter": str(inputs["adapter"] or ""), "input_identity": input_identity(inputs)}
    if _finished(out, expect):
        log.info("stage %d already trained with these inputs: %s (delete it to retrain)", stage, out)
        return out
    resume = _resumable_checkpoint(out / "checkpoints", expect) if params.sft.resume else None
    # The config sets up the process group under accelerate launch; every rank decided the above from
    # the same files before any of them changes the folder (the main process alone does).
    args = _sft_config(params, stage, out, backend)
    state = PartialState()
    state.wait_for_everyone()
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "lineage.json").unlink(missing_ok=True)  # only a finished stage has one
        if resume is None:
            shutil.rmtree(out / "checkpoints", ignore_errors=True)
            (out / "loss.csv").unlink(missing_ok=True)
            # what these checkpoints will be made from: a later resume must start from the same
            (out / "checkpoints").mkdir()
            write_json_atomic(out / "checkpoints" / _CHECKPOINT_INPUTS, expect)
    state.wait_for_everyone()
    log.info("stage %d: backend %s, collator %s, model %s%s, %d training rows from %s%s", stage, backend,
             params.sft.collator, inputs["model"],
             f" + adapter {inputs['adapter']}" if inputs["adapter"] else "", len(train), data_dir,
             f", resuming from {resume}" if resume else "")

    # Rows whose prompt would be cut inside its image tokens are dropped, counted, before any training
    # (else the first batch holding one stops the training with an error, hours in).
    processor = load_processor(inputs["model"], params.model)
    train, too_long = rows_that_fit(train, processor, params.sft.max_length)
    if too_long:
        log.warning("stage %d: %d row(s) dropped: their prompt and image tokens do not fit in sft.max_length %d "
                    "(raise it or lower model.max_pixels): %s%s", stage, len(too_long), params.sft.max_length,
                    ", ".join(map(str, too_long[:5])), " ..." if len(too_long) > 5 else "")
    if len(train) == 0:
        raise StageInputError(f"stage {stage}: no row of {data_dir} fits in sft.max_length "
                              f"{params.sft.max_length} with its image tokens; raise sft.max_length or lower "
                              "model.max_pixels")
    if params.sft.group_by_length:
        train = with_lengths(train, processor)
    if params.sft.collator == "dicrepro" and params.sft.cache_mb:
        train = undecoded_images(train)  # decoded once by the caching collator, not once per epoch
    model, processor = BACKENDS[backend](params, inputs["model"], inputs["adapter"])
    if hasattr(model, "print_trainable_parameters"):
        n_train, n_all = model.get_nb_trainable_parameters()
        log.info("trainable parameters: %d of %d (%.2f%%)", n_train, n_all, 100 * n_train / n_all)
    # The loss CSV is written by rank 0 only; a SummaryWriter opens its event file when created, so the
    # other ranks get none.
    logs = [LossCSVCallback(out / "loss.csv")]
    if state.is_main_process:
        logs.append(tensorboard_callback(out / "tensorboard"))
    collator = make_collator(params, model, processor)
    trainer = sft_trainer_class("cuda" if cuda_available() else "cpu")(
        model=model, args=args, train_dataset=train,
        processing_class=processor, data_collator=collator,
        callbacks=[*logs, *(callbacks or [])],
    )
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.time() - t0
    if hasattr(collator, "clear_cache"):
        collator.clear_cache()  # the Trainer may keep it alive while the model is merged and saved
    log.info("rank %d/%d trained %d steps in %.0f s (%s)", state.process_index, state.num_processes,
             result.global_step, seconds, state.backend or "single process")
    # Every rank has finished its last step before the main process saves; the others wait for it below.
    state.wait_for_everyone()
    if state.is_main_process:
        lineage = {**expect, "stage": stage, "backend": backend, "collator": params.sft.collator,
                   "base_model": str(inputs["base_model"]),
                   "previous_stage": str(inputs["previous_stage"]) if inputs["previous_stage"] else None,
                   "continue_from": params.sft.continue_from, "data_dir": str(data_dir),
                   "train_rows": len(train), "replay_rows": n_replay, "dropped_too_long": len(too_long),
                   "world_size": state.num_processes,
                   "resumed_from": str(resume) if resume else None, "global_step": result.global_step,
                   "train_seconds": round(seconds, 1), "train_loss": result.training_loss}
        _save_stage(params, stage, out, trainer.model, inputs["model"], lineage)
    state.wait_for_everyone()
    return out


def _save_stage(params, stage: int, out: Path, model, trained_on: Path, lineage: dict) -> None:
    """Main process: the adapter, the merged model, the model card and, last, ``lineage.json``
    (``lineage`` completed with the loss curve's ends and the library versions)."""
    adapter_tmp = out / ".adapter.tmp"
    shutil.rmtree(adapter_tmp, ignore_errors=True)
    model.save_pretrained(str(adapter_tmp))
    replace_dir_atomic(adapter_tmp, out / "adapter")
    # Merge into a fresh full-precision copy of the model the adapter was trained on.
    merged_tmp = out / ".merged.tmp"
    shutil.rmtree(merged_tmp, ignore_errors=True)
    merge_adapter(params, trained_on, out / "adapter", merged_tmp)
    replace_dir_atomic(merged_tmp, out / "merged")

    losses = read_loss_csv(out / "loss.csv") if (out / "loss.csv").exists() else []
    lineage = {**lineage, "first_loss": losses[0]["loss"] if losses else None,
               "final_loss": losses[-1]["loss"] if losses else None,
               "tiny_model": params.model.kind == "tiny", "versions": library_versions(),
               "params": dump_params(params)["sft"]}
    write_text_atomic(out / "README.md", model_card(params, stage, lineage))
    write_json_atomic(out / "lineage.json", lineage)  # last: its presence means the stage is complete
    log.info("stage %d done in %.0f s: loss %s -> %s, saved to %s", stage, lineage["train_seconds"],
             lineage["first_loss"], lineage["final_loss"], out)


def write_card_evaluation(params, stage: int, rows: list[dict]) -> Path:
    """Rewrite stage ``stage``'s model card with its held-out scores beside the other models' (05_evaluate
    calls this). ``rows``: one dict per model, ``{"model", "n_captions", "bleu1".."cider", "n_objective",
    "accuracy", "unparsed", "chance"}`` (scores as fractions)."""
    out = RunPaths(Path(params.run_dir)).stage_model(stage)
    lineage = json.loads((out / "lineage.json").read_text())
    write_text_atomic(out / "README.md", model_card(params, stage, lineage, rows))
    return out / "README.md"


def _evaluation_section(stage: int, rows: list[dict]) -> str:
    keys = [("bleu1", "BLEU-1"), ("bleu4", "BLEU-4"), ("meteor", "METEOR"), ("rougeL", "ROUGE-L"),
            ("cider", "CIDEr-D"), ("accuracy", "objective accuracy")]
    head = "| model | " + " | ".join(name for _, name in keys) + " | unparsed | chance |"
    lines = ["## Evaluation (held-out diagrams; scores in %, CIDEr-D as is)", "", head, "|---" * (len(keys) + 3) + "|"]
    for r in rows:
        name = f"**{r['model']}**" if r["model"] == f"stage{stage}" else r["model"]
        cells = [("-" if r.get(k) is None else f"{r[k]:.3f}" if k == "cider" else f"{100 * r[k]:.1f}")
                 for k, _ in keys]
        if r.get("n_objective") is not None:
            cells += [f"{r['unparsed']} of {r['n_objective']}", f"{100 * r['chance']:.1f}"]
        else:
            cells += ["-", "-"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    n = next((r["n_captions"] for r in rows if r.get("n_captions")), "?")
    lines += ["", f"Captions: corpus BLEU and the other metrics on {n} held-out captions; objective accuracy "
              "counts unparsed answers as wrong. Full tables: the run's `results/` folder."]
    return "\n".join(lines) + "\n"


def model_card(params, stage: int, lineage: dict, evaluation: list[dict] | None = None) -> str:
    """The stage's README.md: Hugging Face front matter, then what was trained on what, and how it went;
    with ``evaluation`` (see :func:`write_card_evaluation`) also its scores."""

    base = lineage["base_model"]
    st = params.sft.stage(stage)
    note = f"\n> **{TINY_NOTE}**\n" if lineage["tiny_model"] else ""
    fmt = (lambda x: f"{x:.4f}" if isinstance(x, float) else str(x))
    return f"""---
base_model: {base}
library_name: transformers
pipeline_tag: image-text-to-text
license: apache-2.0
tags: [dicrepro, ict, diagram-captioning, lora, sft, stage-{stage}]
---

# dicrepro stage-{stage} model ({params.name} run)
{note}
Stage {stage} of the progressive SFT of DICModel: LoRA (r={params.sft.lora.r}, alpha={params.sft.lora.alpha},
vision layers: {params.sft.lora.finetune_vision_layers}) with TRL's SFTTrainer ({lineage['backend']} backend),
loss on the assistant's answer only. `merged/` holds the merged weights and processor; `adapter/` the
PEFT adapter.

| | |
|---|---|
| started from | `{lineage['input_model']}` {('+ adapter `' + lineage['input_adapter'] + '`') if lineage['input_adapter'] else ''} |
| previous stage | {lineage['previous_stage'] or '—'} |
| data | `{lineage['data_dir']}` ({lineage['train_rows']} training rows incl. {lineage['replay_rows']} replayed from earlier stages, hash `{lineage['data_hash'][:12]}`) |
| epochs / max steps | {st.epochs} / {st.max_steps} |
| learning rate | {st.learning_rate} |
| batch size x grad accum x processes | {params.sft.batch_size} x {params.sft.grad_accum} x {lineage.get('world_size', 1)} |
| steps | {lineage['global_step']} ({lineage['train_seconds']} s) |
| loss first -> final | {fmt(lineage['first_loss'])} -> {fmt(lineage['final_loss'])} |
| params hash | `{lineage['params_hash']}` |

{_evaluation_section(stage, evaluation) if evaluation else "Evaluation: not yet run (05_evaluate adds its scores here)."}
"""
