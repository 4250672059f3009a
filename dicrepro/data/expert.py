"""Stage-2 data: expert-annotated image-text pairs.

Import from the formats annotation teams use (JSONL, CSV, a folder of image + same-named .txt files, a
Label Studio JSON export), validate every row (reported with its file and line, never silently dropped),
keep near-duplicates of evaluation images out of training, and, when the user has no expert data, build
a stand-in that is labelled as such in every row (``source='standin'``).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
MAX_TEXT_CHARS = 8000
MIN_TEXT_CHARS = 10


@dataclass
class Problem:
    """One bad row: where it is and what is wrong."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.field}: {self.message}"


@dataclass
class ImportReport:
    rows: list[dict] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        return f"{len(self.rows)} valid rows, {len(self.problems)} problems"


class AnnotationError(ValueError):
    """Raised by strict imports; the message lists every problem with file and line."""


def _raw_jsonl(path: Path):
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                yield i, None, f"not valid JSON ({e.msg})"
                continue
            yield i, obj, None if isinstance(obj, dict) else "a line must be a JSON object"


def _raw_csv(path: Path):
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        for row in reader:
            # line_num is the physical line just read: the right one to show, also for quoted newlines
            yield reader.line_num, row, None


def _raw_folder(path: Path):
    images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    for p in images:
        txt = p.with_suffix(".txt")
        text = txt.read_text(encoding="utf-8") if txt.exists() else None
        yield None, {"image": p.name, "text": text, "_file": str(txt if txt.exists() else p)}, None
    image_stems = {p.stem for p in images}
    for txt in sorted(path.glob("*.txt")):
        if txt.stem not in image_stems:
            yield None, {"image": None, "text": txt.read_text(encoding="utf-8"), "_file": str(txt)}, None


def _raw_label_studio(path: Path):
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        yield e.lineno, None, f"not valid JSON ({e.msg})"
        return
    if not isinstance(tasks, list):
        yield None, None, "a Label Studio export is a JSON list of tasks"
        return
    for n, task in enumerate(tasks, 1):
        data = task.get("data", {}) if isinstance(task, dict) else {}
        text = None
        for ann in (task.get("annotations") or []) if isinstance(task, dict) else []:
            for res in ann.get("result", []):
                val = res.get("value", {})
                if "text" in val:
                    t = val["text"]
                    text = "\n".join(t) if isinstance(t, list) else t
                if "choices" in val and val["choices"]:
                    data = {**data, "diagram_type": val["choices"][0]}
        # Label Studio serves local files as /data/local-files/?d=relative/path
        image = data.get("image") or data.get("img")
        if isinstance(image, str) and "?d=" in image:
            image = image.split("?d=", 1)[1]
        yield n, {"image": image, "text": text, "diagram_type": data.get("diagram_type"),
                  "id": str(task.get("id", n)) if isinstance(task, dict) else str(n)}, None


def detect_format(path: Path) -> str:
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    if suffix == ".json":
        return "label_studio"
    raise AnnotationError(f"{path}: unknown annotation format (use .jsonl, .csv, a Label Studio .json "
                          "export or a folder of images with same-named .txt files)")


def _load_image(path: Path) -> tuple[bytes | None, str | None]:
    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # verify() misses truncated files; a full decode does not
            buf = io.BytesIO()
            im.convert("RGB").save(buf, format="PNG")
        return buf.getvalue(), None
    except FileNotFoundError:
        return None, f"image file not found: {path}"
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        return None, f"image is unreadable or corrupt: {path} ({e})"


def import_annotations(path: str | Path, *, strict: bool = False) -> ImportReport:
    """Read and validate expert annotations from ``path`` (format detected from the name).

    Each valid row becomes ``{"id", "image_bytes", "text", "diagram_type", "file", "line"}``. Every
    invalid row is reported in ``report.problems`` with file, line and field; with ``strict=True`` any
    problem raises :class:`AnnotationError` listing all of them.
    """
    path = Path(path)
    if not path.exists():
        raise AnnotationError(f"annotation path does not exist: {path}")
    fmt = detect_format(path)
    base = path if path.is_dir() else path.parent
    reader = {"jsonl": _raw_jsonl, "csv": _raw_csv, "folder": _raw_folder,
              "label_studio": _raw_label_studio}[fmt]
    report = ImportReport()
    seen_text: dict[str, str] = {}
    seen_image: dict[str, str] = {}
    for line, obj, err in reader(path):
        file = str(path)
        if obj is not None and "_file" in obj:
            file = obj.pop("_file")
        where = f"{file}:{line}" if line is not None else file
        if err:
            report.problems.append(Problem(file, line, "(row)", err))
            continue
        image_ref = obj.get("image") or obj.get("image_path")
        text = obj.get("text") or obj.get("description") or obj.get("caption")
        bad = False
        if not image_ref:
            report.problems.append(Problem(file, line, "image", "missing image path"))
            bad = True
        if text is None or not str(text).strip():
            report.problems.append(Problem(file, line, "text", "empty or missing text"))
            bad = True
        elif len(str(text).strip()) < MIN_TEXT_CHARS:
            report.problems.append(Problem(file, line, "text", f"text too short (< {MIN_TEXT_CHARS} chars)"))
            bad = True
        elif len(str(text)) > MAX_TEXT_CHARS:
            report.problems.append(Problem(file, line, "text", f"text too long (> {MAX_TEXT_CHARS} chars)"))
            bad = True
        if bad:
            continue
        text = str(text).strip()
        img_path = Path(image_ref) if Path(image_ref).is_absolute() else base / image_ref
        png, img_err = _load_image(img_path)
        if img_err:
            report.problems.append(Problem(file, line, "image", img_err))
            continue
        if text in seen_text:
            report.problems.append(Problem(file, line, "text", f"duplicate of {seen_text[text]}"))
            continue
        if str(img_path) in seen_image:
            report.problems.append(Problem(file, line, "image", f"same image as {seen_image[str(img_path)]}"))
            continue
        seen_text[text] = where
        seen_image[str(img_path)] = where
        report.rows.append({"id": str(obj.get("id") or f"e-{len(report.rows):06d}"), "image_bytes": png,
                            "text": text, "diagram_type": str(obj.get("diagram_type") or "unknown"),
                            "file": file, "line": line})
    log.info("%s (%s): %s", path, fmt, report.summary())
    if strict and report.problems:
        raise AnnotationError(f"{path}: {len(report.problems)} bad rows:\n" +
                              "\n".join(f"  {p}" for p in report.problems))
    return report


def perceptual_hashes(images: list[bytes]) -> list:
    """pHash of each image (for the leakage guard)."""
    import imagehash

    return [imagehash.phash(Image.open(io.BytesIO(b)).convert("RGB")) for b in images]


def leakage_flags(train_images: list[bytes], eval_images: list[bytes], *, max_distance: int = 6) -> list[bool]:
    """True for each training image that is a near-duplicate (pHash Hamming distance <= ``max_distance``)
    of any evaluation image: such rows must stay out of training."""
    eval_h = perceptual_hashes(eval_images)
    flags = []
    for h in perceptual_hashes(train_images):
        flags.append(any(h - e <= max_distance for e in eval_h))
    return flags
