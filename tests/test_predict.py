"""Batched greedy generation and the predictions JSONL: resumable, and batching changes nothing."""

import json
import os

import pytest

from dicrepro.evaluate.predict import generate, load_for_inference, predict_to_jsonl
from dicrepro.params import Params
from dicrepro.train.box_diagrams import box_dataset
from dicrepro.train.tiny_model import build_tiny_base

os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    p = Params(run_dir=root, seed=3)
    p.model.tiny = p.model.tiny.model_copy(update=dict(
        vocab_size=600, hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, vision_depth=1, vision_hidden_size=32, vision_heads=2, pretrain_samples=8,
        pretrain_epochs=2.0))
    p.model.max_pixels = 12544
    p.sft.batch_size = 4
    general = box_dataset(8, 0, seed=1, domain="general")
    return build_tiny_base(p, general, root / "base", tokenizer_corpus=list(general["train"]["target"]))


@pytest.fixture(scope="module")
def test_rows():
    # different diagram sizes -> different prompt lengths inside one batch (left padding matters)
    return box_dataset(0, 5, seed=4, domain="ict", zh_share=0.4, min_nodes=3, max_nodes=8)["test"]


def test_batched_greedy_equals_one_by_one(model_dir, test_rows):
    model, processor = load_for_inference(model_dir)
    batched = generate(model_dir, test_rows, batch_size=5, max_new_tokens=12, model=model, processor=processor)
    single = generate(model_dir, test_rows, batch_size=1, max_new_tokens=12, model=model, processor=processor)
    assert len(batched) == len(test_rows) and all(isinstance(t, str) for t in batched)
    assert batched == single
    assert processor.tokenizer.padding_side == "right"  # left padding is per call, not a lasting change


def test_predictions_jsonl_is_appended_and_reused(model_dir, test_rows, tmp_path):
    out = tmp_path / "preds" / "base__captions.jsonl"
    first = test_rows.select(range(2))
    predict_to_jsonl(model_dir, "base", first, out, batch_size=2, max_new_tokens=6)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["id"] for x in lines] == first["id"]
    assert set(lines[0]) == {"model", "id", "prompt", "text"} and lines[0]["model"] == "base"

    # the rerun over the whole split only predicts the missing rows
    predict_to_jsonl(model_dir, "base", test_rows, out, batch_size=2, max_new_tokens=6)
    lines2 = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines2[:2] == lines and [x["id"] for x in lines2] == test_rows["id"]
    stamp = out.stat().st_mtime_ns
    predict_to_jsonl(model_dir, "base", test_rows, out, batch_size=2, max_new_tokens=6)
    assert out.stat().st_mtime_ns == stamp


def test_predictions_of_a_changed_model_are_made_again(model_dir, test_rows, tmp_path, caplog):
    out = tmp_path / "base__captions.jsonl"
    predict_to_jsonl(model_dir, "base", test_rows, out, max_new_tokens=6, identity={"model": "m1"})
    stamp = out.stat().st_mtime_ns
    predict_to_jsonl(model_dir, "base", test_rows, out, max_new_tokens=6, identity={"model": "m1"})
    assert out.stat().st_mtime_ns == stamp  # same model: reused
    caplog.set_level("INFO", logger="dicrepro.evaluate.predict")
    predict_to_jsonl(model_dir, "base", test_rows, out, max_new_tokens=6, identity={"model": "m2"})
    assert "predicting again" in caplog.text
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == test_rows["id"]  # each id once
    assert json.loads((tmp_path / "base__captions.identity.json").read_text()) == {"model": "m2"}


def test_missing_model_folder_is_named(tmp_path, test_rows):
    with pytest.raises(FileNotFoundError, match="no model at .*nowhere"):
        generate(tmp_path / "nowhere", test_rows, batch_size=2, max_new_tokens=2)


def test_the_runs_pixel_limits_decide_the_image_tokens(model_dir, test_rows):
    from dicrepro.params import ModelParams

    image = test_rows[0]["image"].convert("RGB")

    def grid(processor):
        return processor.image_processor(images=[image], return_tensors="pt")["image_grid_thw"][0].tolist()

    _, shipped = load_for_inference(model_dir)  # the folder's own limit: 12544 pixels
    _, larger = load_for_inference(model_dir, ModelParams(max_pixels=4 * 12544))
    t, h, w = grid(shipped)
    assert h * w * 14 * 14 <= 12544
    t2, h2, w2 = grid(larger)
    assert h2 * w2 > h * w and h2 * w2 * 14 * 14 <= 4 * 12544


def test_objective_replies_stop_at_their_own_token_budget(model_dir, test_rows, tmp_path):
    """Captions get eval.max_new_tokens, objective answers eval.objective_max_new_tokens: a model not yet
    trained on questions would otherwise write a whole caption for every one of them."""
    from dicrepro.evaluate.run import _predict_all
    from dicrepro.paths import RunPaths
    from dicrepro.train.processor import load_processor

    p = Params(run_dir=tmp_path / "run", seed=3)
    p.eval.max_new_tokens, p.eval.objective_max_new_tokens = 12, 2
    paths = RunPaths(tmp_path / "run")
    paths.predictions.mkdir(parents=True)
    tok = load_processor(model_dir).tokenizer
    for kind, budget in (("captions", 12), ("objective", 2)):
        replies = _predict_all(p, paths, "base", model_dir, test_rows, kind, "m1", [])
        identity = json.loads((paths.predictions / f"base__{kind}.identity.json").read_text())
        assert identity["max_new_tokens"] == budget
        assert max(len(tok(t, add_special_tokens=False)["input_ids"]) for t in replies.values()) <= budget
    assert max(len(tok(t, add_special_tokens=False)["input_ids"]) for t in
               _predict_all(p, paths, "base", model_dir, test_rows, "captions", "m1", []).values()) > 2


def test_beam_search_is_a_setting_of_its_own(model_dir, test_rows, tmp_path):
    """eval.num_beams decodes every evaluation reply by beam search: batched as one by one, recorded in the
    predictions' identity (so greedy ones are made again), and absent from it when greedy, so predictions
    made before the option existed stay valid."""
    from dicrepro.evaluate.run import _predict_all
    from dicrepro.paths import RunPaths

    p = Params(run_dir=tmp_path / "run", seed=3)
    p.eval.max_new_tokens = 12
    paths = RunPaths(tmp_path / "run")
    paths.predictions.mkdir(parents=True)
    model, processor = load_for_inference(model_dir, p.model)
    greedy = generate(model_dir, test_rows, batch_size=5, max_new_tokens=12, model=model, processor=processor)
    beams = generate(model_dir, test_rows, batch_size=5, max_new_tokens=12, model=model, processor=processor,
                     num_beams=3)
    assert beams == generate(model_dir, test_rows, batch_size=1, max_new_tokens=12, model=model,
                             processor=processor, num_beams=3)
    assert beams != greedy  # the setting reaches the decoder

    identity = paths.predictions / "base__captions.identity.json"
    assert list(_predict_all(p, paths, "base", model_dir, test_rows, "captions", "m1", []).values()) == greedy
    assert "num_beams" not in json.loads(identity.read_text())
    p.eval.num_beams = 3
    assert list(_predict_all(p, paths, "base", model_dir, test_rows, "captions", "m1", []).values()) == beams
    assert json.loads(identity.read_text())["num_beams"] == 3
