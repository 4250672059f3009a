"""How many figures per second does ``dicrepro caption`` caption, batch 1 against batch 8? (a benchmark)

Captions the same N figures (PIL box diagrams of 3-8 labelled boxes, written as PNG files into a temporary
folder) twice in one run with the same model: ``--batch-size 1`` (the anchor) and ``--batch-size 8``, and
prints images/s for both, their ratio, and whether the two JSONL files hold the same captions (greedy
decoding with left padding: batching must change nothing).

Model: ``--model DIR`` (a stage folder such as runs/tiny/models/stage3, or any model folder), else a
randomly initialised tiny Qwen2.5-VL-architecture model built here in seconds (its captions are noise;
the timing of the generation loop is what is measured).

Usage: ``.venv/bin/python bench/caption_speed.py [--n 32] [--max-new-tokens 48] [--model DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def tiny_model(root: Path) -> Path:
    from dicrepro.params import Params
    from dicrepro.train.box_diagrams import box_dataset
    from dicrepro.train.tiny_model import build_tiny_base

    p = Params(run_dir=root, seed=3)
    p.model.tiny = p.model.tiny.model_copy(update=dict(pretrain_samples=0))
    general = box_dataset(8, 0, seed=1, domain="general")
    return build_tiny_base(p, general, root / "base", tokenizer_corpus=list(general["train"]["target"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32, help="figures (default 32)")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--model", default=None, help="model folder (default: a random-init tiny model)")
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from dicrepro.atomic import read_jsonl
    from dicrepro.caption.run import caption_inputs
    from dicrepro.train.box_diagrams import box_dataset

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = Path(a.model) if a.model else tiny_model(tmp / "model")
        figs = tmp / "figures"
        figs.mkdir()
        for i, row in enumerate(box_dataset(0, a.n, seed=5, domain="ict", min_nodes=3, max_nodes=8)["test"]):
            row["image"].save(figs / f"f{i:03d}.png")
        caption_inputs([figs], model, tmp / "warmup.jsonl", batch_size=1, max_new_tokens=4, limit=1)  # load once
        timings, captions = {}, {}
        for batch in (1, 8):
            out = tmp / f"b{batch}.jsonl"
            t = time.perf_counter()
            caption_inputs([figs], model, out, batch_size=batch, max_new_tokens=a.max_new_tokens)
            timings[batch] = time.perf_counter() - t
            captions[batch] = [r["caption"] for r in read_jsonl(out)]
    report = {
        "figures": a.n, "max_new_tokens": a.max_new_tokens, "model": str(a.model or "random-init tiny"),
        "machine": f"{platform.processor() or platform.machine()}, python {platform.python_version()}",
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "batch1_images_per_s": round(a.n / timings[1], 2), "batch8_images_per_s": round(a.n / timings[8], 2),
        "speedup_batch8_over_batch1": round(timings[1] / timings[8], 2),
        "same_captions": captions[1] == captions[8],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
