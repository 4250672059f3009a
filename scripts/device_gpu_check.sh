#!/usr/bin/env bash
# The GPU checks, as one prepared command on a lent GPU machine (the `device` tool; docs/benchmarks.md):
#   here:   bash scripts/fetch_gpu_wheels.sh      (trl, datasets, pydantic, unsloth, bitsandbytes, ... -> .whl/)
#   there:  run(command="PART=bench bash scripts/device_gpu_check.sh", carry=[".whl"], timeout_s=560)
#           and, on another call, PART=tests (timeout_s=380): all seven steps do not fit one call (600 s at most)
# Steps, each under its own timeout (TIMEOUT_<step> overrides one), together at most BUDGET (560) seconds;
# the timeouts are from the H200 seen on 2026-12-04 (docs/benchmarks.md), with room:
#   wheels             install .whl/ into /tmp/site; nvidia-smi; library versions      (both parts)
#   gpu_hf             tests/test_gpu_hf.py: the hf backend in 4-bit, in a process without unsloth
#   gpu_unsloth        tests/test_gpu_unsloth.py: the unsloth backend, both collators
#   bench_build        bench/sft_backends.py --paper --build-only: random-init Qwen2.5-VL-7B shape + paper-sized rows
#   bench_hf_qlora     the benchmark's hf-qlora variant on them       } one run: same model, rows and settings,
#   bench_unsloth      the benchmark's unsloth-qlora variant on them  } each appended to sft_bench.jsonl
#   bench_table        the comparison table of the rows measured so far
# Each step's result is appended to $STATE/results.jsonl the moment it ends ({"step", "status": ok | failed |
# timeout | deferred, "rc", "seconds", "timeout_s", "log"}) and copied to $OUT with its log, so a call cut short
# still returns every finished step. A second call skips the steps that ended ok or failed and runs the rest
# (timed out, deferred, or cut by the end of the call); a step that no longer fits the time left of BUDGET
# is deferred to the next call. RERUN=all (or a step name) runs finished steps again. SKIP="a b" leaves the
# named steps out of this call (on a fresh machine: steps that already passed on an earlier one).
# PART=tests runs wheels and the gpu_* steps, PART=bench wheels and the bench_* steps; PART=all (default) all
# seven, which add up to more than BUDGET and are refused (a longer BUDGET on a machine with more time).
# STEPS (2), WARMUP (1), GRAD_ACCUM (4), ROWS (48) size the benchmark. STEPS_FILE=path replaces the steps with
# lines "name timeout_s command" (tests/test_device_check.py tests the machinery so, on CPU); LIST=1 prints
# the steps as JSON lines and exits.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}; STATE=${STATE:-/tmp/dicrepro-gpu-check}; BUDGET=${BUDGET:-560}
PART=${PART:-all}; STEPS=${STEPS:-2}; WARMUP=${WARMUP:-1}; GRAD_ACCUM=${GRAD_ACCUM:-4}; ROWS=${ROWS:-48}; RERUN=${RERUN:-}
SKIP=" ${SKIP:-} "
[[ $PART =~ ^(all|tests|bench)$ ]] || { echo "error: PART must be all, tests or bench, not '$PART'" >&2; exit 2; }
mkdir -p "$OUT" "$STATE/logs"
RESULTS=$STATE/results.jsonl
T0=$(date +%s.%N)

export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH} HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 \
  TOKENIZERS_PARALLELISM=false UNSLOTH_COMPILE_LOCATION=/tmp/unsloth_compiled_cache
BENCH="python3 bench/sft_backends.py --paper --rows $ROWS --work $STATE/bench --steps $STEPS --warmup $WARMUP \
--grad-accum $GRAD_ACCUM --jsonl $STATE/sft_bench.jsonl"
# name  timeout_s  command     (one per line; the timeouts add up to at most BUDGET)
default_steps() {
  cat <<EOF
wheels 20 python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && nvidia-smi && python3 -m pip list 2>/dev/null | grep -i -E '^(torch|transformers|trl|peft|accelerate|datasets|unsloth|unsloth.zoo|bitsandbytes) '
gpu_hf 80 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu_hf.py
gpu_unsloth 240 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu_unsloth.py
bench_build 80 $BENCH --build-only
bench_hf_qlora 170 $BENCH --variants hf-qlora
bench_unsloth 240 $BENCH --variants unsloth-qlora
bench_table 10 python3 -c "import json, sys; sys.path.insert(0, 'bench'); from sft_backends import table; rows = [json.loads(x) for x in open('$STATE/sft_bench.jsonl')]; print(table(rows, 'hf-qlora'))"
EOF
}
all_steps() { if [[ -n ${STEPS_FILE:-} ]]; then grep -v -E '^\s*(#|$)' "$STEPS_FILE"; else default_steps; fi; }
in_part() { [[ $PART == all || $1 == wheels || ($PART == tests && $1 == gpu_*) || ($PART == bench && $1 == bench_*) ]]; }
steps() { all_steps | while read -r name rest; do in_part "$name" && [[ $SKIP != *" $name "* ]] && echo "$name $rest"; done; }

# timeout of a step: TIMEOUT_<name> if set, else the step list's
step_timeout() { local v="TIMEOUT_$1"; echo "${!v:-$2}"; }

total=0
while read -r name t _; do total=$((total + $(step_timeout "$name" "$t"))); done < <(steps)
if [[ -n ${LIST:-} ]]; then
  steps | while read -r name t cmd; do
    python3 -c 'import json, sys; print(json.dumps({"step": sys.argv[1], "timeout_s": int(sys.argv[2]), "command": sys.argv[3]}))' \
      "$name" "$(step_timeout "$name" "$t")" "$cmd"
  done
  exit 0
fi
if ((total > BUDGET)); then
  echo "error: the steps' timeouts add up to ${total} s, more than BUDGET ${BUDGET} s (PART=tests and PART=bench split them into two calls)" >&2; exit 2
fi

record() {  # record STEP STATUS RC SECONDS TIMEOUT: one JSON line, appended as the step ends
  python3 - "$RESULTS" "$@" <<'EOF'
import json, sys, time
path, step, status, rc, seconds, timeout = sys.argv[1:7]
line = {"step": step, "status": status, "rc": int(rc), "seconds": round(float(seconds), 1),
        "timeout_s": int(timeout), "log": f"{step}.log", "ended": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
with open(path, "a", encoding="utf-8") as f:
    f.write(json.dumps(line) + "\n")
print(json.dumps(line))
EOF
}
finished() {  # finished STEP: did an earlier call end it ok or failed?
  [[ -f $RESULTS ]] || return 1
  [[ $RERUN == all || $RERUN == "$1" ]] && return 1
  python3 - "$RESULTS" "$1" <<'EOF'
import json, sys
last = None
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    if r["step"] == sys.argv[2]:
        last = r["status"]
sys.exit(0 if last in ("ok", "failed") else 1)
EOF
}
publish() { cp -f "$STATE"/*.jsonl "$STATE"/logs/*.log "$OUT"/ 2>/dev/null || true; }

while read -r name t cmd; do
  t=$(step_timeout "$name" "$t")
  if finished "$name"; then echo "== $name: done in an earlier call, skipped"; continue; fi
  left=$(python3 -c "import time; print(int($BUDGET - (time.time() - $T0)))")
  if ((left < t)); then
    record "$name" deferred 0 0 "$t" >/dev/null
    echo "== $name: deferred (${left} s left of BUDGET ${BUDGET} s, it may take ${t} s): call again to continue"
    publish; exit 0
  fi
  echo "== $name (timeout ${t} s)"
  s0=$(date +%s.%N)
  timeout --kill-after=5 "$t" bash -c "$cmd" > "$STATE/logs/$name.log" 2>&1 < /dev/null
  rc=$?
  secs=$(python3 -c "import time; print(time.time() - $s0)")
  case $rc in
    0) status=ok ;;
    124|137) status=timeout ;;
    *) status=failed ;;
  esac
  tail -n 15 "$STATE/logs/$name.log"
  record "$name" "$status" "$rc" "$secs" "$t"
  publish
done < <(steps)
echo "== all steps ended; results in $OUT/results.jsonl"
