"""Small display helpers for the notebooks: one sample end to end, galleries, counts, captions side by side.
No pipeline logic lives here."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import pandas as pd


def _img_tag(image, max_width: int = 360) -> str:
    if isinstance(image, dict):
        data = image["bytes"]
    else:
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        data = buf.getvalue()
    b64 = base64.b64encode(data).decode()
    return f'<img src="data:image/png;base64,{b64}" style="max-width:{max_width}px;border:1px solid #ddd"/>'


def gallery(ds, n: int = 6, columns: tuple[str, ...] = ("mermaid", "description"), max_chars: int = 700):
    """An HTML table: each row an image beside the chosen text columns (e.g. its Mermaid source)."""
    from IPython.display import HTML

    rows = []
    for row in ds.select(range(min(n, len(ds)))):
        cells = [f"<td style='vertical-align:top'>{_img_tag(row['image'])}<br/><code>{html.escape(row['id'])}"
                 f"</code> {html.escape(row.get('diagram_type', ''))} {html.escape(row.get('language', ''))}</td>"]
        for col in columns:
            text = str(row.get(col, ""))
            if len(text) > max_chars:
                text = text[:max_chars] + " ..."
            cells.append(f"<td style='vertical-align:top;text-align:left'><pre style='white-space:pre-wrap;"
                         f"max-width:420px'>{html.escape(text)}</pre></td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "<tr><th>image</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>"
    return HTML(f"<table>{head}{''.join(rows)}</table>")


def counts(ds, by: list[str]) -> pd.DataFrame:
    """Row counts grouped by the given columns."""
    df = ds.select_columns(by).to_pandas()
    return df.value_counts(by).rename("rows").reset_index()


def images(paths: list[Path], width: int = 640):
    """Display PNG files (e.g. the regenerated figures) one after another."""
    from IPython.display import Image, display

    for p in paths:
        if Path(p).suffix == ".png":
            display(Image(filename=str(p), width=width))


def _pre(text: str, max_width: int = 460) -> str:
    return (f"<pre style='white-space:pre-wrap;text-align:left;max-width:{max_width}px;margin:0'>"
            f"{html.escape(text)}</pre>")


def sample(row: dict, vqa: list[dict] | None = None):
    """One sample end to end, left to right: its Mermaid source, the image mermaid.js drew from it, the
    description written from its graph, and (optionally) stage-3 questions with their answer keys."""
    from IPython.display import HTML

    head = (f"<p><code>{html.escape(row['id'])}</code>: a <b>{html.escape(row.get('diagram_type', ''))}</b> "
            f"diagram, topic <i>{html.escape(row.get('topic', '') or '-')}</i>, language "
            f"{html.escape(row.get('language', ''))}</p>")
    cells = [("1. Mermaid source", _pre(row.get("mermaid", ""), 320)),
             ("2. rendered by mermaid.js", _img_tag(row["image"], 420)),
             ("3. description (training target)", _pre(row.get("description", ""), 420))]
    if vqa:
        cells.append(("4. stage-3 questions", "".join(
            _pre(f"[{q['kind']}] {q['question']}" + "".join(f"\n  {o}" for o in q.get("options") or [])
                 + f"\n→ {q['answer']}", 320) + "<br/>" for q in vqa)))
    top = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h, _ in cells)
    body = "".join(f"<td style='vertical-align:top'>{c}</td>" for _, c in cells)
    return HTML(f"{head}<table><tr>{top}</tr><tr>{body}</tr></table>")


def captions(row: dict, by_model: dict[str, str], reference: str | None = None):
    """The same image, captioned by each model (base, then each stage), beside the reference text."""
    from IPython.display import HTML

    lines = list(by_model.items())
    if reference is not None:
        lines.append(("reference", reference))
    rows = "".join(f"<tr><th style='vertical-align:top;text-align:left'>{html.escape(n)}</th>"
                   f"<td style='vertical-align:top'>{_pre(t or '(empty)', 640)}</td></tr>" for n, t in lines)
    return HTML(f"<table><tr><td rowspan='{len(lines) + 1}' style='vertical-align:top'>{_img_tag(row['image'], 360)}"
                f"<br/><code>{html.escape(row['id'])}</code></td></tr>{rows}</table>")
