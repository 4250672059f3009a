"""What every training run records beside its weights: the loss curve (CSV + tensorboard), hashes of the
data it read, and the versions of the libraries that ran it."""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import json
import logging
import os
from pathlib import Path

from transformers import TrainerCallback

log = logging.getLogger(__name__)

LOSS_COLUMNS = ("step", "epoch", "loss")


class LossCSVCallback(TrainerCallback):
    """Append ``step,epoch,loss`` to a CSV at every logging step (flushed, so a killed run keeps its curve).

    On resume, rows from steps after the checkpoint are dropped first, so the CSV never holds two
    values for one step.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        kept = []
        if self.path.exists():
            with open(self.path, newline="") as f:
                kept = [r for r in csv.DictReader(f) if int(r["step"]) <= state.global_step]
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=LOSS_COLUMNS)
            w.writeheader()
            w.writerows(kept)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([state.global_step, round(state.epoch or 0.0, 4), logs["loss"]])
            f.flush()
            os.fsync(f.fileno())


def tensorboard_callback(log_dir: str | Path):
    """Trainer's tensorboard callback writing to ``log_dir`` (transformers 5 dropped ``logging_dir``)."""
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(log_dir)))


def read_loss_csv(path: str | Path) -> list[dict]:
    """The loss curve as ``[{"step": int, "epoch": float, "loss": float}, ...]``."""
    with open(path, newline="") as f:
        return [{"step": int(r["step"]), "epoch": float(r["epoch"]), "loss": float(r["loss"])}
                for r in csv.DictReader(f)]


def dataset_files(folder: str | Path) -> list[Path]:
    """The arrow files a saved dataset (or DatasetDict) folder consists of, per its state.json files."""
    folder = Path(folder)
    out = []
    for state in folder.rglob("state.json"):
        for entry in json.loads(state.read_text()).get("_data_files", []):
            out.append(state.parent / entry["filename"])
    return out


def dataset_hash(folder: str | Path) -> str:
    """sha256 over a ``save_to_disk`` folder's data files (relative path + bytes), in sorted order.

    Only the files the dataset's ``state.json`` lists count: ``datasets`` may drop ``cache-*.arrow`` files
    beside them when a loaded split is filtered or mapped, and those must not change the data's identity.
    """
    folder = Path(folder)
    h = hashlib.sha256()
    files = sorted(dataset_files(folder))
    if not files:
        raise FileNotFoundError(f"no .arrow files under {folder}: not a saved Hugging Face dataset")
    for f in files:
        h.update(str(f.relative_to(folder)).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose drift changes training results."""
    out = {}
    for name in ("torch", "transformers", "trl", "peft", "datasets", "tokenizers", "accelerate",
                 "unsloth", "bitsandbytes"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out
