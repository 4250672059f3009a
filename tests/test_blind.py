"""Blind baselines: the evaluation sets with blank images, or with images shuffled between diagrams."""

from __future__ import annotations

import random

import pytest
from datasets import Dataset, Features, Image, Value
from PIL import Image as PILImage

from dicrepro.evaluate.blind import blind_dataset, derangement


def _colour_set() -> Dataset:
    # three questions on each of four diagrams; each diagram's image has its own colour and size
    colours = {"d0": "red", "d1": "green", "d2": "blue", "d3": "yellow"}
    rows = [{"id": f"{d}-q{k}", "diagram_id": d, "prompt": f"question {k}",
             "image": PILImage.new("RGB", (40 + 10 * i, 30), c)}
            for i, (d, c) in enumerate(colours.items()) for k in range(3)]
    feats = Features({"id": Value("string"), "diagram_id": Value("string"), "prompt": Value("string"),
                      "image": Image()})
    return Dataset.from_list(rows, features=feats)


def _colour(img) -> tuple:
    return img.convert("RGB").getpixel((0, 0))


def test_derangement_moves_every_key_and_is_seeded():
    keys = [f"k{i}" for i in range(50)]
    m = derangement(keys, random.Random(3))
    assert sorted(m.values()) == sorted(keys) and all(m[k] != k for k in keys)
    assert m == derangement(keys, random.Random(3)) != derangement(keys, random.Random(4))


def test_blank_keeps_every_row_and_size_but_no_picture():
    ds = _colour_set()
    blank = blind_dataset(ds, "blank", seed=1)
    assert blank["id"] == ds["id"] and blank["prompt"] == ds["prompt"]
    for orig, b in zip(ds["image"], blank["image"]):
        assert b.size == orig.size and b.convert("RGB").getextrema() == ((255, 255),) * 3


def test_shuffled_shows_each_diagram_another_diagrams_image_and_keeps_its_questions_together():
    ds = _colour_set()
    shuf = blind_dataset(ds, "shuffled", seed=1)
    assert shuf["id"] == ds["id"]
    own = {r["diagram_id"]: _colour(r["image"]) for r in ds}
    seen: dict[str, set] = {}
    for r in shuf:
        seen.setdefault(r["diagram_id"], set()).add(_colour(r["image"]))
    for d, colours in seen.items():
        assert len(colours) == 1 and colours != {own[d]}, d  # one other diagram's image per diagram
    assert [_colour(i) for i in blind_dataset(ds, "shuffled", seed=1)["image"]] == \
        [_colour(i) for i in shuf["image"]]


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="blank"):
        blind_dataset(_colour_set(), "dark", seed=1)
