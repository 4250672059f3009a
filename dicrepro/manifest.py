"""``RUN/manifest.json``: what a run was made from (params, seed, package versions) and the sha256 of
every artifact it left, so two runs can be compared byte for byte."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from dicrepro.atomic import write_json_atomic
from dicrepro.params import Params, dump_params
from dicrepro.paths import RunPaths, node_modules

PACKAGES = ("dicrepro", "torch", "torchvision", "transformers", "tokenizers", "peft", "trl", "accelerate",
            "datasets", "papermill", "playwright", "nltk", "sacrebleu", "rouge-score", "pycocoevalcap",
            "jieba", "pandas", "seaborn", "matplotlib", "unsloth", "bitsandbytes")

# Checkpoints and event logs are large or timestamped; the final artifacts are what a manifest vouches for.
_SKIP_PARTS = {"checkpoints", "runs", "tensorboard", ".ipynb_checkpoints"}


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def mermaid_version() -> str | None:
    pkg = node_modules() / "mermaid" / "package.json"
    try:
        return json.loads(pkg.read_text())["version"]
    except (OSError, KeyError, ValueError):
        return None


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


_HASH_CONTENT_BELOW = 512 * 2**20  # bytes: a folder this small is hashed by content, a larger one by listing


def folder_identity(folder: Path) -> str:
    """A hash of a model folder that changes whenever the folder's model changes: by content when the
    folder is small (the tiny stand-in and its stages), else by ``config.json`` and the names, sizes and
    modification times of its files (hashing the 15 GB of a 7B model would take minutes)."""
    h = hashlib.sha256()
    files = sorted(f for f in Path(folder).iterdir() if f.is_file())
    by_content = sum(f.stat().st_size for f in files) < _HASH_CONTENT_BELOW
    for f in files:
        if by_content or f.name == "config.json":
            h.update(f"{f.name}:{sha256_file(f)}".encode())
        else:
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def artifact_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative posix paths), skipping checkpoints and logs."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if not p.is_file() or rel.name == "manifest.json" or _SKIP_PARTS & set(rel.parts):
            continue
        if any(part.startswith(".") for part in rel.parts):  # unfinished temp files and shard work dirs
            continue
        if rel.name.startswith("cache-") and rel.suffix == ".arrow":  # datasets' own caches, not artifacts
            continue
        out[rel.as_posix()] = sha256_file(p)
    return out


def write_manifest(params: Params, *, step_done: str | None = None, seconds: float | None = None,
                   signature: str | None = None) -> Path:
    """Update the run's manifest: params, versions, steps done (with wall time and the signature of what
    they were made from, :func:`dicrepro.steps.signatures`) and artifact hashes."""
    paths = RunPaths(Path(params.run_dir))
    old = {}
    if paths.manifest.exists():
        try:
            old = json.loads(paths.manifest.read_text())
        except ValueError:
            old = {}
    steps = dict(old.get("steps", {}))
    if step_done:
        steps[step_done] = {"seconds": round(seconds or 0.0, 1), "signature": signature,
                            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    manifest = {
        "name": params.name,
        "seed": params.seed,
        "params": dump_params(params),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "mermaid_js": mermaid_version(),
        "steps": steps,
        "artifacts": artifact_hashes(paths.root),
    }
    return write_json_atomic(paths.manifest, manifest)
