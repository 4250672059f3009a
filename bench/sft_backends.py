"""Unsloth against transformers + PEFT + TRL: training samples/s, tokens/s and peak memory (a benchmark, not
a test).

Every variant trains the same model on the same rows, with the same collator (assistant-only loss), the
same LoRA targets (one regex, ``dicrepro.train.backends.lora_target_regex``; each row records a hash of the
modules it adapted), batch size and learning rate, each in a process of its own: Unsloth patches
transformers when imported, and peak memory has to be one variant's alone. Variants:

    hf             transformers + PEFT LoRA, 16-bit weights (bf16 on a GPU, float32 on CPU), trained as the
                   stages train (off CUDA: the output layer only at labelled positions, train/sft_trainer.py)
    hf-trl-head    the same with TRL's own SFTTrainer loss everywhere (off CUDA it scores every position)
    hf-qlora       the same on bitsandbytes 4-bit weights (QLoRA)                 (CUDA only)
    unsloth-qlora  Unsloth's FastVisionModel, 4-bit (the paper profile's backend) (CUDA only)
    unsloth        Unsloth, 16-bit LoRA                                           (CUDA only)

Each variant runs ``--warmup`` steps untimed, then ``--steps`` timed steps; it reports samples/s and tokens/s
(non-padding tokens the model was fed) over the timed steps, and the peak memory of its process (GPU:
torch's peak allocated and reserved bytes; CPU: peak resident set size). The anchor, measured in the same
run, is ``hf-qlora`` on a GPU (what Unsloth's claim of ~1.8x speed and ~40% less memory for Qwen2-VL-7B
compares against) and ``hf`` on CPU; every other variant is printed as a ratio to it.

What is trained:

    --paper           the paper profile's shape, built here from nothing (no download): a random-init
                      Qwen2.5-VL model with Qwen2.5-VL-7B-Instruct's architecture (8.29 B parameters), the
                      checkpoint's own image processor settings under params/paper.yaml's pixel limits, and
                      ``--rows`` rows shaped like the paper's data: 1.0-1.3 MP diagrams (about 1000-1280
                      image tokens at max_pixels 1003520) and answers that bring each row to ~1.3-4K tokens.
                      ``--scale cpu`` builds the same at toy sizes (tests/test_bench_sft.py runs it).
    --model DIR       a local checkpoint (e.g. Qwen2.5-VL-7B-Instruct) on ``--data`` rows
    (neither)         the tiny run's base model and stage-1 rows (``--run-dir``, default runs/tiny)

    python bench/sft_backends.py --paper --variants hf-qlora,unsloth-qlora --steps 6   # on one GPU
    .venv/bin/python bench/sft_backends.py                                              # CPU: tiny run, hf
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import importlib.util
import json
import os
import platform
import random
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
    "hf-trl-head": ("hf", False),
    "hf-qlora": ("hf", True),
    "unsloth-qlora": ("unsloth", True),
    "unsloth": ("unsloth", False),
}

# Architecture sizes of config.json of Qwen/Qwen2.5-VL-3B-Instruct and -7B-Instruct; "cpu": the same
# model family at toy sizes, so that --scale cpu runs the paper path end to end on a CPU.
SHAPES = {
    "3b": dict(text=dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
                         num_key_value_heads=2, vocab_size=151936, rms_norm_eps=1e-6),
               vision=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048,
                           fullatt_block_indexes=[7, 15, 23, 31], window_size=112),
               mrope=[16, 24, 24], tie_word_embeddings=True),
    "7b": dict(text=dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                         num_key_value_heads=4, vocab_size=152064, rms_norm_eps=1e-6),
               vision=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584,
                           fullatt_block_indexes=[7, 15, 23, 31], window_size=112),
               mrope=[16, 24, 24], tie_word_embeddings=False),
    "cpu": dict(text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
                          num_key_value_heads=1, rms_norm_eps=1e-6),  # vocabulary: the tokenizer's
                vision=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                            fullatt_block_indexes=[0], window_size=112),
                mrope=[4, 6, 6], tie_word_embeddings=False),
}
# Rows shaped like the paper's data, and the same at --scale cpu (pixel limits then from ROW_SCALES too).
ROW_SCALES = {
    "paper": dict(pixels=(1.0e6, 1.3e6), answer_tokens=(250, 2700), min_pixels=None, max_pixels=None,
                  max_length=None),
    "cpu": dict(pixels=(2.0e4, 3.0e4), answer_tokens=(20, 60), min_pixels=3136, max_pixels=50176, max_length=512),
}
WORDS = ("the UE sends a Registration Request to the AMF which asks the AUSF to authenticate it then the SMF "
         "selects a UPF and the gNB forwards user plane packets through the core network to the data network").split()


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def shape_config(shape: str, base_dir: Path):
    """A Qwen2.5-VL config at the ``shape`` sizes, token ids from the folder's own config."""
    from transformers import AutoConfig, Qwen2_5_VLConfig

    d = AutoConfig.from_pretrained(str(base_dir)).to_dict()
    spec = SHAPES[shape]
    d["text_config"].update(spec["text"])
    d["text_config"].pop("layer_types", None)  # derived from num_hidden_layers when the config is made
    # Qwen2.5-VL's rotary split of the head's half-dims (time, height, width): [16, 24, 24] for head_dim 128
    d["text_config"]["rope_parameters"] = {**d["text_config"]["rope_parameters"], "mrope_section": spec["mrope"]}
    d["vision_config"].update(spec["vision"])
    d["tie_word_embeddings"] = d["text_config"]["tie_word_embeddings"] = spec["tie_word_embeddings"]
    return Qwen2_5_VLConfig.from_dict(d)


def build_shape(shape: str, base_dir: Path, out: Path, seed: int) -> Path:
    """A random-init Qwen2.5-VL model at the ``shape`` sizes, saved (safetensors) with ``base_dir``'s
    processor files; kept when already there."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration, set_seed

    if (out / "config.json").exists():
        return out
    cfg = shape_config(shape, base_dir)
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
    for f in base_dir.iterdir():  # tokenizer and processor files, as the checkpoint lays them out
        if f.is_file() and f.name != "config.json" and not f.name.endswith(".safetensors"):
            shutil.copy2(f, tmp / f.name)
    tmp.rename(out)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()  # the variants' processes need the memory, not this one
    print(f"built {shape}: {n / 1e9:.2f} B parameters, random init, in {time.time() - t0:.0f} s -> {out}",
          flush=True)
    return out


def paper_base(out: Path, vocab: int) -> Path:
    """Tokenizer (Qwen's special tokens and chat template; trained here), a config to take token ids from,
    and the processor files laid out as Qwen2.5-VL-7B-Instruct's (its preprocessor_config.json)."""
    from dicrepro.params import Params
    from dicrepro.train.processor import write_checkpoint_processor
    from dicrepro.train.tiny_model import tiny_config, tiny_processor
    from dicrepro.train.tiny_tokenizer import train_tokenizer

    if (out / "config.json").exists():
        return out
    tokenizer = train_tokenizer([" ".join(WORDS)] * 8, vocab)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tiny_config(Params(), tokenizer).save_pretrained(str(tmp))
    write_checkpoint_processor(tiny_processor(Params(), tokenizer), tmp)
    tmp.rename(out)
    return out


def paper_rows(base_dir: Path, out: Path, n: int, scale: str, seed: int) -> Path:
    """``n`` rows (id, image, prompt, target) shaped like the paper's: diagram images of the scale's pixel
    range (aspect 1.2-1.8) and answers of a drawn number of tokens (counted with the model's tokenizer)."""
    from datasets import Dataset, Features, Image, Value
    from transformers import AutoTokenizer

    from dicrepro.train.box_diagrams import draw_boxes

    if (out / "dataset_info.json").exists():
        return out
    spec, rng = ROW_SCALES[scale], random.Random(seed)
    tok = AutoTokenizer.from_pretrained(str(base_dir))
    rows = []
    for i in range(n):
        pixels, aspect = rng.uniform(*spec["pixels"]), rng.uniform(1.2, 1.8)
        w = int((pixels * aspect) ** 0.5)
        labels = rng.sample(["UE", "gNB", "AMF", "SMF", "UPF", "AUSF", "UDM", "PCF", "Router", "Switch"], 6)
        want = rng.randint(*spec["answer_tokens"])
        words = [WORDS[(i + k) % len(WORDS)] for k in range(want)]  # ~1 token each; trimmed to the count
        while len(tok(" ".join(words), add_special_tokens=False)["input_ids"]) > want:
            words = words[:-max(1, len(words) // 50)]
        rows.append({"id": f"paper-{i:04d}", "image": draw_boxes(labels, size=(w, int(pixels / w))),
                     "prompt": "Describe this ICT diagram in detail.", "target": " ".join(words)})
    features = Features({"id": Value("string"), "image": Image(), "prompt": Value("string"),
                         "target": Value("string")})
    Dataset.from_list(rows, features=features).save_to_disk(str(out))
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
    from dicrepro.train.backends import BACKENDS, adapted_module_names
    from dicrepro.train.collate import VisionSFTCollator, with_lengths
    from dicrepro.train.sft import _sft_config
    from dicrepro.train.sft_trainer import sft_trainer_class

    os.environ.setdefault("DICREPRO_BASE_MODEL", str(args.model))
    spec = ROW_SCALES.get(args.scale or "", {})
    params = load_params(args.params, {
        "model.kind": "local", "model.path": str(args.model), "sft.backend": backend,
        "sft.load_in_4bit": four_bit, "sft.save_steps": 10**9, "sft.logging_steps": 1,
        "sft.stage1.max_steps": args.warmup + args.steps, "run_dir": str(args.work / "run"),
        **({"model.min_pixels": spec["min_pixels"]} if spec.get("min_pixels") else {}),
        **({"model.max_pixels": spec["max_pixels"]} if spec.get("max_pixels") else {}),
        **({"sft.max_length": spec["max_length"]} if spec.get("max_length") else {}),
        **({"sft.batch_size": args.batch_size} if args.batch_size else {}),
        **({"sft.grad_accum": args.grad_accum} if args.grad_accum else {})})
    s = params.sft
    rows = _rows(args.data, s.batch_size * s.grad_accum * (args.warmup + args.steps))
    cuda = torch.cuda.is_available()
    t_load = time.time()
    model, processor = BACKENDS[backend](params, args.model, None)
    load_s = time.time() - t_load
    print(f"{args.variant}: model loaded in {load_s:.1f} s", file=sys.stderr, flush=True)
    adapted = adapted_module_names(model)

    if s.group_by_length:  # batches drawn as a stage's training draws them (sft.group_by_length)
        rows = with_lengths(rows, processor)
    collate, tokens, image_tokens = VisionSFTCollator(processor, s.max_length), [], []
    image_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")

    def counting_collator(batch_rows):  # tokens per micro-batch, in the order the trainer draws them
        batch = collate(batch_rows)
        tokens.append(int(batch["attention_mask"].sum()))
        image_tokens.append(int((batch["input_ids"] == image_id).sum()))
        return batch

    class StepClock(TrainerCallback):
        def __init__(self):
            self.marks: list[float] = []

        def on_step_end(self, a, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
            self.marks.append(time.perf_counter())
            prev = self.marks[-2] if len(self.marks) > 1 else t_start
            memory = f", peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB allocated" if cuda else ""
            print(f"step {len(self.marks)}: {self.marks[-1] - prev:.2f} s, {sum(tokens)} tokens collated so far"
                  f"{memory}", file=sys.stderr, flush=True)

    clock = StepClock()
    trainer_cls = SFTTrainer if args.variant == "hf-trl-head" else sft_trainer_class("cuda" if cuda else "cpu")
    trainer = trainer_cls(model=model, args=_sft_config(params, 1, args.work / args.variant, backend),
                         train_dataset=rows, processing_class=processor, data_collator=counting_collator,
                         callbacks=[clock])
    if cuda:
        torch.cuda.synchronize()
    t_start = time.perf_counter()
    result = trainer.train()
    marks = [t_start, *clock.marks]
    timed = marks[args.warmup:]  # from the end of the last warm-up step
    seconds = timed[-1] - timed[0]
    steps = len(timed) - 1
    micro = s.grad_accum
    # by index, not by time: the data loader may collate one batch ahead of the step being trained
    timed_tokens = sum(tokens[args.warmup * micro:(args.warmup + steps) * micro])
    samples = s.batch_size * s.grad_accum * steps
    n_train, n_all = model.get_nb_trainable_parameters()
    row = {"variant": args.variant, "backend": backend, "load_in_4bit": four_bit, "steps": steps,
           "samples": samples, "seconds": round(seconds, 3), "samples_per_s": samples / seconds,
           "tokens_per_s": timed_tokens / seconds, "tokens_per_sample": sum(tokens) / max(1, len(rows)),
           "image_tokens_per_sample": sum(image_tokens) / max(1, len(rows)),
           "load_s": round(load_s, 1), "train_loss": result.training_loss,
           "trainable_params": n_train, "all_params": n_all, "lora_modules": len(adapted),
           "lora_modules_sha": hashlib.sha256("\n".join(adapted).encode()).hexdigest()[:12],
           "batch": f"{s.batch_size}x{s.grad_accum}", "max_pixels": params.model.max_pixels,
           "max_length": s.max_length}
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
    for flag, value in (("--batch-size", args.batch_size), ("--grad-accum", args.grad_accum),
                        ("--scale", args.scale)):
        if value:
            cmd += [flag, str(value)]
    print(f"--- {variant}", flush=True)
    # The worker's output is passed on as it comes (a run cut off by a timeout still shows how far it got:
    # loading, each step), and its last lines kept for the failure message.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: collections.deque[str] = collections.deque(maxlen=15)
    result = None
    for line in proc.stdout:
        at = line.find("RESULT {")  # stderr is merged in: a fragment without a newline may come first
        if at >= 0:
            result = json.loads(line[at + len("RESULT "):])
            line = line[:at] + "\n" if at else ""
        if not line:
            continue
        print(line, end="", file=sys.stderr, flush=True)
        if line.strip():
            tail.append(line.rstrip())
    proc.wait()
    if result is not None:
        return result
    return {"variant": variant, "failed": tail[-1] if tail else f"(no output; exit code {proc.returncode})"}


def table(rows: list[dict], anchor: str) -> str:
    """The Markdown comparison of result rows, ratios to ``anchor``."""
    ref = next((r for r in rows if r["variant"] == anchor and "samples_per_s" in r), None)
    mem = "peak_allocated_gib" if any("peak_allocated_gib" in r for r in rows) else "peak_rss_gib"
    lines = [(f"| variant | samples/s | x {anchor} | tokens/s | peak memory (GiB) | x {anchor} | tokens/sample "
              "| load (s) | LoRA modules |"), "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if "samples_per_s" not in r:
            lines.append(f"| {r['variant']} | {r.get('skipped') or 'failed: ' + r.get('failed', '')} "
                         "| | | | | | | |")
            continue
        sp = f"{r['samples_per_s'] / ref['samples_per_s']:.2f}" if ref else "-"
        mr = f"{r[mem] / ref[mem]:.2f}" if ref else "-"
        lines.append(f"| {r['variant']} | {r['samples_per_s']:.3f} | {sp} | {r['tokens_per_s']:.0f} | {r[mem]:.2f} "
                     f"| {mr} | {r['tokens_per_sample']:.0f} | {r['load_s']} "
                     f"| {r['lora_modules']} ({r['lora_modules_sha']}) |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="See docs/benchmarks.md for measured results.")
    ap.add_argument("--paper", action="store_true", help="paper-shaped model and rows, built here (see above)")
    ap.add_argument("--scale", choices=["paper", "cpu"], help="with --paper: paper (default) or cpu (toy sizes)")
    ap.add_argument("--rows", type=int, default=64, help="with --paper: rows to build (default 64)")
    ap.add_argument("--build-only", action="store_true", help="with --paper: build model and rows, train nothing")
    ap.add_argument("--run-dir", type=Path, default=Path("runs/tiny"),
                    help="without --paper/--model: the run whose base and stage-1 data to use (default runs/tiny)")
    ap.add_argument("--model", type=Path, help="a local checkpoint to train")
    ap.add_argument("--data", type=Path, help="saved dataset with image/prompt/target (default: RUN_DIR/data/stage1)")
    ap.add_argument("--params", type=Path, help="params file for LoRA/batch/pixels (default: params/paper.yaml, "
                    "params/tiny.yaml for the tiny run)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {list(VARIANTS)}")
    ap.add_argument("--steps", type=int, default=10, help="timed optimizer steps per variant (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    ap.add_argument("--batch-size", type=int, help="override sft.batch_size")
    ap.add_argument("--grad-accum", type=int, help="override sft.grad_accum")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random weights and rows")
    ap.add_argument("--work", type=Path, help="scratch folder, reused between calls (default: a temporary one)")
    ap.add_argument("--out", type=Path, help="also write the results as JSON here")
    ap.add_argument("--jsonl", type=Path, help="append each variant's row here as soon as it is measured")
    ap.add_argument("--worker", choices=list(VARIANTS), dest="variant", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.variant:  # one variant, in its own process
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return 0
    cuda = _cuda()
    scratch = tempfile.TemporaryDirectory(prefix="dicrepro-bench-") if args.work is None else None
    args.work = Path(scratch.name) if scratch else args.work
    args.work.mkdir(parents=True, exist_ok=True)
    if args.paper:
        args.scale = args.scale or "paper"
        if args.scale == "paper" and not cuda:
            ap.error("--paper builds an 8.29 B-parameter model: on a CPU use --paper --scale cpu")
        shape = "7b" if args.scale == "paper" else "cpu"
        base = paper_base(args.work / "base", vocab=1024)
        args.model = build_shape(shape, base, args.work / f"qwen2.5-vl-{shape}", args.seed)
        args.data = paper_rows(base, args.work / f"rows-{args.scale}-{args.rows}", args.rows, args.scale, args.seed)
        args.params = args.params or Path("params/paper.yaml")
        if args.build_only:
            print(f"built {args.model} and {args.data}")
            return 0
    elif args.model is None:
        args.model = args.run_dir / "models" / "base"
        args.params = args.params or Path("params/tiny.yaml")
    args.params = args.params or Path("params/paper.yaml")
    args.data = args.data or args.run_dir / "data" / "stage1"
    for what, path in (("model", args.model), ("data", args.data)):
        if not path.exists():
            ap.error(f"{what} folder {path} does not exist: run `make reproduce` first (it builds "
                     f"{args.run_dir}), pass --{what}, or use --paper")
    anchor = "hf-qlora" if cuda else "hf"
    print(f"model {args.model} | data {args.data} | params {args.params} | {args.warmup} + {args.steps} steps"
          f" | anchor {anchor}", flush=True)
    rows = []
    for v in [x.strip() for x in args.variants.split(",") if x.strip()]:
        if v not in VARIANTS:
            ap.error(f"unknown variant {v!r}; choose from {list(VARIANTS)}")
        reason = _skip_reason(v, cuda)
        rows.append({"variant": v, "skipped": f"skipped: {reason}"} if reason else _run_variant(args, v))
        if args.jsonl:
            with args.jsonl.open("a", encoding="utf-8") as f:
                f.write(json.dumps({**rows[-1], "model": str(args.model), "scale": args.scale}) + "\n")
    print()
    print(table(rows, anchor))
    if args.out:
        args.out.write_text(json.dumps({"anchor": anchor, "model": str(args.model), "scale": args.scale,
                                        "rows": rows}, indent=2))
    if scratch:
        scratch.cleanup()
    return 0 if any("samples_per_s" in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
