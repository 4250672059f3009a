"""A model folder's processor at the run's image size (``model.min_pixels`` .. ``model.max_pixels``).

Qwen2.5-VL turns every 28x28 pixels of an image into one token, so these limits decide the sequence
length, the memory a batch needs and how small a label the model can still read. A real checkpoint ships
its own limits (Qwen2.5-VL-7B-Instruct: up to 12.8 M pixels), so training, merging and evaluation all load
the processor through :func:`load_processor`: every model of a run (the base, each stage, the baselines)
then sees each image at the same size, the one the params file names.
"""

from __future__ import annotations

from pathlib import Path


def load_processor(path: str | Path, model_params=None):
    """``AutoProcessor`` of the folder ``path``; with ``model_params`` (a run's ``params.model``) its image
    processor resizes to ``model_params.min_pixels`` .. ``model_params.max_pixels`` pixels."""
    # Imported here, not at the top: dicrepro.train.backends imports this module and must leave transformers
    # unimported until preload_unsloth() has run.
    from transformers import AutoProcessor

    if model_params is None:
        return AutoProcessor.from_pretrained(str(path))
    size = {"shortest_edge": model_params.min_pixels, "longest_edge": model_params.max_pixels}
    return AutoProcessor.from_pretrained(str(path), size=size)
