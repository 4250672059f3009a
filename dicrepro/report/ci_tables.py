"""Tables with confidence intervals and significance marks, from the evaluate step's recorded CSVs.

Reads ``RUN/results/confidence.csv``, ``faithfulness_scores.csv`` and ``significance.csv``
(:mod:`dicrepro.evaluate.sample_scores`) and writes, under ``RUN/results/``:

- ``ci_table.{csv,md,tex}``: per model, the headline per-sample metrics as mean ± half the bootstrap 95%
  CI, marked ``*`` (p < 0.05) / ``**`` (p < 0.01) where the model differs from the base;
- ``faithfulness_table.{csv,md,tex}``: per model, label recall, hallucination rate, relation recall,
  order tau and the faithfulness score, marked the same way;
- ``faithfulness_by_type.{csv,md,tex}``: the faithfulness score per model and diagram type;
- ``structure_table.{csv,md,tex}`` (when the structure task ran): parse rate and node/edge/triple F1,
  strict and relaxed, of the Mermaid each model writes for a test diagram.

Markdown and LaTeX show percent (0-100) except CIDEr-D, which is on pycocoevalcap's scale (0-10) like in
every table; the CSVs hold the fractions (CIDEr-D raw: mean, low, high, p) in long form. Nothing is
computed anew.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from dicrepro.atomic import write_text_atomic
from dicrepro.evaluate.metrics import METRIC_NAMES, RAW_SCALE_KEYS
from dicrepro.evaluate.stats import significance_mark

LABELS = {**METRIC_NAMES, "accuracy": "Objective acc.",
          "label_recall": "Label recall", "hallucination_rate": "Hallucination", "relation_recall": "Relation recall",
          "order_tau": "Order τ", "faithfulness": "Faithfulness", "parsed": "Parse rate",
          "node_f1_strict": "Node F1", "node_f1_relaxed": "Node F1 (relaxed)", "edge_f1_strict": "Edge F1",
          "edge_f1_relaxed": "Edge F1 (relaxed)", "triple_f1_strict": "Triple F1",
          "triple_f1_relaxed": "Triple F1 (relaxed)", "real_faithfulness": "Faithfulness (real docs)"}
HEADLINE = ("bleu4", "meteor", "rougeL", "cider", "accuracy", "faithfulness", "real_faithfulness")
FAITH = ("label_recall", "hallucination_rate", "relation_recall", "order_tau", "faithfulness")
STRUCT = ("parsed", "node_f1_strict", "node_f1_relaxed", "edge_f1_strict", "edge_f1_relaxed", "triple_f1_strict",
          "triple_f1_relaxed")
NOTE = ("Mean ± half the bootstrap 95% CI over samples (1000 resamples, the run's seed), in % except "
        "CIDEr-D, which is on pycocoevalcap's scale (0-10). * p < 0.05, "
        "** p < 0.01 against the base model (paired approximate randomization). Faithfulness is scored "
        "against each diagram's graph (dicrepro.evaluate.faithfulness); hallucination: lower is better.")


def _read(run_dir: Path, name: str) -> pd.DataFrame | None:
    p = run_dir / "results" / f"{name}.csv"
    return pd.read_csv(p) if p.exists() and p.stat().st_size else None


def _cell(mean, low, high, mark: str = "", raw: bool = False) -> str:
    """"12.3 ± 1.0*" in percent, or with ``raw`` on the metric's own scale to three decimals (CIDEr-D)."""
    if mean is None or pd.isna(mean):
        return "-"
    if raw:
        return f"{mean:.3f} ± {(high - low) / 2:.3f}{mark}"
    return f"{mean * 100:.1f} ± {(high - low) / 2 * 100:.1f}{mark}"


def _order(models: list[str], run_dir: Path) -> list[str]:
    p = run_dir / "results" / "meta.json"
    first = json.loads(p.read_text(encoding="utf-8")).get("model_order", []) if p.exists() else []
    return [m for m in first if m in models] + [m for m in models if m not in first]


def _marks(sig: pd.DataFrame | None) -> dict[tuple[str, str], str]:
    if sig is None or not len(sig):
        return {}
    vs_base = sig[sig.model_b == "base"]
    return {(r.model_a, r.metric): significance_mark(None if pd.isna(r.p) else float(r.p))
            for r in vs_base.itertuples()}


def _table(conf: pd.DataFrame, metrics: tuple[str, ...], marks: dict, order: list[str]) -> pd.DataFrame:
    rows = []
    for model in order:
        sel = conf[conf.model == model].set_index("metric")
        row = {"Model": model}
        for m in metrics:
            if m in sel.index:
                r = sel.loc[m]
                row[LABELS[m]] = _cell(r["mean"], r["low"], r["high"], marks.get((model, m), ""),
                                       raw=m in RAW_SCALE_KEYS)
        rows.append(row)
    return pd.DataFrame(rows)


def _write(shown: pd.DataFrame, long: pd.DataFrame, stem: Path, title: str, labels: list[str]) -> list[Path]:
    caption = title + (f" ({'; '.join(labels)})" if labels else "")
    md = f"**{caption}**\n\n{shown.to_markdown(index=False)}\n\n{NOTE}\n"
    tex = shown.to_latex(index=False, caption=f"{caption}. {NOTE}", label=f"tab:{stem.name}", escape=True)
    paths = [stem.with_suffix(".csv"), stem.with_suffix(".md"), stem.with_suffix(".tex")]
    write_text_atomic(paths[0], long.to_csv(index=False, float_format="%.6f"))
    write_text_atomic(paths[1], md)
    write_text_atomic(paths[2], tex)
    return paths


def write_ci_tables(run_dir: str | Path, labels: list[str]) -> list[Path]:
    """Write the three tables (when the evaluate step recorded their CSVs); returns the paths written."""
    run_dir = Path(run_dir)
    res = run_dir / "results"
    conf, sig, faith = _read(run_dir, "confidence"), _read(run_dir, "significance"), _read(run_dir, "faithfulness_scores")
    if conf is None or not len(conf):
        return []
    order = _order(list(dict.fromkeys(conf.model)), run_dir)
    marks = _marks(sig)
    paths = _write(_table(conf, HEADLINE, marks, order), conf[conf.metric.isin(HEADLINE)], res / "ci_table",
                   "Per-sample metrics with 95% confidence intervals", labels)
    paths += _write(_table(conf, FAITH, marks, order), conf[conf.metric.isin(FAITH)], res / "faithfulness_table",
                    "Caption faithfulness against the diagram's graph", labels)
    if conf.metric.isin(STRUCT).any():  # the structure task ran (stage3.mermaid_task)
        paths += _write(_table(conf, STRUCT, marks, order), conf[conf.metric.isin(STRUCT)], res / "structure_table",
                        "Image to Mermaid: parse rate and structure F1", labels)
    if faith is not None and len(faith):
        by_type = faith[faith.group_by == "diagram_type"]
        shown = by_type.pivot_table(index="group", columns="model", values="faithfulness", aggfunc="first")
        lows = by_type.pivot_table(index="group", columns="model", values="faithfulness_low", aggfunc="first")
        highs = by_type.pivot_table(index="group", columns="model", values="faithfulness_high", aggfunc="first")
        cells = pd.DataFrame({m: [_cell(shown.loc[t, m], lows.loc[t, m], highs.loc[t, m]) for t in shown.index]
                              for m in order if m in shown.columns}, index=shown.index)
        cells = cells.reset_index().rename(columns={"group": "Diagram type"})
        paths += _write(cells, by_type, res / "faithfulness_by_type", "Faithfulness per diagram type", labels)
    return paths


__all__ = ["write_ci_tables"]


def confidence_summary(run_dir: str | Path) -> pd.DataFrame:
    """Every model's per-sample metrics as mean and half the bootstrap 95% CI, in % except CIDEr-D (on
    pycocoevalcap's scale, three decimals, as in every table of the run), one row per model: what notebook
    05 shows."""
    conf = pd.read_csv(Path(run_dir) / "results" / "confidence.csv")
    scale = conf["metric"].map(lambda m: 1.0 if m in RAW_SCALE_KEYS else 100.0)
    shown = conf.assign(mean=conf["mean"] * scale, ci=(conf["high"] - conf["low"]) / 2 * scale)
    table = shown.pivot_table(index="model", columns="metric", values=["mean", "ci"], sort=False)
    return table.round({c: 3 if c[1] in RAW_SCALE_KEYS else 1 for c in table.columns})


def significance_summary(run_dir: str | Path,
                         metrics: tuple[str, ...] = ("bleu4", "faithfulness", "accuracy", "triple_f1_relaxed")
                         ) -> pd.DataFrame:
    """The paired p-values of each stage against the base and the stage before, for ``metrics``."""
    sig = pd.read_csv(Path(run_dir) / "results" / "significance.csv")
    return sig[sig["metric"].isin(metrics)].round(4).reset_index(drop=True)
