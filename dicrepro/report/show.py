"""Small display helpers for the notebooks: galleries, counts, tables. No pipeline logic lives here."""

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
