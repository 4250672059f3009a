"""Realism augmentation of a saved dataset as its own seeded step (issue 3).

Reads a DatasetDict written by :func:`dicrepro.data.synth.synthesize` and writes a new one where each train
row gets ``copies`` augmented variants (page context, scan noise, JPEG, rescale, blur). The clean rows
can be kept beside them; the test split is copied unchanged so evaluation stays on clean renders.
Each variant is drawn from ``(seed, row id, copy index)`` only, so the output is byte-identical for the
same seed whatever the row order or process.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
from pathlib import Path
from typing import Sequence

from datasets import Dataset, DatasetDict, Value, load_from_disk
from dicrepro.progress import tqdm

from dicrepro.atomic import save_dataset_atomic
from dicrepro.data import augment as aug
from dicrepro.outputs import claim_output

log = logging.getLogger(__name__)

# Order matters: page context first (the figure sits in a page), then resolution, the scanner, blur,
# and JPEG last (compression is the final thing that happens to a figure file).
TRANSFORMS = {
    "page": aug.page_context,
    "rescale": aug.rescale,
    "scan": aug.scan_noise,
    "blur": aug.blur,
    "jpeg": aug.jpeg,
}
DEFAULT_KINDS = ("page", "scan", "jpeg", "rescale", "blur")
PRESETS = {"document": "document_look"}  # the stage-2 stand-in look (page, maybe rescale/scan/jpeg)


def _resolve_kinds(kinds: str | Sequence[str]) -> tuple[str, ...]:
    """Check ``kinds``; a preset name stands alone, otherwise a list of transforms in canonical order."""
    if isinstance(kinds, str):
        kinds = [kinds]
    kinds = [k.strip() for k in kinds if k.strip()]
    if not kinds:
        raise ValueError("augment: no kinds given; choose from " + ", ".join([*TRANSFORMS, *PRESETS]))
    presets = [k for k in kinds if k in PRESETS]
    if presets and len(kinds) > 1:
        raise ValueError(f"augment: preset {presets[0]!r} cannot be combined with other kinds {kinds}")
    unknown = [k for k in kinds if k not in TRANSFORMS and k not in PRESETS]
    if unknown:
        raise ValueError(f"augment: unknown kind(s) {unknown}; choose from {[*TRANSFORMS, *PRESETS]}")
    if presets:
        return tuple(presets)
    return tuple(k for k in TRANSFORMS if k in kinds)


def variant_seed(seed: int, row_id: str, copy: int) -> int:
    """A per-variant seed from the run seed, the row id and the copy index (independent of row order)."""
    digest = hashlib.sha256(f"{seed}:augment:{row_id}:{copy}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def augment_image(png: bytes, rng: random.Random, kinds: Sequence[str]) -> tuple[bytes, str]:
    """Apply the resolved ``kinds`` to ``png``; return the new PNG bytes and the applied transform names.

    With several kinds, each transform except page context is applied with probability 0.7 and at least
    one always applies, so the copies of a row differ in kind as well as in parameters.
    """
    if tuple(kinds) == ("document",):
        return aug.document_look(png, rng), "document"
    chosen = [k for k in kinds if len(kinds) == 1 or k == "page" or rng.random() < 0.7]
    if not chosen:
        chosen = [kinds[rng.randrange(len(kinds))]]
    img = aug._open(png)
    for k in chosen:
        img = TRANSFORMS[k](img, rng)
    return aug._png(img), "+".join(chosen)


def _image_bytes(value, where: str) -> bytes:
    """PNG/JPEG bytes from an ``Image()`` cell read with ``decode=False`` (bytes or a path)."""
    if value is None:
        raise ValueError(f"{where}: image is empty")
    if value.get("bytes"):
        return value["bytes"]
    if value.get("path"):
        return Path(value["path"]).read_bytes()
    raise ValueError(f"{where}: image has neither bytes nor path")


def _augment_split(ds: Dataset, *, seed: int, kinds, copies: int, keep_clean: bool, name: str,
                   progress: bool) -> Dataset:
    raw = ds.cast_column("image", ds.features["image"].__class__(decode=False))
    # Only id and image are read per row; the other columns are carried over by index selection.
    ids, images = raw["id"], raw["image"]
    out_ids, out_imgs, out_aug, src_idx = [], [], [], []
    if keep_clean:
        for i, rid in enumerate(ids):
            out_ids.append(rid)
            out_imgs.append({"bytes": _image_bytes(images[i], f"{name} row {i} (id {rid})"), "path": None})
            out_aug.append("")
            src_idx.append(i)
    bar = tqdm(total=len(ids) * copies, desc=f"augment {name}", disable=not progress, unit="img")
    for i, rid in enumerate(ids):
        png = _image_bytes(images[i], f"{name} row {i} (id {rid})")
        for c in range(copies):
            rng = random.Random(variant_seed(seed, rid, c))
            try:
                new, applied = augment_image(png, rng, kinds)
            except Exception as e:  # name the row: a corrupt image should be findable
                raise ValueError(f"{name} row {i} (id {rid}) copy {c}: augmentation failed: {e}") from e
            out_ids.append(f"{rid}~aug{c}")
            out_imgs.append({"bytes": new, "path": None})
            out_aug.append(applied)
            src_idx.append(i)
            bar.update(1)
    bar.close()
    rest = raw.select(src_idx).remove_columns(["id", "image"])
    out = rest.add_column("id", out_ids).add_column("augment", out_aug)
    out = out.add_column("image", out_imgs).cast_column("image", ds.features["image"].__class__())
    return out.select_columns([*ds.column_names, "augment"])


def augment_dataset(src_dir: str | Path, out_dir: str | Path, *, seed: int,
                    kinds: str | Sequence[str] = DEFAULT_KINDS, copies: int = 1, keep_clean: bool = True,
                    progress: bool = True, overwrite: bool = False) -> DatasetDict:
    """Write an augmented copy of the DatasetDict at ``src_dir`` to ``out_dir`` and return it.

    Only ``train`` is augmented: each row gets ``copies`` variants with ids ``<id>~aug<k>`` and the
    applied transforms in the new ``augment`` column ('' for clean rows, kept when ``keep_clean``).
    Other splits are copied unchanged (with ``augment`` = ''). ``kinds`` is a list from
    ``page, scan, jpeg, rescale, blur`` or the preset ``"document"``. Same ``seed`` -> identical bytes.
    ``out_dir`` is replaced only when it is an earlier augment output (or ``overwrite``).
    """
    kinds = _resolve_kinds(kinds)
    if copies < 0 or (copies == 0 and not keep_clean):
        raise ValueError(f"augment: copies must be >= 1 (or 0 with keep_clean), got {copies}")
    src_dir = Path(src_dir)
    if not (src_dir / "dataset_dict.json").exists():
        raise FileNotFoundError(f"{src_dir}: not a saved DatasetDict (no dataset_dict.json)")
    if Path(out_dir).resolve() == src_dir.resolve():
        raise ValueError(f"augment: --out must differ from the source {src_dir}")
    if src_dir.resolve() in Path(out_dir).resolve().parents:
        raise ValueError(f"augment: --out {out_dir} must not lie inside the source {src_dir}")
    if Path(out_dir).resolve() in src_dir.resolve().parents:
        raise ValueError(f"augment: --out {out_dir} holds the source {src_dir}; replacing it would delete it")
    with claim_output(out_dir, "augment", overwrite=overwrite), _no_cache_files_beside_the_source():
        return _augment_into(src_dir, Path(out_dir), seed=seed, kinds=kinds, copies=copies,
                             keep_clean=keep_clean, progress=progress)


@contextlib.contextmanager
def _no_cache_files_beside_the_source():
    # datasets writes cache-*.arrow files into a loaded dataset's own folder for select/cast: augment
    # would change the user's source dataset. With caching off they go to a temporary folder instead.
    import datasets

    was = datasets.is_caching_enabled()
    datasets.disable_caching()
    try:
        yield
    finally:
        if was:
            datasets.enable_caching()


def _augment_into(src_dir: Path, out_dir: Path, *, seed, kinds, copies, keep_clean, progress) -> DatasetDict:
    src = load_from_disk(str(src_dir))
    if "train" not in src:
        raise ValueError(f"{src_dir}: no 'train' split (has {list(src)})")
    out = {}
    for name, ds in src.items():
        for col in ("id", "image"):
            if col not in ds.column_names:
                raise ValueError(f"{src_dir} split {name!r}: missing column {col!r}")
        if "augment" in ds.column_names:
            raise ValueError(f"{src_dir} split {name!r}: already has an 'augment' column (augmented twice?)")
        if name == "train":
            out[name] = _augment_split(ds, seed=seed, kinds=kinds, copies=copies, keep_clean=keep_clean,
                                       name=name, progress=progress)
        else:
            out[name] = ds.add_column("augment", [""] * len(ds))
            out[name] = out[name].cast_column("augment", Value("string"))
    dd = DatasetDict(out)
    save_dataset_atomic(dd, out_dir, kind="augment")
    log.info("augmented %s -> %s: %s", src_dir, out_dir, {k: len(v) for k, v in dd.items()})
    return load_from_disk(str(out_dir))


def augment_main(src: str, out: str, seed: int = 0, kinds: str | Sequence[str] = DEFAULT_KINDS,
                 copies: int = 1, overwrite: bool = False) -> str:
    """CLI entry for ``dicrepro augment SRC --out DIR``: run :func:`augment_dataset`, return a summary.

    ``kinds`` may be a comma-separated string (``"page,jpeg"``) or a list.
    """
    if isinstance(kinds, str):
        kinds = kinds.split(",")
    dd = augment_dataset(src, out, seed=seed, kinds=kinds, copies=copies, overwrite=overwrite)
    parts = []
    for name, ds in dd.items():
        n_aug = sum(1 for a in ds["augment"] if a)
        parts.append(f"{name}: {len(ds)} rows ({n_aug} augmented)")
    return f"augmented {src} -> {out} (seed {seed}, kinds {','.join(_resolve_kinds(kinds))}, " \
           f"copies {copies}): " + "; ".join(parts)
