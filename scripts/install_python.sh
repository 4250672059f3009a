#!/usr/bin/env bash
# The project virtual environment .venv with dicrepro installed editable.
# torch/torchvision come first, pinned per architecture, so that no plain `torch` requirement can make
# pip download a multi-GB CUDA build on the CPU path. GPU-only packages live in the `gpu` extra.
set -euo pipefail
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
VPY="$VENV/bin/python"
"$VPY" -m pip install -q --upgrade pip
case "$(uname -m)" in
  x86_64) TORCH="torch==2.14.1 torchvision==0.29.1" ;;
  aarch64|arm64) TORCH="torch==2.9.1 torchvision==0.24.1" ;;
  *) TORCH="torch torchvision" ;;
esac
if "$VPY" -c "import torch, torchvision" 2>/dev/null; then
  echo "torch: $("$VPY" -c 'import torch; print(torch.__version__)') already installed"
else
  "$VPY" -m pip install -q $TORCH
fi
"$VPY" -m pip install -q -e ".[test]"
