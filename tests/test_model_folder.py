"""Model folders a user points dicrepro at: `dicrepro check` and every loader refuse one without a config,
without weights, with weights in pickle form or with broken safetensors, naming the folder and the problem."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dicrepro.params import Params
from dicrepro.train.model_folder import ModelFolderError, check_adapter_folder, check_model_folder

os.environ["HF_HUB_OFFLINE"] = "1"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A loadable Qwen2.5-VL-architecture folder (random init, smallest sizes): config, safetensors,
    tokenizer, processor."""
    from dicrepro.train.tiny_model import init_tiny_model, tiny_processor
    from dicrepro.train.tiny_tokenizer import train_tokenizer

    folder = tmp_path_factory.mktemp("good")
    p = Params()
    p.model.tiny = p.model.tiny.model_copy(update=dict(
        vocab_size=400, hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, vision_depth=1, vision_hidden_size=32, vision_heads=2))
    tok = train_tokenizer(["a router sends packets to a switch"] * 4, 400)
    init_tiny_model(p, tok).save_pretrained(str(folder), safe_serialization=True)
    tiny_processor(p, tok).save_pretrained(str(folder))
    return folder


def broken(good, tmp_path, change) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(good, folder)
    change(folder)
    return folder


def _pickle_only(f):
    (f / "model.safetensors").rename(f / "pytorch_model.bin")


def _truncate(f):
    data = (f / "model.safetensors").read_bytes()
    (f / "model.safetensors").write_bytes(data[: len(data) // 2])


def _sharded_missing(f):
    (f / "model.safetensors").rename(f / "model-00001-of-00002.safetensors")
    (f / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))


CASES = {
    "empty folder": (lambda f: [p.unlink() for p in list(f.iterdir())], r"no config\.json; no weights"),
    "no config": (lambda f: (f / "config.json").unlink(), r"no config\.json"),
    "garbage config": (lambda f: (f / "config.json").write_text("{not json"), r"config\.json is not valid JSON"),
    "config without model_type": (lambda f: (f / "config.json").write_text("{}"), r"has no 'model_type'"),
    "no weights": (lambda f: (f / "model.safetensors").unlink(), r"no weights \(model\.safetensors"),
    "pickle weights only": (_pickle_only, r"pickle form \(pytorch_model\.bin\).*safetensors only"),
    "zero-byte safetensors": (lambda f: (f / "model.safetensors").write_bytes(b""), r"empty or truncated"),
    "corrupt safetensors": (lambda f: (f / "model.safetensors").write_bytes(b"\xff" * 64), r"not a safetensors"),
    "truncated safetensors": (_truncate, r"model\.safetensors is truncated"),
    "missing shard": (_sharded_missing, r"missing shard\(s\): model-00002-of-00002"),
    "no tokenizer": (lambda f: [(f / n).unlink() for n in ("tokenizer.json", "tokenizer_config.json")
                                if (f / n).exists()], r"no tokenizer"),
}


def test_a_good_folder_passes(good):
    assert check_model_folder(good) == good


@pytest.mark.parametrize("case", list(CASES))
def test_a_broken_folder_is_refused_naming_folder_and_problem(good, tmp_path, case):
    change, message = CASES[case]
    folder = broken(good, tmp_path, change)
    with pytest.raises(ModelFolderError, match=rf"model folder {folder} cannot be loaded: .*{message}"):
        check_model_folder(folder)


def test_a_missing_folder_or_a_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"no model at {tmp_path / 'nowhere'}"):
        check_model_folder(tmp_path / "nowhere")
    (tmp_path / "weights.safetensors").write_bytes(b"")
    with pytest.raises(ModelFolderError, match="is a file, not a folder"):
        check_model_folder(tmp_path / "weights.safetensors")


def test_an_adapter_in_pickle_form_is_refused(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    (tmp_path / "adapter_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ModelFolderError, match=rf"adapter folder {tmp_path} .*pickle form \(adapter_model\.bin\)"):
        check_adapter_folder(tmp_path)


@pytest.mark.parametrize("case", ["empty folder", "pickle weights only"])
def test_every_loader_refuses_before_loading(good, tmp_path, case):
    from dicrepro.evaluate.predict import load_for_inference
    from dicrepro.train.backends import load_hf, merge_adapter

    folder = broken(good, tmp_path, CASES[case][0])
    params = Params(run_dir=tmp_path / "run")
    params.sft.backend = "hf"
    for load in (lambda: load_for_inference(folder), lambda: load_hf(params, folder, None),
                 lambda: merge_adapter(params, folder, tmp_path / "adapter", tmp_path / "out")):
        with pytest.raises(ModelFolderError, match=str(folder)):
            load()


def test_a_stage_refuses_a_base_model_in_pickle_form(good, tmp_path):
    from dicrepro.train.sft import StageInputError, train_stage

    params = Params(run_dir=tmp_path / "run", model={"kind": "local", "path": str(good)})
    params.model.path = broken(good, tmp_path, _pickle_only)
    with pytest.raises(StageInputError, match=r"base model: model folder .*pickle form"):
        train_stage(params, 1)


def _check(params_file: Path):
    return subprocess.run([sys.executable, "-m", "dicrepro", "check", str(params_file)], capture_output=True,
                          text=True, cwd=REPO, timeout=120)


def test_dicrepro_check_refuses_an_empty_model_folder(good, tmp_path):
    empty = tmp_path / "Qwen2.5-VL-7B-Instruct"
    empty.mkdir()
    f = tmp_path / "p.yaml"
    f.write_text(f"model: {{kind: local, path: {empty}}}\nrun_dir: {tmp_path / 'run'}\n")
    proc = _check(f)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"model.path: model folder {empty} cannot be loaded: no config.json; no weights" in proc.stderr
    assert "Traceback" not in proc.stderr
    f.write_text(f"model: {{kind: local, path: {good}}}\nrun_dir: {tmp_path / 'run'}\n")
    proc = _check(f)
    assert proc.returncode == 0, proc.stderr
    assert f"model.path: {good}: loadable model folder" in proc.stdout
