"""Output paths that are safe to write: a command replaces an existing output only when it is dicrepro's
own earlier output, and only one process writes one output at a time.

Every dataset or folder a command writes carries a small marker file (:data:`MARKER`) naming the kind of
output. :func:`claim_output` refuses a path that holds anything else (a user's folder, a file), unless
``overwrite`` is given, and takes a lock beside it (``.NAME.lock``) so a second writer fails at once
instead of mixing its rows with the first one's. The lock is an ``flock`` on that file: the kernel
releases it when its process dies, so a lock left by a killed run is stale by construction and is taken
over (the pid it records is only for messages).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from dicrepro.atomic import OUTPUT_MARKER as MARKER
from dicrepro.atomic import output_marker_bytes

log = logging.getLogger(__name__)


class OutputError(ValueError):
    """An output path cannot be used: not ours, not a folder, or busy. The message is one line."""


# The columns every dataset dicrepro writes has (dicrepro.data.synth.FEATURES): how a dataset saved before
# outputs were marked is still recognised as dicrepro's own, so an older run folder reruns in place.
_DICREPRO_COLUMNS = {"id", "image", "mermaid", "graph", "source", "prompt", "target"}


def _legacy_dataset(path: Path) -> bool:
    try:
        splits = json.loads((path / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
        return bool(splits) and all(
            _DICREPRO_COLUMNS <= set(json.loads((path / s / "dataset_info.json").read_text(encoding="utf-8"))
                                     ["features"]) for s in splits)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def output_kind(path: str | Path) -> str | None:
    """The kind recorded in ``path``'s marker (``dataset`` for a dicrepro dataset saved before markers), or
    None when ``path`` is not a dicrepro output folder."""
    try:
        rec = json.loads((Path(path) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "dataset" if _legacy_dataset(Path(path)) else None
    return rec.get("kind") if isinstance(rec, dict) and rec.get("written_by") == "dicrepro" else None


def write_marker(folder: str | Path, kind: str) -> None:
    """Mark ``folder`` as dicrepro's output of ``kind`` (written straight in: it is 60 bytes)."""
    (Path(folder) / MARKER).write_bytes(output_marker_bytes(kind))


def _first_file_ancestor(path: Path) -> Path | None:
    for p in [path, *path.parents]:
        if p.exists() or p.is_symlink():
            return p if not p.is_dir() else None
    return None


def check_output(path: str | Path, kinds: Sequence[str], *, overwrite: bool = False,
                 allow_files: bool = False, option: str = "--out") -> Path:
    """Raise :class:`OutputError` unless ``path`` may be written as an output of one of ``kinds``.

    Usable: a path that does not exist yet (under folders, not files), an empty folder, or a folder whose
    marker names one of ``kinds``. With ``overwrite`` anything but a file above the path is usable.
    ``allow_files`` accepts a non-empty folder without a marker too (``render`` adds PNGs to a folder).
    """
    path = Path(path)
    blocker = _first_file_ancestor(path.parent)
    if blocker is not None:
        raise OutputError(f"{option} {path}: {blocker} is a file, not a folder")
    if not (path.exists() or path.is_symlink()):
        return path
    if not path.is_dir():
        if overwrite and not allow_files:
            return path
        raise OutputError(f"{option} {path}: is a file, not a folder"
                          + ("" if allow_files else "; pass --overwrite to replace it"))
    if overwrite or output_kind(path) in kinds:
        return path
    try:
        empty = not any(path.iterdir())
    except OSError as e:
        raise OutputError(f"{option} {path}: cannot be read ({e.strerror})") from None
    if empty or allow_files:
        return path
    found = output_kind(path)
    what = f"a dicrepro {found} output" if found else "not an output of dicrepro"
    raise OutputError(f"{option} {path}: exists and is {what}; refusing to replace it "
                      f"(choose another {option} or pass --overwrite)")


def lock_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def output_lock(path: str | Path) -> Iterator[Path]:
    """Hold the lock of output ``path`` for the block; fail at once if another live process holds it."""
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise OutputError(f"{path} is being written by another dicrepro process (pid {holder}, lock "
                              f"{lock}); wait for it to finish or stop it") from None
        # The file may have been unlinked by its last holder between our open and our flock: then we
        # hold a lock nobody else can see, so start over on the path's current file.
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    stale = os.pread(fd, 64, 0).decode(errors="replace").strip()
    if stale:
        log.info("taking over the lock %s left by pid %s (no longer running)", lock, stale)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


@contextlib.contextmanager
def claim_output(path: str | Path, kind: str, *, overwrite: bool = False, accept: Sequence[str] = (),
                 allow_files: bool = False, option: str = "--out") -> Iterator[Path]:
    """Check that ``path`` may be written as an output of ``kind`` and hold its lock for the block.

    ``accept`` lists further marker kinds that may be replaced (e.g. a dataset rewritten in place).
    Raises :class:`OutputError` (one line) for someone else's file or folder, or a busy output.
    """
    path = Path(path)
    kinds = (kind, *accept)
    check_output(path, kinds, overwrite=overwrite, allow_files=allow_files, option=option)
    with output_lock(path):
        # Checked again under the lock: the other writer may have finished into it meanwhile.
        check_output(path, kinds, overwrite=overwrite, allow_files=allow_files, option=option)
        if overwrite and path.exists() and not path.is_dir():
            path.unlink()
        yield path
