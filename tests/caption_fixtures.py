"""A user's folder of figures, made on the fly: PNG, SVG, Markdown with Mermaid, a PDF with two embedded
figures and a vector-drawn diagram page, and the broken files a real folder also holds."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.patches import FancyArrowPatch, Rectangle  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

SVG = b"""<svg xmlns="http://www.w3.org/2000/svg" width="320" height="120">
<rect x="10" y="30" width="110" height="50" fill="#eef" stroke="#000"/><text x="30" y="60">UE</text>
<rect x="200" y="30" width="110" height="50" fill="#eef" stroke="#000"/><text x="230" y="60">AMF</text>
<line x1="120" y1="55" x2="200" y2="55" stroke="#000"/>
<image href="http://example.invalid/tracker.png" width="1" height="1"/>
<script>document.title = "ran"</script></svg>"""

MARKDOWN = """# Registration

Some prose.

```mermaid
sequenceDiagram
  UE->>AMF: Registration Request
  AMF-->>UE: Registration Accept
```

More prose, then a broken block:

```mermaid
flowchart LR
  A[[[ -->
```

```mermaid
flowchart LR
  gNB --> AMF
```
"""


def box_png(labels: tuple[str, ...] = ("UE", "gNB", "AMF"), size=(360, 140)) -> bytes:
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    step = size[0] // len(labels)
    for i, label in enumerate(labels):
        x = 10 + i * step
        d.rectangle([x, 40, x + step - 30, 100], outline="black", width=2)
        d.text((x + 10, 62), label, fill="black")
        if i:
            d.line([x - 30, 70, x, 70], fill="black", width=2)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def figures_pdf(path: Path) -> None:
    """Page 1: two embedded raster figures and text; page 2: text only; page 3: a vector-drawn diagram."""
    rng = np.random.default_rng(0)
    with PdfPages(path, metadata={"CreationDate": None, "ModDate": None}) as pdf:
        fig = plt.figure(figsize=(8.27, 11.69))
        fig.text(0.1, 0.95, "Figure 1 and Figure 2 are embedded images.")
        for k, y in enumerate((0.55, 0.1)):
            ax = fig.add_axes((0.15, y, 0.7, 0.3))
            ax.imshow(np.asarray(Image.open(io.BytesIO(box_png(("UE", "gNB", "AMF")[: 2 + k])))))
            ax.axis("off")
        pdf.savefig(fig)
        plt.close(fig)
        fig = plt.figure(figsize=(8.27, 11.69))
        fig.text(0.1, 0.9, "A page of prose with no figure. " * 3)
        pdf.savefig(fig)
        plt.close(fig)
        fig = plt.figure(figsize=(8.27, 11.69))
        ax = fig.add_axes((0.1, 0.5, 0.8, 0.3))
        ax.set_xlim(0, 10)
        ax.set_ylim(0, 4)
        ax.axis("off")
        for x, label in ((0.5, "UE"), (4, "gNB"), (7.5, "AMF")):
            ax.add_patch(Rectangle((x, 1.5), 2, 1, fill=False, lw=1.5))
            ax.text(x + 1, 2, label, ha="center", va="center")
        for x0, x1 in ((2.5, 4), (6, 7.5)):
            ax.add_patch(FancyArrowPatch((x0, 2), (x1, 2), arrowstyle="->", mutation_scale=15))
        fig.text(0.1, 0.3, f"Figure 3: a vector drawing ({rng.integers(10)}).")
        pdf.savefig(fig)
        plt.close(fig)


def encrypted_pdf(src: Path, dst: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    w = PdfWriter(clone_from=PdfReader(src))
    w.encrypt("secret", algorithm="RC4-128")
    with open(dst, "wb") as f:
        w.write(f)


def user_folder(root: Path, *, broken: bool = True) -> Path:
    """The fixture tree; with ``broken`` also a corrupt PDF, a truncated PNG and a text file named .png."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "arch.png").write_bytes(box_png())
    (root / "diagrams").mkdir(exist_ok=True)
    (root / "diagrams" / "link.svg").write_bytes(SVG)
    (root / "docs.md").write_text(MARKDOWN)
    figures_pdf(root / "spec.pdf")
    if broken:
        (root / "broken.pdf").write_bytes(b"%PDF-1.7\n" + b"garbage " * 100)
        (root / "cut.png").write_bytes(box_png()[:300])
        (root / "notes.png").write_text("this is not an image")
        encrypted_pdf(root / "spec.pdf", root / "locked.pdf")
    return root
