"""Blind baselines: the same evaluation with the image taken away, to show what the image adds.

A captioning or VQA score says little on its own: a language model can learn the description template,
or the likely answer to a question, without looking at the picture (MMStar's finding on VLM benchmarks).
Each evaluation set is therefore also run

- ``blank``: every image replaced by a white one of the same size (same number of image tokens), and
- ``shuffled``: every item given the image of another diagram (a seeded derangement over diagrams, so
  that the questions of one diagram all see the same other diagram),

and the tables report each score with the image, blind, and the gain (with the image minus the best
blind score, so that the image has to beat both).
"""

from __future__ import annotations

import random

from datasets import Dataset
from datasets import Image as ImageFeature
from PIL import Image

BLIND_MODES = ("blank", "shuffled")


def derangement(keys: list[str], rng: random.Random) -> dict[str, str]:
    """Each key mapped to another key (a random permutation without fixed points); one key maps to itself."""
    keys = list(dict.fromkeys(keys))
    if len(keys) < 2:
        return {k: k for k in keys}
    # Sattolo's algorithm: a random cyclic permutation, so no key keeps its own image.
    order = list(keys)
    for i in range(len(order) - 1, 0, -1):
        j = rng.randrange(i)
        order[i], order[j] = order[j], order[i]
    return {k: v for k, v in zip(keys, order)}


def blind_dataset(ds: Dataset, mode: str, seed: int) -> Dataset:
    """``ds`` with its ``image`` column replaced as ``mode`` says (``blank`` or ``shuffled``); every other
    column is kept. Items of one diagram (``diagram_id`` when present, else ``id``) stay together."""
    if mode not in BLIND_MODES:
        raise ValueError(f"blind mode must be one of {BLIND_MODES}, got {mode!r}")
    if "image" not in ds.column_names:
        raise ValueError(f"dataset has no image column (columns: {ds.column_names})")
    key_col = "diagram_id" if "diagram_id" in ds.column_names else "id"
    keys = [str(k) for k in ds[key_col]]
    feature = ds.features["image"]
    raw = ds.cast_column("image", ImageFeature(decode=False))  # moved as stored bytes, never re-encoded
    if mode == "blank":
        # Only each image's size is read (PIL opens lazily); a white PNG compresses to almost nothing.
        column = [feature.encode_example(Image.new("RGB", img.size, "white")) for img in ds["image"]]
    else:
        first: dict[str, int] = {}
        for i, k in enumerate(keys):
            first.setdefault(k, i)
        other = derangement(keys, random.Random(seed))
        column = raw.select([first[other[k]] for k in keys])["image"]
    out = raw.remove_columns("image").add_column("image", column, feature=ImageFeature(decode=False))
    return out.cast_column("image", feature)
