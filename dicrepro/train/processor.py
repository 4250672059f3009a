"""A model folder's processor at the run's image size (``model.min_pixels`` .. ``model.max_pixels``).

Qwen2.5-VL turns every 28x28 pixels of an image into one token, so these limits decide the sequence
length, the memory a batch needs and how small a label the model can still read. A real checkpoint ships
its own limits: Qwen2.5-VL-7B-Instruct's preprocessor_config.json holds ``min_pixels: 3136`` and
``max_pixels: 12845056`` (12.8 M pixels, ~16K tokens per image), and Qwen2-VL's image processor lets those
two keys override a ``size`` passed to ``from_pretrained``. So :func:`load_processor` sets the run's limits
on the loaded image processor in every form it reads them (``size``, and ``min_pixels``/``max_pixels``
where it keeps them) and checks the result; training, merging and evaluation all
load the processor through it, so every model of a run (the base, each stage, the baselines) sees each
image at the same size, the one the params file names.
"""

from __future__ import annotations

import inspect
from pathlib import Path

PATCH = 14  # Qwen2.5-VL: 14-pixel patches, 2x2 of them merged into one token
MERGE = 2

# preprocessor_config.json of Qwen/Qwen2.5-VL-7B-Instruct (and -3B-), key for key: what a real checkpoint
# brings, for tests and benchmarks that cannot download it.
QWEN25_VL_PREPROCESSOR = {
    "min_pixels": 3136,
    "max_pixels": 12845056,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen2_5_VLProcessor",
}


class ProcessorSizeError(RuntimeError):
    """The loaded image processor does not resize to the run's limits (an unknown processor layout)."""


def load_processor(path: str | Path, model_params=None):
    """``AutoProcessor`` of the folder ``path``; with ``model_params`` (a run's ``params.model``) its image
    processor resizes to ``model_params.min_pixels`` .. ``model_params.max_pixels`` pixels, whatever the
    folder's own preprocessor_config.json says."""
    # Imported here, not at the top: dicrepro.train.backends imports this module and must leave transformers
    # unimported until preload_unsloth() has run.
    from transformers import AutoProcessor

    if model_params is None:
        return AutoProcessor.from_pretrained(str(path))
    lo, hi = model_params.min_pixels, model_params.max_pixels
    processor = AutoProcessor.from_pretrained(str(path))
    set_pixel_limits(processor.image_processor, lo, hi)
    got = pixel_limits(processor.image_processor)
    if got != (lo, hi):
        raise ProcessorSizeError(
            f"{path}: its image processor resizes to {got[0]}..{got[1]} pixels although model.min_pixels/"
            f"max_pixels are {lo}..{hi}; this transformers version lays the processor out differently")
    return processor


def set_pixel_limits(image_processor, lo: int, hi: int) -> None:
    """Make ``image_processor`` resize to ``lo`` .. ``hi`` pixels, in every form it reads them.

    Set on the loaded object rather than passed to ``from_pretrained``: there, ``size=`` alone loses to the
    folder's ``min_pixels``/``max_pixels`` keys, and ``min_pixels=``/``max_pixels=`` are also kept as
    per-call arguments that transformers 5.2x deprecates on every call. ``size`` is what transformers 5.x
    resizes with and saves; older releases (and remote code) keep ``min_pixels``/``max_pixels`` attributes
    that win over it, so those are set too where they exist and can be set.
    """
    size = getattr(image_processor, "size", None)
    values = {"shortest_edge": lo, "longest_edge": hi}
    image_processor.size = dict(values) if size is None or isinstance(size, dict) else type(size)(**values)
    for name, value in (("min_pixels", lo), ("max_pixels", hi)):
        attr = inspect.getattr_static(type(image_processor), name, None)
        if isinstance(attr, property) and attr.fset is None:
            continue  # read from size (Unsloth's shim on transformers 5.x, on a GPU): it follows size
        if getattr(image_processor, name, None) is not None:
            setattr(image_processor, name, value)


def pixel_limits(image_processor) -> tuple[int, int]:
    """``(min_pixels, max_pixels)`` an image processor resizes to: its ``min_pixels``/``max_pixels``
    attributes where it keeps them (older transformers let them win), else its ``size``."""
    size = dict(getattr(image_processor, "size", None) or {})
    lo = getattr(image_processor, "min_pixels", None) or size.get("shortest_edge") or size.get("min_pixels")
    hi = getattr(image_processor, "max_pixels", None) or size.get("longest_edge") or size.get("max_pixels")
    return int(lo), int(hi)


def resized_size(width: int, height: int, model_params) -> tuple[int, int]:
    """``(width, height)`` in pixels that a ``width`` x ``height`` image is resized to at the run's limits
    (transformers' own ``smart_resize``: each side a multiple of 28, area within the limits)."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    h, w = smart_resize(height, width, factor=PATCH * MERGE, min_pixels=model_params.min_pixels,
                        max_pixels=model_params.max_pixels)
    return w, h


def image_tokens(width: int, height: int, model_params) -> int:
    """Tokens that one ``width`` x ``height`` image becomes at the run's limits."""
    w, h = resized_size(width, height, model_params)
    return (w // (PATCH * MERGE)) * (h // (PATCH * MERGE))


def write_checkpoint_processor(processor, folder: str | Path) -> Path:
    """Save ``processor`` to ``folder`` laid out as Qwen2.5-VL-7B-Instruct's: its image settings only in a
    preprocessor_config.json equal to :data:`QWEN25_VL_PREPROCESSOR` (the tokenizer stays ``processor``'s)."""
    import json

    folder = Path(folder)
    processor.save_pretrained(str(folder))
    for name in ("processor_config.json",):
        f = folder / name
        if f.exists():  # newer transformers also nest the image processor here: keep the checkpoint's layout
            d = json.loads(f.read_text())
            d.pop("image_processor", None)
            f.write_text(json.dumps(d, indent=2))
    (folder / "preprocessor_config.json").write_text(json.dumps(QWEN25_VL_PREPROCESSOR, indent=2))
    return folder


EXAMPLE_SIZES = ((2000, 1500), (1280, 1024), (800, 600), (400, 300))


def image_size_table(params, sizes=EXAMPLE_SIZES) -> str:
    """Markdown: the size each model of a run sees an image at (computed from ``params.model``'s limits with
    transformers' own resize rule), beside what the base checkpoint's shipped limits would give."""
    lo, hi = params.model.min_pixels, params.model.max_pixels

    class _Shipped:  # Qwen2.5-VL-7B-Instruct's own preprocessor_config.json
        min_pixels, max_pixels = QWEN25_VL_PREPROCESSOR["min_pixels"], QWEN25_VL_PREPROCESSOR["max_pixels"]

    def cell(w, h, limits) -> str:
        rw, rh = resized_size(w, h, limits)
        return f"{rw}×{rh}, {image_tokens(w, h, limits):,} tokens"

    base = "`model.path`" if params.model.kind == "local" else "the tiny base (`models/base`)"
    head = "| model of the run | pixel limits | " + " | ".join(f"{w}×{h} image" for w, h in sizes) + " |"
    lines = [head, "|---|---|" + "---|" * len(sizes)]
    for name in (f"base: {base}", "stage 1, 2, 3: `models/stageK/merged`", "`eval.baselines`"):
        lines.append(f"| {name} | {lo:,}..{hi:,} | " + " | ".join(cell(w, h, params.model) for w, h in sizes) + " |")
    lines.append(f"| (Qwen2.5-VL-7B-Instruct's own limits, not used) | {_Shipped.min_pixels:,}..{_Shipped.max_pixels:,} "
                 "| " + " | ".join(cell(w, h, _Shipped) for w, h in sizes) + " |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m dicrepro.train.processor params/paper.yaml: the table of docs/training.md
    import sys

    from dicrepro.params import load_params

    print(image_size_table(load_params(sys.argv[1] if len(sys.argv) > 1 else "params/paper.yaml", need_model=False)))
