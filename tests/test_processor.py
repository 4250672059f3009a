"""A real checkpoint's own image limits must not beat the run's: Qwen2.5-VL-7B-Instruct ships
``min_pixels``/``max_pixels`` in its preprocessor_config.json, and Qwen2-VL's image processor lets those keys
override ``size``. Here a model folder carries exactly those keys, and the run's limits still decide how many
image tokens a 2000x1500 diagram becomes."""

import json
import math
import os

import pytest
from PIL import Image

from dicrepro.params import ModelParams, Params, load_params
from dicrepro.train.processor import image_tokens, load_processor, resized_size, write_checkpoint_processor
from dicrepro.train.tiny_model import tiny_processor
from dicrepro.train.tiny_tokenizer import train_tokenizer

os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def checkpoint_like(tmp_path_factory):
    """A processor folder laid out like the real checkpoint's: its own preprocessor_config.json, nothing
    about the image size anywhere else."""
    folder = tmp_path_factory.mktemp("qwen25vl7b_processor")
    tokenizer = train_tokenizer(["a router sends packets to a switch"] * 4, 400)
    write_checkpoint_processor(tiny_processor(Params(), tokenizer), folder)
    assert json.loads((folder / "preprocessor_config.json").read_text()) == {
        "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
        "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2_5_VLProcessor"}
    return folder


def _tokens_of(processor, image) -> int:
    grid = processor.image_processor(images=[image], return_tensors="pt")["image_grid_thw"][0].tolist()
    t, h, w = grid
    return t * h * w // 4  # 2x2 patches merge into one token


DIAGRAM = Image.new("RGB", (2000, 1500), "white")


def test_the_checkpoints_own_limit_is_what_a_folder_gives_alone(checkpoint_like):
    # without the run's params the shipped 12.8 M pixel cap applies: the diagram keeps its 3 M pixels
    assert (_tokens_of(load_processor(checkpoint_like), DIAGRAM)
        == round(2000 / 28) * round(1500 / 28))  # 71 x 54 = 3834 tokens


@pytest.mark.parametrize("min_pixels, max_pixels", [(200704, 1003520), (3136, 50176), (1003520, 1003520)])
def test_the_runs_limits_decide_the_image_tokens(checkpoint_like, min_pixels, max_pixels):
    params = ModelParams(min_pixels=min_pixels, max_pixels=max_pixels)
    processor = load_processor(checkpoint_like, params)
    n = _tokens_of(processor, DIAGRAM)
    assert n * 28 * 28 <= max_pixels
    assert n >= max_pixels // (28 * 28) * 0.8  # shrunk to the cap, not far below it
    assert n == image_tokens(2000, 1500, params)  # what the docs' table is computed with


def test_the_paper_profiles_diagram_becomes_at_most_1280_tokens(checkpoint_like, monkeypatch, tmp_path):
    monkeypatch.setenv("DICREPRO_BASE_MODEL", str(checkpoint_like))
    params = load_params("params/paper.yaml")
    processor = load_processor(checkpoint_like, params.model)
    assert _tokens_of(processor, DIAGRAM) == 1230  # 41 x 30 tokens: 1148 x 840 pixels
    assert resized_size(2000, 1500, params.model) == (1148, 840)
    # saved with the run's limits, the folder alone then gives the same (merged stages are saved so)
    processor.save_pretrained(str(tmp_path))
    assert _tokens_of(load_processor(tmp_path), DIAGRAM) == 1230


def test_small_diagrams_are_enlarged_to_min_pixels(checkpoint_like):
    params = ModelParams(min_pixels=200704, max_pixels=1003520)
    n = _tokens_of(load_processor(checkpoint_like, params), Image.new("RGB", (300, 200), "white"))
    assert n * 28 * 28 >= 200704 and n == image_tokens(300, 200, params)
    assert math.isclose(n, 256, rel_tol=0.1)


def test_the_image_sizes_in_the_training_doc_are_the_computed_ones():
    from pathlib import Path

    from dicrepro.train.processor import image_size_table

    doc = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text()
    block = doc.split("<!-- image-sizes:begin -->\n")[1].split("\n<!-- image-sizes:end -->")[0]
    assert block == image_size_table(load_params("params/paper.yaml", need_model=False))
    assert "1148×840, 1,230 tokens" in block  # the 2000x1500 diagram above, at the paper profile's limits


def test_the_limits_hold_under_unsloths_read_only_pixel_attributes(checkpoint_like, monkeypatch):
    """On a GPU, importing Unsloth turns Qwen2VLImageProcessor's min_pixels/max_pixels into read-only
    properties read from ``size`` (unsloth_zoo's patch_qwen2vl_image_processor_pixel_attrs): setting them
    raised AttributeError, the first thing the lent H200 showed of the unsloth backend."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

    monkeypatch.setattr(Qwen2VLImageProcessor, "max_pixels",
                        property(lambda self: self.size.get("longest_edge")), raising=False)
    monkeypatch.setattr(Qwen2VLImageProcessor, "min_pixels",
                        property(lambda self: self.size.get("shortest_edge")), raising=False)
    params = ModelParams(min_pixels=3136, max_pixels=50176)
    processor = load_processor(checkpoint_like, params)
    assert (processor.image_processor.min_pixels, processor.image_processor.max_pixels) == (3136, 50176)
    assert _tokens_of(processor, DIAGRAM) == image_tokens(2000, 1500, params)
