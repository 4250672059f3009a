"""Results tables (CSV, Markdown, LaTeX) from a run's recorded scores; nothing is trained or generated.

Inputs (written by the evaluate step): ``RUN/results/caption_scores.csv``, ``objective_scores.csv`` (optional)
and ``meta.json``. Outputs, under ``RUN/results/``: ``main_table.{csv,md,tex}`` (every model, overall
scores) and ``stage_ablation.{csv,md,tex}`` (base -> stage 1 -> 2 -> 3 with the gain over the base).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from dicrepro.atomic import write_text_atomic
from dicrepro.evaluate.metrics import METRIC_KEYS, format_improvement
from dicrepro.report.ci_tables import write_ci_tables

log = logging.getLogger(__name__)

STAGE_ORDER = ("base", "stage1", "stage2", "stage3")
METRIC_LABELS = {"bleu1": "BLEU-1", "bleu2": "BLEU-2", "bleu3": "BLEU-3", "bleu4": "BLEU-4",
                 "meteor": "METEOR", "rougeL": "ROUGE-L", "cider": "CIDEr-D/10"}
BLEU_NOTE = ("Scores in %. BLEU: corpus-level BLEU on words (nltk, method1 smoothing; Chinese segmented with "
             "jieba), not character BLEU. CIDEr-D is divided by 10. Objective accuracy: unparsed answers count "
             "as wrong.")


def load_meta(run_dir: str | Path) -> dict:
    """``RUN/results/meta.json`` (empty dict if absent)."""
    p = Path(run_dir) / "results" / "meta.json"
    return json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}


def standin_labels(meta: dict) -> list[str]:
    """The honest labels every table and figure carries for this run."""
    labels = []
    if meta.get("tiny_model"):
        labels.append("tiny stand-in model")
    if meta.get("standin_stage2"):
        labels.append("stage-2 stand-in data")
    return labels


def read_scores(run_dir: str | Path, name: str, required: bool = True) -> pd.DataFrame | None:
    """``RUN/results/<name>.csv``; a missing required file names the step that writes it."""
    p = Path(run_dir) / "results" / f"{name}.csv"
    if not p.exists():
        if required:
            raise FileNotFoundError(f"{p} not found: run the evaluate step first")
        log.warning("%s not found: its table/figure is skipped", p)
        return None
    df = pd.read_csv(p, keep_default_na=False)
    need = {"model", "group_by", "group", "n"}
    missing = need - set(df.columns)
    if missing:
        raise ValueError(f"{p}: missing column(s) {sorted(missing)}")
    return df


def model_order(df: pd.DataFrame, meta: dict) -> list[str]:
    """Models in meta.json's ``model_order``, then any others in the order they first appear."""
    seen = list(dict.fromkeys(df["model"]))
    first = [m for m in meta.get("model_order", []) if m in seen]
    return first + [m for m in seen if m not in first]


def main_table(run_dir: str | Path) -> pd.DataFrame:
    """One row per model: overall caption metrics (fractions) and, when recorded, objective accuracy."""
    meta = load_meta(run_dir)
    cap = read_scores(run_dir, "caption_scores")
    overall = cap[cap.group_by == "overall"].set_index("model")
    out = overall.loc[model_order(cap, meta), ["n", *METRIC_KEYS]].rename(columns={"n": "n_captions"})
    obj = read_scores(run_dir, "objective_scores", required=False)
    if obj is not None:
        o = obj[obj.group_by == "overall"].set_index("model")
        out["accuracy"] = o["accuracy"].reindex(out.index)
        out["unparsed"] = o["unparsed"].reindex(out.index)
        out["chance"] = o["chance"].reindex(out.index)
    types = read_type_scores(run_dir)
    if types is not None:  # does the caption / the answer name the right kind of diagram?
        for col, which in (("type_accuracy", "captions"), ("type_accuracy_vqa", "objective")):
            sel = types[(types.condition == "image") & (types.set == which) & (types.group_by == "overall")]
            out[col] = sel.set_index("model")["accuracy"].reindex(out.index)
    return out.reset_index()


def read_type_scores(run_dir: str | Path) -> pd.DataFrame | None:
    """``RUN/results/type_scores.csv`` (diagram-type accuracy, with the image and blind), or None."""
    p = Path(run_dir) / "results" / "type_scores.csv"
    # NaN stays NaN here (no type of a known name in a set, no type question): its group names are never "NA"
    return pd.read_csv(p) if p.exists() else None


BLIND_SCORES = (("bleu4", "BLEU-4"), ("meteor", "METEOR"), ("rougeL", "ROUGE-L"), ("cider", "CIDEr-D/10"),
                ("type_captions", "Type accuracy (captions)"), ("accuracy", "Objective accuracy"),
                ("type_objective", "Type accuracy (VQA)"), ("faithfulness", "Faithfulness (graph)"))
BLIND_NOTE = ("blind-blank: every image replaced by a white one of the same size; blind-shuffled: each item "
              "shown another diagram's image; gain = with image minus the better blind score.")


def blind_table(run_dir: str | Path) -> pd.DataFrame:
    """One row per (model, score): the score with the image, blind (each blind mode) and the gain (with
    the image minus the best blind score). Empty when the run recorded no blind scores."""
    meta = load_meta(run_dir)
    cap = read_scores(run_dir, "caption_scores")
    cap_b = read_scores(run_dir, "caption_scores_blind", required=False)
    if cap_b is None:
        return pd.DataFrame()
    obj = read_scores(run_dir, "objective_scores", required=False)
    obj_b = read_scores(run_dir, "objective_scores_blind", required=False)
    types = read_type_scores(run_dir)
    frames = [cap.assign(condition="image"), cap_b]
    long = []
    for df, keys in ((pd.concat(frames), ("bleu4", "meteor", "rougeL", "cider")),
                     (pd.concat([obj.assign(condition="image"), obj_b]) if obj is not None and obj_b is not None
                      else None, ("accuracy",))):
        if df is None:
            continue
        df = df[df.group_by == "overall"]
        for k in keys:
            long.append(df[["model", "condition"]].assign(score=k, value=df[k].astype(float)))
    faith = read_scores(run_dir, "faithfulness_scores", required=False)
    faith_b = read_scores(run_dir, "faithfulness_scores_blind", required=False)
    if faith is not None and faith_b is not None and "faithfulness" in faith.columns:
        f = pd.concat([faith.assign(condition="image"), faith_b])
        f = f[f.group_by == "overall"]
        long.append(f[["model", "condition"]].assign(score="faithfulness",
                                                     value=pd.to_numeric(f["faithfulness"], errors="coerce")))
    if types is not None:
        t = types[types.group_by == "overall"]
        long.append(t[["model", "condition"]].assign(score="type_" + t["set"], value=t["accuracy"].astype(float)))
    table = pd.concat(long).pivot_table(index=["model", "score"], columns="condition", values="value",
                                        aggfunc="first")
    blind_cols = [c for c in table.columns if c.startswith("blind-")]
    table["gain"] = table["image"] - table[blind_cols].max(axis=1)
    order = model_order(cap, meta)
    rows = [(m, k) for m in order for k, _ in BLIND_SCORES if (m, k) in table.index]
    out = table.loc[rows, ["image", *blind_cols, "gain"]].reset_index()
    out["score"] = out["score"].map(dict(BLIND_SCORES))
    out.columns.name = None
    return out


def ablation_table(run_dir: str | Path) -> pd.DataFrame:
    """base -> stage1 -> stage2 -> stage3 (those present), with BLEU-4's gain over base as the paper
    writes it ("+56.8%")."""
    t = main_table(run_dir)
    t = t[t.model.isin(STAGE_ORDER)].set_index("model").loc[[m for m in STAGE_ORDER if m in set(t.model)]]
    if "base" in t.index and t.loc["base", "bleu4"] > 0:
        base = t.loc["base", "bleu4"]
        t["bleu4_vs_base"] = [format_improvement(v, base) for v in t["bleu4"]]
    return t.reset_index()


def _as_percent(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in (*METRIC_KEYS, "accuracy", "chance", "type_accuracy", "type_accuracy_vqa", "image", "blind-blank",
              "blind-shuffled", "gain"):
        if c in out:  # an empty cell (a CSV read with keep_default_na=False) is a score not recorded: NaN
            out[c] = (pd.to_numeric(out[c], errors="coerce") * 100).round(1)
    return out.rename(columns={**METRIC_LABELS, "accuracy": "Accuracy", "chance": "Chance",
                               "type_accuracy": "Type acc.", "type_accuracy_vqa": "Type acc. (VQA)",
                               "image": "With image", "gain": "Gain"})


def _write(df: pd.DataFrame, stem: Path, title: str, labels: list[str], note: str = "") -> list[Path]:
    caption = title + (f" ({'; '.join(labels)})" if labels else "")
    shown = _as_percent(df)
    notes = BLEU_NOTE + (f" {note}" if note else "")
    md = f"**{caption}**\n\n{shown.to_markdown(index=False, floatfmt='.1f')}\n\n{notes}\n"
    tex = shown.to_latex(index=False, float_format="%.1f", caption=caption + ". " + notes,
                         label=f"tab:{stem.name}", escape=True)
    paths = [stem.with_suffix(".csv"), stem.with_suffix(".md"), stem.with_suffix(".tex")]
    write_text_atomic(paths[0], df.to_csv(index=False, float_format="%.6f"))
    write_text_atomic(paths[1], md)
    write_text_atomic(paths[2], tex)
    return paths


def write_tables(run_dir: str | Path) -> list[Path]:
    """Write the main results table and the stage ablation as CSV (fractions), Markdown and LaTeX (in %)
    under ``RUN/results/``; returns the paths written."""
    run_dir = Path(run_dir)
    labels = standin_labels(load_meta(run_dir))
    res = run_dir / "results"
    paths = _write(main_table(run_dir), res / "main_table", "Caption metrics and objective accuracy by model",
                   labels)
    abl = ablation_table(run_dir)
    if len(abl):
        paths += _write(abl, res / "stage_ablation", "Stage ablation: base to stage 3", labels)
    else:
        log.warning("no base/stage models in %s: stage ablation table skipped", res)
    blind = blind_table(run_dir)
    if len(blind):
        paths += _write(blind, res / "blind_table", "With the image, blind, and the gain", labels,
                        note=BLIND_NOTE)
    paths += write_ci_tables(run_dir, labels)  # CIs, faithfulness, significance (when recorded)
    log.info("wrote %d table files under %s", len(paths), res)
    return paths
