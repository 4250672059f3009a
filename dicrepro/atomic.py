"""Atomic writes: a crash mid-write never leaves a half-written file where a finished one is expected."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temp file beside ``path``, fsync it, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide results from the rest of a team or a web server
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n")


def read_json_record(path: str | Path) -> Any | None:
    """The JSON an earlier run recorded at ``path`` (what an artifact was made from), or None when there
    is none or it cannot be read: either way the artifact is then not trusted to be reusable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def matches_json_record(path: str | Path, obj: Any) -> bool:
    """Whether ``path`` records ``obj``, compared as JSON (a tuple and the list it was written as match)."""
    return read_json_record(path) == json.loads(json.dumps(obj))


def append_jsonl(path: str | Path, row: dict) -> None:
    """Append one JSON line and fsync, so a decision or a cached reply survives a crash right after."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a JSONL file; a bad line raises ValueError naming the file and line number."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{i}: not valid JSON ({e.msg})") from None
    return rows


def replace_dir_atomic(tmp_dir: Path, final_dir: Path) -> Path:
    """Move a fully written ``tmp_dir`` into place as ``final_dir`` (replacing an older one)."""
    final_dir = Path(final_dir)
    if final_dir.exists():
        old = final_dir.with_name(f".{final_dir.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final_dir, old)
        os.replace(tmp_dir, final_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        final_dir.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_dir, final_dir)
    return final_dir


# Marks a folder as dicrepro's own output (dicrepro.outputs reads it before replacing a folder).
OUTPUT_MARKER = ".dicrepro-output.json"


def output_marker_bytes(kind: str) -> bytes:
    """The marker's content for an output of ``kind``: deterministic, so outputs stay byte-identical."""
    return (json.dumps({"kind": kind, "written_by": "dicrepro"}, sort_keys=True) + "\n").encode()


def save_dataset_atomic(data, folder: str | Path, kind: str | None = None) -> Path:
    """``save_to_disk`` a Dataset/DatasetDict into a temp folder, then move it into place.

    The folder gets the output marker of ``kind`` inside it before the move (so a kill never leaves an
    unmarked dataset); with no ``kind`` an older folder's marker is kept, else it is marked ``dataset``.
    Empty splits are saved as one (empty) shard: datasets cannot load a split saved with zero shards.
    """
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if hasattr(data, "keys"):  # DatasetDict
        shards = {k: 1 for k, ds in data.items() if len(ds) == 0}
        data.save_to_disk(str(tmp), num_shards=shards or None)
    else:
        data.save_to_disk(str(tmp), num_shards=1 if len(data) == 0 else None)
    old_marker = folder / OUTPUT_MARKER
    if kind is None and old_marker.is_file():
        shutil.copyfile(old_marker, tmp / OUTPUT_MARKER)
    else:
        (tmp / OUTPUT_MARKER).write_bytes(output_marker_bytes(kind or "dataset"))
    return replace_dir_atomic(tmp, folder)
