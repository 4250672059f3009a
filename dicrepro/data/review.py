"""Review stage-2 pairs in JupyterLab: image beside its text; edit, accept or reject; next/previous.

Every decision is appended to a JSONL file the moment it is made (fsynced), so closing the notebook
loses nothing; reopening the widget continues where the reviewer stopped. The last decision for an id
wins. :func:`apply_reviews` turns the decisions into the training set (edits applied, rejects removed).
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from dicrepro.atomic import append_jsonl, read_jsonl

DECISIONS = ("accept", "reject", "edit")


def load_decisions(path: str | Path) -> dict[str, dict]:
    """id -> the last decision recorded for it (``{"id", "decision", "text"}``)."""
    path = Path(path)
    if not path.exists():
        return {}
    out = {}
    for row in read_jsonl(path):
        if row.get("decision") not in DECISIONS or "id" not in row:
            raise ValueError(f"{path}: bad review row {json.dumps(row)[:120]}")
        out[row["id"]] = row
    return out


def record_decision(path: str | Path, sample_id: str, decision: str, text: str | None = None) -> dict:
    """Append one decision (accept / reject / edit with the new text) to the reviews file."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {DECISIONS}, not {decision!r}")
    if decision == "edit" and not (text and text.strip()):
        raise ValueError(f"an edit of {sample_id} needs a non-empty text")
    row = {"id": sample_id, "decision": decision, "text": text if decision == "edit" else None}
    append_jsonl(path, row)
    return row


def apply_reviews(ds, path: str | Path):
    """The dataset with reviewers' edits applied and rejected rows removed (unreviewed rows are kept)."""
    decisions = load_decisions(path)
    rejected = {i for i, d in decisions.items() if d["decision"] == "reject"}
    edits = {i: d["text"] for i, d in decisions.items() if d["decision"] == "edit"}
    kept = ds.filter(lambda i: i not in rejected, input_columns="id")

    def _edit(row):
        if row["id"] in edits:
            row["description"] = row["target"] = edits[row["id"]]
        return row

    return kept.map(_edit) if edits else kept


STATE_COLOURS = {"accept": "#2e7d32", "reject": "#c62828", "edit": "#1565c0", None: "#757575"}
KEYS = {"a": "accept", "r": "reject", "n": "next", "ArrowRight": "next", "b": "prev", "ArrowLeft": "prev"}


def _state(decision: dict | None) -> str:
    """A row's review state as a small coloured label (rejected rows stay listed, marked as such)."""
    kind = decision["decision"] if decision else None
    label = {"accept": "accepted", "reject": "rejected", "edit": "edited", None: "not reviewed"}[kind]
    return (f"<span style='background:{STATE_COLOURS[kind]};color:white;padding:1px 6px;border-radius:3px'>"
            f"{label}</span>")


def _png(image, max_side: int | None = None) -> bytes:
    img = image.convert("RGB")
    if max_side:
        img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def review_table(ds, path: str | Path, *, n: int = 8, max_chars: int = 400) -> str:
    """A static HTML rendering of the first ``n`` rows with their review state: what an executed
    notebook shows in place of the live widget (which needs someone to click)."""
    decisions = load_decisions(path)
    rows = []
    for row in ds.select(range(min(n, len(ds)))):
        d = decisions.get(row["id"])
        text = d["text"] if d and d["decision"] == "edit" else row["target"]
        text = text if len(text) <= max_chars else text[:max_chars] + " ..."
        b64 = base64.b64encode(_png(row["image"], 240)).decode()
        rows.append(f"<tr><td style='vertical-align:top'><img src='data:image/png;base64,{b64}'/></td>"
                    f"<td style='vertical-align:top;text-align:left'><code>{html.escape(row['id'])}</code> "
                    f"{_state(d)}<pre style='white-space:pre-wrap;max-width:560px'>{html.escape(text)}</pre>"
                    "</td></tr>")
    head = (f"<p><b>Stage-2 review</b>: {len(decisions)} of {len(ds)} rows reviewed "
            f"(first {min(n, len(ds))} shown; open this notebook in JupyterLab to review)</p>")
    return head + "<table>" + "".join(rows) + "</table>"


def review(ds, path: str | Path, *, live: bool = True, **kwargs):
    """The review widget when someone can click (JupyterLab), else its static rendering as HTML."""
    if live:
        return review_widget(ds, path, **kwargs)
    from IPython.display import HTML

    return HTML(review_table(ds, path))


def review_widget(ds, path: str | Path, *, start: int | None = None):
    """An ipywidgets reviewer over ``ds`` (rows with id, image, target), saving to ``path``.

    Every row stays reachable, rejected ones included, with its state shown. Keyboard (with the mouse
    over the image or the buttons): ``a`` accept, ``r`` reject, ``n`` / → next, ``b`` / ← back; typing
    in the text box never triggers them. Starts at the first unreviewed row unless ``start`` is given.
    Returns the widget (a VBox); its ``.controls`` dict exposes the buttons and text box (handy for
    scripted use and tests).
    """
    import ipywidgets as w

    path = Path(path)
    ids = ds["id"]
    decisions = load_decisions(path)
    pos = {"i": start if start is not None else next((k for k, i in enumerate(ids) if i not in decisions), 0)}
    # Side by side within a laptop's ~1100 px: each column may shrink; the image keeps its aspect ratio.
    image = w.Image(format="png", layout=w.Layout(max_width="100%", max_height="440px", object_fit="contain"))
    text = w.Textarea(layout=w.Layout(width="100%", height="420px"))
    status = w.HTML()
    progress = w.IntProgress(min=0, max=len(ids), layout=w.Layout(width="100%"))
    b_prev, b_next = w.Button(description="◀ back (b)"), w.Button(description="next (n) ▶")
    b_accept = w.Button(description="accept (a)", button_style="success")
    b_reject = w.Button(description="reject (r)", button_style="danger")
    b_save = w.Button(description="save edit", button_style="info")
    for b in (b_prev, b_next, b_accept, b_reject, b_save):
        b.layout = w.Layout(width="auto")

    def show():
        i = pos["i"]
        row = ds[i]
        image.value = _png(row["image"])
        d = decisions.get(row["id"])
        text.value = d["text"] if d and d["decision"] == "edit" else row["target"]
        progress.value = len(decisions)
        status.value = (f"<b>{i + 1}/{len(ids)}</b> <code>{html.escape(row['id'])}</code> "
                        f"({html.escape(str(row.get('source', '')))}) {_state(d)} - {len(decisions)} reviewed")

    def move(step):
        pos["i"] = max(0, min(len(ids) - 1, pos["i"] + step))
        show()

    def decide(kind):
        sample_id = ids[pos["i"]]
        decisions[sample_id] = record_decision(path, sample_id, kind, text.value if kind == "edit" else None)
        move(1)

    actions = {"prev": lambda: move(-1), "next": lambda: move(1), "accept": lambda: decide("accept"),
               "reject": lambda: decide("reject"), "save": lambda: decide("edit")}
    for name, button in (("prev", b_prev), ("next", b_next), ("accept", b_accept), ("reject", b_reject),
                         ("save", b_save)):
        button.on_click(lambda _, name=name: actions[name]())
    show()
    picture = w.Box([image], layout=w.Layout(flex="1 1 50%", min_width="0", justify_content="center"))
    buttons = w.HBox([b_prev, b_accept, b_reject, b_save, b_next], layout=w.Layout(flex_flow="row wrap"))
    box = w.VBox([status, progress,
                  w.HBox([picture, w.Box([text], layout=w.Layout(flex="1 1 50%", min_width="0"))],
                         layout=w.Layout(width="100%", align_items="flex-start")),
                  buttons, w.HTML("<small>keys (mouse over the image or the buttons): <b>a</b> accept, "
                                  "<b>r</b> reject, <b>n</b>/→ next, <b>b</b>/← back</small>")],
                 layout=w.Layout(width="100%", max_width="1100px"))
    keys = _keyboard(picture, buttons, on_key=lambda key: actions[KEYS[key]]() if key in KEYS else None)
    box.controls = {"prev": b_prev, "next": b_next, "accept": b_accept, "reject": b_reject, "save": b_save,
                    "text": text, "status": status, "position": pos, "keys": keys}
    return box


def _keyboard(*widgets, on_key):
    """Key presses over ``widgets`` call ``on_key(key)`` (ipyevents; not over the text box, so typing
    there edits the text). Returns the event sources."""
    from ipyevents import Event

    sources = []
    for widget in widgets:
        ev = Event(source=widget, watched_events=["keydown"], prevent_default_action=True)
        ev.on_dom_event(lambda event: on_key(event.get("key", "")))
        sources.append(ev)
    return sources
