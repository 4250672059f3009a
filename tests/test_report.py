"""`dicrepro report`: one page from a run's recorded results, beside the paper's claims computed the same way."""

from __future__ import annotations

import json

import pandas as pd

from dicrepro.cli import main
from dicrepro.report.page import build_report, paper_comparison, per_type_tables


def recorded_run(root, bleu4: dict, accuracy: dict):
    """A run folder holding only what the evaluate step records (scores by model, overall and by type)."""
    res = root / "results"
    res.mkdir(parents=True)
    rows = []
    for model, b in bleu4.items():
        rows.append({"model": model, "group_by": "overall", "group": "all", "n": 10, "bleu4": b})
        rows.append({"model": model, "group_by": "diagram_type", "group": "sequence", "n": 4, "bleu4": b / 2})
    pd.DataFrame(rows).to_csv(res / "caption_scores.csv", index=False)
    pd.DataFrame([{"model": m, "group_by": "overall", "group": "all", "n": 20, "accuracy": a}
                  for m, a in accuracy.items()]).to_csv(res / "objective_scores.csv", index=False)
    (res / "meta.json").write_text(json.dumps({"model_order": list(bleu4), "tiny_model": True}))
    return root


def test_the_paper_comparison_is_computed_from_the_results(tmp_path):
    run = recorded_run(tmp_path / "run", {"base": 0.02, "stage1": 0.025, "stage3": 0.03, "qwen32b": 0.04},
                       {"base": 0.30, "stage3": 0.42, "qwen32b": 0.40})
    comp = paper_comparison(run)
    assert list(comp["this run"]) == ["stage3 vs base: +50.0%", "stage3 vs qwen32b: -25.0%",
                                      "stage3 vs base: +12.0 points", "stage3 vs qwen32b: +2.0 points"]
    assert list(comp["paper"]) == ["+56.8%", "+20.8%", "+1 point", "+1 point"]
    types = per_type_tables(run)["BLEU-4 by diagram type"]
    assert types.loc[0, "stage3"] == 1.5 and types.loc[0, "n"] == 4


def test_the_page_says_it_is_a_stand_in_and_has_every_section(tmp_path, capsys):
    run = recorded_run(tmp_path / "run", {"base": 0.02, "stage3": 0.03}, {"base": 0.3, "stage3": 0.4})
    md, page = build_report(run)
    text = md.read_text()
    assert "tiny stand-in model" in text.splitlines()[2]
    assert "## This run beside the paper" in text and "stage3 vs base: +50.0%" in text
    assert "## By diagram type (%)" in text
    assert page.read_text().startswith("<!doctype html>") and "stage3 vs base: +50.0%" in page.read_text()
    assert main(["report", str(run), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.html").exists() and "next: open" in capsys.readouterr().out


def test_a_run_without_results_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "run the evaluate step first" in capsys.readouterr().err


def test_a_base_that_scores_zero_has_no_relative_gain(tmp_path):
    run = recorded_run(tmp_path / "run", {"base": 0.0, "stage3": 0.03}, {"base": 0.0, "stage3": 0.4})
    assert paper_comparison(run)["this run"][0] == "stage3 vs base: undefined (reference BLEU-4 is 0)"
