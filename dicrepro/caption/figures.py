"""Finding the figures in a user's files: images, SVG, PDF pages and Mermaid blocks in Markdown.

``find_figures(inputs, renderer)`` walks files and folders (recursively, in sorted order so ids and output
order never depend on the file system) and yields one :class:`Figure` per picture to caption:

- PNG, JPEG, WebP, GIF, BMP, TIFF: the image itself (first frame), after a size and pixel cap;
- SVG: rasterized by Chromium as an ``<img>``, where an SVG can run no script and load nothing;
- PDF (pypdfium2, Apache-2.0/BSD): every embedded raster image of at least ``MIN_IMAGE_PX`` on a side, and
  every *vector-drawn* figure region: path objects clustered by proximity, rendered from the page at
  ``PDF_SCALE``; page numbers are 1-based and bboxes are PDF points ``(x0, top, x1, bottom)`` from the
  page's top-left corner, as pdfplumber and most PDF tools report them;
- Markdown (``.md``, ``.markdown``, ``.mdx``) and ``.mmd``: each ```mermaid block rendered by the real
  mermaid.js (``MermaidRenderer``).

A file that cannot be read (corrupt, encrypted, truncated, too large, not a regular file) becomes a
:class:`Problem` naming it, and the walk goes on.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdx"}
SUFFIXES = IMAGE_SUFFIXES | MARKDOWN_SUFFIXES | {".svg", ".pdf", ".mmd"}
MAX_FILE_BYTES = 256 << 20  # a figure file larger than this is refused before it is read
MAX_PIXELS = 40_000_000  # 40 MP: more than any diagram needs; a 30000x30000 bomb is refused from its header
MIN_IMAGE_PX = 64  # smaller embedded PDF images are icons, bullets and logos, not figures
PDF_SCALE = 2.0  # 144 dpi for vector figure regions
_MERMAID_BLOCK = re.compile(r"^(```+|~~~+)\s*mermaid\b[^\n]*\n(.*?)^\1\s*$", re.M | re.S)


@dataclass
class Figure:
    """One picture to caption and where it came from."""

    id: str  # "<source>#<locator>": stable across runs, unique within a run
    source: str  # the file, as a resolved path
    kind: str  # image | svg | pdf-image | pdf-vector | mermaid
    png: bytes
    page: int | None = None  # 1-based page of a PDF
    bbox: tuple[float, float, float, float] | None = None  # PDF points (x0, top, x1, bottom)
    line: int | None = None  # 1-based line of a Mermaid block
    sha256: str = field(init=False)

    def __post_init__(self):
        self.sha256 = hashlib.sha256(self.png).hexdigest()

    def image(self) -> Image.Image:
        return Image.open(io.BytesIO(self.png)).convert("RGB")


@dataclass
class Problem:
    """A file or part of one that gave no figure, and why (one line)."""

    source: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"


class FigureError(ValueError):
    """A file that cannot give figures; the message names what is wrong."""


def list_files(inputs: list[str | Path]) -> tuple[list[Path], list[Problem]]:
    """The files to read: given files as they are, folders walked recursively for known suffixes."""
    files, problems = [], []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in SUFFIXES and f.is_file()
                            and not any(part.startswith(".") for part in f.relative_to(p).parts))
        elif p.exists():
            files.append(p)
        else:
            problems.append(Problem(str(p), "no such file or folder"))
    seen, out = set(), []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out, problems


def _read_regular(path: Path) -> bytes:
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):  # a FIFO or a device named x.png would hang or never end
        raise FigureError("not a regular file")
    if st.st_size > MAX_FILE_BYTES:
        raise FigureError(f"file of {st.st_size / 2**20:.0f} MiB is over the {MAX_FILE_BYTES >> 20} MiB limit")
    if st.st_size == 0:
        raise FigureError("empty file")
    return path.read_bytes()


def image_png(data: bytes) -> bytes:
    """Any raster image's bytes as PNG (RGB), refusing pixel bombs before decoding and truncated files."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            _check_pixels(*img.size)
            img.load()  # decodes now: a truncated file fails here, not in the model
            rgb = img.convert("RGB")
    except Image.DecompressionBombError:  # PIL's own guard, from the header, beyond twice its limit
        raise FigureError(f"image is over the {MAX_PIXELS // 1_000_000} MP limit") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        if isinstance(e, FigureError):
            raise
        raise FigureError(f"not a readable image ({type(e).__name__}: {e})") from None
    return _png(rgb)


def _check_pixels(w: int, h: int) -> None:
    if w * h > MAX_PIXELS:
        raise FigureError(f"image of {w}x{h} pixels is over the {MAX_PIXELS // 1_000_000} MP limit")


def svg_to_png(svgs: list[bytes], width: int = 1200) -> list[bytes | str]:
    """Rasterize SVG documents in headless Chromium: PNG bytes, or an error message per SVG.

    Each SVG is shown as an ``<img>`` from a data: URL: in that mode a browser runs none of its scripts
    and fetches none of its external references, and the page itself is offline.
    """
    from playwright.sync_api import sync_playwright

    from dicrepro.diagrams.render import CHROMIUM_ARGS, chromium_path

    out: list[bytes | str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium_path()), args=CHROMIUM_ARGS, headless=True)
        try:
            ctx = browser.new_context(viewport={"width": width, "height": 800}, offline=True, java_script_enabled=False)
            ctx.route("**/*", lambda route: route.abort("blockedbyclient"))
            page = ctx.new_page()
            for svg in svgs:
                src = "data:image/svg+xml;base64," + base64.b64encode(svg).decode()
                page.set_content(f'<html><body style="margin:0;background:#fff"><img id="f" src="{src}" '
                                 f'style="max-width:{width}px"></body></html>')
                box = page.eval_on_selector("#f", "e => [e.complete, e.naturalWidth, e.naturalHeight]")
                if not box[1] or not box[2]:
                    out.append("Chromium could not draw this SVG (malformed, or it has no size)")
                    continue
                out.append(page.locator("#f").screenshot(type="png"))
        finally:
            browser.close()
    return out


def _cluster(boxes: list[tuple[float, float, float, float]], gap: float) -> list[tuple[list[int], tuple]]:
    """Groups of boxes (x0, y0, x1, y1) that touch once grown by ``gap``, with each group's bounding box."""
    groups = [([i], b) for i, b in enumerate(boxes)]
    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                a, b = groups[i][1], groups[j][1]
                if a[0] - gap <= b[2] and b[0] - gap <= a[2] and a[1] - gap <= b[3] and b[1] - gap <= a[3]:
                    box = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    groups[i] = (groups[i][0] + groups[j][0], box)
                    del groups[j]
                    merged = True
                    break
            if merged:
                break
    return groups


def pdf_figures(path: Path, data: bytes, source: str) -> Iterator[Figure]:
    """Embedded raster images and vector-drawn figure regions of every page of a PDF."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as e:
        msg = str(e)
        if "password" in msg.lower():
            raise FigureError("encrypted PDF (it needs a password)") from None
        raise FigureError(f"not a readable PDF ({msg})") from None
    try:
        for pno in range(len(pdf)):
            page = pdf[pno]
            width, height = page.get_size()
            images = []
            for k, obj in enumerate(page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=4)):
                left, bottom, right, top = obj.get_bounds()
                try:
                    pil = obj.get_bitmap(render=True).to_pil()
                except pdfium.PdfiumError as e:
                    log.warning("%s page %d: an embedded image could not be decoded: %s", source, pno + 1, e)
                    continue
                if min(pil.size) < MIN_IMAGE_PX:
                    continue
                bbox = (round(left, 2), round(height - top, 2), round(right, 2), round(height - bottom, 2))
                images.append((left, bottom, right, top))
                _check_pixels(*pil.size)  # already decoded by pdfium: encode once, not decode-and-encode again
                yield Figure(f"{source}#p{pno + 1}-img{k + 1}", source, "pdf-image", _png(pil),
                             page=pno + 1, bbox=bbox)
            yield from _vector_figures(page, pno, width, height, images, source)
    finally:
        pdf.close()


def _png(pil: Image.Image) -> bytes:
    out = io.BytesIO()
    pil.convert("RGB").save(out, format="PNG")
    return out.getvalue()


def _vector_figures(page, pno: int, width: float, height: float, images: list, source: str) -> Iterator[Figure]:
    """Regions where at least four path objects (boxes, arrows, lines) cluster into a figure-sized area."""
    import pypdfium2.raw as pdfium_c

    boxes = []
    for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_PATH], max_depth=4):
        left, bottom, right, top = obj.get_bounds()
        if (right - left) * (top - bottom) > 0.8 * width * height:  # page frames and backgrounds
            continue
        boxes.append((left, bottom, right, top))
    for k, (members, (x0, y0, x1, y1)) in enumerate(sorted(_cluster(boxes, gap=14.0), key=lambda g: (-g[1][3], g[1][0]))):
        if len(members) < 4 or x1 - x0 < 72 or y1 - y0 < 36:  # a rule under a heading, a table border
            continue
        if any(a[0] <= x0 + 1 and a[1] <= y0 + 1 and x1 <= a[2] + 1 and y1 <= a[3] + 1 for a in images):
            continue  # the paths only frame an embedded image already taken
        m = 10.0  # labels sit just outside the boxes they name
        x0, y0, x1, y1 = max(x0 - m, 0), max(y0 - m, 0), min(x1 + m, width), min(y1 + m, height)
        bitmap = page.render(scale=PDF_SCALE, crop=(x0, y0, width - x1, height - y1), fill_color=(255, 255, 255, 255))
        bbox = (round(x0, 2), round(height - y1, 2), round(x1, 2), round(height - y0, 2))
        yield Figure(f"{source}#p{pno + 1}-fig{k + 1}", source, "pdf-vector", _png(bitmap.to_pil()),
                     page=pno + 1, bbox=bbox)


def mermaid_blocks(text: str) -> list[tuple[int, str]]:
    """``(line, source)`` of every ```mermaid (or ~~~mermaid) block of a Markdown text; lines 1-based."""
    return [(text.count("\n", 0, m.start()) + 1, m.group(2)) for m in _MERMAID_BLOCK.finditer(text)]


def find_figures(inputs: list[str | Path], renderer=None, problems: list[Problem] | None = None) -> Iterator[Figure]:
    """Every figure in ``inputs`` (files and folders), in a stable order; unreadable ones go to ``problems``.

    ``renderer`` is a started :class:`dicrepro.diagrams.render.MermaidRenderer`, needed only when a
    Markdown or ``.mmd`` file is among the inputs.
    """
    problems = problems if problems is not None else []
    files, missing = list_files(inputs)
    problems += missing
    for path in files:
        source = str(path.resolve())
        suffix = path.suffix.lower()
        try:
            data = _read_regular(path)
            if suffix in IMAGE_SUFFIXES:
                yield Figure(f"{source}#image", source, "image", image_png(data))
            elif suffix == ".svg":
                png = svg_to_png([data])[0]
                if isinstance(png, str):
                    raise FigureError(png)
                yield Figure(f"{source}#svg", source, "svg", png)
            elif suffix == ".pdf":
                yield from pdf_figures(path, data, source)
            elif suffix in MARKDOWN_SUFFIXES or suffix == ".mmd":
                yield from _markdown_figures(data, source, suffix, renderer, problems)
            else:
                raise FigureError(f"unsupported file type {suffix or '(no suffix)'}; expected one of "
                                  f"{', '.join(sorted(SUFFIXES))}")
        except FigureError as e:
            problems.append(Problem(source, str(e)))
        except OSError as e:
            problems.append(Problem(source, f"cannot read ({e.strerror or e})"))


def _markdown_figures(data: bytes, source: str, suffix: str, renderer, problems: list[Problem]) -> Iterator[Figure]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FigureError(f"not UTF-8 text (byte {e.start})") from None
    blocks = [(1, text)] if suffix == ".mmd" else mermaid_blocks(text)
    if not blocks:
        return
    if renderer is None:
        raise FigureError("holds Mermaid blocks but no renderer was given")
    for (line, src), res in zip(blocks, renderer.render_batch([b for _, b in blocks], progress=False)):
        if res.ok:
            yield Figure(f"{source}#L{line}", source, "mermaid", image_png(res.png), line=line)
        else:
            problems.append(Problem(f"{source}:{line}", "Mermaid block does not render: " + " ".join(str(res.error).split())))
