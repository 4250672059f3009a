"""Relative paths are taken from the project root whatever the working directory, as JupyterLab (which
runs a notebook in notebooks/), papermill and the shell all need."""

from pathlib import Path

from dicrepro.params import load_params
from dicrepro.paths import notebooks_dir, repo_root, resolve

REPO = Path(__file__).resolve().parents[1]


def test_the_shipped_params_path_works_from_notebooks(monkeypatch):
    monkeypatch.delenv("DICREPRO_ROOT", raising=False)
    monkeypatch.chdir(REPO / "notebooks")
    params = load_params("params/tiny.yaml")  # what the notebooks' settings cell says
    assert params.run_dir == REPO / "runs" / "tiny"  # not notebooks/runs/tiny
    assert params.figures_dir == REPO / "figures"
    assert notebooks_dir() == REPO / "notebooks"


def test_dicrepro_root_moves_every_relative_path(tmp_path, monkeypatch):
    (tmp_path / "params").mkdir()
    (tmp_path / "ann.jsonl").write_text("")
    (tmp_path / "params" / "mine.yaml").write_text(
        "run_dir: runs/mine\nstage2:\n  annotations: ann.jsonl\n")
    monkeypatch.setenv("DICREPRO_ROOT", str(tmp_path))
    monkeypatch.chdir(REPO / "notebooks")
    assert repo_root() == tmp_path.resolve()
    params = load_params("params/mine.yaml")
    assert params.run_dir == tmp_path.resolve() / "runs" / "mine"
    assert params.stage2.annotations == tmp_path.resolve() / "ann.jsonl"
    assert params.figures_dir == tmp_path.resolve() / "figures"  # a default, rooted too


def test_absolute_paths_are_kept(tmp_path):
    assert resolve(tmp_path / "x") == tmp_path / "x"
    assert resolve("~/x") == Path.home() / "x"
