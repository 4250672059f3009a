#!/usr/bin/env bash
# Fetch the Python wheels that the lent GPU machine (nvidia-h200: x86-64, Python 3.12, torch 2.11.0+cu130,
# transformers 5.17.0, accelerate 1.15.0, huggingface_hub 1.33.0, NO internet) lacks for dicrepro's SFT:
# TRL SFTTrainer + PEFT (`hf` backend), Unsloth FastVisionModel (`unsloth` backend), bitsandbytes 4-bit.
# Result: one flat set in .whl/ (ignored by git), to be carried there and installed with
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit;
# Idempotent: originals are downloaded once into $GPU_WHEEL_CACHE (outside the repo, never carried);
# .whl/ is then made to hold exactly the pinned wheels (anything else there is removed). `rm -rf .whl` to rebuild.
# Two wheels are slimmed (repacked, RECORD rewritten), else the set would not fit the 64 MiB carry limit:
#   unsloth:      drops studio/ (Unsloth Studio's web UI/server, 26 of its 28.6 MB; FastVisionModel never imports it)
#   bitsandbytes: keeps only libbitsandbytes_cuda${BNB_CUDA}.so (+ the cpu one) of its 15 native libraries
# Fails if .whl/ totals more than LIMIT_MIB. Usage: scripts/fetch_gpu_wheels.sh   (needs pip + PyPI here)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
DEST=.whl
CACHE=${GPU_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dicrepro-gpu-wheels}
LIMIT_MIB=58

# --- pins -------------------------------------------------------------------------------------------------
# The versions the `gpu` extra of pyproject.toml pins too (tests/test_gpu_pins.py checks that they agree).
# Newest unsloth/unsloth_zoo pair that accepts torch 2.11 (<2.15) and transformers 5.17 (<=5.17.0). It caps
# trl<=1.15.0 and datasets<5.0.0, so those two are behind the CPU venv (trl 1.16.0, datasets 5.2.0).
UNSLOTH=2026.10.9
UNSLOTH_ZOO=2026.10.9
TRL=1.14.0                 # unsloth allows <=1.15.0; 1.15.0's fused LM head needs Triton on a GPU, so its CPU run
                           # fails; 1.14.0 passes tests/test_sft.py on CPU with transformers 5.17 (scripts/check_gpu_stack_on_cpu.sh)
DATASETS=4.8.5             # newest <5 (unsloth's cap); trl needs >=4.7
PEFT=0.21.2                # the image's peft version is unknown; unsloth needs >=0.18; same as the CPU venv
PYDANTIC=2.14.4            # dicrepro.params; same as the CPU venv
PYDANTIC_CORE=2.50.5       # pydantic 2.14.4 pins it exactly (compiled, cp312)
ANNOTATED_TYPES=0.8.0      # pydantic
TYPING_INSPECTION=0.4.5    # pydantic
TYPING_EXTENSIONS=4.16.0   # pydantic-core needs >=4.16.0; the image's version is unknown, so bring it
DILL=0.4.1                 # datasets (<0.4.2)
MULTIPROCESS=0.70.19       # datasets (<0.70.20)
FSSPEC=2026.2.0            # datasets 4.8.5 caps fsspec<=2026.2.0; the image's (unknown, likely newer) would be outside it
BITSANDBYTES=0.50.2        # 4-bit QLoRA; unsloth imports it unconditionally. Smallest wheel with a CUDA 13.0 library
BNB_CUDA=130               # the one libbitsandbytes_cudaXXX.so kept: torch is +cu130 (has sm_75..sm_120, H200 = sm_90)
TORCHAO=0.18.0             # unsloth_zoo (>=0.13); its C++ extensions need torch >=2.11.0
CUT_CROSS_ENTROPY=25.1.1   # unsloth_zoo (fused CE loss)
MSGSPEC=0.23.0             # unsloth_zoo (compiled, cp312)
TYRO=1.0.17                # unsloth, unsloth_zoo
DOCSTRING_PARSER=0.18.0    # tyro
TYPEGUARD=4.6.1            # tyro
JSON5=0.17.3               # unsloth
NEST_ASYNCIO=1.6.0         # unsloth
STRUCTLOG=26.1.0           # unsloth
# Declared by unsloth but left out on purpose (nothing on the FastVisionModel path imports them):
#   xformers (huge; optional, unsloth falls back to PyTorch SDPA; PyPI's builds do not match torch cu130 anyway),
#   diffusers (+importlib_metadata; diffusion models only), hf_transfer (only find_spec'd; hub 1.x uses hf_xet),
#   certifi>=2026.10.19 (present there, version unknown; the machine has no internet).

PINS=(
  "unsloth==$UNSLOTH" "unsloth_zoo==$UNSLOTH_ZOO" "trl==$TRL" "datasets==$DATASETS" "peft==$PEFT"
  "pydantic==$PYDANTIC" "pydantic-core==$PYDANTIC_CORE" "annotated-types==$ANNOTATED_TYPES"
  "typing-inspection==$TYPING_INSPECTION" "typing-extensions==$TYPING_EXTENSIONS"
  "dill==$DILL" "multiprocess==$MULTIPROCESS" "fsspec==$FSSPEC"
  "bitsandbytes==$BITSANDBYTES" "torchao==$TORCHAO" "cut-cross-entropy==$CUT_CROSS_ENTROPY" "msgspec==$MSGSPEC"
  "tyro==$TYRO" "docstring-parser==$DOCSTRING_PARSER" "typeguard==$TYPEGUARD"
  "json5==$JSON5" "nest-asyncio==$NEST_ASYNCIO" "structlog==$STRUCTLOG"
)

# The GPU machine's tags: CPython 3.12, glibc manylinux x86-64 (pure-python py3-none-any wheels match too).
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64
           manylinux2014_x86_64 manylinux1_x86_64)

norm() { echo "$1" | tr 'A-Z' 'a-z' | sed -E 's/[-_.]+/_/g'; }   # wheel file-name form of a project name
cached() { compgen -G "$CACHE/$(norm "${1%%==*}")-${1##*==}-*.whl" | head -n1 || true; }

mkdir -p "$CACHE" "$DEST"

# 1. download what the cache lacks (pip is not asked at all when everything is there)
missing=()
for pin in "${PINS[@]}"; do [[ -n "$(cached "$pin")" ]] || missing+=("$pin"); done
if ((${#missing[@]})); then
  plat=(); for p in "${PLATFORMS[@]}"; do plat+=(--platform "$p"); done
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${plat[@]}" -d "$CACHE" "${missing[@]}"
fi

# 2. fill .whl/ with exactly the pinned wheels: plain copies, or slimmed repacks for unsloth and bitsandbytes
slim() {  # slim SRC DST MODE
  "$PY" - "$@" <<'EOF'
import csv, io, os, re, sys, zipfile
src, dst, mode = sys.argv[1:4]
if mode == "unsloth":
    drop = lambda n: n.startswith("studio/")
else:  # bitsandbytes: keep the cpu library and libbitsandbytes_cuda<mode>.so only
    keep = {f"bitsandbytes/libbitsandbytes_cpu.so", f"bitsandbytes/libbitsandbytes_cuda{mode}.so"}
    drop = lambda n: re.fullmatch(r"bitsandbytes/libbitsandbytes_\w+\.so", n) is not None and n not in keep
zin = zipfile.ZipFile(src)
names = [i.filename for i in zin.infolist()]
record = next(n for n in names if n.endswith(".dist-info/RECORD"))
if mode != "unsloth":
    missing = keep - set(names)
    if missing:
        sys.exit(f"{src}: has no {sorted(missing)}")
tmp = dst + ".tmp"
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zout:
    for info in zin.infolist():
        if info.filename == record or drop(info.filename):
            continue
        zout.writestr(info, zin.read(info.filename), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    rows = [r for r in csv.reader(io.StringIO(zin.read(record).decode())) if r and not drop(r[0])]
    out = io.StringIO(); csv.writer(out, lineterminator="\n").writerows(rows)
    zout.writestr(record, out.getvalue())
os.replace(tmp, dst)
EOF
}

want=()
for pin in "${PINS[@]}"; do
  src=$(cached "$pin"); [[ -n "$src" ]] || { echo "no wheel for $pin in $CACHE" >&2; exit 1; }
  dst="$DEST/$(basename "$src")"; want+=("$(basename "$src")")
  [[ -f "$dst" && "$dst" -nt "$src" ]] && continue
  case "${pin%%==*}" in
    unsloth) slim "$src" "$dst" unsloth ;;
    bitsandbytes) slim "$src" "$dst" "$BNB_CUDA" ;;
    *) cp "$src" "$dst" ;;
  esac
done
shopt -s nullglob dotglob
for f in "$DEST"/*; do   # one version of each package, nothing else
  b=$(basename "$f"); [[ " ${want[*]} " == *" $b "* ]] || { echo "removing stale $f"; rm -rf "$f"; }
done

# 3. sizes
total=0
for b in "${want[@]}"; do
  s=$(stat -c %s "$DEST/$b"); total=$((total + s))
  awk -v s="$s" -v b="$b" 'BEGIN { printf "%8.2f MiB  %s\n", s / 1048576, b }'
done
awk -v s="$total" -v d="$DEST" -v n="${#want[@]}" -v l="$LIMIT_MIB" \
  'BEGIN { printf "%8.2f MiB  total in %s (%d wheels; limit %d MiB)\n", s / 1048576, d, n, l }'
if ((total > LIMIT_MIB * 1048576)); then echo "ERROR: $DEST is over $LIMIT_MIB MiB" >&2; exit 1; fi
