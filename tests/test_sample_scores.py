"""Per-sample scores with CIs and paired tests, as the evaluate step writes them: a faithful model beats a
babbling one on faithfulness with a significant p-value, and the files are reproducible."""

import random

import pandas as pd
import pytest

from dicrepro.diagrams.sample import sample_diagram
from dicrepro.evaluate.sample_scores import comparison_pairs, write_sample_scores
from dicrepro.text.describe import describe


def caption_rows(n=12):
    rows = []
    for i in range(n):
        lang = "zh" if i % 3 == 0 else "en"
        d = sample_diagram(random.Random(i), ("sequence", "flowchart", "state")[i % 3], language=lang,
                           min_elements=3, max_elements=6)
        rows.append({"id": f"c{i}", "reference": describe(d, random.Random(i))["description"], "language": lang,
                     "diagram_type": d.diagram_type, "graph": d.to_json()})
    rows.append({"id": "nograph", "reference": "a caption", "language": "en", "diagram_type": "flowchart",
                 "graph": ""})
    return rows


def test_pairs_compare_each_stage_with_base_and_the_stage_before():
    assert comparison_pairs(["base", "stage1", "stage2", "stage3", "ocr"]) == [
        ("stage1", "base"), ("stage2", "base"), ("stage3", "base"), ("stage2", "stage1"), ("stage3", "stage2")]


def test_sample_scores_cis_and_significance(tmp_path):
    rows = caption_rows()
    faithful = {r["id"]: describe(__import__("dicrepro.diagrams.graph", fromlist=["Diagram"]).Diagram.from_json(
        r["graph"]), random.Random(99))["description"] if r["graph"] else "a caption" for r in rows}
    babble = {r["id"]: "This diagram shows some network elements and the PCF." for r in rows}
    items = [{"id": f"q{i}", "options": ["A", "B"], "answer_key": "A", "kind": "mc"} for i in range(20)]
    right = {f"q{i}": "A" for i in range(20)}
    wrong = {f"q{i}": "B" if i % 2 else "A" for i in range(20)}
    paths = write_sample_scores(tmp_path, rows, {"base": babble, "stage1": faithful}, items,
                                {"base": wrong, "stage1": right}, seed=0)
    cap = pd.read_csv(paths["caption_samples"])
    assert len(cap) == 2 * len(rows) and cap[cap.id == "nograph"]["faithfulness"].isna().all()
    conf = pd.read_csv(paths["confidence"]).set_index(["model", "metric"])
    assert conf.loc[("stage1", "faithfulness"), "mean"] == 1.0
    assert conf.loc[("base", "faithfulness"), "high"] < 0.6
    assert conf.loc[("stage1", "accuracy"), "mean"] == 1.0 and conf.loc[("base", "accuracy"), "mean"] == 0.5
    sig = pd.read_csv(paths["significance"]).set_index(["metric", "model_a", "model_b"])
    assert sig.loc[("faithfulness", "stage1", "base"), "p"] < 0.01
    assert sig.loc[("faithfulness", "stage1", "base"), "diff"] > 0.4
    fs = pd.read_csv(paths["faithfulness_scores"], keep_default_na=False)
    assert set(fs.group_by) == {"overall", "diagram_type", "language"}
    zh = fs[(fs.model == "stage1") & (fs.group == "zh")].iloc[0]
    assert zh["n"] == 4 and float(zh["label_recall"]) == 1.0
    before = {p: p.read_bytes() for p in paths.values()}
    write_sample_scores(tmp_path, rows, {"base": babble, "stage1": faithful}, items,
                        {"base": wrong, "stage1": right}, seed=0)
    assert {p: p.read_bytes() for p in paths.values()} == before


def test_tables_show_plus_minus_and_mark_significance(tmp_path):
    from dicrepro.diagrams.graph import Diagram
    from dicrepro.report.ci_tables import write_ci_tables

    rows = caption_rows()
    faithful = {r["id"]: describe(Diagram.from_json(r["graph"]), random.Random(9))["description"]
                if r["graph"] else "a caption" for r in rows}
    babble = {r["id"]: "This diagram shows some elements." for r in rows}
    (tmp_path / "results").mkdir()
    write_sample_scores(tmp_path / "results", rows, {"base": babble, "stage1": faithful}, [], {}, seed=0)
    paths = write_ci_tables(tmp_path, ["tiny stand-in model"])
    assert {p.name for p in paths} >= {"ci_table.md", "faithfulness_table.md", "faithfulness_by_type.tex"}
    md = (tmp_path / "results" / "faithfulness_table.md").read_text(encoding="utf-8")
    stage1 = next(line for line in md.splitlines() if line.startswith("| stage1"))
    base = next(line for line in md.splitlines() if line.startswith("| base"))
    assert "100.0 ± 0.0**" in stage1 and "0.0 ± 0.0" in base and "tiny stand-in model" in md
    long = pd.read_csv(tmp_path / "results" / "faithfulness_table.csv")
    assert set(long.columns) == {"model", "metric", "mean", "low", "high", "n"}
    # CIDEr-D: its one name, on pycocoevalcap's scale (the CSV's raw mean), not divided by 10 nor in %
    ci = (tmp_path / "results" / "ci_table.md").read_text(encoding="utf-8")
    head = [c.strip() for c in ci.splitlines()[2].strip("|").split("|")]
    row = [c.strip() for c in next(ln for ln in ci.splitlines() if ln.startswith("| stage1")).strip("|").split("|")]
    conf = pd.read_csv(tmp_path / "results" / "confidence.csv").set_index(["model", "metric"])
    assert conf.loc[("stage1", "cider"), "mean"] > 1.0  # faithful captions overlap: above 1 on the 0-10 scale
    assert row[head.index("CIDEr-D")].startswith(f"{conf.loc[('stage1', 'cider'), 'mean']:.3f} ± ")
    assert "CIDEr-D/10" not in ci and "pycocoevalcap's scale (0-10)" in ci
    from dicrepro.report.ci_tables import confidence_summary

    summary = confidence_summary(tmp_path)
    assert summary.loc["stage1", ("mean", "cider")] == pytest.approx(conf.loc[("stage1", "cider"), "mean"], abs=5e-4)
    assert summary.loc["stage1", ("mean", "faithfulness")] == 100.0


def test_structure_task_scores_parse_rate_and_f1(tmp_path):
    from dicrepro.data.vqa import make_vqa
    from dicrepro.diagrams.mermaid import to_mermaid
    from dicrepro.report.ci_tables import write_ci_tables

    diagrams = [(f"d{i}", sample_diagram(random.Random(i), ("flowchart", "sequence")[i % 2], min_elements=3,
                                         max_elements=5)) for i in range(4)]
    items = [it for it in make_vqa(diagrams, random.Random(0), questions_per_diagram=2, mermaid_task=True)
             if it["kind"] == "mermaid"]
    assert len(items) == 4 and items[0]["target"] == to_mermaid(diagrams[0][1]).strip()
    assert items[0]["prompt"] == "Write this diagram as Mermaid code." and not items[0]["objective"]
    perfect = {it["id"]: it["target"] for it in items}
    broken = {it["id"]: "flowchart LR\n  A -->" if k % 2 else it["target"] for k, it in enumerate(items)}
    (tmp_path / "results").mkdir()
    write_sample_scores(tmp_path / "results", [], {}, [], {}, seed=0, structure_items=items,
                        structure_preds={"base": broken, "stage3": perfect}, workers=1)
    st = pd.read_csv(tmp_path / "results" / "structure_samples.csv")
    assert (st[st.model == "stage3"]["triple_f1_strict"] == 1.0).all()
    assert st[st.model == "base"]["parsed"].tolist() == [1.0, 0.0, 1.0, 0.0]
    conf = pd.read_csv(tmp_path / "results" / "confidence.csv").set_index(["model", "metric"])
    assert conf.loc[("base", "parsed"), "mean"] == 0.5 and conf.loc[("stage3", "node_f1_relaxed"), "mean"] == 1.0
    write_ci_tables(tmp_path, [])
    md = (tmp_path / "results" / "structure_table.md").read_text(encoding="utf-8")
    assert "Parse rate" in md and "Triple F1 (relaxed)" in md


def test_without_the_mermaid_task_the_questions_are_unchanged():
    from dicrepro.data.vqa import make_vqa

    diagrams = [(f"d{i}", sample_diagram(random.Random(i), "state", min_elements=3, max_elements=5)) for i in range(3)]
    plain = make_vqa(diagrams, random.Random(5), questions_per_diagram=3)
    more = make_vqa(diagrams, random.Random(5), questions_per_diagram=3, mermaid_task=True)
    assert [it for it in more if it["kind"] != "mermaid"] == plain


def test_bleu4_from_per_caption_counts_equals_the_metric_and_gets_a_ci():
    from dicrepro.evaluate.metrics import caption_scores
    from dicrepro.evaluate.sample_scores import bleu4_of_sums, bleu4_stats, bleu4_tables

    rows = caption_rows()
    hyps = [r["reference"][: len(r["reference"]) // 2] + " extra words here" for r in rows]
    refs, langs = [r["reference"] for r in rows], [r["language"] for r in rows]
    stats = bleu4_stats(refs, hyps, langs)
    assert float(bleu4_of_sums(stats.sum(axis=0))[0]) == pytest.approx(caption_scores(refs, hyps, langs)["bleu4"],
                                                                        abs=1e-9)
    preds = {"base": {r["id"]: "nothing" for r in rows}, "stage1": dict(zip([r["id"] for r in rows], hyps))}
    conf, sig = bleu4_tables(rows, preds, ["base", "stage1"], seed=0)
    s1 = next(c for c in conf if c["model"] == "stage1")
    assert s1["low"] < s1["mean"] < s1["high"] and sig[0]["p"] < 0.01 and sig[0]["diff"] > 0


def test_real_test_set_is_scored_against_its_graphs_without_references(tmp_path):
    rows = caption_rows(6)
    real = [{**r, "reference": ""} for r in rows if r["graph"]]  # harvested rows of unmapped types have none
    from dicrepro.diagrams.graph import Diagram

    faithful = {r["id"]: describe(Diagram.from_json(r["graph"]), random.Random(3))["description"] for r in real}
    babble = {r["id"]: "Some boxes and arrows." for r in real}
    (tmp_path / "results").mkdir()
    paths = write_sample_scores(tmp_path / "results", [], {}, [], {}, seed=0, real_rows=real,
                                real_preds={"base": babble, "stage1": faithful})
    conf = pd.read_csv(paths["confidence"]).set_index(["model", "metric"])
    assert conf.loc[("stage1", "real_faithfulness"), "mean"] == 1.0
    assert conf.loc[("base", "real_faithfulness"), "mean"] == 0.0
    by_lang = pd.read_csv(paths["faithfulness_scores_real"], keep_default_na=False)
    assert set(by_lang.group_by) == {"overall", "diagram_type", "language"}
