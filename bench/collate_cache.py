"""Training rows encoded once or every epoch: the collator's time per row over several epochs, with and
without ``sft.cache_mb`` (a benchmark, not a test).

Every epoch of a stage (and of the tiny base's type-reading and pre-training phases) used to decode each
row's PNG and run the image processor and tokenizer on it again. The anchor, measured in the same run, is
that: ``VisionSFTCollator`` without a cache, over rows whose images the dataset decodes. The cached
collator gets the rows with their images undecoded (``undecoded_images``), as the stages give them, and
keeps each row's encoding after its first epoch. Both see the same rows in the same shuffled batches each
epoch; every batch is checked equal (tensor by tensor) to the anchor's. Reported: ms per row in the first
epoch and in the later ones, the whole run's ratio, and the cache's size.

    .venv/bin/python bench/collate_cache.py [--run-dir runs/tiny] [--data stage3] [--epochs 3] [--rows 600]
"""

from __future__ import annotations

import argparse
import platform
import random
import time
from pathlib import Path


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run-dir", type=Path, default=Path("runs/tiny"), help="a finished run (make reproduce)")
    ap.add_argument("--data", default="stage3", help="which of RUN/data/ to read (pretrain, stage1, stage2, stage3)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rows", type=int, default=600, help="rows of its train split (the first N)")
    ap.add_argument("--batch-size", type=int, default=8)
    a = ap.parse_args(argv)

    import torch
    from datasets import load_from_disk
    from transformers import AutoProcessor

    from dicrepro.train.collate import VisionSFTCollator, undecoded_images

    processor = AutoProcessor.from_pretrained(a.run_dir / "models" / "base")
    train = load_from_disk(str(a.run_dir / "data" / a.data))["train"]
    train = train.select(range(min(a.rows, len(train)))).select_columns(["id", "image", "prompt", "target"])
    raw = undecoded_images(train)
    plain = VisionSFTCollator(processor, 1024)
    cached = VisionSFTCollator(processor, 1024, cache_mb=4096)
    rng = random.Random(0)
    times = {"anchor": [], "cached": []}
    for _ in range(a.epochs):
        order = list(range(len(train)))
        rng.shuffle(order)
        batches = [order[i:i + a.batch_size] for i in range(0, len(order), a.batch_size)]
        spent = {"anchor": 0.0, "cached": 0.0}
        for idx in batches:
            t = time.perf_counter()
            want = plain([train[i] for i in idx])  # the dataset decodes each image, as before
            spent["anchor"] += time.perf_counter() - t
            t = time.perf_counter()
            got = cached([raw[i] for i in idx])
            spent["cached"] += time.perf_counter() - t
            assert all(torch.equal(got[k], want[k]) for k in want) and sorted(got) == sorted(want), idx
        for k in times:
            times[k].append(1000 * spent[k] / len(train))
    # rows of one image share its patches: each tensor counted once
    unique = {v.data_ptr(): v for e in cached._cache.values() for v in e.values()}
    size = sum(v.element_size() * v.nelement() for v in unique.values())
    total = {k: sum(v) for k, v in times.items()}
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}; {len(train)} rows of {a.run_dir / 'data' / a.data}, {a.epochs} epochs, "
          f"batches of {a.batch_size}; every batch equal to the anchor's")
    print("| collator | epoch 1 (ms/row) | later epochs (ms/row) | whole run (s) | x anchor |")
    print("|---|---:|---:|---:|---:|")
    for k in ("anchor", "cached"):
        later = sum(times[k][1:]) / max(1, len(times[k]) - 1)
        print(f"| {k} | {times[k][0]:.2f} | {later:.2f} | {total[k] * len(train) / 1000:.1f} | "
              f"{total[k] / total['anchor']:.2f} |")
    print(f"cache: {len(cached._cache)} rows, {len(cached._patches)} images, {size / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
