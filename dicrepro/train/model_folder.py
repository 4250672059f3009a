"""Is this folder a model dicrepro can load? Checked before any loader touches it, and by ``dicrepro check``.

A model folder needs a ``config.json`` that parses, and weights in safetensors form: ``model.safetensors``
or a ``model.safetensors.index.json`` with every shard it names, each with a readable header. Weights in
pickle form (``pytorch_model.bin``, ``*.pt``, ``*.pth``, ``*.ckpt``) are refused: loading a pickle runs
whatever code it holds, so dicrepro loads safetensors only (convert with ``save_pretrained(...,
safe_serialization=True)``). An adapter folder (PEFT) needs ``adapter_config.json`` and
``adapter_model.safetensors``. Every error names the folder and what is missing or wrong.

Only the standard library here: ``dicrepro check`` runs it without importing torch.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json")
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
_MAX_HEADER = 100 * 2**20  # safetensors' own limit on the JSON header


class ModelFolderError(ValueError):
    """A model or adapter folder that cannot be loaded; the message names the folder and the problem."""


class ModelFolderMissing(ModelFolderError, FileNotFoundError):
    """The folder itself does not exist."""


def check_model_folder(path: str | Path, *, processor: bool = True) -> Path:
    """Raise :class:`ModelFolderError` unless ``path`` holds a loadable model: ``config.json``, safetensors
    weights (no pickle) and, with ``processor``, a tokenizer and an image processor config. Returns the
    folder."""
    folder = _folder(path, "model")
    problems = _config_problems(folder / "config.json")
    problems += _weight_problems(folder, "model")
    if processor:
        if not any((folder / f).is_file() for f in TOKENIZER_FILES):
            problems.append(f"no tokenizer (none of {', '.join(TOKENIZER_FILES)})")
        if not any((folder / f).is_file() for f in PROCESSOR_FILES):
            problems.append(f"no image processor config (none of {', '.join(PROCESSOR_FILES)})")
    _raise(folder, "model", problems)
    return folder


def check_adapter_folder(path: str | Path) -> Path:
    """Raise :class:`ModelFolderError` unless ``path`` holds a PEFT adapter in safetensors form."""
    folder = _folder(path, "adapter")
    problems = _config_problems(folder / "adapter_config.json", key="peft_type")
    problems += _weight_problems(folder, "adapter_model")
    _raise(folder, "adapter", problems)
    return folder


def _folder(path, what: str) -> Path:
    folder = Path(path).expanduser()
    if not folder.exists():
        raise ModelFolderMissing(f"no {what} at {folder}: the folder does not exist")
    if not folder.is_dir():
        raise ModelFolderError(f"{what} folder {folder} is a file, not a folder")
    return folder


def _raise(folder: Path, what: str, problems: list[str]) -> None:
    if problems:
        raise ModelFolderError(f"{what} folder {folder} cannot be loaded: " + "; ".join(problems))


def _config_problems(config: Path, key: str = "model_type") -> list[str]:
    if not config.is_file():
        return [f"no {config.name}"]
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return [f"{config.name} is not valid JSON ({e})"]
    if not isinstance(data, dict) or key not in data:
        return [f"{config.name} has no {key!r}"]
    return []


def _weight_problems(folder: Path, stem: str) -> list[str]:
    single, index = folder / f"{stem}.safetensors", folder / f"{stem}.safetensors.index.json"
    if single.is_file():
        return _safetensors_problems(single)
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            return [f"{index.name} is not a safetensors index ({type(e).__name__}: {e})"]
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            return [f"{index.name} names {len(missing)} missing shard(s): {', '.join(missing[:3])}"]
        return [p for s in shards for p in _safetensors_problems(folder / s)]
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        return [(f"weights only in pickle form ({', '.join(pickles[:3])}): dicrepro loads safetensors only, "
                 "since unpickling runs arbitrary code; convert them with "
                 "model.save_pretrained(folder, safe_serialization=True)")]
    return [f"no weights ({single.name} or {index.name})"]


def _safetensors_problems(file: Path) -> list[str]:
    """The header of a safetensors file: an 8-byte length, then that many bytes of JSON whose tensors all
    lie inside the file. Reads the header only, not the weights."""
    size = file.stat().st_size
    try:
        with file.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return [f"{file.name} is empty or truncated ({size} bytes)"]
            (n,) = struct.unpack("<Q", head)
            if n > min(_MAX_HEADER, size - 8):
                return [f"{file.name} is not a safetensors file (header length {n}, file {size} bytes)"]
            header = json.loads(f.read(n))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return [f"{file.name} is not a safetensors file (its header is not JSON)"]
    if not isinstance(header, dict):
        return [f"{file.name} is not a safetensors file"]
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    if not tensors:
        return [f"{file.name} holds no tensors"]
    end = max((v.get("data_offsets", [0, 0])[1] for v in tensors.values() if isinstance(v, dict)), default=0)
    if 8 + n + end > size:
        return [f"{file.name} is truncated ({size} bytes, its header needs {8 + n + end})"]
    return []


def check_params_models(params) -> list[tuple[str, Path]]:
    """Check every model folder a run's params name (``model.path`` for ``kind: local``, each
    ``eval.baselines`` path); returns ``[(what, folder)]`` checked. Raises :class:`ModelFolderError`
    listing every bad folder."""
    folders: list[tuple[str, Path]] = []
    if params.model.kind == "local" and params.model.path is not None:
        folders.append(("model.path", Path(params.model.path)))
    for b in getattr(params.eval, "baselines", []) or []:
        folders.append((f"eval.baselines[{b.name}]", Path(b.path)))
    errors = []
    for what, folder in folders:
        try:
            check_model_folder(folder)
        except ModelFolderError as e:
            errors.append(f"{what}: {e}")
    if errors:
        raise ModelFolderError("\n".join(errors))
    return folders
