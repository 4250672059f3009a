"""Tables and figures are drawn from recorded results only: these tests record small results by hand."""

import json

import pandas as pd
import pytest
from PIL import Image

from dicrepro.report.figures import make_figures, write_tables

MODELS = ["base", "stage1", "stage2", "stage3"]
METRICS = ["bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rougeL", "cider"]


@pytest.fixture
def run(tmp_path):
    """A run folder holding what the evaluate and SFT steps record, with made-up numbers."""
    res = tmp_path / "results"
    res.mkdir()
    cap = []
    for i, m in enumerate(MODELS):
        base = 0.1 + 0.15 * i
        cap.append({"model": m, "group_by": "overall", "group": "all", "n": 40,
                    **{k: round(base + 0.01 * j, 4) for j, k in enumerate(METRICS)}})
        for t, dt in enumerate(["flowchart", "sequenceDiagram", "pie"]):
            cap.append({"model": m, "group_by": "diagram_type", "group": dt, "n": 10,
                        **{k: round(base + 0.02 * t, 4) for k in METRICS}})
        for lg in ("en", "zh"):
            cap.append({"model": m, "group_by": "language", "group": lg, "n": 20,
                        **{k: base for k in METRICS}})
    pd.DataFrame(cap).to_csv(res / "caption_scores.csv", index=False)
    obj = []
    for i, m in enumerate(MODELS):
        obj.append({"model": m, "group_by": "overall", "group": "all", "n": 30, "accuracy": 0.3 + 0.1 * i,
                    "unparsed": 3 - i, "chance": 0.3})
        for d in ("global", "partial", "detail"):
            obj.append({"model": m, "group_by": "dimension", "group": d, "n": 10,
                        "accuracy": 0.25 + 0.1 * i, "unparsed": 1, "chance": 0.3})
    pd.DataFrame(obj).to_csv(res / "objective_scores.csv", index=False)
    (res / "meta.json").write_text(json.dumps({"standin_stage2": True, "tiny_model": True,
                                               "model_order": MODELS}))
    for k in (1, 2, 3):
        d = tmp_path / "models" / f"stage{k}"
        d.mkdir(parents=True)
        pd.DataFrame({"step": range(1, 11), "epoch": [s / 10 for s in range(1, 11)],
                      "loss": [3.0 / k - 0.1 * s for s in range(10)]}).to_csv(d / "loss.csv", index=False)
    gdir = tmp_path / "predictions"
    gdir.mkdir()
    rows = []
    for j in range(2):
        img = res / f"img{j}.png"
        Image.new("RGB", (64, 48), (200, 30 * j, 90)).save(img)
        rows.append({"id": f"s{j}", "image_path": str(img), "diagram_type": "flowchart",
                     "reference": "The UE sends a Registration Request to the AMF. 用户设备发送注册请求。",
                     "predictions": {m: f"prediction of {m}" for m in MODELS}})
    (gdir / "gallery.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return tmp_path


def test_every_figure_is_written_as_png_and_pdf(run, tmp_path):
    out = tmp_path / "figures"
    paths = make_figures(run, out)
    stems = {"metrics_by_model", "stage_ablation", "bleu_by_diagram_type", "objective_by_dimension",
             "gallery", "loss_curves"}
    assert {p.name for p in paths} == {f"{s}.{ext}" for s in stems for ext in ("png", "pdf")}
    for p in paths:
        assert p.stat().st_size > 1000, p


def test_figures_are_byte_identical_on_rerun(run, tmp_path):
    a, b = make_figures(run, tmp_path / "a"), make_figures(run, tmp_path / "b")
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes(), pa.name


def test_tables_hold_the_numbers_and_the_standin_labels(run):
    paths = write_tables(run)
    names = {p.name for p in paths}
    assert names == {f"{t}.{e}" for t in ("main_table", "stage_ablation") for e in ("csv", "md", "tex")}
    main = pd.read_csv(run / "results" / "main_table.csv")
    assert list(main.model) == MODELS
    assert main.set_index("model").loc["stage3", "bleu4"] == pytest.approx(0.58)
    assert main.set_index("model").loc["stage2", "accuracy"] == pytest.approx(0.5)
    md = (run / "results" / "main_table.md").read_text()
    assert "tiny stand-in model" in md and "stage-2 stand-in data" in md
    assert "58.0" in md  # stage3 BLEU-4 in %
    abl = (run / "results" / "stage_ablation.md").read_text()
    assert "+346.2%" in abl  # stage3 BLEU-4 0.58 over base 0.13, as the paper writes gains
    tex = (run / "results" / "stage_ablation.tex").read_text()
    assert "\\begin{tabular}" in tex and "tiny stand-in model" in tex
    assert "decoded" not in md  # a run that recorded no decoding gets no note


def test_the_tables_say_how_the_replies_were_decoded(run):
    meta = json.loads((run / "results" / "meta.json").read_text())
    for beams, said in ((1, "Replies decoded greedily."), (3, "Replies decoded by beam search over 3 beams.")):
        (run / "results" / "meta.json").write_text(json.dumps({**meta, "decoding": {"num_beams": beams}}))
        write_tables(run)
        assert said in (run / "results" / "main_table.md").read_text()
        assert said in (run / "results" / "stage_ablation.tex").read_text()


def test_missing_results_name_the_step(tmp_path):
    with pytest.raises(FileNotFoundError, match="evaluate step"):
        make_figures(tmp_path, tmp_path / "figures")


def table_cells(md: str) -> tuple[list[str], dict[str, list[str]]]:
    """Header and rows (by their first cell) of the pipe table in a results Markdown file."""
    rows = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in md.splitlines() if ln.startswith("|")]
    return rows[0], {r[0]: r for r in rows[2:]}


def test_cider_d_is_named_once_and_shown_on_pycocoevalcap_scale(run):
    """Every score in percent, except CIDEr-D: named exactly so, on its own 0-10 scale, in the CSV, the
    Markdown, the LaTeX and the results page alike."""
    from dicrepro.report.page import build_report

    write_tables(run)
    res = run / "results"
    cider = pd.read_csv(res / "main_table.csv").set_index("model").loc["stage3", "cider"]
    bleu4 = pd.read_csv(res / "main_table.csv").set_index("model").loc["stage3", "bleu4"]
    md = (res / "main_table.md").read_text()
    head, rows = table_cells(md)
    assert rows["stage3"][head.index("CIDEr-D")] == f"{cider:.3f}"  # as pycocoevalcap gives it
    assert rows["stage3"][head.index("BLEU-4")] == f"{100 * bleu4:.1f}"
    tex = (res / "main_table.tex").read_text()
    for text in (md, tex):
        assert "CIDEr-D/10" not in text and "divided by 10" not in text
        assert "pycocoevalcap's scale (0-10)" in text
    page = build_report(run)[1].read_text()
    assert f"<td>{cider:.3f}</td>" in page and f"<td>{100 * bleu4:.1f}</td>" in page


def test_blind_table_rows_keep_cider_d_on_its_scale():
    from dicrepro.report.tables import shown_table

    blind = pd.DataFrame({"model": ["base", "base"], "score": ["BLEU-4", "CIDEr-D"], "image": [0.016, 0.85],
                          "blind-blank": [0.002, float("nan")], "gain": [0.014, 0.5]})
    shown = shown_table(blind).set_index("score")
    assert list(shown.loc["BLEU-4", ["With image", "blind-blank", "Gain"]]) == ["1.6", "0.2", "1.4"]
    assert list(shown.loc["CIDEr-D", ["With image", "blind-blank", "Gain"]]) == ["0.850", "-", "0.500"]
