"""Where every artifact of a run lives. One place, so notebooks, CLI and tests agree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STAGES = (1, 2, 3)


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
