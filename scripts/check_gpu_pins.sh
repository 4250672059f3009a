#!/usr/bin/env bash
# Do the `gpu` extra's pins (pyproject.toml) resolve together with the pinned torch/torchvision
# (scripts/install_python.sh), without pip replacing torch? Asks pip, changes nothing (pip install --dry-run).
#   bash scripts/check_gpu_pins.sh            resolve with pip's configured indexes (PyPI + the local ones)
#   bash scripts/check_gpu_pins.sh --offline  resolve with the local indexes only (pip config: find-links,
#                                             file:// index URLs); names every pin they do not hold
# First it lists, for each pin, whether the local indexes hold that version. Exit status: 0 resolved with
# torch kept at its pin; 1 pip could not resolve or changed a pin; 3 (--offline) pins missing locally.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OFFLINE=0; [[ ${1:-} == --offline ]] && OFFLINE=1

case "$(uname -m)" in  # the torch pair scripts/install_python.sh installs
  x86_64) TORCH_PINS=$(grep -oE 'x86_64\) TORCH="[^"]+"' scripts/install_python.sh | sed -E 's/.*TORCH="([^"]+)"/\1/') ;;
  *) TORCH_PINS=$(grep -oE 'aarch64\|arm64\) TORCH="[^"]+"' scripts/install_python.sh | sed -E 's/.*TORCH="([^"]+)"/\1/') ;;
esac
mapfile -t GPU_PINS < <("$PY" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["gpu"]))')
PINS=($TORCH_PINS "${GPU_PINS[@]}")
for pin in "${PINS[@]}"; do
  [[ $pin == *==* ]] || { echo "error: '$pin' in the gpu extra is not an exact pin (name==version)" >&2; exit 1; }
done

# The local indexes, as pip is configured here (e.g. /etc/xdg/pip, PIP_* variables).
LOCAL=()
while IFS= read -r line; do
  key=${line%%=*}; val=${line#*=}; val=${val//\'/}
  case $key in
    *find-links) for v in $val; do LOCAL+=(--find-links "$v"); done ;;
    *index-url) for v in $val; do [[ $v == file://* ]] && LOCAL+=(--extra-index-url "$v"); done ;;
  esac
done < <("$PY" -m pip config list 2>/dev/null)
LOCAL_ONLY=(--index-url "file:///nonexistent" "${LOCAL[@]}")  # no PyPI: a missing local index is an empty one

echo "local indexes: ${LOCAL[*]:-(none configured)}"
missing=()
for pin in "${PINS[@]}"; do
  name=${pin%%==*}; version=${pin##*==}
  versions=$("$PY" -m pip index versions "$name" "${LOCAL_ONLY[@]}" 2>/dev/null | sed -n 's/^Available versions: //p')
  if [[ ", $versions, " == *", $version, "* ]]; then
    printf '  %-28s available offline\n' "$pin"
  else
    printf '  %-28s NOT available offline%s\n' "$pin" "${versions:+ (local versions: ${versions:0:60})}"
    missing+=("$pin")
  fi
done

if ((OFFLINE)); then
  if ((${#missing[@]})); then
    echo "cannot check offline: ${#missing[@]} pinned package(s) are not in the local indexes: ${missing[*]}" >&2
    echo "(run without --offline where PyPI is reachable, or add their wheels to a local index)" >&2
    exit 3
  fi
  INDEXES=("${LOCAL_ONLY[@]}")
else
  INDEXES=()
fi
report=$(mktemp); trap 'rm -f "$report" "$report.log"' EXIT
echo "resolving .[gpu] with ${TORCH_PINS} (pip install --dry-run)..."
if ! "$PY" -m pip install --dry-run --ignore-installed -q --report "$report" "${INDEXES[@]}" -e ".[gpu]" \
     $TORCH_PINS > "$report.log" 2>&1; then
  grep -v -E 'is ignored|^\s*$' "$report.log" | tail -20 >&2
  echo "FAILED: pip cannot install .[gpu] together with ${TORCH_PINS}" >&2
  exit 1
fi
"$PY" - "$report" "${PINS[@]}" <<'EOF'
import json, re, sys
report, pins = sys.argv[1], sys.argv[2:]
got = {re.sub(r"[-_.]+", "-", i["metadata"]["name"]).lower(): i["metadata"]["version"]
       for i in json.load(open(report))["install"]}
bad = []
for pin in pins:
    name, version = pin.split("==")
    have = got.get(re.sub(r"[-_.]+", "-", name).lower())
    if have != version:
        bad.append(f"{name}: pinned {version}, pip chose {have}")
print(f"resolved {len(got)} packages; " + ", ".join(f"{n} {got[n]}" for n in ("torch", "torchvision", "transformers",
      "trl", "unsloth", "xformers", "bitsandbytes") if n in got))
if bad:
    print("FAILED: " + "; ".join(bad), file=sys.stderr)
    sys.exit(1)
print("ok: every pin kept, torch not replaced")
EOF
