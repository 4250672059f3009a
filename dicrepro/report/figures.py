"""Seaborn figures (PNG + PDF) from a run's recorded results only: nothing is trained or generated.

Reads ``RUN/results/{caption_scores,objective_scores}.csv``, ``RUN/results/meta.json``,
``RUN/models/stage{1,2,3}/loss.csv`` and ``RUN/predictions/gallery.jsonl``. Every title carries the
run's honest labels ("tiny stand-in model", "stage-2 stand-in data") when meta.json says so. Files are
written without timestamps or software versions in their metadata, so a rerun gives identical bytes.

Units as in the tables: scores in percent (0-100), except CIDEr-D, drawn on pycocoevalcap's scale (0-10) in
a panel of its own beside the percent metrics; names from ``dicrepro.evaluate.metrics.METRIC_NAMES``.
"""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from dicrepro.atomic import read_jsonl
from dicrepro.evaluate.diagram_type import caption_type  # noqa: E402
from dicrepro.evaluate.metrics import METRIC_KEYS, RAW_SCALE_KEYS  # noqa: E402
from dicrepro.report.tables import (  # noqa: E402
    METRIC_LABELS,
    STAGE_ORDER,
    load_meta,
    model_order,
    read_scores,
    standin_labels,
    write_tables,
)

log = logging.getLogger(__name__)

__all__ = ["make_figures", "write_tables"]

# Latin first, then CJK for Chinese labels and captions (Debian fonts-noto-cjk)
FONTS = ["DejaVu Sans", "Noto Sans CJK SC", "Noto Sans CJK JP"]


def _title(text: str, labels: list[str]) -> str:
    return text + (f"\n({'; '.join(labels)})" if labels else "")


def _save(fig, figures_dir: Path, stem: str) -> list[Path]:
    """PNG and PDF without timestamps/versions in their metadata (byte-identical reruns)."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    png, pdf = figures_dir / f"{stem}.png", figures_dir / f"{stem}.pdf"
    fig.savefig(png, dpi=150, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(pdf, bbox_inches="tight", metadata={"CreationDate": None, "Producer": None, "Creator": None})
    plt.close(fig)
    for f in (png, pdf):  # readable by the team and a web server whatever the umask
        f.chmod(0o644)
    return [png, pdf]


PERCENT_KEYS = tuple(k for k in METRIC_KEYS if k not in RAW_SCALE_KEYS)
RAW_KEYS = tuple(k for k in METRIC_KEYS if k in RAW_SCALE_KEYS)  # CIDEr-D: its own axis, its own scale


def _long_metrics(df: pd.DataFrame, keys: tuple[str, ...]) -> pd.DataFrame:
    """Long form of ``keys``: percent for fractions, the raw value for CIDEr-D."""
    long = df.melt(id_vars=["model"], value_vars=list(keys), var_name="metric", value_name="score")
    long["score"] = [v if k in RAW_SCALE_KEYS else 100 * v for k, v in zip(long["metric"], long["score"])]
    long["metric"] = long["metric"].map(METRIC_LABELS)
    return long


def _headroom(long: pd.DataFrame, top: float, floor: float) -> float:
    # A fixed full-scale axis flattens small scores (the tiny model's) into a line: 20% above the highest.
    highest = float(long["score"].max()) if len(long) else top
    return min(top, max(floor, highest * 1.2))


def _panels(width: float):
    """A wide axis for the percent metrics beside a narrow one for CIDEr-D."""
    return plt.subplots(1, 2, figsize=(width, 4.5), gridspec_kw={"width_ratios": [len(PERCENT_KEYS), 2]})


def fig_metrics_by_model(cap: pd.DataFrame, order: list[str], labels, out: Path) -> list[Path]:
    """Grouped bars: every caption metric for every model (overall); CIDEr-D in its own panel."""
    overall = cap[cap.group_by == "overall"]
    fig, (ax, ax_raw) = _panels(10)
    pct, raw = _long_metrics(overall, PERCENT_KEYS), _long_metrics(overall, RAW_KEYS)
    sns.barplot(pct, x="metric", y="score", hue="model", hue_order=order, ax=ax)
    ax.set(xlabel="", ylabel="score (%)", ylim=(0, _headroom(pct, 100, 5)))
    ax.legend(title="model", fontsize=8, ncol=min(len(order), 4))
    sns.barplot(raw, x="metric", y="score", hue="model", hue_order=order, ax=ax_raw, legend=False)
    for bars in ax_raw.containers:  # small values on their own scale: say them
        ax_raw.bar_label(bars, fmt="%.3f", fontsize=7)
    ax_raw.set(xlabel="", ylabel="CIDEr-D (pycocoevalcap scale, 0-10)", ylim=(0, _headroom(raw, 10, 0.01)))
    fig.suptitle(_title("Caption metrics by model", labels))
    fig.tight_layout()
    return _save(fig, out, "metrics_by_model")


def fig_stage_ablation(cap: pd.DataFrame, labels, out: Path) -> list[Path] | None:
    """Lines across base -> stage1 -> stage2 -> stage3, one per metric, BLEU-4 drawn heaviest; CIDEr-D in
    its own panel."""
    overall = cap[(cap.group_by == "overall") & cap.model.isin(STAGE_ORDER)]
    if overall.empty:
        log.warning("no base/stage models: stage ablation figure skipped")
        return None
    stages = [m for m in STAGE_ORDER if m in set(overall.model)]
    pct, raw = _long_metrics(overall, PERCENT_KEYS), _long_metrics(overall, RAW_KEYS)
    fig, (ax, ax_raw) = _panels(10)
    sns.lineplot(pct, x="model", y="score", hue="metric", style="metric", markers=True, dashes=False,
                 sort=False, ax=ax)
    b4 = overall.set_index("model").loc[stages, "bleu4"] * 100
    ax.plot(stages, b4.values, color="black", linewidth=3, alpha=0.35, label="BLEU-4 (headline)")
    ax.set_xticks(range(len(stages)), stages)
    ax.set(xlabel="", ylabel="score (%)", ylim=(0, _headroom(pct, 100, 5)))
    ax.legend(fontsize=8, loc="upper left")
    sns.lineplot(raw, x="model", y="score", hue="metric", markers=True, sort=False, ax=ax_raw, legend=False)
    ax_raw.set_xticks(range(len(stages)), stages)
    ax_raw.set(xlabel="", ylabel="CIDEr-D (pycocoevalcap scale, 0-10)", ylim=(0, _headroom(raw, 10, 0.01)))
    fig.suptitle(_title("Stage ablation: base → stage 1 → 2 → 3", labels))
    fig.tight_layout()
    return _save(fig, out, "stage_ablation")


def fig_heatmap_by_type(cap: pd.DataFrame, order: list[str], labels, out: Path) -> list[Path] | None:
    """BLEU-4 by diagram type (rows) x model (columns)."""
    sub = cap[cap.group_by == "diagram_type"]
    if sub.empty:
        log.warning("no diagram_type breakdown: heatmap skipped")
        return None
    grid = sub.pivot_table(index="group", columns="model", values="bleu4", aggfunc="first")
    grid = grid[[m for m in order if m in grid.columns]] * 100
    fig, ax = plt.subplots(figsize=(1.3 * len(grid.columns) + 3, 0.45 * len(grid) + 2))
    sns.heatmap(grid, annot=True, fmt=".1f", cmap="viridis", vmin=0, vmax=max(1.0, grid.values.max()),
                cbar_kws={"label": "BLEU-4 (%)"}, ax=ax)
    ax.set(xlabel="model", ylabel="diagram type", title=_title("BLEU-4 (%) by diagram type", labels))
    return _save(fig, out, "bleu_by_diagram_type")


def fig_objective_by_dimension(obj: pd.DataFrame, order: list[str], labels, out: Path) -> list[Path] | None:
    """Accuracy by dimension (global/partial/detail) per model, chance level drawn per dimension."""
    sub = obj[obj.group_by == "dimension"]
    if sub.empty:
        log.warning("no dimension breakdown: objective figure skipped")
        return None
    dims = [d for d in ("global", "partial", "detail") if d in set(sub.group)] + \
        sorted(set(sub.group) - {"global", "partial", "detail"})
    fig, ax = plt.subplots(figsize=(8, 4.5))
    sub = sub.assign(accuracy=sub["accuracy"] * 100, chance=sub["chance"] * 100)  # in %, like the tables
    sns.barplot(sub, x="group", y="accuracy", hue="model", order=dims,
                hue_order=[m for m in order if m in set(sub.model)], ax=ax)
    chance = sub.groupby("group")["chance"].mean()
    for i, d in enumerate(dims):
        ax.hlines(chance[d], i - 0.45, i + 0.45, colors="red", linestyles="--",
                  label="chance" if i == 0 else None)
    ax.set(xlabel="dimension", ylabel="accuracy (%)", ylim=(0, 100),
           title=_title("Objective-question accuracy by dimension", labels))
    ax.legend(fontsize=8)
    return _save(fig, out, "objective_by_dimension")


def fig_loss_curves(run_dir: Path, labels, out: Path) -> list[Path] | None:
    """Training loss of the three stages, on one step axis (stage k continues after stage k-1)."""
    frames, offset = [], 0
    for k in (1, 2, 3):
        p = run_dir / "models" / f"stage{k}" / "loss.csv"
        if not p.exists():
            log.warning("%s not found: stage %d missing from the loss figure", p, k)
            continue
        df = pd.read_csv(p)
        if not {"step", "loss"} <= set(df.columns):
            raise ValueError(f"{p}: needs columns step and loss, has {list(df.columns)}")
        df = df.assign(stage=f"stage {k}", global_step=df["step"] + offset)
        offset = int(df["global_step"].max()) if len(df) else offset
        frames.append(df)
    if not frames:
        return None
    fig, ax = plt.subplots(figsize=(8, 4))
    sns.lineplot(pd.concat(frames), x="global_step", y="loss", hue="stage", ax=ax)
    ax.set(xlabel="optimizer step (stages in sequence)", ylabel="training loss",
           title=_title("Loss curves of the three SFT stages", labels))
    return _save(fig, out, "loss_curves")


def _wrap(text: str, width: int, lines: int) -> str:
    wrapped = textwrap.wrap(" ".join(str(text).split()), width) or [""]
    return "\n".join(wrapped[:lines]) + (" …" if len(wrapped) > lines else "")


def _type_mark(row: dict, model: str) -> str:
    """"[type right]" or "[type WRONG: says pie]": does the caption name the diagram's type first?"""
    named = row.get("caption_types", {}).get(model, caption_type(row["predictions"][model]))
    if named == row.get("diagram_type"):
        return "[type right]"
    return f"[type WRONG: says {named or 'no type'}]"


def fig_gallery(run_dir: Path, order: list[str], labels, out: Path, n: int = 4) -> list[Path] | None:
    """Test images beside their reference and each model's prediction (texts wrapped and truncated)."""
    p = run_dir / "predictions" / "gallery.jsonl"
    if not p.exists():
        log.warning("%s not found: gallery skipped", p)
        return None
    from PIL import Image


    rows = read_jsonl(p)[:n]
    if not rows:
        return None
    fig, axes = plt.subplots(len(rows), 2, figsize=(13, 3.6 * len(rows)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.6]})
    for (ax_img, ax_txt), row in zip(axes, rows):
        img = Path(row["image_path"])
        img = img if img.is_absolute() or img.exists() else run_dir / img
        ax_img.imshow(Image.open(img).convert("RGB"))
        ax_img.set_title(f"{row['id']} ({row.get('diagram_type', '')})", fontsize=8)
        ax_img.axis("off")
        preds = row.get("predictions", {})
        parts = [f"Reference: {_wrap(row['reference'], 90, 4)}"]
        models = [m for m in order if m in preds] + [m for m in preds if m not in order]
        parts += [f"{m} {_type_mark(row, m)}: {_wrap(preds[m], 90, 3)}" for m in models]
        ax_txt.text(0, 1, "\n\n".join(parts), va="top", ha="left", fontsize=7, wrap=True)
        ax_txt.axis("off")
    fig.suptitle(_title("Test images: reference and predicted descriptions", labels), fontsize=11)
    fig.tight_layout()
    return _save(fig, out, "gallery")


def make_figures(run_dir: str | Path, figures_dir: str | Path) -> list[Path]:
    """Draw every figure of the run into ``figures_dir`` (PNG + PDF each); returns the paths written.
    Figures whose inputs were not recorded are skipped with a warning; caption scores are required."""
    run_dir, figures_dir = Path(run_dir), Path(figures_dir)
    meta = load_meta(run_dir)
    labels = standin_labels(meta)
    cap = read_scores(run_dir, "caption_scores")
    obj = read_scores(run_dir, "objective_scores", required=False)
    order = model_order(cap, meta)
    sns.set_theme(style="whitegrid", context="paper", font=FONTS[0])
    plt.rcParams["font.family"] = FONTS  # per-glyph fallback to the CJK font
    plt.rcParams["svg.hashsalt"] = "dicrepro"
    written: list[Path] = []
    for paths in (fig_metrics_by_model(cap, order, labels, figures_dir),
                  fig_stage_ablation(cap, labels, figures_dir),
                  fig_heatmap_by_type(cap, order, labels, figures_dir),
                  fig_objective_by_dimension(obj, order, labels, figures_dir) if obj is not None else None,
                  fig_gallery(run_dir, order, labels, figures_dir),
                  fig_loss_curves(run_dir, labels, figures_dir)):
        written += paths or []
    log.info("wrote %d figure files to %s", len(written), figures_dir)
    return written

