"""Stage-2 data: expert-annotated image-text pairs.

Import from the formats annotation teams use (JSONL, CSV, a folder of image + same-named .txt files, a
Label Studio JSON export), validate every row (reported with its file and line, never silently dropped),
keep near-duplicates of evaluation images out of training, and, when the user has no expert data, build
a stand-in that is labelled as such in every row (``source='standin'``).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import stat
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
MAX_TEXT_CHARS = 8000
MIN_TEXT_CHARS = 10
# Caps that keep one hostile or mistaken file from taking the whole import (or the machine) down
MAX_IMAGE_BYTES = 50 << 20
MAX_IMAGE_PIXELS = 40_000_000  # 8000 x 5000; checked from the header, before decoding
MAX_ANNOTATION_BYTES = 1 << 30
MAX_TXT_BYTES = 1 << 20


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

    def text(self) -> str:
        """The report as the CLI prints it and the run folder keeps it: one line per rejected row
        (``file:line: field: reason``), then the summary."""
        return "".join(f"{p}\n" for p in self.problems) + self.summary() + "\n"


class AnnotationError(ValueError):
    """Raised for an annotation source that cannot be read at all (and by strict imports, listing every
    problem with file and line). A bad row is never an exception: it becomes a :class:`Problem`."""


def _is_undecodable(s: str) -> bool:
    # _decode keeps bytes that are not UTF-8 as lone surrogates, so only the rows holding them are refused
    return any("\udc80" <= ch <= "\udcff" for ch in s)


def _decode(data: bytes) -> str:
    """Text of an annotation file: UTF-8 (with or without BOM) or UTF-16/32 with a BOM."""
    for bom, enc in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                     (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                     (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data.decode(enc, errors="replace")
    return data.decode("utf-8", errors="surrogateescape")


def _read_regular(path: Path, limit: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes, else ValueError/OSError
    (a FIFO would block forever, /dev/zero would fill memory)."""
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise ValueError("not a regular file")
    if st.st_size > limit:
        raise ValueError(f"{st.st_size} bytes, over the limit of {limit}")
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"over the limit of {limit} bytes")
    return data


def _read_source(path: Path) -> str:
    try:
        return _decode(_read_regular(path, MAX_ANNOTATION_BYTES))
    except (OSError, ValueError) as e:
        raise AnnotationError(f"{path}: cannot read annotations: {getattr(e, 'strerror', None) or e}") from None


def _raw_jsonl(path: Path):
    for i, line in enumerate(_read_source(path).split("\n"), 1):
        if not line.strip():
            continue
        if _is_undecodable(line):
            yield i, None, "line is not UTF-8 text (save the file as UTF-8)"
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            yield i, None, f"not valid JSON ({e.msg})"
            continue
        except RecursionError:
            yield i, None, "JSON nested too deeply"
            continue
        yield i, obj, None if isinstance(obj, dict) else f"a line must be a JSON object, not {_kind(obj)}"


def _raw_csv(path: Path):
    reader = csv.DictReader(io.StringIO(_read_source(path), newline=""))
    while True:
        before = reader.line_num
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:  # e.g. a field over the csv module's 128K-character limit
            yield reader.line_num, None, f"CSV: {e}"
            if reader.line_num == before:  # nothing consumed: stop rather than loop
                return
            continue
        # line_num is the physical line just read: the right one to show, also for quoted newlines
        if None in row:
            yield reader.line_num, None, f"more fields than the header's {len(reader.fieldnames or [])}"
            continue
        yield reader.line_num, row, None


def _read_txt(txt: Path) -> tuple[str | None, str | None]:
    try:
        return _decode(_read_regular(txt, MAX_TXT_BYTES)), None
    except (OSError, ValueError) as e:
        return None, f"cannot read {txt.name}: {getattr(e, 'strerror', None) or e}"


def _raw_folder(path: Path):
    entries = sorted(path.iterdir())
    images = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES]
    for p in images:
        txt = p.with_suffix(".txt")
        text, err = _read_txt(txt) if txt.exists() else (None, None)
        yield None, {"image": p.name, "text": text, "_file": str(txt if txt.exists() else p)}, err
    image_stems = {p.stem for p in images}
    for txt in (p for p in entries if p.suffix == ".txt" and p.stem not in image_stems):
        text, err = _read_txt(txt)
        yield None, {"image": None, "text": text, "_file": str(txt)}, err


def _label_studio_row(task, n: int) -> tuple[dict | None, str | None]:
    """One Label Studio task as a raw row, or why its shape is wrong."""
    if not isinstance(task, dict):
        return None, f"a task must be a JSON object, not {_kind(task)}"
    data = task.get("data", {})
    anns = task.get("annotations") or []
    if not isinstance(data, dict) or not isinstance(anns, list):
        return None, "a task needs 'data' as an object and 'annotations' as a list"
    data, text = dict(data), None
    for ann in anns:
        results = ann.get("result", []) if isinstance(ann, dict) else None
        if not isinstance(results, list):
            return None, "each annotation needs 'result' as a list"
        for res in results:
            val = res.get("value") if isinstance(res, dict) else None
            if not isinstance(val, dict):
                return None, "each result needs 'value' as an object"
            if "text" in val:
                t = val["text"]
                text = "\n".join(map(str, t)) if isinstance(t, list) else t
            if isinstance(val.get("choices"), list) and val["choices"]:
                data["diagram_type"] = val["choices"][0]
    # Label Studio serves local files as /data/local-files/?d=relative/path
    image = data.get("image") or data.get("img")
    if isinstance(image, str) and "?d=" in image:
        image = image.split("?d=", 1)[1]
    tid = task.get("id", n)
    return {"image": image, "text": text, "diagram_type": data.get("diagram_type"),
            "id": tid if tid is not None else n}, None


def _raw_label_studio(path: Path):
    text = _read_source(path)
    if _is_undecodable(text):
        yield None, None, "not UTF-8 text (save the export as UTF-8)"
        return
    try:
        tasks = json.loads(text)
    except json.JSONDecodeError as e:
        yield e.lineno, None, f"not valid JSON ({e.msg})"
        return
    except RecursionError:
        yield None, None, "JSON nested too deeply"
        return
    if not isinstance(tasks, list):
        yield None, None, "a Label Studio export is a JSON list of tasks"
        return
    for n, task in enumerate(tasks, 1):
        row, err = _label_studio_row(task, n)
        yield n, row, err


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
    """The image at ``path`` re-encoded as PNG, or why not: only regular files under MAX_IMAGE_BYTES whose
    header declares at most MAX_IMAGE_PIXELS pixels are decoded."""
    try:
        data = _read_regular(path, MAX_IMAGE_BYTES)
    except FileNotFoundError:
        return None, f"image file not found: {path}"
    except (OSError, ValueError) as e:
        return None, f"cannot read {path}: {getattr(e, 'strerror', None) or e}"
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS:
                return None, f"{path}: {w}x{h} pixels, over the limit of {MAX_IMAGE_PIXELS}"
            im.load()  # verify() misses truncated files; a full decode does not
            buf = io.BytesIO()
            im.convert("RGB").save(buf, format="PNG")
        return buf.getvalue(), None
    except Image.DecompressionBombError as e:  # PIL's own header check, for sizes far over ours
        return None, f"{path}: over the limit of {MAX_IMAGE_PIXELS} pixels ({e})"
    except Exception as e:  # noqa: BLE001 - PIL raises many kinds for hostile bytes; each is this row's problem
        return None, f"image is unreadable or corrupt: {path} ({type(e).__name__}: {e})"


def _kind(v) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(v), "a number" if isinstance(v, (int, float)) else type(v).__name__)


def _first(obj: dict, *keys):
    for k in keys:
        if obj.get(k) not in (None, ""):
            return k, obj[k]
    return keys[0], None


def _check_row(obj: dict, base: Path, file: str, line, seen: dict) -> tuple[dict | None, list[Problem]]:
    """Validate one raw row: a row dict, or the problems that keep it out (never an exception)."""
    problems = []

    def bad(fld: str, msg: str) -> None:
        problems.append(Problem(file, line, fld, msg))

    ifield, image_ref = _first(obj, "image", "image_path")
    tfield, text = _first(obj, "text", "description", "caption")
    rid, dtype = obj.get("id"), obj.get("diagram_type")
    if image_ref is None:
        bad("image", "missing image path")
    elif not isinstance(image_ref, str):
        bad(ifield, f"must be a path (a string), got {_kind(image_ref)}")
    elif "\0" in image_ref or _is_undecodable(image_ref):
        bad(ifield, "path holds a NUL byte or bytes that are not UTF-8")
    if text is None or (isinstance(text, str) and not text.strip()):
        bad("text", "empty or missing text")
    elif not isinstance(text, str):
        bad(tfield, f"must be a string, got {_kind(text)}")
    elif _is_undecodable(text):
        bad(tfield, "not UTF-8 text (save the file as UTF-8)")
    elif len(text.strip()) < MIN_TEXT_CHARS:
        bad(tfield, f"text too short (< {MIN_TEXT_CHARS} chars)")
    elif len(text) > MAX_TEXT_CHARS:
        bad(tfield, f"text too long (> {MAX_TEXT_CHARS} chars)")
    if rid is not None and (isinstance(rid, bool) or not isinstance(rid, (str, int))):
        bad("id", f"must be a string or a whole number, got {_kind(rid)}")
    elif rid is not None and str(rid) in seen["id"]:
        bad("id", f"duplicate id {str(rid)!r} (first at {seen['id'][str(rid)]})")
    if dtype is not None and not isinstance(dtype, str):
        bad("diagram_type", f"must be a string, got {_kind(dtype)}")
    if problems:
        return None, problems
    text = text.strip()
    where = f"{file}:{line}" if line is not None else file
    img_path = Path(image_ref) if Path(image_ref).is_absolute() else base / image_ref
    png, img_err = _load_image(img_path)
    if img_err:
        return None, [Problem(file, line, ifield, img_err)]
    if text in seen["text"]:
        return None, [Problem(file, line, tfield, f"duplicate of {seen['text'][text]}")]
    if str(img_path) in seen["image"]:
        return None, [Problem(file, line, ifield, f"same image as {seen['image'][str(img_path)]}")]
    seen["text"][text] = seen["image"][str(img_path)] = where
    rid = str(rid) if rid is not None else f"e-{len(seen['rows']):06d}"
    if rid in seen["id"]:  # a generated id that a later... or earlier row gave explicitly
        return None, [Problem(file, line, "id", f"duplicate id {rid!r} (first at {seen['id'][rid]})")]
    seen["id"][rid] = where
    row = {"id": rid, "image_bytes": png, "text": text, "diagram_type": dtype or "unknown", "file": file,
           "line": line}
    seen["rows"].append(row)
    return row, []


def import_annotations(path: str | Path, *, strict: bool = False) -> ImportReport:
    """Read and validate expert annotations from ``path`` (format detected from the name).

    Each valid row becomes ``{"id", "image_bytes", "text", "diagram_type", "file", "line"}``. Every
    invalid row is reported in ``report.problems`` with file, line and field (never raised: one bad row
    does not stop the others); ids must be unique, texts strings, images regular files within the size
    and pixel caps. Only a source that cannot be read at all raises :class:`AnnotationError`; with
    ``strict=True`` any problem does, listing all of them.
    """
    path = Path(path)
    if "\0" in str(path):
        raise AnnotationError(f"{path!r}: a path cannot hold a NUL byte")
    if not path.exists():
        raise AnnotationError(f"annotation path does not exist: {path}")
    fmt = detect_format(path)
    base = path if path.is_dir() else path.parent
    reader = {"jsonl": _raw_jsonl, "csv": _raw_csv, "folder": _raw_folder,
              "label_studio": _raw_label_studio}[fmt]
    report = ImportReport()
    seen: dict = {"text": {}, "image": {}, "id": {}, "rows": report.rows}
    for line, obj, err in reader(path):
        file = str(path)
        if isinstance(obj, dict) and "_file" in obj:
            file = obj.pop("_file")
        if err:
            report.problems.append(Problem(file, line, "(row)", err))
            continue
        try:
            _, problems = _check_row(obj, base, file, line, seen)
        except Exception as e:  # a row we failed to foresee is still only that row's problem
            log.debug("row %s:%s", file, line, exc_info=True)
            problems = [Problem(file, line, "(row)", f"cannot be imported ({type(e).__name__}: {e})")]
        report.problems.extend(problems)
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
