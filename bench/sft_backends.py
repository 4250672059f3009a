"""Unsloth against transformers + PEFT + TRL: training samples/s and peak memory (a benchmark, not a test).

Every variant trains the same model on the same rows, with the same collator (assistant-only loss), LoRA
settings, batch size and learning rate, each in a process of its own: Unsloth patches transformers when
imported, and peak memory has to be one variant's alone. Variants:

    hf             transformers + PEFT LoRA, 16-bit weights (bf16 on a GPU, float32 on CPU)
    hf-qlora       the same on bitsandbytes 4-bit weights (QLoRA)                 (CUDA only)
    unsloth-qlora  Unsloth's FastVisionModel, 4-bit (the paper profile's backend) (CUDA only)
    unsloth        Unsloth, 16-bit LoRA                                           (CUDA only)

Each variant runs ``--warmup`` steps untimed, then ``--steps`` timed steps; it reports samples/s over the
timed steps and the peak memory of its whole process (GPU: torch's peak allocated and reserved bytes;
CPU: peak resident set size). The anchor, measured in the same run, is ``hf-qlora`` on a GPU (what
Unsloth's own claim of ~1.8x speed and ~40% less memory for Qwen2-VL-7B compares against) and ``hf`` on
CPU; every other variant is printed as a ratio to it. A variant that cannot run here is listed with the
reason.

The model: ``--model DIR`` (a local checkpoint, e.g. Qwen2.5-VL-7B-Instruct), or ``--shape 3b|7b``: a
Qwen2.5-VL model at the published sizes of Qwen2.5-VL-3B/7B-Instruct with random weights, built here on
the GPU (speed and memory depend on shapes, not on weight values; nothing is downloaded), or ``--shape
tiny``: the run's tiny base model. The tokenizer and processor come from ``--processor`` (default: the run's
tiny base). The rows come from ``--data`` (default: the run's stage-1 dataset).

    .venv/bin/python bench/sft_backends.py                          # CPU: the hf variant on the tiny model
    python bench/sft_backends.py --shape 7b --params params/paper.yaml --steps 20   # on one GPU
    python bench/sft_backends.py --prepare .bench                   # copy data + processor for another machine
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

VARIANTS = {  # name: (sft.backend, sft.load_in_4bit)
    "hf": ("hf", False),
    "hf-qlora": ("hf", True),
    "unsloth-qlora": ("unsloth", True),
    "unsloth": ("unsloth", False),
}

# Published sizes (config.json of Qwen/Qwen2.5-VL-3B-Instruct and -7B-Instruct).
SHAPES = {
    "3b": dict(text=dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
                         num_key_value_heads=2, vocab_size=151936),
               vision=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048,
                           fullatt_block_indexes=[7, 15, 23, 31]),
               tie_word_embeddings=True),
    "7b": dict(text=dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                         num_key_value_heads=4, vocab_size=152064),
               vision=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584,
                           fullatt_block_indexes=[7, 15, 23, 31]),
               tie_word_embeddings=False),
}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def shape_config(shape: str, processor_dir: Path):
    """The config of Qwen2.5-VL at the published ``shape`` sizes, token ids from the folder's own config."""
    from transformers import AutoConfig, Qwen2_5_VLConfig

    d = AutoConfig.from_pretrained(str(processor_dir)).to_dict()
    spec = SHAPES[shape]
    d["text_config"].update(spec["text"])
    d["text_config"].pop("layer_types", None)  # derived from num_hidden_layers when the config is made
    # head_dim 128 in both: Qwen2.5-VL's own rotary split of the 64 half-dims (time, height, width)
    d["text_config"]["rope_parameters"] = {**d["text_config"]["rope_parameters"], "mrope_section": [16, 24, 24]}
    d["vision_config"].update(spec["vision"])
    d["tie_word_embeddings"] = d["text_config"]["tie_word_embeddings"] = spec["tie_word_embeddings"]
    return Qwen2_5_VLConfig.from_dict(d)


def build_shape(shape: str, processor_dir: Path, out: Path, seed: int) -> Path:
    """A random-init Qwen2.5-VL model with the published ``shape`` sizes, saved with the processor."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration, set_seed

    from dicrepro.train.processor import load_processor

    if (out / "config.json").exists():
        return out
    cfg = shape_config(shape, processor_dir)
    set_seed(seed)
    device = "cuda" if _cuda() else "cpu"
    t0 = time.time()
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(
            cfg, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    n = sum(p.numel() for p in model.parameters())
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    load_processor(processor_dir).save_pretrained(str(tmp))
    tmp.rename(out)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()  # the variants' processes need the memory, not this one
    print(f"built {shape}: {n / 1e9:.2f} B parameters, random init, in {time.time() - t0:.0f} s -> {out}",
          flush=True)
    return out


def _rows(data_dir: Path, n: int):
    from datasets import concatenate_datasets, load_from_disk

    ds = load_from_disk(str(data_dir))
    ds = ds["train"] if hasattr(ds, "keys") else ds
    ds = ds.select_columns(["id", "image", "prompt", "target"])
    reps = -(-n // len(ds))
    return concatenate_datasets([ds] * reps).select(range(n)) if reps > 1 else ds.select(range(n))


def worker(args) -> dict:
    """One variant in this process: load, train warmup + steps, measure. Returns the result row."""
    backend, four_bit = VARIANTS[args.variant]
    if backend == "unsloth":
        import unsloth  # noqa: F401 (first: it patches transformers, peft and trl)
    import torch
    from transformers import TrainerCallback
    from trl import SFTTrainer

    from dicrepro.params import load_params
    from dicrepro.train.backends import BACKENDS
    from dicrepro.train.collate import VisionSFTCollator
    from dicrepro.train.sft import _sft_config

    params = load_params(args.params, {
        "model.kind": "local", "model.path": str(args.model), "sft.backend": backend,
        "sft.load_in_4bit": four_bit, "sft.save_steps": 10**9, "sft.logging_steps": 1,
        "sft.stage1.max_steps": args.warmup + args.steps, "run_dir": str(args.work / "run"),
        **({"sft.batch_size": args.batch_size} if args.batch_size else {}),
        **({"sft.grad_accum": args.grad_accum} if args.grad_accum else {})})
    s = params.sft
    rows = _rows(args.data, s.batch_size * s.grad_accum * (args.warmup + args.steps))
    cuda = torch.cuda.is_available()
    t_load = time.time()
    model, processor = BACKENDS[backend](params, args.model, None)
    load_s = time.time() - t_load

    class StepClock(TrainerCallback):
        def __init__(self):
            self.marks: list[float] = []

        def on_step_end(self, a, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
            self.marks.append(time.perf_counter())

    clock = StepClock()
    trainer = SFTTrainer(model=model, args=_sft_config(params, 1, args.work / args.variant, backend),
                         train_dataset=rows, processing_class=processor,
                         data_collator=VisionSFTCollator(processor, s.max_length), callbacks=[clock])
    if cuda:
        torch.cuda.synchronize()
    t_start = time.perf_counter()
    result = trainer.train()
    marks = [t_start, *clock.marks]
    timed = marks[args.warmup:]  # from the end of the last warm-up step
    seconds = timed[-1] - timed[0]
    samples = s.batch_size * s.grad_accum * (len(timed) - 1)
    n_train, n_all = model.get_nb_trainable_parameters()
    row = {"variant": args.variant, "backend": backend, "load_in_4bit": four_bit, "steps": len(timed) - 1,
           "samples": samples, "seconds": round(seconds, 3), "samples_per_s": samples / seconds,
           "load_s": round(load_s, 1), "train_loss": result.training_loss,
           "trainable_params": n_train, "all_params": n_all,
           "batch": f"{s.batch_size}x{s.grad_accum}", "max_pixels": params.model.max_pixels}
    if cuda:
        row["peak_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
        row["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
        row["device"] = torch.cuda.get_device_name()
    else:
        row["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        row["device"] = f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
    return row


def _skip_reason(variant: str, cuda: bool) -> str | None:
    from dicrepro.train.backends import unsloth_importable

    backend, four_bit = VARIANTS[variant]
    if (backend == "unsloth" or four_bit) and not cuda:
        return "needs a CUDA GPU"
    if backend == "unsloth" and not unsloth_importable():
        return "unsloth is not installed (pip install -e .[gpu])"
    if four_bit and importlib.util.find_spec("bitsandbytes") is None:
        return "bitsandbytes is not installed (pip install -e .[gpu])"
    return None


def _run_variant(args, variant: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", variant, "--model", str(args.model), "--data", str(args.data),
           "--params", str(args.params), "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--work", str(args.work)]
    if args.batch_size:
        cmd += ["--batch-size", str(args.batch_size)]
    if args.grad_accum:
        cmd += ["--grad-accum", str(args.grad_accum)]
    print(f"--- {variant}", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-15:]
    print("\n".join(tail), file=sys.stderr)
    return {"variant": variant, "failed": tail[-1]}


def _table(rows: list[dict], anchor: str) -> str:
    ref = next((r for r in rows if r["variant"] == anchor and "samples_per_s" in r), None)
    mem = "peak_allocated_gib" if any("peak_allocated_gib" in r for r in rows) else "peak_rss_gib"
    lines = [f"| variant | samples/s | x {anchor} | peak memory (GiB) | x {anchor} | load (s) | trainable |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "samples_per_s" not in r:
            lines.append(f"| {r['variant']} | {r.get('skipped') or 'failed: ' + r.get('failed', '')} | | | | | |")
            continue
        sp = f"{r['samples_per_s'] / ref['samples_per_s']:.2f}" if ref else "-"
        mr = f"{r[mem] / ref[mem]:.2f}" if ref else "-"
        lines.append(f"| {r['variant']} | {r['samples_per_s']:.2f} | {sp} | {r[mem]:.2f} | {mr} | {r['load_s']} "
                     f"| {r['trainable_params'] / 1e6:.1f} M |")
    return "\n".join(lines)


def prepare(run_dir: Path, out: Path, n: int) -> None:
    """Copy ``n`` stage-1 rows and the tiny base's processor to ``out`` (to carry to another machine)."""
    from datasets import load_from_disk

    ds = load_from_disk(str(run_dir / "data" / "stage1"))["train"]
    ds.select(range(min(n, len(ds)))).select_columns(["id", "image", "prompt", "target"]).save_to_disk(
        str(out / "data"))
    shutil.copytree(run_dir / "models" / "base", out / "processor", dirs_exist_ok=True)
    print(f"prepared {out}/data ({min(n, len(ds))} rows) and {out}/processor")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="See docs/benchmarks.md for measured results.")
    ap.add_argument("--run-dir", type=Path, default=Path("runs/tiny"),
                    help="run whose stage-1 data and tiny base are the defaults (default: runs/tiny)")
    ap.add_argument("--model", type=Path, help="a local checkpoint to train (overrides --shape)")
    ap.add_argument("--shape", choices=["tiny", *SHAPES], default="tiny",
                    help="tiny: the run's base; 3b/7b: random-init Qwen2.5-VL at the published sizes")
    ap.add_argument("--processor", type=Path, help="processor folder for --shape 3b/7b (default: RUN_DIR/models/base)")
    ap.add_argument("--data", type=Path, help="saved dataset with image/prompt/target (default: RUN_DIR/data/stage1)")
    ap.add_argument("--params", type=Path, help="params file for LoRA/batch/pixels (default: params/tiny.yaml "
                    "for --shape tiny, params/paper.yaml otherwise)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {list(VARIANTS)}")
    ap.add_argument("--steps", type=int, default=10, help="timed optimizer steps per variant (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    ap.add_argument("--batch-size", type=int, help="override sft.batch_size")
    ap.add_argument("--grad-accum", type=int, help="override sft.grad_accum")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random weights for --shape 3b/7b")
    ap.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    ap.add_argument("--out", type=Path, help="also write the results as JSON here")
    ap.add_argument("--prepare", type=Path, metavar="DIR",
                    help="only copy RUN_DIR's data (64 rows) and processor to DIR/data, DIR/processor")
    ap.add_argument("--worker", choices=list(VARIANTS), dest="variant", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.prepare:
        prepare(args.run_dir, args.prepare, 64)
        return 0
    if args.variant:  # one variant, in its own process
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return 0

    cuda = _cuda()
    if args.model is None and args.shape in SHAPES and not cuda:
        ap.error(f"--shape {args.shape} builds a {args.shape.upper()}-parameter model in float32: on CPU use "
                 "--shape tiny or --model DIR")
    args.params = args.params or Path("params/tiny.yaml" if args.shape == "tiny" and not args.model
                                      else "params/paper.yaml")
    args.data = args.data or args.run_dir / "data" / "stage1"
    processor = args.processor or args.run_dir / "models" / "base"
    needed = [("data", args.data)] + ([("processor", processor)] if args.model is None else [])
    for what, path in needed:
        if not path.exists():
            ap.error(f"{what} folder {path} does not exist: run `make reproduce` first (it builds "
                     f"{args.run_dir}), or pass --{what}")
    scratch = tempfile.TemporaryDirectory(prefix="dicrepro-bench-") if args.work is None else None
    args.work = Path(scratch.name) if scratch else args.work
    if args.model is None:
        args.model = processor if args.shape == "tiny" else build_shape(args.shape, processor,
                                                                        args.work / f"qwen2.5-vl-{args.shape}",
                                                                        args.seed)
    anchor = "hf-qlora" if cuda else "hf"
    print(f"model {args.model} | data {args.data} | params {args.params} | {args.warmup} + {args.steps} steps"
          f" | anchor {anchor}", flush=True)
    rows = []
    for v in [x.strip() for x in args.variants.split(",") if x.strip()]:
        if v not in VARIANTS:
            ap.error(f"unknown variant {v!r}; choose from {list(VARIANTS)}")
        reason = _skip_reason(v, cuda)
        rows.append({"variant": v, "skipped": f"skipped: {reason}"} if reason else _run_variant(args, v))
    print()
    print(_table(rows, anchor))
    if args.out:
        args.out.write_text(json.dumps({"anchor": anchor, "model": str(args.model), "shape": args.shape,
                                        "rows": rows}, indent=2))
    if scratch:
        scratch.cleanup()
    ran = any("samples_per_s" in r for r in rows)
    return 0 if ran else 1


if __name__ == "__main__":
    sys.exit(main())
