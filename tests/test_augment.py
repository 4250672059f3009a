"""Realism augmentation as a separate, seeded step over a saved dataset (issue 3)."""

import hashlib
import io
import json
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict
from PIL import Image, ImageDraw

from dicrepro.atomic import save_dataset_atomic
from dicrepro.data.augment_dataset import augment_dataset, augment_main
from dicrepro.data.synth import FEATURES


def _png(i: int) -> bytes:
    img = Image.new("RGB", (160, 100), "white")
    d = ImageDraw.Draw(img)
    d.rectangle((10, 10, 70, 40), outline="black")
    d.rectangle((90, 55, 150, 90), outline="black")
    d.line((40, 40, 120, 55), fill="black")
    d.text((15, 20), f"node {i}", fill="black")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _split(name: str, n: int) -> Dataset:
    rows = []
    for i in range(n):
        row = {k: "" for k in FEATURES}
        row.update(id=f"s1-{name}-{i:06d}", image={"bytes": _png(i), "path": None}, seed=i, split=name,
                   description=f"diagram {i}", diagram_type="flowchart", language="en")
        rows.append(row)
    return Dataset.from_dict({k: [r[k] for r in rows] for k in FEATURES}, features=FEATURES)


@pytest.fixture
def src(tmp_path) -> Path:
    return save_dataset_atomic(DatasetDict({"train": _split("train", 3), "test": _split("test", 2)}),
                               tmp_path / "clean")


def _data_hash(folder: Path) -> str:
    """Hash of every arrow data file listed in each split's state.json."""
    h = hashlib.sha256()
    for split in sorted(json.loads((folder / "dataset_dict.json").read_text())["splits"]):
        state = json.loads((folder / split / "state.json").read_text())
        for f in state["_data_files"]:
            h.update((folder / split / f["filename"]).read_bytes())
    return h.hexdigest()


def test_augment_keeps_clean_rows_and_adds_seeded_copies(src, tmp_path):
    dd = augment_dataset(src, tmp_path / "aug", seed=7, copies=2, progress=False)
    train = dd["train"]
    assert len(train) == 3 + 3 * 2
    assert train["id"][:3] == ["s1-train-000000", "s1-train-000001", "s1-train-000002"]
    assert train["id"][3:5] == ["s1-train-000000~aug0", "s1-train-000000~aug1"]
    assert train["augment"][:3] == ["", "", ""]
    assert all(a and set(a.split("+")) <= {"page", "scan", "jpeg", "rescale", "blur"} for a in train["augment"][3:])
    # The other columns follow their source row.
    assert train["description"][3:5] == ["diagram 0", "diagram 0"]
    assert train.column_names == [*FEATURES, "augment"]
    # Augmented images differ from their clean source.
    raw = train.cast_column("image", FEATURES["image"].__class__(decode=False))["image"]
    assert raw[0]["bytes"] == _png(0)
    assert raw[3]["bytes"] != raw[0]["bytes"] and raw[4]["bytes"] != raw[3]["bytes"]
    # Test split untouched, so evaluation stays on clean images.
    test = dd["test"]
    assert test["id"] == ["s1-test-000000", "s1-test-000001"] and test["augment"] == ["", ""]
    test_raw = test.cast_column("image", FEATURES["image"].__class__(decode=False))["image"]
    assert [r["bytes"] for r in test_raw] == [_png(0), _png(1)]


def test_same_seed_same_bytes_other_seed_differs(src, tmp_path):
    augment_dataset(src, tmp_path / "a", seed=3, progress=False)
    augment_dataset(src, tmp_path / "b", seed=3, progress=False)
    augment_dataset(src, tmp_path / "c", seed=4, progress=False)
    assert _data_hash(tmp_path / "a") == _data_hash(tmp_path / "b")
    assert _data_hash(tmp_path / "a") != _data_hash(tmp_path / "c")


def test_only_augmented_rows_and_document_preset(src, tmp_path):
    dd = augment_dataset(src, tmp_path / "doc", seed=1, kinds="document", keep_clean=False, progress=False)
    assert dd["train"]["id"] == [f"s1-train-{i:06d}~aug0" for i in range(3)]
    assert dd["train"]["augment"] == ["document"] * 3
    assert dd["train"][0]["image"].size != (160, 100)  # embedded in a page


def test_single_kind_and_cli_summary(src, tmp_path):
    summary = augment_main(str(src), str(tmp_path / "blur"), seed=2, kinds="blur", copies=1)
    assert "train: 6 rows (3 augmented)" in summary and "test: 2 rows (0 augmented)" in summary
    dd = DatasetDict.load_from_disk(str(tmp_path / "blur"))
    assert dd["train"]["augment"][3:] == ["blur"] * 3
    assert dd["train"][3]["image"].size == (160, 100)  # blur keeps the size


def test_bad_arguments_are_named(src, tmp_path):
    with pytest.raises(ValueError, match="unknown kind"):
        augment_dataset(src, tmp_path / "x", seed=0, kinds=["sepia"], progress=False)
    with pytest.raises(ValueError, match="cannot be combined"):
        augment_dataset(src, tmp_path / "x", seed=0, kinds=["document", "jpeg"], progress=False)
    with pytest.raises(FileNotFoundError, match="not a saved DatasetDict"):
        augment_dataset(tmp_path / "missing", tmp_path / "x", seed=0, progress=False)
    with pytest.raises(ValueError, match="must differ"):
        augment_dataset(src, src, seed=0, progress=False)


def test_document_look_on_an_image_draws_the_same_page_as_on_png_bytes():
    import random

    import numpy as np

    from dicrepro.data.augment import document_look, document_look_image

    for seed in range(12):  # enough seeds that rescale, scan noise and JPEG each happen and not
        png = _png(seed)
        from_bytes = Image.open(io.BytesIO(document_look(png, random.Random(seed)))).convert("RGB")
        from_image = document_look_image(Image.open(io.BytesIO(png)), random.Random(seed))
        assert from_image.size == from_bytes.size
        assert np.array_equal(np.asarray(from_image), np.asarray(from_bytes)), seed


def test_document_look_share_pages_about_that_share_and_keeps_the_rest_clean():
    import random

    from dicrepro.data.augment import document_look_share

    look = document_look_share(0.5)
    outs = [look(_png(i), random.Random(i)) for i in range(40)]
    paged = sum(out != _png(i) for i, out in enumerate(outs))
    assert 10 <= paged <= 30  # about half, and both kinds present
    assert outs == [look(_png(i), random.Random(i)) for i in range(40)]  # the same images each run
    assert all(document_look_share(0.0)(_png(i), random.Random(i)) == _png(i) for i in range(5))
    assert look.__name__ != document_look_share(0.25).__name__  # another share is another dataset
    with pytest.raises(ValueError, match="share must be in"):
        document_look_share(1.5)
