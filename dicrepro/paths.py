"""Where every artifact of a run lives. One place, so notebooks, CLI and tests agree.

Relative paths (a params file, its ``run_dir``, ``figures_dir``, ...) are taken from the project root,
not from the working directory: JupyterLab runs a notebook with ``notebooks/`` as its working directory,
papermill and the shell with whatever the user's is, and all of them must find the same files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

STAGES = (1, 2, 3)

# The checkout this package was imported from (None for an installed wheel).
_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent if (_PACKAGE.parent / "pyproject.toml").is_file() and \
    (_PACKAGE.parent / "notebooks").is_dir() else None


def repo_root() -> Path:
    """The project root: ``$DICREPRO_ROOT``, else the dicrepro checkout, else (installed wheel) the
    current working directory."""
    env = os.environ.get("DICREPRO_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    return _CHECKOUT if _CHECKOUT is not None else Path.cwd().resolve()


def resolve(path: str | Path) -> Path:
    """``path`` as an absolute path: unchanged if absolute (``~`` expanded), else under :func:`repo_root`."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else repo_root() / p


def notebooks_dir() -> Path:
    """The pipeline's notebooks: ``notebooks/`` of the checkout, else the copy shipped in the wheel."""
    for root in (_CHECKOUT, repo_root()):
        if root is not None and (root / "notebooks" / "00_base_model.ipynb").is_file():
            return root / "notebooks"
    return _PACKAGE / "notebooks"


def node_modules() -> Path:
    """Where ``npm ci`` put mermaid.js: ``node_modules`` of the checkout, else of :func:`repo_root`."""
    if _CHECKOUT is not None and (_CHECKOUT / "node_modules").is_dir():
        return _CHECKOUT / "node_modules"
    return repo_root() / "node_modules"


@dataclass(frozen=True)
class RunPaths:
    """The layout of a run folder (``runs/tiny`` by default)."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def pretrain_data(self) -> Path:
        """General (non-ICT) diagrams used to pre-train the tiny base model."""
        return self.data / "pretrain"

    @property
    def stage1_data(self) -> Path:
        return self.data / "stage1"

    @property
    def stage2_data(self) -> Path:
        return self.data / "stage2"

    @property
    def stage2_candidates(self) -> Path:
        """Every stage-2 candidate pair (expert or stand-in) before review; ``stage2_data`` is after."""
        return self.data / "stage2_candidates"

    @property
    def stage2_reviews(self) -> Path:
        return self.data / "stage2_reviews.jsonl"

    @property
    def stage3_data(self) -> Path:
        return self.data / "stage3"

    def stage_data(self, stage: int) -> Path:
        return {1: self.stage1_data, 2: self.stage2_data, 3: self.stage3_data}[stage]

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def base_model(self) -> Path:
        return self.models / "base"

    def stage_model(self, stage: int) -> Path:
        return self.models / f"stage{stage}"

    def model_dir(self, name: str) -> Path:
        """``base``, ``stage1``..``stage3`` -> their folder (merged weights + processor)."""
        if name == "base":
            return self.base_model
        if name.startswith("stage") and name[5:].isdigit():
            return self.stage_model(int(name[5:])) / "merged"
        raise KeyError(f"no model named {name!r} in run {self.root}")

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"
