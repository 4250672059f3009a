"""scripts/device_gpu_check.sh, the one command a lent GPU gets, tested on CPU with stand-in steps (STEPS_FILE):
each step under its own timeout, its result appended as a JSON line the moment it ends, a step that no
longer fits the budget deferred, and a second call resuming where the first stopped."""

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "device_gpu_check.sh"


def check(tmp_path, steps: str, timeout=60, **env):
    (tmp_path / "steps.txt").write_text(steps)
    e = {**os.environ, "STATE": str(tmp_path / "state"), "OUT": str(tmp_path / "out"),
         "STEPS_FILE": str(tmp_path / "steps.txt"), **{k: str(v) for k, v in env.items()}}
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=e, timeout=timeout)


def results(tmp_path, where="out"):
    return [json.loads(x) for x in (tmp_path / where / "results.jsonl").read_text().splitlines()]


def test_the_default_steps_fit_the_budget_each_under_its_own_timeout():
    def listed(part):
        proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True,
                              env={**os.environ, "LIST": "1", "PART": part})
        assert proc.returncode == 0, proc.stderr
        return [json.loads(x) for x in proc.stdout.splitlines()]

    steps = listed("all")
    assert [s["step"] for s in steps] == ["wheels", "gpu_hf", "gpu_unsloth", "bench_build", "bench_hf_qlora",
                                          "bench_unsloth", "bench_table"]
    assert all(s["timeout_s"] > 0 for s in steps)
    for part, names in (("tests", ["wheels", "gpu_hf", "gpu_unsloth"]),
                        ("bench", ["wheels", "bench_build", "bench_hf_qlora", "bench_unsloth", "bench_table"])):
        # each part within one call (600 s at most), with room for the machine's start and the transfers
        assert [s["step"] for s in listed(part)] == names and sum(s["timeout_s"] for s in listed(part)) <= 560
    # the hf GPU test and the unsloth one run in separate processes
    assert "test_gpu_hf.py" in steps[1]["command"] and "unsloth" not in steps[1]["command"]
    # both benchmark variants measure the same built model and rows (one --work), appending as they end
    bench = [s["command"] for s in steps if s["step"] in ("bench_hf_qlora", "bench_unsloth")]
    assert bench[0].replace("hf-qlora", "X") == bench[1].replace("unsloth-qlora", "X") and "--jsonl" in bench[0]


def test_each_step_is_recorded_as_it_ends_and_a_second_call_skips_finished_ones(tmp_path):
    steps = ("ok 10 echo first > " + str(tmp_path / "ran_ok") + "\n"
             "broken 10 exit 3\n"
             "slow 1 sleep 20\n"
             "last 10 echo last >> " + str(tmp_path / "ran_last") + "\n")
    proc = check(tmp_path, steps)
    assert proc.returncode == 0, proc.stderr
    first = results(tmp_path)
    assert [(r["step"], r["status"], r["rc"]) for r in first] == [
        ("ok", "ok", 0), ("broken", "failed", 3), ("slow", "timeout", 124), ("last", "ok", 0)]
    assert first[2]["seconds"] < 10 and first[2]["timeout_s"] == 1  # killed by its own timeout
    assert (tmp_path / "out" / "broken.log").exists()

    proc = check(tmp_path, steps)  # ok and failed are final; the timed-out step is tried again
    second = results(tmp_path)[len(first):]
    assert [(r["step"], r["status"]) for r in second] == [("slow", "timeout")]
    assert "ok: done in an earlier call, skipped" in proc.stdout
    assert (tmp_path / "ran_last").read_text() == "last\n"  # not run twice

    check(tmp_path, steps, RERUN="last")
    assert (tmp_path / "ran_last").read_text() == "last\nlast\n"


def test_a_step_that_no_longer_fits_the_budget_waits_for_the_next_call(tmp_path):
    steps = "a 3 sleep 2.9\nb 2 echo b\n"  # with the overhead between steps, b no longer fits
    proc = check(tmp_path, steps, BUDGET=5)
    assert proc.returncode == 0 and "b: deferred" in proc.stdout and "call again" in proc.stdout
    assert [(r["step"], r["status"]) for r in results(tmp_path)] == [("a", "ok"), ("b", "deferred")]
    check(tmp_path, steps, BUDGET=5)
    assert [(r["step"], r["status"]) for r in results(tmp_path)][2:] == [("b", "ok")]


def test_a_call_killed_mid_step_keeps_what_ended_and_the_next_call_resumes(tmp_path):
    steps = "quick 5 true\nlong 30 sleep 20\nafter 5 true\n"
    with pytest.raises(subprocess.TimeoutExpired):
        check(tmp_path, steps, timeout=4)  # the device call ends while 'long' runs
    assert [(r["step"], r["status"]) for r in results(tmp_path)] == [("quick", "ok")]
    steps = "quick 5 true\nlong 30 true\nafter 5 true\n"
    check(tmp_path, steps)
    assert [(r["step"], r["status"]) for r in results(tmp_path)] == [("quick", "ok"), ("long", "ok"), ("after", "ok")]


def test_skipped_steps_are_left_out(tmp_path):
    check(tmp_path, "a 5 true\nb 5 true\nc 5 true\n", SKIP="a c")
    assert [r["step"] for r in results(tmp_path)] == ["b"]


def test_timeouts_that_exceed_the_budget_are_refused(tmp_path):
    proc = check(tmp_path, "a 300 true\nb 300 true\n")
    assert proc.returncode == 2 and "add up to 600 s, more than BUDGET 560 s" in proc.stderr
