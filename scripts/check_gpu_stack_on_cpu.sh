#!/usr/bin/env bash
# Before spending device time: run the SFT tests here, on CPU, with the library versions the lent GPU
# machine will have (its image's transformers and huggingface_hub, plus the trl / datasets / peft / fsspec
# pinned in scripts/fetch_gpu_wheels.sh), plus the pinned unsloth/unsloth_zoo (built for this Python): they
# import on a CPU, so the tests of Unsloth's own collator (sft.collator: unsloth) run too. torch, CUDA and
# Unsloth's GPU path (FastVisionModel, 4-bit) cannot be matched here.
# It found, on 2026-12-01: SFTConfig(activation_checkpointing=...) does not exist in transformers 5.17, and
# trl 1.15.0's fused LM head needs Triton on a GPU. The processor's pixel limits, the LoRA targets, the k-bit
# preparation and the row filter are checked here too (tests/test_processor.py, test_finetune_pitfalls.py). A throwaway venv in $VENV overlays .venv (nothing in
# .venv changes). Usage: bash scripts/check_gpu_stack_on_cpu.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-/tmp/dicrepro-gpu-stack}
IMAGE_TRANSFORMERS=5.17.0   # the nvidia-h200 image (device tool's KINDS.md)
IMAGE_HUB=1.33.0
pin() { grep -E "^$1=" scripts/fetch_gpu_wheels.sh | head -n1 | sed -E 's/^[A-Z0-9_]+=([^ ]+).*/\1/'; }
TRL=$(pin TRL); DATASETS=$(pin DATASETS); PEFT=$(pin PEFT); FSSPEC=$(pin FSSPEC)
UNSLOTH_SET=()  # unsloth, unsloth_zoo and what they import, at the GPU set's versions
for name in UNSLOTH UNSLOTH_ZOO BITSANDBYTES TORCHAO CUT_CROSS_ENTROPY MSGSPEC TYRO DOCSTRING_PARSER TYPEGUARD \
            JSON5 NEST_ASYNCIO STRUCTLOG; do
  UNSLOTH_SET+=("$(echo "$name" | tr 'A-Z_' 'a-z-')==$(pin "$name")")
done
[[ -x .venv/bin/python ]] || { echo "no .venv: run make setup first" >&2; exit 1; }
SITE=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [[ ! -x $VENV/bin/python ]]; then
  "$(.venv/bin/python -c 'import sys; print(sys._base_executable)')" -m venv "$VENV"
fi
OVERLAY=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# .venv's packages come after the overlay's own on sys.path, so the pinned versions below win
echo "import site; site.addsitedir('$SITE')" > "$OVERLAY/zz_dicrepro_venv.pth"
"$VENV/bin/pip" install -q --no-deps "transformers==$IMAGE_TRANSFORMERS" "huggingface_hub==$IMAGE_HUB" \
  "trl==$TRL" "datasets==$DATASETS" "peft==$PEFT" "fsspec==$FSSPEC" "${UNSLOTH_SET[@]}"
"$VENV/bin/python" -c "import transformers, trl, datasets, peft, torch; print('transformers', transformers.__version__, \
'| trl', trl.__version__, '| datasets', datasets.__version__, '| peft', peft.__version__, '| torch', torch.__version__)
from importlib.metadata import version; print('unsloth', version('unsloth'), '| unsloth_zoo', version('unsloth_zoo'))"
# Unsloth writes compiled kernels to ./unsloth_compiled_cache unless told otherwise
HF_HUB_OFFLINE=1 UNSLOTH_COMPILE_LOCATION="$VENV/unsloth_compiled_cache" "$VENV/bin/python" -m pytest -q -p no:cacheprovider \
  tests/test_sft.py tests/test_tiny_model.py tests/test_predict.py tests/test_bench_sft.py tests/test_processor.py \
  tests/test_finetune_pitfalls.py tests/test_model_folder.py "$@"
