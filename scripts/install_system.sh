#!/usr/bin/env bash
# Debian packages dicrepro needs: Chromium (mermaid.js rendering), fonts for Latin and CJK labels and emoji,
# WordNet data (METEOR, read from disk: no nltk.download), Tesseract (the OCR baseline).
# Idempotent: installs only what is missing.
set -euo pipefail
PKGS=(chromium fonts-noto-cjk fonts-dejavu-core fonts-liberation fonts-noto-color-emoji wordnet-base tesseract-ocr tesseract-ocr-eng tesseract-ocr-chi-sim)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
echo "system packages: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "error: need root (or sudo) to run: apt-get install ${missing[*]}" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
