"""The hf backend scales out: one stage trained by 2 CPU processes under ``accelerate launch`` (DDP over
gloo), exactly as a user runs it on several GPUs, with one model saved by the main process."""

import json
import os
import re
import socket
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_sft import tiny_params

from dicrepro.params import dump_params
from dicrepro.paths import RunPaths
from dicrepro.train.box_diagrams import box_dataset
from dicrepro.train.tiny_model import build_tiny_base

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_launch(n: int, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``accelerate launch --multi_gpu --num_processes n -m dicrepro.train.launch ARGS`` on CPU, on a free port.

    ``--multi_gpu`` makes accelerate start the processes with torchrun; with no CUDA device visible they
    form a gloo group. (``--cpu`` would start a single process: accelerate's multi-CPU launcher is mpirun.)
    """
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(n),
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(free_port()), "-m", "dicrepro.train.launch", *args]
    # CPU even on a GPU machine; one thread per process: the two ranks share the machine's cores.
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def params_file(tmp_path):
    """A run folder with a tiny base model and a 16-row stage-1 dataset, and its params YAML."""
    p = tiny_params(tmp_path / "run")
    # One epoch of 16 rows in batches of 4 per process: 2 optimizer steps with 2 processes (4 with one).
    p.sft.stage1.max_steps = -1
    p.sft.stage1.epochs = 1.0
    p.sft.save_steps = 1
    paths = RunPaths(p.run_dir)
    general = box_dataset(8, 0, seed=1, domain="general")
    build_tiny_base(p, general, paths.base_model,
                    tokenizer_corpus=list(general["train"]["target"]) + ["Router Switch gNB AMF"])
    box_dataset(16, 2, seed=11).save_to_disk(str(paths.stage_data(1)))
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(dump_params(p)))
    return f, p


def test_two_processes_train_one_stage_and_save_one_model(params_file):
    from transformers import AutoModelForImageTextToText

    f, p = params_file
    proc = accelerate_launch(2, str(f), "--stage", "1")
    assert proc.returncode == 0, proc.stderr[-4000:]

    # both ranks ran the training loop, in one process group of two, on half the data each
    trained = dict(re.findall(r"rank (\d)/2 trained (\d+) steps in .* \(gloo\)", proc.stderr))
    assert trained == {"0": "2", "1": "2"}, proc.stderr[-4000:]
    assert proc.stdout.count("stage 1 saved to") == 1  # printed by the main process only

    out = RunPaths(p.run_dir).stage_model(1)
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["world_size"] == 2 and lineage["global_step"] == 2 and lineage["train_rows"] == 16
    assert "x 2 |" in (out / "README.md").read_text()  # the card's batch row counts the processes

    # exactly one full model, written once, by the main process; rank 1 wrote no logs of its own
    assert [m.relative_to(out) for m in out.rglob("model.safetensors")] == [
        out.joinpath("merged", "model.safetensors").relative_to(out)]
    assert not list(out.glob(".*.tmp"))
    assert len(list((out / "tensorboard").glob("events.*"))) == 1
    steps = [int(line.split(",")[0]) for line in (out / "loss.csv").read_text().splitlines()[1:]]
    assert steps == [1, 2]
    assert sorted(c.name for c in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    # each rank kept its own RNG state in the checkpoint, so a resumed DDP run continues each stream
    assert {r.name for r in (out / "checkpoints" / "checkpoint-2").glob("rng_state_*.pth")} == {
        "rng_state_0.pth", "rng_state_1.pth"}

    # the merged model is a plain checkpoint whose weights the training changed
    AutoModelForImageTextToText.from_pretrained(out / "merged")
    before = load_file(RunPaths(p.run_dir).base_model / "model.safetensors")
    after = load_file(out / "merged" / "model.safetensors")
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_help_names_accelerate_launch():
    proc = subprocess.run([sys.executable, "-m", "dicrepro.train.launch", "--help"], check=False,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "accelerate launch --num_processes" in proc.stdout and "--stage {1,2,3}" in proc.stdout


def test_unsloth_refuses_several_processes(monkeypatch):
    from dicrepro.train.backends import BackendUnavailable, resolve_backend

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(BackendUnavailable, match="2 processes.*one GPU.*sft.backend: hf"):
        resolve_backend("unsloth")
    assert resolve_backend("auto") == "hf"
