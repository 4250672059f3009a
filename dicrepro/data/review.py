"""Review stage-2 pairs in JupyterLab: image beside its text; edit, accept or reject; next/previous.

Every decision is appended to a JSONL file the moment it is made (fsynced), so closing the notebook
loses nothing; reopening the widget continues where the reviewer stopped. The last decision for an id
wins. :func:`apply_reviews` turns the decisions into the training set (edits applied, rejects removed).
"""

from __future__ import annotations

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


def review_widget(ds, path: str | Path, *, start: int | None = None):
    """An ipywidgets reviewer over ``ds`` (rows with id, image, target), saving to ``path``.

    Starts at the first unreviewed row unless ``start`` is given. Returns the widget (a VBox); its
    ``.controls`` dict exposes the buttons and text box (handy for scripted use and tests).
    """
    import ipywidgets as w

    path = Path(path)
    ids = ds["id"]
    decisions = load_decisions(path)
    pos = {"i": start if start is not None else next((k for k, i in enumerate(ids) if i not in decisions), 0)}
    image = w.Image(format="png", layout=w.Layout(max_width="520px"))
    text = w.Textarea(layout=w.Layout(width="520px", height="260px"))
    status = w.HTML()
    progress = w.IntProgress(min=0, max=len(ids))
    b_prev, b_next = w.Button(description="◀ previous"), w.Button(description="next ▶")
    b_accept = w.Button(description="accept", button_style="success")
    b_reject = w.Button(description="reject", button_style="danger")
    b_save = w.Button(description="save edit", button_style="info")

    def show():
        i = pos["i"]
        row = ds[i]
        buf = io.BytesIO()
        row["image"].convert("RGB").save(buf, format="PNG")
        image.value = buf.getvalue()
        d = decisions.get(row["id"])
        text.value = d["text"] if d and d["decision"] == "edit" else row["target"]
        progress.value = len(decisions)
        state = d["decision"] if d else "not reviewed"
        status.value = (f"<b>{i + 1}/{len(ids)}</b> <code>{row['id']}</code> ({row.get('source', '')}) - "
                        f"{state}; {len(decisions)} reviewed")

    def move(step):
        pos["i"] = max(0, min(len(ids) - 1, pos["i"] + step))
        show()

    def decide(kind):
        sample_id = ids[pos["i"]]
        decisions[sample_id] = record_decision(path, sample_id, kind, text.value if kind == "edit" else None)
        move(1)

    b_prev.on_click(lambda _: move(-1))
    b_next.on_click(lambda _: move(1))
    b_accept.on_click(lambda _: decide("accept"))
    b_reject.on_click(lambda _: decide("reject"))
    b_save.on_click(lambda _: decide("edit"))
    show()
    box = w.VBox([status, progress, w.HBox([image, text]), w.HBox([b_prev, b_accept, b_reject, b_save, b_next])])
    box.controls = {"prev": b_prev, "next": b_next, "accept": b_accept, "reject": b_reject, "save": b_save,
                    "text": text, "status": status, "position": pos}
    return box
