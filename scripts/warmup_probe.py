"""Does a vision warm-up variant make a tower that reads more diagram types? Warm up a fresh tiny tower, probe it.

    python scripts/warmup_probe.py [--run runs/tiny] [--seed 1234] [--flips] [--erase 0.25] [--epochs N] [--copies K]

Builds the tiny model of params/tiny.yaml from random weights (tokenizer and processor taken from the run's
base), runs only the vision-first warm-up on the run's general diagrams and their document-look copies
(``model.tiny.vision_warmup_*``, except what the flags set: the augmentation, and epochs and copies when
given), then fits a linear probe on the general diagrams (``scripts/vision_probe.py``) and scores it on the
stage-1 and stage-2 diagrams, train and test splits together (440 and 120 in the tiny profile). README
"The tiny stand-in's recipe", point 2 quotes it: 78.4% / 65.8% without augmentation and 89.1% / 70.0% with
``--flips --erase 0.25`` at seed 1234. About 3 minutes on 2 cores. A developer's measurement: it prints, it
writes nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from datasets import load_from_disk
from transformers import AutoProcessor
from vision_probe import features, fit_probe

from dicrepro.params import load_params
from dicrepro.train.patch_embed import use_matmul_patch_embed
from dicrepro.train.tiny_model import init_tiny_model
from dicrepro.train.vision_warmup import document_looks, vision_warmup


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, default=Path("runs/tiny"), help="a finished run (its data/ and models/base)")
    ap.add_argument("--params", type=Path, default=Path("params/tiny.yaml"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--flips", action="store_true", help="random left-right / upside-down flips each epoch")
    ap.add_argument("--erase", type=float, default=0.0, help="odds of blanking each token square each epoch")
    ap.add_argument("--epochs", type=int, help="warm-up epochs (default: the params')")
    ap.add_argument("--copies", type=int, help="document-look copies of each diagram (default: the params')")
    a = ap.parse_args(argv)
    params = load_params(a.params).model_copy(update={"seed": a.seed})
    t = params.model.tiny
    epochs = a.epochs if a.epochs is not None else t.vision_warmup_epochs
    copies = a.copies if a.copies is not None else t.vision_warmup_copies
    processor = AutoProcessor.from_pretrained(a.run / "models" / "base")
    model = init_tiny_model(params, processor.tokenizer)
    use_matmul_patch_embed(model)
    general = load_from_disk(str(a.run / "data" / "pretrain"))["train"]
    images, labels = list(general["image"]), list(general["diagram_type"])
    looks = document_looks(images, copies, a.seed)
    curve = vision_warmup(model, processor, images + looks, labels * (1 + copies),
                          epochs=epochs, lr=t.vision_warmup_lr, seed=a.seed,
                          token_loss=t.vision_warmup_token_loss, flips=a.flips, erase=a.erase)
    model.eval()
    accuracy = fit_probe(*features(model, processor, general))
    scores = []
    for stage in ("stage1", "stage2"):
        dd = load_from_disk(str(a.run / "data" / stage))
        both = [features(model, processor, dd[split]) for split in ("train", "test")]
        x, types = torch.cat([f[0] for f in both]), [y for f in both for y in f[1]]
        scores.append(f"{stage} {100 * accuracy(x, types):.1f}% of {len(types)}")
    print(f"seed {a.seed}, flips {a.flips}, erase {a.erase}, {epochs} epochs, {copies} copies: warm-up fitted "
          f"{100 * curve[-1]['accuracy']:.1f}% of its rows in the last epoch; probe: " + ", ".join(scores))


if __name__ == "__main__":
    main()
