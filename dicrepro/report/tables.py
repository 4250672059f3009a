"""Results tables (CSV, Markdown, LaTeX) from a run's recorded scores; nothing is trained or generated.

Inputs (written by the evaluate step): ``RUN/results/caption_scores.csv``, ``objective_scores.csv`` (optional)
and ``meta.json``. Outputs, under ``RUN/results/``: ``main_table.{csv,md,tex}`` (every model, overall
scores) and ``stage_ablation.{csv,md,tex}`` (base -> stage 1 -> 2 -> 3 with the gain over the base).

Units: the CSVs hold fractions 0-1, Markdown and LaTeX percent 0-100 (one decimal), except CIDEr-D, which is
on pycocoevalcap's scale (0-10) everywhere, shown with three decimals (:func:`shown_table`). Each metric has
one name, :data:`dicrepro.evaluate.metrics.METRIC_NAMES`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from dicrepro.atomic import write_text_atomic
from dicrepro.evaluate.metrics import METRIC_KEYS, METRIC_NAMES, RAW_SCALE_KEYS, format_improvement
from dicrepro.report.ci_tables import write_ci_tables

log = logging.getLogger(__name__)

STAGE_ORDER = ("base", "stage1", "stage2", "stage3")
METRIC_LABELS = METRIC_NAMES  # one name per metric, from the CLI to the figures
SCALE_NOTE = "Scores in % except CIDEr-D, which is on pycocoevalcap's scale (0-10)."
BLEU_NOTE = (f"{SCALE_NOTE} BLEU: corpus-level BLEU on words (nltk, method1 smoothing; Chinese segmented with "
             "jieba), not character BLEU. Objective accuracy: unparsed answers count as wrong.")


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


def decoding_note(meta: dict) -> str:
    """How the replies were decoded (meta.json's ``decoding``), for the tables' notes; "" if not recorded."""
    beams = meta.get("decoding", {}).get("num_beams")
    if beams is None:
        return ""
    return "Replies decoded greedily." if beams == 1 else f"Replies decoded by beam search over {beams} beams."


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


BLIND_SCORES = (*((k, METRIC_NAMES[k]) for k in ("bleu4", "meteor", "rougeL", "cider")),
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


# Fractions shown in percent; a raw-scale key (CIDEr-D) is shown as it is, wherever it stands.
PERCENT_COLUMNS = (*(k for k in METRIC_KEYS if k not in RAW_SCALE_KEYS), "accuracy", "chance", "type_accuracy",
                   "type_accuracy_vqa")
ROW_SCORE_COLUMNS = ("image", "blind-blank", "blind-shuffled", "gain")  # the blind table: "score" names the row
COUNT_COLUMNS = ("n", "n_captions", "unparsed")
RAW_DIGITS = 3  # CIDEr-D to three decimals: a weak model's 0.012 must not print as 0.0
COLUMN_NAMES = {**METRIC_LABELS, "accuracy": "Accuracy", "chance": "Chance", "type_accuracy": "Type acc.",
                "type_accuracy_vqa": "Type acc. (VQA)", "image": "With image", "gain": "Gain"}


def _text(value, scale: float, digits: int) -> str:
    v = pd.to_numeric(value, errors="coerce")
    return "-" if pd.isna(v) else f"{v * scale:.{digits}f}"


def shown_table(df: pd.DataFrame) -> pd.DataFrame:
    """A results table (fractions; CIDEr-D raw) as every table shows it: display names, and cells as text,
    percent with one decimal, CIDEr-D on its own scale with :data:`RAW_DIGITS`, '-' where not recorded."""
    out = df.copy()
    raw_names = {METRIC_NAMES[k] for k in RAW_SCALE_KEYS} | set(RAW_SCALE_KEYS)
    raw_row = out["score"].isin(raw_names) if "score" in out else pd.Series(False, index=out.index)
    for c in out.columns:
        if c in RAW_SCALE_KEYS:
            out[c] = [_text(v, 1, RAW_DIGITS) for v in out[c]]
        elif c in PERCENT_COLUMNS or c in ROW_SCORE_COLUMNS:
            out[c] = [_text(v, 1, RAW_DIGITS) if raw and c in ROW_SCORE_COLUMNS else _text(v, 100, 1)
                      for v, raw in zip(out[c], raw_row)]
        elif c in COUNT_COLUMNS:
            out[c] = [_text(v, 1, 0) for v in out[c]]
    return out.rename(columns=COLUMN_NAMES)


def _numeric(column: str) -> bool:
    return column in (*METRIC_KEYS, *PERCENT_COLUMNS, *ROW_SCORE_COLUMNS, *COUNT_COLUMNS)


def render(df: pd.DataFrame) -> tuple[str, str, str]:
    """(Markdown, LaTeX column format, LaTeX-ready frame) of :func:`shown_table`: numbers right-aligned,
    the cells' text kept as it is (tabulate would re-read "0.012" as a number and reformat it)."""
    shown = shown_table(df)
    align = ["right" if _numeric(c) else "left" for c in df.columns]
    md = shown.to_markdown(index=False, disable_numparse=True, colalign=align)
    return md, "".join("r" if a == "right" else "l" for a in align), shown


def _write(df: pd.DataFrame, stem: Path, title: str, labels: list[str], note: str = "") -> list[Path]:
    caption = title + (f" ({'; '.join(labels)})" if labels else "")
    table, column_format, shown = render(df)
    notes = BLEU_NOTE + (f" {note}" if note else "")
    md = f"**{caption}**\n\n{table}\n\n{notes}\n"
    tex = shown.to_latex(index=False, column_format=column_format, caption=caption + ". " + notes,
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
    meta = load_meta(run_dir)
    labels, decoding = standin_labels(meta), decoding_note(meta)
    res = run_dir / "results"
    paths = _write(main_table(run_dir), res / "main_table", "Caption metrics and objective accuracy by model",
                   labels, note=decoding)
    abl = ablation_table(run_dir)
    if len(abl):
        paths += _write(abl, res / "stage_ablation", "Stage ablation: base to stage 3", labels, note=decoding)
    else:
        log.warning("no base/stage models in %s: stage ablation table skipped", res)
    blind = blind_table(run_dir)
    if len(blind):
        paths += _write(blind, res / "blind_table", "With the image, blind, and the gain", labels,
                        note=f"{BLIND_NOTE} {decoding}".strip())
    paths += write_ci_tables(run_dir, labels)  # CIs, faithfulness, significance (when recorded)
    log.info("wrote %d table files under %s", len(paths), res)
    return paths
