"""Files in, JSON out for ``dicrepro faithfulness`` and ``dicrepro structure`` (single pair or JSONL batch).

Single pair: bad input (an unreadable or non-UTF-8 file, an empty caption, a Mermaid reference that does
not parse, a caption in another language than the diagram) raises ValueError naming the file, which the
CLI turns into one line and exit status 2. Batch (JSON lines): a bad row is recorded with its line number
and reason, the batch goes on, and the summary counts the bad rows.

Faithfulness rows: ``{"id", "caption", "mermaid" | "graph"}`` (``graph``: a Diagram's JSON, as in the
datasets' ``graph`` column, needs no browser). Structure rows: ``{"id", "reference", "prediction"}``
(Mermaid sources).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dicrepro.diagrams.graph import Diagram
from dicrepro.diagrams.parse import SUPPORTED_TYPES, ParseResult, parse_mermaid
from dicrepro.diagrams.render import MermaidRenderer
from dicrepro.evaluate import faithfulness as F
from dicrepro.evaluate import structure as S
from dicrepro.text.han import HAN_CHAR

MAX_BYTES = 8 * 1024 * 1024  # one caption, diagram or batch file; larger is not a caption


def read_text(path: str | Path, what: str) -> str:
    """A UTF-8 text file, or ValueError naming it (missing, a folder, too large, not UTF-8)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: {what} file not found" if not p.exists() else f"{p}: {what} is not a regular file")
    if p.stat().st_size > MAX_BYTES:
        raise ValueError(f"{p}: {what} file is larger than {MAX_BYTES // 2**20} MiB")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{p}: {what} is not UTF-8 text (byte {e.start})") from None


def infer_language(d: Diagram) -> str:
    """'zh' when a third or more of the diagram's label characters are Chinese, else the diagram's own."""
    text = "".join(F.graph_labels(d)).replace(" ", "")
    if text and len(HAN_CHAR.findall(text)) >= 0.3 * len(text):
        return "zh"
    return d.language


def _check_caption(d: Diagram, caption: str, where: str) -> None:
    if not caption.strip():
        raise ValueError(f"{where}: the caption is empty")
    if not F.language_ok(d, caption):
        want = "Chinese (zh)" if d.language == "zh" else "English (en)"
        raise ValueError(f"{where}: the caption is not in the diagram's language, {want}")


def _parse(sources: list[str], renderer: MermaidRenderer | None) -> list[ParseResult]:
    if not sources:
        return []
    return parse_mermaid(sources, renderer=renderer, **({} if renderer else {"workers": 1}))


def _diagram(res: ParseResult, where: str) -> Diagram:
    if res.unsupported:
        raise ValueError(f"{where}: {res.error} (only {', '.join(SUPPORTED_TYPES)} are mapped to a graph)")
    if not res.ok:
        raise ValueError(f"{where} does not parse as Mermaid: {res.error}")
    d = res.diagram
    d.language = infer_language(d)
    return d


def public(scores: dict[str, Any]) -> dict[str, Any]:
    """The faithfulness fields of the CLI contract, in order (then the extras)."""
    keys = ("label_recall", "hallucination_rate", "hallucinated", "relation_recall", "order_tau", "faithfulness",
            "missing", "labels", "relations")
    return {k: scores[k] for k in keys}


def faithfulness_files(mermaid: str | Path, caption: str | Path, renderer: MermaidRenderer | None = None) -> dict:
    """``dicrepro faithfulness --mermaid FILE --caption FILE``: scores, or ValueError naming the bad file."""
    src, text = read_text(mermaid, "Mermaid"), read_text(caption, "caption")
    if not text.strip():
        raise ValueError(f"{caption}: the caption is empty")
    d = _diagram(_parse([src], renderer)[0], str(mermaid))
    _check_caption(d, text, str(caption))
    return public(F.faithfulness(d, text))


def _jsonl(path: str | Path) -> list[tuple[int, Any]]:
    """(line number, parsed value or the error text) for each non-blank line."""
    out = []
    for i, line in enumerate(read_text(path, "JSONL").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((i, json.loads(line)))
        except json.JSONDecodeError as e:
            out.append((i, ValueError(f"not JSON ({e.msg})")))
    return out


def _field(row: Any, name: str) -> str:
    if not isinstance(row, dict):
        raise ValueError("not a JSON object")
    v = row.get(name)
    if not isinstance(v, str):
        raise ValueError(f"field {name!r} missing or not a string")
    return v


def faithfulness_batch(path: str | Path, renderer: MermaidRenderer | None = None) -> dict[str, Any]:
    """Score every row of a JSONL file; bad rows are listed with line and reason, the rest scored."""
    rows, bad = _jsonl(path), []
    todo: list[tuple[int, str, str, Diagram | None, str | None]] = []  # line, id, caption, graph, mermaid
    for line, row in rows:
        try:
            if isinstance(row, Exception):
                raise row
            caption = _field(row, "caption")
            if isinstance(row.get("graph"), (str, dict)):
                g = row["graph"]
                d = Diagram.from_json(g) if isinstance(g, str) else Diagram.from_dict(g)
                todo.append((line, str(row.get("id", line)), caption, d, None))
            else:
                todo.append((line, str(row.get("id", line)), caption, None, _field(row, "mermaid")))
        except (ValueError, KeyError, TypeError) as e:
            bad.append({"line": line, "error": f"{path}:{line}: {e}"})
    srcs = [m for *_, m in todo if m is not None]
    parsed = iter(_parse(srcs, renderer))
    scored = []
    for line, rid, caption, d, src in todo:
        try:
            if d is None:
                d = _diagram(next(parsed), f"{path}:{line}: mermaid")
            _check_caption(d, caption, f"{path}:{line}")
            scored.append({"id": rid, "line": line, "diagram_type": d.diagram_type, "language": d.language,
                           **public(F.faithfulness(d, caption))})
        except ValueError as e:
            bad.append({"line": line, "error": str(e) if str(e).startswith(str(path)) else f"{path}:{line}: {e}"})
    bad.sort(key=lambda b: b["line"])
    return {"summary": {"rows": len(rows), "scored": len(scored), "bad": len(bad), **F.aggregate(scored)},
            "rows": scored, "bad_rows": bad}


def structure_files(reference: str | Path, prediction: str | Path, renderer: MermaidRenderer | None = None,
                    threshold: float = S.DEFAULT_THRESHOLD) -> dict[str, Any]:
    """``dicrepro structure --reference REF --prediction PRED``: F1s; a reference that does not parse (or
    an unreadable file) is a ValueError naming it, a prediction that does not parse scores zeros."""
    ref, pred = read_text(reference, "reference Mermaid"), read_text(prediction, "prediction Mermaid")
    r, p = _parse([ref, pred], renderer)
    if r.unsupported:
        raise ValueError(f"{reference}: {r.error} (no graph to compare against)")
    return S.score_parsed(r, p, threshold, reference_name=str(reference))


def structure_batch(path: str | Path, renderer: MermaidRenderer | None = None,
                    threshold: float = S.DEFAULT_THRESHOLD) -> dict[str, Any]:
    """Structure F1 of every ``{"id", "reference", "prediction"}`` row; bad rows listed, the rest scored."""
    rows, bad, todo = _jsonl(path), [], []
    for line, row in rows:
        try:
            if isinstance(row, Exception):
                raise row
            todo.append((line, str(row.get("id", line)), _field(row, "reference"), _field(row, "prediction")))
        except ValueError as e:
            bad.append({"line": line, "error": f"{path}:{line}: {e}"})
    pairs = [(ref, pred) for _, _, ref, pred in todo]
    results = S.structure_from_mermaid(pairs, threshold=threshold, renderer=renderer,
                                       **({} if renderer else {"workers": 1})) if pairs else []
    scored = []
    for (line, rid, _, _), res in zip(todo, results):
        if "error" in res and "parsed" not in res:
            bad.append({"line": line, "error": f"{path}:{line}: {res['error']}"})
        else:
            scored.append({"id": rid, "line": line, **res})
    bad.sort(key=lambda b: b["line"])
    return {"summary": {"rows": len(rows), "bad": len(bad), **S.aggregate(scored)}, "rows": scored,
            "bad_rows": bad}


__all__ = ["faithfulness_files", "faithfulness_batch", "structure_files", "structure_batch", "read_text",
           "infer_language", "public"]
