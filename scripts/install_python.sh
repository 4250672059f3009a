#!/usr/bin/env bash
# The project virtual environment .venv with dicrepro installed editable.
# torch/torchvision come first, pinned per architecture, so that the package's own `torch` range never
# makes pip choose a build by itself. GPU-only packages (unsloth, bitsandbytes) live in the `gpu` extra.
#
# Which torch: transformers' Qwen2.5-VL processor needs torchvision, so torch must come with a torchvision
# that imports beside it. On x86_64 the pinned pair is PyPI's, whose torch bundles CUDA libraries (about
# 5.5 GB in the venv; on the development VM both wheels lie on local disk, so nothing is downloaded). The
# only CPU-only torch there (2.13.0+cpu) has no torchvision that imports beside it ("operator
# torchvision::nms does not exist"). With internet access, CPU-only builds (about 1 GB) come from PyTorch's
# own index:   TORCH_INDEX=https://download.pytorch.org/whl/cpu make setup
set -euo pipefail
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_INDEX=${TORCH_INDEX:-}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
VPY="$VENV/bin/python"
"$VPY" -m pip install -q --upgrade pip
case "$(uname -m)" in
  x86_64) TORCH="torch==2.14.1 torchvision==0.29.1" ;;
  aarch64|arm64) TORCH="torch==2.9.1 torchvision==0.24.1" ;;  # PyPI's aarch64 builds are CPU-only
  *) TORCH="torch torchvision" ;;
esac
if "$VPY" -c "import torch, torchvision" 2>/dev/null; then
  echo "torch: $("$VPY" -c 'import torch; print(torch.__version__)') already installed"
elif [ -n "$TORCH_INDEX" ]; then
  # --index-url, not --extra-index-url: PyPI's CUDA build has the same version number and would win.
  "$VPY" -m pip install -q --index-url "$TORCH_INDEX" $TORCH
else
  "$VPY" -m pip install -q $TORCH
fi
"$VPY" -m pip install -q -e ".[test]"
