"""Importing expert annotations: every bad row is reported with file, line and field; none is lost."""

import io
import json

import pytest
from PIL import Image

from dicrepro.data.expert import AnnotationError, import_annotations, leakage_flags

GOOD_TEXT = "The UE sends a RegistrationRequest to the AMF, which authenticates it via the AUSF."


def png(path, color=(30, 30, 30), size=(64, 48), pattern=0):
    img = Image.new("RGB", size, "white")
    for x in range(size[0]):
        img.putpixel((x, (x * (pattern + 1)) % size[1]), color)
    img.save(path)
    return path


def test_jsonl_good_and_bad_rows(tmp_path):
    png(tmp_path / "a.png")
    png(tmp_path / "b.png", pattern=2)
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    lines = [
        {"image": "a.png", "text": GOOD_TEXT, "diagram_type": "sequence"},
        {"image": "missing.png", "text": GOOD_TEXT + " x"},
        {"image": "b.png", "text": ""},
        "{not json",
        {"image": "corrupt.png", "text": GOOD_TEXT + " y"},
        {"image": "b.png", "text": GOOD_TEXT},  # duplicate text
        {"text": "no image given here at all"},
    ]
    f = tmp_path / "pairs.jsonl"
    f.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    report = import_annotations(f)
    assert [r["line"] for r in report.rows] == [1]
    problems = {(p.line, p.field) for p in report.problems}
    assert problems == {(2, "image"), (3, "text"), (4, "(row)"), (5, "image"), (6, "text"), (7, "image")}
    assert any("image file not found" in str(p) and ":2:" in str(p) for p in report.problems)
    assert any("corrupt" in str(p) for p in report.problems)
    # nothing silently dropped: valid + reported == input rows
    assert len(report.rows) + len(report.problems) == len(lines)
    with pytest.raises(AnnotationError, match=r"pairs\.jsonl:4"):
        import_annotations(f, strict=True)


def test_csv_lines_are_physical_lines(tmp_path):
    png(tmp_path / "a.png")
    f = tmp_path / "pairs.csv"
    f.write_text('image,text\na.png,"' + GOOD_TEXT + '"\nmissing.png,"multi\nline text here ok"\n')
    report = import_annotations(f)
    assert len(report.rows) == 1
    assert [(p.line, p.field) for p in report.problems] == [(4, "image")]


def test_folder_of_images_and_texts(tmp_path):
    png(tmp_path / "fig1.png")
    (tmp_path / "fig1.txt").write_text(GOOD_TEXT)
    png(tmp_path / "fig2.png", pattern=3)  # no text
    (tmp_path / "orphan.txt").write_text("a text whose image is missing")
    report = import_annotations(tmp_path)
    assert len(report.rows) == 1
    fields = sorted((p.file.split("/")[-1], p.field) for p in report.problems)
    assert fields == [("fig2.png", "text"), ("orphan.txt", "image")]


def test_label_studio_export(tmp_path):
    png(tmp_path / "x.png")
    tasks = [
        {"id": 7, "data": {"image": "/data/local-files/?d=x.png"},
         "annotations": [{"result": [{"value": {"text": [GOOD_TEXT]}},
                                     {"value": {"choices": ["flowchart"]}}]}]},
        {"id": 8, "data": {"image": "/data/local-files/?d=x.png"}, "annotations": []},
    ]
    f = tmp_path / "export.json"
    f.write_text(json.dumps(tasks))
    report = import_annotations(f)
    assert [(r["id"], r["diagram_type"]) for r in report.rows] == [("7", "flowchart")]
    assert [(p.line, p.field) for p in report.problems] == [(2, "text")]
    (tmp_path / "broken.json").write_text("[{")
    assert import_annotations(tmp_path / "broken.json").problems[0].field == "(row)"


def test_unknown_format_is_a_clear_error(tmp_path):
    f = tmp_path / "pairs.xlsx"
    f.write_text("x")
    with pytest.raises(AnnotationError, match="unknown annotation format"):
        import_annotations(f)


def test_leakage_guard_flags_near_duplicates(tmp_path):
    def img_bytes(seed, jpeg=False):
        from PIL import ImageDraw

        im = Image.new("RGB", (128, 96), "white")
        d = ImageDraw.Draw(im)
        if seed == 0:  # boxes on the left, as in a flowchart
            d.rectangle((5, 5, 50, 40), fill="black")
            d.rectangle((5, 55, 50, 90), fill="black")
        else:  # one box on the right
            d.rectangle((70, 20, 120, 80), fill="black")
        buf = io.BytesIO()
        im.save(buf, format="JPEG" if jpeg else "PNG", quality=60)
        return buf.getvalue()

    evals = [img_bytes(0)]
    flags = leakage_flags([img_bytes(0, jpeg=True), img_bytes(9)], evals)
    assert flags == [True, False]
