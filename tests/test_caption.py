"""`dicrepro caption`: a user's folder of figures (PNG, SVG, Markdown with Mermaid, PDF with embedded and
vector-drawn figures, broken files) in, resumable JSONL with provenance out."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from caption_fixtures import user_folder

from dicrepro.atomic import read_jsonl
from dicrepro.caption.figures import find_figures, mermaid_blocks
from dicrepro.caption.run import caption_inputs, write_markdown
from dicrepro.cli import main
from dicrepro.diagrams.render import MermaidRenderer

os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return user_folder(tmp_path_factory.mktemp("user") / "figures")


@pytest.fixture(scope="module")
def found(folder):
    problems = []
    with MermaidRenderer(workers=1) as r:
        figures = list(find_figures([folder], r, problems))
    return figures, problems


def test_every_figure_is_found_with_its_page_bbox_and_line(folder, found):
    figures, _ = found
    by_id = {f.id.removeprefix(str(folder.resolve())): f for f in figures}
    assert sorted(by_id) == ["/arch.png#image", "/diagrams/link.svg#svg", "/docs.md#L18", "/docs.md#L5",
                             "/spec.pdf#p1-img1", "/spec.pdf#p1-img2", "/spec.pdf#p3-fig1"]
    assert by_id["/docs.md#L5"].kind == "mermaid" and by_id["/docs.md#L5"].line == 5
    img1, img2, vec = by_id["/spec.pdf#p1-img1"], by_id["/spec.pdf#p1-img2"], by_id["/spec.pdf#p3-fig1"]
    assert (img1.kind, img1.page, vec.kind, vec.page) == ("pdf-image", 1, "pdf-vector", 3)
    # bboxes in points from the page's top-left corner (A4: 595 x 842): figure 1 sits above figure 2
    for f in (img1, img2, vec):
        x0, top, x1, bottom = f.bbox
        assert 0 <= x0 < x1 <= 596 and 0 <= top < bottom <= 843
    assert img1.bbox[3] < img2.bbox[1]
    # the vector figure is the drawing's region, not the page (its caption line below stays out)
    assert vec.bbox[3] - vec.bbox[1] < 200 and vec.image().size[0] > 2 * vec.image().size[1]
    assert len({f.sha256 for f in figures}) == len(figures)


def test_broken_files_are_named_and_the_rest_is_still_found(folder, found):
    _, problems = found
    text = {Path(p.source.split(":")[0]).name + (":" + p.source.split(":")[1] if ":" in p.source else ""): p.message
            for p in problems}
    assert set(text) == {"broken.pdf", "cut.png", "notes.png", "locked.pdf", "docs.md:13"}
    assert "encrypted" in text["locked.pdf"] and "truncated" in text["cut.png"]
    assert "not a readable PDF" in text["broken.pdf"] and "not a readable image" in text["notes.png"]
    assert "Parse error" in text["docs.md:13"] and "\n" not in text["docs.md:13"]


def test_mermaid_blocks_are_found_with_their_lines():
    md = "x\n```mermaid\ngraph LR\nA-->B\n```\n\n~~~mermaid\npie\n\"a\": 1\n~~~\n```python\nprint()\n```\n"
    assert mermaid_blocks(md) == [(2, "graph LR\nA-->B\n"), (7, 'pie\n"a": 1\n')]


def test_a_pixel_bomb_and_a_fifo_are_refused_without_reading_them(tmp_path):
    from PIL import Image

    Image.new("1", (30000, 30000)).save(tmp_path / "huge.png")  # 30000x30000: a few KB on disk
    os.mkfifo(tmp_path / "pipe.png")
    problems = []
    assert list(find_figures([tmp_path / "huge.png", tmp_path / "pipe.png"], None, problems)) == []
    assert [Path(p.source).name for p in problems] == ["huge.png", "pipe.png"]
    assert "over the 40 MP limit" in problems[0].message and "not a regular file" in problems[1].message


# --- with a model: the tiny Qwen2.5-VL-architecture model (random init; its captions are noise) -------------

@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from dicrepro.params import Params
    from dicrepro.train.box_diagrams import box_dataset
    from dicrepro.train.tiny_model import build_tiny_base

    root = tmp_path_factory.mktemp("model")
    p = Params(run_dir=root, seed=3)
    p.model.tiny = p.model.tiny.model_copy(update=dict(
        vocab_size=600, hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, vision_depth=1, vision_hidden_size=32, vision_heads=2, pretrain_samples=0))
    general = box_dataset(8, 0, seed=1, domain="general")
    return build_tiny_base(p, general, root / "base", tokenizer_corpus=list(general["train"]["target"]))


def _stable(rows):
    return [{k: v for k, v in r.items() if k != "created"} for r in rows]


@pytest.mark.slow
def test_a_killed_caption_run_resumes_to_the_same_jsonl(folder, model_dir, tmp_path):
    whole = tmp_path / "whole.jsonl"
    report = caption_inputs([folder], model_dir, whole, batch_size=3, max_new_tokens=8)
    assert report.captioned == 7 and len(report.problems) == 5
    rows = read_jsonl(whole)
    assert [r["kind"] for r in rows] == ["image", "svg", "mermaid", "mermaid", "pdf-image", "pdf-image", "pdf-vector"]
    r = rows[4]
    assert r["page"] == 1 and len(r["bbox"]) == 4 and len(r["image_sha256"]) == 64
    assert r["page_content"] == r["caption"] and r["metadata"]["page"] == 1 and r["metadata"]["model_hash"]

    # "killed" after two figures (what a crash leaves: whole batches appended), then run again
    parts = tmp_path / "parts.jsonl"
    assert caption_inputs([folder], model_dir, parts, batch_size=1, max_new_tokens=8, limit=2).captioned == 2
    again = caption_inputs([folder], model_dir, parts, batch_size=3, max_new_tokens=8)
    assert (again.captioned, again.skipped) == (5, 2)
    # same rows in the same order, and batch size 1 vs 3 changed no caption (left padding)
    assert _stable(read_jsonl(parts)) == _stable(rows)
    md = write_markdown(parts, tmp_path / "parts.md").read_text()
    assert md.count("\n## ") == 7 and "page 3" in md


@pytest.mark.slow
def test_the_command_line_captions_and_reports_bad_files(folder, model_dir, tmp_path, capsys, monkeypatch, caplog):
    out = tmp_path / "c.jsonl"
    rc = main(["caption", str(folder / "arch.png"), str(folder / "cut.png"), "--model", str(model_dir),
               "--out", str(out), "--max-new-tokens", "4", "--format", "md"])
    cap = capsys.readouterr()
    assert rc == 0 and "1 figure(s) captioned" in cap.out and "cut.png" in cap.err
    assert json.loads(out.read_text().splitlines()[0])["source"].endswith("arch.png") and out.with_suffix(".md").exists()

    rc = main(["caption", str(folder / "arch.png"), "--model", str(tmp_path), "--out", str(out)])
    assert rc == 2 and "no config.json" in capsys.readouterr().err

    rc = main(["caption", str(folder / "arch.png"), "--model", str(model_dir), "--out", str(tmp_path / "v.jsonl"),
               "--backend", "vllm"])
    assert rc != 0 and "vllm" in capsys.readouterr().err

    import dicrepro.evaluate.predict as predict

    decoded_with = []

    def spy(*args, **kwargs):
        decoded_with.append(kwargs.get("num_beams"))
        return real_generate(*args, **kwargs)

    real_generate = predict.generate
    monkeypatch.setattr(predict, "generate", spy)
    beams = tmp_path / "beams.jsonl"
    rc = main(["caption", str(folder / "arch.png"), "--model", str(model_dir), "--out", str(beams),
               "--max-new-tokens", "4", "--num-beams", "2"])
    assert rc == 0 and json.loads(beams.read_text())["num_beams"] == 2 and decoded_with == [2]
    caplog.set_level("WARNING", logger="dicrepro.caption.run")
    rc = main(["caption", str(folder / "arch.png"), str(folder / "cut.png"), "--model", str(model_dir),
               "--out", str(beams), "--max-new-tokens", "4"])  # greedy into a file of beam-search captions
    assert rc == 0 and "captioned with other settings" in caplog.text and len(beams.read_text().splitlines()) == 1
    assert json.loads(out.read_text().splitlines()[0])["num_beams"] == 1  # greedy by default
    rc = main(["caption", str(folder / "arch.png"), "--model", str(model_dir), "--out", str(tmp_path / "w.jsonl"),
               "--backend", "vllm", "--num-beams", "2"])
    assert rc == 2 and "--num-beams > 1 needs --backend transformers" in capsys.readouterr().err
