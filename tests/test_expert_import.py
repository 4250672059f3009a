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


def huge_png_header(path, width=30000, height=30000):
    """A valid small PNG whose header claims width x height (decoding it would need gigabytes)."""
    import struct
    import zlib

    buf = io.BytesIO()
    Image.new("RGB", (1, 1), "white").save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes of header
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(data))
    return path


def test_hostile_rows_are_reported_one_by_one_and_good_rows_still_import(tmp_path):
    import os

    for i in range(3):
        png(tmp_path / f"ok{i}.png", pattern=i)
    huge_png_header(tmp_path / "huge.png")
    os.symlink("/dev/zero", tmp_path / "zero.png")
    os.mkfifo(tmp_path / "fifo.png")
    (tmp_path / "dir.png").mkdir()
    lines = [
        json.dumps({"id": "a", "image": "ok0.png", "text": GOOD_TEXT}),
        "42",                                                        # 2: a number, not an object
        json.dumps({"image": "ok1\u0000.png", "text": GOOD_TEXT + " 3"}),  # 3: NUL in the path
        json.dumps({"image": "huge.png", "text": GOOD_TEXT + " 4"}),       # 4: 900 megapixels
        json.dumps({"image": "zero.png", "text": GOOD_TEXT + " 5"}),       # 5: /dev/zero
        json.dumps({"image": "fifo.png", "text": GOOD_TEXT + " 6"}),       # 6: a FIFO
        json.dumps({"image": "dir.png", "text": GOOD_TEXT + " 7"}),        # 7: a folder
        json.dumps({"id": "a", "image": "ok1.png", "text": GOOD_TEXT + " 8"}),  # 8: duplicate id
        json.dumps({"image": "ok1.png", "text": {"en": GOOD_TEXT}}),        # 9: a dict as text
        json.dumps({"image": "ok1.png", "text": 12345678901}),             # 10: a number as text
        json.dumps({"image": ["ok1.png"], "text": GOOD_TEXT + " 11"}),     # 11: a list as path
        json.dumps({"id": {"x": 1}, "image": "ok1.png", "text": GOOD_TEXT + " 12"}),  # 12: id object
        "[" * 100000,                                                # 13: nested too deeply
        json.dumps({"id": 7, "image": "ok2.png", "text": GOOD_TEXT + " fine"}),
    ]
    f = tmp_path / "pairs.jsonl"
    f.write_bytes(("\n".join(lines) + "\n").encode() + b'{"image": "ok1.png", "text": "caf\xe9 latin-1 text"}\n')
    report = import_annotations(f)
    assert [r["id"] for r in report.rows] == ["a", "7"]
    by_line = {p.line: (p.field, p.message) for p in report.problems}
    assert sorted(by_line) == list(range(2, 14)) + [15]
    assert "JSON object, not a number" in by_line[2][1]
    assert "NUL" in by_line[3][1]
    assert "over the limit of 40000000 pixels" in by_line[4][1]
    for line in (5, 6, 7):
        assert "not a regular file" in by_line[line][1]
    assert by_line[8] == ("id", f"duplicate id 'a' (first at {f}:1)")
    assert by_line[9] == ("text", "must be a string, got an object")
    assert by_line[10] == ("text", "must be a string, got a number")
    assert by_line[11] == ("image", "must be a path (a string), got a list")
    assert by_line[12][0] == "id"
    assert "nested too deeply" in by_line[13][1]
    assert "not UTF-8" in by_line[15][1]
    assert str(report.problems[0]).startswith(f"{f}:2: (row): ")
    assert report.text().splitlines()[-1] == "2 valid rows, 13 problems"


def test_csv_field_over_the_csv_limit_is_one_rows_problem(tmp_path):
    png(tmp_path / "a.png")
    png(tmp_path / "b.png", pattern=1)
    f = tmp_path / "pairs.csv"
    f.write_text(f'image,text\nb.png,"{"x" * 200_000}"\na.png,"{GOOD_TEXT}"\n')
    report = import_annotations(f)
    assert [r["image_bytes"] is not None for r in report.rows] == [True]
    assert len(report.problems) == 1 and "field larger than field limit" in report.problems[0].message


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig", "utf-32"])
def test_files_with_a_byte_order_mark_import(tmp_path, encoding):
    png(tmp_path / "a.png")
    f = tmp_path / "pairs.csv"
    f.write_text(f'image,text\na.png,"{GOOD_TEXT} – 中文"\n', encoding=encoding)
    report = import_annotations(f)
    assert report.problems == [] and report.rows[0]["text"].endswith("中文")


def test_label_studio_tasks_of_the_wrong_shape(tmp_path):
    png(tmp_path / "x.png")
    good = {"id": 1, "data": {"image": "x.png"}, "annotations": [{"result": [{"value": {"text": GOOD_TEXT}}]}]}
    tasks = [good, 5, {"data": "x.png"}, {"annotations": [{"result": "text"}]},
             {"annotations": [{"result": [{"value": 3}]}]}, {"annotations": ["x"]}]
    f = tmp_path / "export.json"
    f.write_text(json.dumps(tasks))
    report = import_annotations(f)
    assert [r["id"] for r in report.rows] == ["1"]
    assert [(p.line, p.field) for p in report.problems] == [(n, "(row)") for n in range(2, 7)]


def test_an_annotation_source_that_is_not_a_file_is_one_clear_error(tmp_path):
    import os

    os.mkfifo(tmp_path / "fifo.jsonl")
    with pytest.raises(AnnotationError, match="fifo.jsonl: cannot read annotations: not a regular file"):
        import_annotations(tmp_path / "fifo.jsonl")


def test_pixel_cap_is_checked_from_the_header_before_decoding(tmp_path):
    huge_png_header(tmp_path / "big.png", 9000, 9000)  # under PIL's own bomb limit, over ours
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"image": "big.png", "text": GOOD_TEXT}) + "\n")
    report = import_annotations(tmp_path / "pairs.jsonl")
    assert report.rows == [] and "9000x9000 pixels, over the limit" in report.problems[0].message


def test_the_pipelines_stage2_keeps_the_import_report_in_the_run_folder(tmp_path):
    from dicrepro.data.stage2 import import_expert
    from dicrepro.params import load_params
    from dicrepro.paths import RunPaths

    for i in range(5):
        png(tmp_path / f"{i}.png", pattern=i)
    rows = [{"image": f"{i}.png", "text": f"{GOOD_TEXT} ({i})"} for i in range(5)] + [{"image": "9.png"}]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "p.yaml").write_text(f"run_dir: {tmp_path / 'run'}\nstage2:\n  annotations: {tmp_path / 'pairs.jsonl'}\n")
    params = load_params(tmp_path / "p.yaml")
    paths = RunPaths(params.run_dir)
    dd, report = import_expert(params, paths)
    assert len(dd["train"]) + len(dd["test"]) == 5
    saved = (paths.stage2_candidates.with_name("stage2_import_report.txt")).read_text()
    assert saved == report.text() and saved.splitlines() == [
        f"{tmp_path / 'pairs.jsonl'}:6: text: empty or missing text", "5 valid rows, 1 problems"]
