"""How well does a model's vision tower tell diagram types apart? A linear probe on its image tokens.

    python scripts/vision_probe.py runs/tiny/models/base [--run runs/tiny]

Fits a linear classifier (L-BFGS, light L2) on the mean of each image's merged tokens (what the language
model receives) and reports type accuracy on held-out images:
- ``general -> ICT``: fitted on the run's general pre-training diagrams, scored on the stage-1 and stage-2
  diagrams (does what the tower learnt transfer to the ICT domain and to document-look pages?);
- ``ICT -> ICT``: fitted on stage-1 train, scored on stage-1 test and stage-2 test (what the features
  hold at all).
This is how issue 19 found that the tiny tower, warmed up on 300 general diagrams, told apart only 63%
of the ICT diagrams' types: the captions cannot name the type better than the image tokens carry it. A
developer's measurement, not a pipeline step; it prints, it writes nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from datasets import load_from_disk
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

from dicrepro.progress import tqdm
from dicrepro.train.vision_warmup import _pixels, pooled_image_tokens


def features(model, processor, ds, batch: int = 16) -> tuple[torch.Tensor, list[str]]:
    """Pooled image tokens of every row of ``ds`` and its diagram types."""
    out = []
    with torch.no_grad():
        for i in tqdm(range(0, len(ds), batch), desc="image tokens", unit="batch"):
            out.append(pooled_image_tokens(model, [_pixels(processor, im) for im in ds[i:i + batch]["image"]]))
    return torch.cat(out), list(ds["diagram_type"])


def fit_probe(x: torch.Tensor, labels: list[str]):
    """A standardised linear classifier fitted by L-BFGS; returns ``accuracy(x, labels)``."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    classes = sorted(set(labels))
    y = torch.tensor([classes.index(c) for c in labels])
    torch.manual_seed(0)
    head = torch.nn.Linear(x.shape[1], len(classes))
    opt = torch.optim.LBFGS(head.parameters(), max_iter=500)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(head((x - mu) / sd), y) + 1e-3 * (head.weight ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)

    def accuracy(xt: torch.Tensor, lt: list[str]) -> float:
        with torch.no_grad():
            pred = head((xt - mu) / sd).argmax(1).tolist()
        return sum(classes[p] == t for p, t in zip(pred, lt)) / max(1, len(lt))

    return accuracy


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path, help="a Qwen2.5-VL model folder (e.g. runs/tiny/models/base)")
    ap.add_argument("--run", type=Path, default=Path("runs/tiny"), help="the run whose data/ is probed")
    a = ap.parse_args(argv)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(a.model).eval()
    processor = AutoProcessor.from_pretrained(a.model)
    data = a.run / "data"
    sets = {"general": load_from_disk(str(data / "pretrain"))["train"]}
    for stage in ("stage1", "stage2"):
        dd = load_from_disk(str(data / stage))
        sets[f"{stage} train"], sets[f"{stage} test"] = dd["train"], dd["test"]
    feats = {name: features(model, processor, ds) for name, ds in sets.items()}
    for fitted_on in ("general", "stage1 train"):
        acc = fit_probe(*feats[fitted_on])
        scored = [n for n in feats if n != fitted_on and not (fitted_on == "stage1 train" and n == "general")]
        print(f"probe fitted on {fitted_on} ({len(feats[fitted_on][1])} images): "
              + ", ".join(f"{n} {100 * acc(*feats[n]):.1f}%" for n in scored))


if __name__ == "__main__":
    main()
