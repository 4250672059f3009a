"""Params files are validated before any work starts, with the bad key named."""

from pathlib import Path

import pytest

from dicrepro.params import ParamsError, load_params

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path, text):
    p = tmp_path / "p.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("name", ["tiny.yaml", "smoke.yaml"])
def test_shipped_cpu_params_are_valid(name):
    params = load_params(REPO / "params" / name)
    assert params.model.kind == "tiny"
    assert params.stage1.n > 0


def test_paper_params_need_the_local_model_path(tmp_path, monkeypatch):
    monkeypatch.delenv("DICREPRO_BASE_MODEL", raising=False)
    with pytest.raises(ParamsError, match="model.path: environment variable"):
        load_params(REPO / "params" / "paper.yaml")
    weights = tmp_path / "Qwen2.5-VL-7B-Instruct"
    weights.mkdir()
    monkeypatch.setenv("DICREPRO_BASE_MODEL", str(weights))
    params = load_params(REPO / "params" / "paper.yaml")
    assert params.model.path == weights
    assert params.sft.backend == "unsloth" and params.sft.load_in_4bit
    assert params.stage1.n == 7000 and params.stage2.n == 2000
    assert 1400 <= params.stage3.n_diagrams * params.stage3.questions_per_diagram <= 1600


def test_unknown_key_is_named(tmp_path):
    p = write(tmp_path, "stage1:\n  n: 10\n  n_samples: 5\n")
    with pytest.raises(ParamsError) as e:
        load_params(p)
    assert "stage1.n_samples: unknown key" in str(e.value)
    assert str(p) in str(e.value)


def test_wrong_type_is_named(tmp_path):
    p = write(tmp_path, "sft:\n  batch_size: lots\n")
    with pytest.raises(ParamsError, match=r"sft\.batch_size"):
        load_params(p)


def test_missing_paths_are_named(tmp_path):
    p = write(tmp_path, "model:\n  kind: local\n  path: /no/such/model\n")
    with pytest.raises(ParamsError, match="model.path does not exist: /no/such/model"):
        load_params(p)
    p = write(tmp_path, "stage2:\n  annotations: /no/such/file.jsonl\n")
    with pytest.raises(ParamsError, match="stage2.annotations"):
        load_params(p)


def test_unknown_language_and_bad_yaml(tmp_path):
    with pytest.raises(ParamsError, match="stage1.languages"):
        load_params(write(tmp_path, "stage1:\n  languages: {fr: 1.0}\n"))
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(write(tmp_path, "stage1: [unclosed\n"))
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")


def test_overrides_use_dotted_keys():
    params = load_params(REPO / "params" / "tiny.yaml", overrides={"stage1.n": 7, "seed": 9})
    assert params.stage1.n == 7 and params.seed == 9


def test_pixel_limits_must_be_ordered(tmp_path):
    p = write(tmp_path, "model:\n  min_pixels: 100000\n  max_pixels: 50176\n")
    with pytest.raises(ParamsError, match=r"model.min_pixels \(100000\) is larger than model.max_pixels"):
        load_params(p)
