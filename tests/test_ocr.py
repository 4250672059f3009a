"""The OCR-only baseline reads the text of a real rendered diagram with Debian's Tesseract."""

import io

from datasets import Dataset, Features, Image, Value
from PIL import Image as PILImage

from dicrepro.atomic import read_jsonl
from dicrepro.diagrams.render import render_mermaid
from dicrepro.evaluate.ocr import ocr_image, ocr_to_jsonl, tesseract_languages

SOURCE = "flowchart LR\n  A[Registration Request] --> B[Authentication Request]"


def test_tesseract_reads_a_rendered_diagram(tmp_path):
    assert "eng" in tesseract_languages()
    png = render_mermaid([SOURCE], width=800, scale=2.0)[0].png
    text = ocr_image(png).lower()
    assert "registration" in text and "authentication" in text
    ds = Dataset.from_list([{"id": "d1", "image": PILImage.open(io.BytesIO(png))}],
                           features=Features({"id": Value("string"), "image": Image()}))
    out = ocr_to_jsonl(ds, tmp_path / "ocr.jsonl")
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["d1"] and "registration" in rows[0]["text"].lower()
    ocr_to_jsonl(ds, out)  # a rerun reuses the file
    assert len(read_jsonl(out)) == 1
