"""Seeded realism augmentations: make a clean Mermaid render look like a figure in a real document.

Kept as a separate step so clean and augmented images can both be kept. Every function takes PNG bytes
and a ``random.Random`` and returns PNG bytes; the same seed gives the same bytes.
"""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw, ImageFilter, ImageFont

_FONT_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)
_CJK_FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"


def load_font(size: int, *, cjk: bool = False) -> ImageFont.ImageFont:
    """A TrueType font from the Debian font packages (Noto CJK first when ``cjk``), else PIL's default."""
    for p in ((_CJK_FONT,) if cjk else ()) + _FONT_PATHS:
        try:
            return ImageFont.truetype(p, size)
        except OSError:
            continue
    return ImageFont.load_default()


def _open(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png)).convert("RGB")


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


_FILLER = ("the procedure below is defined in the specification", "see clause 5.3 for the message contents",
           "network elements shown are logical functions", "timers and retransmissions are omitted",
           "figure shows the normal case without failures", "configuration values are examples only")


def page_context(img: Image.Image, rng: random.Random) -> Image.Image:
    """Embed the diagram in a page: margins, grey body-text lines above and below, a figure caption."""
    w, h = img.size
    margin = rng.randint(20, 60)
    text_above = rng.randint(2, 5)
    text_below = rng.randint(1, 3)
    line_h = 18
    page_w = w + 2 * margin
    page_h = h + 2 * margin + (text_above + text_below + 2) * line_h
    page = Image.new("RGB", (page_w, page_h), "white")
    draw = ImageDraw.Draw(page)
    font = load_font(12)
    y = margin // 2
    for _ in range(text_above):
        draw.text((margin, y), rng.choice(_FILLER), fill=(90, 90, 90), font=font)
        y += line_h
    page.paste(img, (margin, y + line_h // 2))
    y += h + line_h
    draw.text((margin, y), f"Figure {rng.randint(1, 12)}-{rng.randint(1, 30)}", fill=(20, 20, 20), font=load_font(13))
    y += line_h
    for _ in range(text_below):
        draw.text((margin, y), rng.choice(_FILLER), fill=(90, 90, 90), font=font)
        y += line_h
    return page


def scan_noise(img: Image.Image, rng: random.Random) -> Image.Image:
    """A slight rotation, blur and speckle, as from a scanner or a phone photo of a page."""
    angle = rng.uniform(-1.5, 1.5)
    img = img.rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor="white")
    if rng.random() < 0.7:
        img = img.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.3, 0.9)))
    px = img.load()
    w, h = img.size
    for _ in range(int(w * h * rng.uniform(0.0005, 0.002))):
        x, y = rng.randrange(w), rng.randrange(h)
        v = rng.randint(0, 120)
        px[x, y] = (v, v, v)
    return img


def jpeg(img: Image.Image, rng: random.Random) -> Image.Image:
    """Re-encode as JPEG at a random quality (compression artefacts), then back to RGB."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=rng.randint(35, 80))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def rescale(img: Image.Image, rng: random.Random) -> Image.Image:
    """Another resolution, as when a figure is exported at a different DPI."""
    f = rng.uniform(0.6, 1.2)
    return img.resize((max(32, int(img.width * f)), max(32, int(img.height * f))), Image.BICUBIC)


def document_look(png: bytes, rng: random.Random) -> bytes:
    """The stage-2 stand-in look: page context, then (often) rescale, scan noise and JPEG."""
    return _png(document_look_image(_open(png), rng))


def document_look_share(share: float):
    """:func:`document_look` for about ``share`` of the images, chosen by each image's own seeded draw (so the
    same images every run); the others stay clean renders. Its ``__name__`` carries the share, so a
    dataset built with another share is not taken for this one (dicrepro.data.synth's spec token)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"document_look_share: share must be in [0, 1], got {share}")

    def look(png: bytes, rng: random.Random) -> bytes:
        return document_look(png, rng) if rng.random() < share else png

    look.__name__ = f"document_look_share_{share:g}"
    return look


def document_look_image(img: Image.Image, rng: random.Random) -> Image.Image:
    """:func:`document_look` on a PIL image (RGB), without the PNG encoding and decoding around it: the
    same random draws and the same pixels, for callers that only need the picture."""
    img = page_context(img.convert("RGB"), rng)
    if rng.random() < 0.5:
        img = rescale(img, rng)
    if rng.random() < 0.6:
        img = scan_noise(img, rng)
    if rng.random() < 0.7:
        img = jpeg(img, rng)
    return img


def blur(img: Image.Image, rng: random.Random) -> Image.Image:
    """A soft Gaussian blur, as from an out-of-focus photo or a low-quality print."""
    return img.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.6, 1.6)))
