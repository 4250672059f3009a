#!/usr/bin/env bash
# The GPU half of issue 6, as one prepared run on a lent GPU machine (the `device` tool; see docs/benchmarks.md).
# Here, first:   bash scripts/fetch_gpu_wheels.sh                     (trl, datasets, pydantic, unsloth, bitsandbytes -> .whl/)
#                .venv/bin/python bench/sft_backends.py --prepare .bench   (64 stage-1 rows + the tiny processor -> .bench/)
# There:         run(command="bash scripts/device_gpu_check.sh", carry=[".whl", ".bench"], timeout_s=600)
# Writes to $OUT: nvidia-smi.txt, pip.txt, gpu_tests.log, sft_bench.log, sft_bench.json.
# SHAPE (7b), STEPS (6), WARMUP (2), GRAD_ACCUM (4) and VARIANTS (hf-qlora,unsloth-qlora) tune the benchmark
# to the time left; the GPU tests come first because they are the cheaper proof that both paths train.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
SHAPE=${SHAPE:-7b}; STEPS=${STEPS:-6}; WARMUP=${WARMUP:-2}; GRAD_ACCUM=${GRAD_ACCUM:-4}
VARIANTS=${VARIANTS:-hf-qlora,unsloth-qlora}
PY=python3
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "wheel install failed" >&2; exit 1; }
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false \
  UNSLOTH_COMPILE_LOCATION=/tmp/unsloth_compiled_cache
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
$PY -m pip list 2>/dev/null | grep -i -E "^(torch|transformers|trl|peft|accelerate|datasets|unsloth|unsloth.zoo|bitsandbytes) " > "$OUT/pip.txt"
cat "$OUT/pip.txt"
# -p no:cacheprovider: nothing to keep between runs on a machine that is given back
timeout 240 $PY -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py 2>&1 | tee "$OUT/gpu_tests.log" | tail -25
timeout 420 $PY bench/sft_backends.py --shape "$SHAPE" --processor .bench/processor --data .bench/data \
  --params params/paper.yaml --steps "$STEPS" --warmup "$WARMUP" --grad-accum "$GRAD_ACCUM" \
  --variants "$VARIANTS" --work /tmp/bench --out "$OUT/sft_bench.json" 2>&1 | tee "$OUT/sft_bench.log" | tail -30
