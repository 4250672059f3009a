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


def test_the_tiny_base_is_pre_trained_in_its_own_languages_or_else_in_stage_1s(tmp_path):
    from dicrepro.data.synth import pretrain_spec

    own = load_params(write(tmp_path, "stage1:\n  languages: {en: 0.85, zh: 0.15}\n"
                                      "model:\n  tiny:\n    pretrain_languages: {en: 0.5, zh: 0.5}\n"))
    assert pretrain_spec(own).languages == {"en": 0.5, "zh": 0.5}
    default = load_params(write(tmp_path, "stage1:\n  languages: {en: 0.85, zh: 0.15}\n"))
    assert pretrain_spec(default).languages == {"en": 0.85, "zh": 0.15}
    # unset, the key is not in the dump: runs made before it existed are not reported stale
    assert "pretrain_languages" not in default.model.tiny.model_dump()
    assert own.model.tiny.model_dump()["pretrain_languages"] == {"en": 0.5, "zh": 0.5}


def test_a_share_of_the_vqa_diagrams_can_be_drawn_as_document_pages(tmp_path):
    from dicrepro.workflow import vqa_image_spec

    plain = load_params(write(tmp_path, "stage3:\n  n_diagrams: 4\n"))
    assert vqa_image_spec(plain).augment is None  # the default: clean renders, the same bytes as before
    paged = load_params(write(tmp_path, "stage3:\n  n_diagrams: 4\n  document_share: 0.5\n"))
    assert vqa_image_spec(paged).augment.__name__ == "document_look_share_0.5"


def test_beam_search_leaves_greedy_runs_current(tmp_path):
    # the evaluate step is stale when the eval params' dump changes: greedy runs made before
    # eval.num_beams existed dump the same as before
    assert "num_beams" not in load_params(write(tmp_path, "eval:\n  num_beams: 1\n")).eval.model_dump()
    assert load_params(write(tmp_path, "eval:\n  num_beams: 3\n")).eval.model_dump()["num_beams"] == 3


def test_pixel_limits_must_be_ordered(tmp_path):
    p = write(tmp_path, "model:\n  min_pixels: 100000\n  max_pixels: 50176\n")
    with pytest.raises(ParamsError, match=r"model.min_pixels \(100000\) is larger than model.max_pixels"):
        load_params(p)


@pytest.mark.parametrize("text, key, why", [
    ("stage1:\n  diagram_types: []\n", "stage1.diagram_types", "at least 1"),
    ("render:\n  scale: .inf\n", "render.scale", "finite"),
    ("render:\n  timeout_s: .nan\n", "render.timeout_s", "finite"),
    ("stage1:\n  languages: {en: .nan}\n", "stage1.languages.en", "finite"),
    ("stage1:\n  languages: {en: 1.0, zh: -0.5}\n", "stage1.languages", "negative weight"),
    ("model:\n  tiny:\n    pretrain_languages: {de: 1.0}\n", "model.tiny.pretrain_languages", "unknown language"),
    ("model:\n  tiny:\n    pretrain_languages: {en: 0, zh: 0}\n", "model.tiny.pretrain_languages", "one positive"),
    ("stage1:\n  min_elements: 9\n  max_elements: 4\n", "stage1", "min_elements \\(9\\) is larger"),
    ("model:\n  tiny:\n    hidden_size: 130\n", "model.tiny", "divisible by num_attention_heads"),
    ("model:\n  tiny:\n    num_key_value_heads: 3\n", "model.tiny", "num_key_value_heads"),
    ("stage1:\n  n: true\n", "stage1.n", "expected int, got true"),
    ("sft:\n  replay: false\n", "sft.replay", "got false"),
    ("run_dir: ''\n", "run_dir", "not empty"),
    ("stage3:\n  document_share: 1.5\n", "stage3.document_share", "less than or equal to 1"),
    ("eval:\n  num_beams: 0\n", "eval.num_beams", "greater than or equal to 1"),
])
def test_values_a_later_step_would_trip_over_are_refused_up_front(tmp_path, text, key, why):
    with pytest.raises(ParamsError, match=f"(?s){key}: .*{why}"):
        load_params(write(tmp_path, text))


def test_yaml_duplicate_keys_and_alias_tricks_are_refused(tmp_path):
    with pytest.raises(ParamsError, match="line 2, column 1: duplicate key 'seed' \\(first given on line 1\\)"):
        load_params(write(tmp_path, "seed: 1\nseed: 2\n"))
    with pytest.raises(ParamsError, match="recursive alias"):
        load_params(write(tmp_path, "stage1: &a\n  x: *a\n"))
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    assert len(bomb) < 1024
    with pytest.raises(ParamsError, match="alias bomb"):
        load_params(write(tmp_path, bomb))
    # merging an anchored block and overriding one key is ordinary YAML and stays allowed
    p = load_params(write(tmp_path, "x-base: &b {n: 5, test_n: 2}\n".replace("x-base", "stage2")
                          + "stage1:\n  <<: *b\n  n: 7\n"))
    assert (p.stage1.n, p.stage1.test_n, p.stage2.n) == (7, 2, 5)


def test_a_folder_or_fifo_is_not_a_params_file(tmp_path):
    import os

    with pytest.raises(IsADirectoryError):
        load_params(tmp_path)
    os.mkfifo(tmp_path / "fifo.yaml")
    with pytest.raises(ParamsError, match="not a regular file"):
        load_params(tmp_path / "fifo.yaml")


def test_commands_without_a_model_read_the_paper_profile_without_its_weights(monkeypatch):
    monkeypatch.delenv("DICREPRO_BASE_MODEL", raising=False)
    p = load_params(REPO / "params" / "paper.yaml", need_model=False)
    assert p.model.kind == "local" and p.model.path is None
    with pytest.raises(ParamsError, match="DICREPRO_BASE_MODEL"):
        load_params(REPO / "params" / "paper.yaml")  # training, evaluation and `check` need the weights
