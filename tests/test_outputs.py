"""Output paths: a command replaces only its own earlier output, and one output has one writer."""

import os
import subprocess
import sys

import pytest
from datasets import Dataset, DatasetDict

from dicrepro.atomic import save_dataset_atomic
from dicrepro.data.augment_dataset import augment_dataset
from dicrepro.outputs import MARKER, OutputError, claim_output, lock_path, output_kind, output_lock


def _tiny_dataset(folder, kind=None):
    dd = DatasetDict({"train": Dataset.from_dict({"id": ["a"], "text": ["x"]})})
    return save_dataset_atomic(dd, folder, kind=kind)


def test_a_users_folder_is_refused_and_left_alone(tmp_path):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "paper.tex").write_text("\\documentclass{article}")
    with pytest.raises(OutputError, match="not an output of dicrepro.*--overwrite"):
        with claim_output(mine, "synth"):
            pass
    assert (mine / "paper.tex").read_text() == "\\documentclass{article}"
    assert not lock_path(mine).exists()


def test_a_users_file_is_refused(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("keep me")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        with claim_output(f, "synth"):
            pass
    with pytest.raises(OutputError, match="notes.txt is a file, not a folder"):
        with claim_output(f / "sub", "synth"):
            pass
    assert f.read_text() == "keep me"


def test_own_output_and_empty_folders_are_reused(tmp_path):
    folder = _tiny_dataset(tmp_path / "ds", kind="synth")
    assert output_kind(folder) == "synth"
    with claim_output(folder, "synth") as p:
        assert p == folder
    (tmp_path / "empty").mkdir()
    with claim_output(tmp_path / "empty", "synth"):
        pass
    # another command's output is not this command's
    with pytest.raises(OutputError, match="a dicrepro synth output"):
        with claim_output(folder, "augment"):
            pass


def test_overwrite_forces(tmp_path):
    mine = tmp_path / "x"
    mine.mkdir()
    (mine / "a.txt").write_text("a")
    with claim_output(mine, "synth", overwrite=True):
        pass


def test_rewriting_a_dataset_in_place_keeps_its_marker(tmp_path):
    folder = _tiny_dataset(tmp_path / "ds", kind="synth")
    _tiny_dataset(folder)  # e.g. `describe` or the review step saving over it
    assert output_kind(folder) == "synth"
    assert output_kind(_tiny_dataset(tmp_path / "new")) == "dataset"


def test_second_writer_fails_at_once(tmp_path):
    out = tmp_path / "ds"
    with output_lock(out):
        with pytest.raises(OutputError, match=f"being written by another dicrepro process \\(pid {os.getpid()}"):
            with claim_output(out, "synth"):
                pass
    assert not lock_path(out).exists()  # released and cleaned up


def test_stale_lock_of_a_killed_process_is_taken_over(tmp_path):
    out = tmp_path / "ds"
    # A process that takes the lock and is killed with SIGKILL: its lock file stays behind.
    code = ("import os, sys, time\nfrom dicrepro.outputs import output_lock\n"
            f"with output_lock({str(out)!r}):\n    print('locked', flush=True)\n    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(OutputError, match=f"pid {proc.pid}"):
            with claim_output(out, "synth"):
                pass
    finally:
        proc.kill()
        proc.wait()
    assert lock_path(out).read_text().strip() == str(proc.pid)  # left behind by the killed run
    with claim_output(out, "synth"):
        assert lock_path(out).read_text().strip() == str(os.getpid())


def test_augment_refuses_a_users_folder_and_its_source(tmp_path):
    src = _tiny_dataset(tmp_path / "src")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "paper.tex").write_text("x")
    with pytest.raises(OutputError, match="not an output of dicrepro"):
        augment_dataset(src, mine, seed=0, progress=False)
    assert (mine / "paper.tex").exists()
    with pytest.raises(ValueError, match="holds the source"):
        augment_dataset(src, tmp_path, seed=0, progress=False, overwrite=True)
    assert (src / MARKER).exists()


def test_a_dicrepro_dataset_saved_before_markers_is_still_ours(tmp_path):
    from dicrepro.data.synth import FEATURES, _rows_to_dataset

    row = {k: "" for k in FEATURES}
    row.update(id="s1-000000", image={"bytes": b"\x89PNG", "path": None}, seed=1)
    old_run = save_dataset_atomic(DatasetDict({"train": _rows_to_dataset([row])}), tmp_path / "stage1")
    (old_run / MARKER).unlink()  # as an older version left it
    assert output_kind(old_run) == "dataset"
    with claim_output(old_run, "synth", accept=("dataset",)):
        pass
    other = _tiny_dataset(tmp_path / "someone_elses")  # a HF dataset with other columns
    (other / MARKER).unlink()
    assert output_kind(other) is None
