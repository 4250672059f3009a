"""The pipeline runner: step selection, and failures that name the notebook and the cell."""

import json
from pathlib import Path

import pytest

from dicrepro.cli import main
from dicrepro.pipeline import STEP_NAMES, StepFailed, run_pipeline, select_steps

REPO = Path(__file__).resolve().parents[1]


def test_steps_run_in_paper_order():
    assert STEP_NAMES == ("base", "synth", "expert", "vqa", "sft1", "sft2", "sft3", "evaluate", "figures")
    assert [s.name for s in select_steps(start="sft2")] == ["sft2", "sft3", "evaluate", "figures"]
    assert [s.output_name for s in select_steps(only=["sft1", "sft3"])] == ["04_sft_stage1.ipynb",
                                                                          "04_sft_stage3.ipynb"]
    with pytest.raises(ValueError, match="unknown step 'train'"):
        select_steps(only=["train"])


def test_every_notebook_has_a_parameters_cell():
    import nbformat

    for nb_path in sorted((REPO / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, nb_path.name
        assert "params_path" in tagged[0].source
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{nb_path.name} has outputs"


def test_bad_params_fail_before_any_work(tmp_path, capsys):
    p = tmp_path / "bad.yaml"
    p.write_text(f"run_dir: {tmp_path / 'run'}\nsft:\n  lr: 0.1\n")
    assert main(["run", str(p)]) == 2
    assert "sft.lr: unknown key" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_failing_notebook_is_named_with_its_cell(tmp_path):
    # Annotations whose every row is bad: the expert step must stop with a clear error.
    ann = tmp_path / "ann.jsonl"
    ann.write_text(json.dumps({"image": "nope.png", "text": "a description that is long enough"}) + "\n")
    p = tmp_path / "p.yaml"
    p.write_text(f"run_dir: {tmp_path / 'run'}\nstage2:\n  annotations: {ann}\n")
    with pytest.raises(StepFailed) as e:
        run_pipeline(p, only=["expert"], progress=False)
    msg = str(e.value)
    assert "step 'expert' failed in notebooks/02_expert_pairs.ipynb" in msg
    assert "cell [" in msg and "no valid rows" in msg
    assert "--from expert" in msg
    assert (tmp_path / "run" / "notebooks" / "02_expert_pairs.ipynb").exists()


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("run", "render", "synth", "augment", "describe", "metrics", "figures", "check"):
        assert cmd in out
