"""``dicrepro report RUN_DIR``: one page (Markdown + self-contained HTML) with a run's results.

Everything on it is read from the run's files; no number is typed in. Sections:

1. the stand-in labels of the run (tiny model, stage-2 stand-in), said first;
2. the headline tables the evaluate/figures steps wrote (``results/*.md``: main table, stage ablation and
   whatever else the evaluation recorded, such as blind baselines);
3. this run beside the paper's published claims, computed the same way (relative BLEU-4 gain of the final
   stage over the base and over each baseline; objective accuracy difference in points);
4. per-diagram-type tables (BLEU-4 and objective accuracy by model);
5. the figures of ``figures_dir``;
6. a gallery: image, reference and every model's caption;
7. provenance: params hash, seed, package and mermaid.js versions, wall time of every step.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
import os
from pathlib import Path

import pandas as pd

from dicrepro.atomic import read_jsonl, write_text_atomic
from dicrepro.evaluate.metrics import format_improvement
from dicrepro.paths import resolve
from dicrepro.report.tables import STAGE_ORDER, load_meta, model_order, standin_labels

log = logging.getLogger(__name__)

# The paper's published comparisons (arXiv 2601.09298; ../shared/PAPER.md), each with how this run computes
# its counterpart. The paper's "7B SOTA" has no counterpart in a run but the base model (the same-size
# general model the stages start from); its 32B baseline has one when eval.baselines names it.
PAPER_CLAIMS = (
    ("BLEU vs the 7B state of the art", "+56.8%", "relative BLEU-4 gain of the last stage over the base model"),
    ("BLEU vs the 32B state of the art", "+20.8%", "relative BLEU-4 gain of the last stage over each baseline"),
    ("objective accuracy vs Qwen2.5-VL-32B", "+1 point", "accuracy of the last stage minus that of the base "
     "(and of each baseline)"),
)
_TABLE_ORDER = ("main_table", "stage_ablation")


def _read_csv(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path, keep_default_na=False) if path.exists() else None


def _overall(df: pd.DataFrame | None, column: str) -> dict[str, float]:
    if df is None or column not in df:
        return {}
    o = df[(df.group_by == "overall") & (df.get("condition", "image") == "image")] if "condition" in df else \
        df[df.group_by == "overall"]
    return {r["model"]: float(r[column]) for r in o.to_dict("records") if str(r[column]) != ""}


def _gain(a: float, b: float) -> str:
    """The paper's relative gain, or why there is none (a reference score of 0 has no relative gain)."""
    return format_improvement(a, b) if b > 0 else "undefined (reference BLEU-4 is 0)"


def paper_comparison(run_dir: str | Path) -> pd.DataFrame:
    """The paper's claims beside this run's numbers computed the same way (rows with a counterpart only)."""
    res = Path(run_dir) / "results"
    meta = load_meta(run_dir)
    cap, obj = _read_csv(res / "caption_scores.csv"), _read_csv(res / "objective_scores.csv")
    bleu, acc = _overall(cap, "bleu4"), _overall(obj, "accuracy")
    stages = [m for m in STAGE_ORDER[1:] if m in bleu]
    last = stages[-1] if stages else None
    baselines = [m for m in model_order(cap, meta) if m not in STAGE_ORDER and m != "ocr"] if cap is not None else []
    rows = []
    if last and "base" in bleu:
        rows.append((*PAPER_CLAIMS[0][:2], f"{last} vs base: {_gain(bleu[last], bleu['base'])}",
                     f"BLEU-4 {100 * bleu[last]:.1f} vs {100 * bleu['base']:.1f}"))
    for b in baselines:
        if last and b in bleu:
            rows.append((*PAPER_CLAIMS[1][:2], f"{last} vs {b}: {_gain(bleu[last], bleu[b])}",
                         f"BLEU-4 {100 * bleu[last]:.1f} vs {100 * bleu[b]:.1f}"))
    last_acc = next((m for m in reversed(STAGE_ORDER[1:]) if m in acc), None)
    for ref in ["base"] + baselines:
        if last_acc and ref in acc:
            rows.append((*PAPER_CLAIMS[2][:2], f"{last_acc} vs {ref}: {100 * (acc[last_acc] - acc[ref]):+.1f} points",
                         f"accuracy {100 * acc[last_acc]:.1f}% vs {100 * acc[ref]:.1f}%"))
    return pd.DataFrame(rows, columns=["paper's claim", "paper", "this run", "from"])


def per_type_tables(run_dir: str | Path) -> dict[str, pd.DataFrame]:
    """BLEU-4 (captions) and accuracy (objective questions) by diagram type, one column per model, in %."""
    res = Path(run_dir) / "results"
    meta = load_meta(run_dir)
    out = {}
    for name, column, title in (("caption_scores", "bleu4", "BLEU-4 by diagram type"),
                                ("objective_scores", "accuracy", "Objective accuracy by diagram type")):
        df = _read_csv(res / f"{name}.csv")
        if df is None or column not in df:
            continue
        sel = df[df.group_by == "diagram_type"]
        if "condition" in sel:
            sel = sel[sel.condition == "image"]
        if sel.empty:
            continue
        t = sel.pivot_table(index="group", columns="model", values=column, aggfunc="first")
        t = (t[[m for m in model_order(df, meta) if m in t.columns]].astype(float) * 100).round(1)
        n = sel.groupby("group")["n"].first()
        t.insert(0, "n", n.reindex(t.index))
        out[title] = t.reset_index().rename(columns={"group": "diagram type"})
    return out


def provenance(run_dir: str | Path) -> dict:
    """Params hash, seed, versions and step timings from the run's manifest (empty if there is none)."""
    p = Path(run_dir) / "manifest.json"
    if not p.exists():
        return {}
    m = json.loads(p.read_text())
    params_hash = hashlib.sha256(json.dumps(m.get("params", {}), sort_keys=True).encode()).hexdigest()[:16]
    return {"name": m.get("name"), "seed": m.get("seed"), "params_sha256": params_hash, "python": m.get("python"),
            "platform": m.get("platform"), "mermaid_js": m.get("mermaid_js"), "packages": m.get("packages", {}),
            "steps": m.get("steps", {}), "figures_dir": m.get("params", {}).get("figures_dir")}


def _img(path: Path, width: int = 640) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" style="max-width:{width}px">'


def build_report(run_dir: str | Path, out_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Write ``report.md`` and a self-contained ``report.html`` (images inlined) for the run in ``run_dir``
    into ``out_dir`` (default ``RUN/report``); returns both paths."""
    run_dir = Path(run_dir)
    res = run_dir / "results"
    if not (res / "caption_scores.csv").exists():
        raise FileNotFoundError(f"{res / 'caption_scores.csv'} not found: run the evaluate step first "
                                f"(dicrepro run PARAMS --only evaluate figures)")
    out_dir = Path(out_dir) if out_dir else run_dir / "report"
    meta, prov = load_meta(run_dir), provenance(run_dir)
    labels = standin_labels(meta)
    title = f"dicrepro results: {prov.get('name') or run_dir.name}"
    md, h = [f"# {title}", ""], [f"<h1>{html.escape(title)}</h1>"]

    def section(name: str) -> None:
        md.extend([f"## {name}", ""])
        h.append(f"<h2>{html.escape(name)}</h2>")

    def table(df: pd.DataFrame, caption: str = "") -> None:
        if caption:
            md.extend([f"**{caption}**", ""])
            h.append(f"<p><b>{html.escape(caption)}</b></p>")
        md.extend([df.to_markdown(index=False, floatfmt=".1f"), ""])
        h.append(df.to_html(index=False, float_format=lambda v: f"{v:.1f}", border=0, classes="t"))

    if labels:
        note = ("This run uses " + " and ".join(labels) + ": its numbers show that the method's chain works; "
                "they are not the paper's results.")
        md.extend([f"> {note}", ""])
        h.append(f"<p class='note'>{html.escape(note)}</p>")

    section("Results")
    tables = sorted(res.glob("*.md"), key=lambda p: (_TABLE_ORDER.index(p.stem) if p.stem in _TABLE_ORDER
                                                      else len(_TABLE_ORDER), p.stem))
    for p in tables:
        text = p.read_text(encoding="utf-8").strip()
        md.extend([text, ""])
        h.append(_markdown_table_html(text))

    section("This run beside the paper")
    comp = paper_comparison(run_dir)
    md.extend(["The paper's numbers are for a 7B model trained on real expert data; this run's are computed "
               "the same way from its own results files.", ""])
    h.append("<p>The paper's numbers are for a 7B model trained on real expert data; this run's are computed "
             "the same way from its own results files.</p>")
    if len(comp):
        table(comp)
    else:
        md.extend(["(no stage and base scores in this run to compare)", ""])

    types = per_type_tables(run_dir)
    if types:
        section("By diagram type (%)")
        for caption, df in types.items():
            table(df, caption)

    figures_dir = Path(prov["figures_dir"]) if prov.get("figures_dir") else None
    if figures_dir is not None and not figures_dir.is_absolute():
        figures_dir = resolve(figures_dir)
    pngs = sorted(figures_dir.glob("*.png")) if figures_dir and figures_dir.is_dir() else []
    if pngs:
        section("Figures")
        for p in pngs:
            md.extend([f"![{p.stem}]({os.path.relpath(p.resolve(), out_dir.resolve())})", ""])
            h.append(f"<figure>{_img(p, 900)}<figcaption>{html.escape(p.stem)}</figcaption></figure>")

    gallery = read_jsonl(run_dir / "predictions" / "gallery.jsonl") if (run_dir / "predictions" / "gallery.jsonl").exists() else []
    if gallery:
        section("Gallery")
        for g in gallery:
            rel = os.path.relpath(Path(g["image_path"]).resolve(), out_dir.resolve())
            md.extend([f"### {g['id']} ({g.get('diagram_type', '')})", "", f"![{g['id']}]({rel})", "",
                       f"- **reference**: {g['reference']}"])
            h.append(f"<h3>{html.escape(g['id'])} ({html.escape(str(g.get('diagram_type', '')))})</h3>")
            if Path(g["image_path"]).exists():
                h.append(_img(Path(g["image_path"]), 480))
            items = [("reference", g["reference"])] + list(g.get("predictions", {}).items())
            md.extend([f"- **{m}**: {t}" for m, t in items[1:]] + [""])
            h.append("<dl>" + "".join(f"<dt>{html.escape(m)}</dt><dd>{html.escape(str(t))}</dd>" for m, t in items)
                     + "</dl>")

    if prov:
        section("Provenance")
        rows = [("params sha256", prov["params_sha256"]), ("seed", prov["seed"]), ("python", prov["python"]),
                ("platform", prov["platform"]), ("mermaid.js", prov["mermaid_js"])]
        rows += [(k, v) for k, v in sorted(prov["packages"].items()) if v]
        table(pd.DataFrame(rows, columns=["what", "value"]).astype(str))
        steps = [(s, v.get("seconds"), v.get("finished")) for s, v in prov["steps"].items()]
        if steps:
            table(pd.DataFrame(steps, columns=["step", "seconds", "finished"]), "Wall time of each step")

    md_path = write_text_atomic(out_dir / "report.md", "\n".join(md))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
            "body{font-family:sans-serif;max-width:1000px;margin:2em auto;line-height:1.4}"
            "table.t{border-collapse:collapse;margin:1em 0}table.t td,table.t th{padding:2px 8px;"
            "border-bottom:1px solid #ddd;text-align:right}.note{background:#fff4d6;padding:.6em}"
            "dt{font-weight:bold}dd{margin:0 0 .6em 1em}</style></head><body>" + "\n".join(h) + "</body></html>")
    html_path = write_text_atomic(out_dir / "report.html", page)
    log.info("wrote %s and %s", md_path, html_path)
    return md_path, html_path


def _markdown_table_html(text: str) -> str:
    """A results/*.md (bold caption, one pipe table, notes) as HTML with the very cells the Markdown shows:
    one rendering of every number (percent, CIDEr-D on its own scale), not a second one from the CSV."""
    lines = text.splitlines()
    rows = [ln for ln in lines if ln.startswith("|")]
    if len(rows) < 2:
        return f"<pre>{html.escape(text)}</pre>"
    other = [ln.strip() for ln in lines if not ln.startswith("|") and ln.strip()]
    cells = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in rows]
    head, body = cells[0], cells[2:]  # cells[1] is the |:---|---:| rule
    caption = [ln for ln in other[:1] if ln.startswith("**")]
    out = [f"<p><b>{html.escape(ln.strip('*'))}</b></p>" for ln in caption]
    out.append("<table class='t'><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr>"
               + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
               + "</table>")
    out += [f"<p>{html.escape(ln)}</p>" for ln in other[len(caption):]]
    return "".join(out)
