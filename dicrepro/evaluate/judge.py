"""LLM-as-judge (optional, off by default): an OpenAI-compatible model grades each caption against the
diagram's own Mermaid source, statement by statement, with a written rubric.

The judge sees the Mermaid source (the ground truth, not the image) and the caption, and answers JSON::

    {"statements": [{"text": "...", "verdict": "correct" | "partial" | "wrong"}, ...]}

following :data:`RUBRIC`. A caption's ``judge_score`` is ``(correct + 0.5 * partial) / statements``
(0 for a caption with no statement). Replies go through :func:`dicrepro.text.llm.openai_backend`:
greedy, retried on 5xx/429, and cached on disk by a hash of (endpoint, model, rubric version, messages),
i.e. of the content judged, so a rerun sends nothing already judged and a changed caption is judged
anew. A reply that is not the JSON asked for is a row with ``error`` set, counted, never a crash.

Graph-grounded faithfulness (:mod:`dicrepro.evaluate.faithfulness`) needs no model and is the primary
check; the judge is a second opinion for what string matching cannot see (paraphrase, wrong reasoning).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path

import pandas as pd

from dicrepro.text.llm import ChatRequest, LLMError, ReplyCache, openai_backend

log = logging.getLogger(__name__)

RUBRIC_VERSION = "judge_v1"
VERDICTS = ("correct", "partial", "wrong")
RUBRIC = """You grade a caption of a technical diagram against the diagram's Mermaid source, which is the
ground truth. Split the caption into its factual statements (one per claim about the diagram: a
component, a message or transition, an order of steps, a condition, a grouping; skip pure filler such as
"this diagram is useful"). Grade each statement:
- "correct": the Mermaid source states it (names may differ in case, spacing or a plural);
- "partial": part of it is right and part is missing or vague (right components, wrong label; right
  message, unclear direction);
- "wrong": the source contradicts it, or it names something the source does not contain.
Answer with JSON only, no prose: {"statements": [{"text": "<statement>", "verdict": "correct|partial|wrong"}]}"""


def judge_messages(mermaid: str, caption: str) -> list[dict]:
    """The chat sent for one caption: the rubric, then the diagram's source and the caption."""
    return [{"role": "system", "content": RUBRIC},
            {"role": "user", "content": f"Mermaid source:\n```mermaid\n{mermaid.strip()}\n```\n\nCaption:\n{caption.strip()}"}]


def parse_verdicts(reply: str) -> list[dict]:
    """The statements of a judge's reply; ValueError says what is wrong with a reply that does not follow
    the rubric (a JSON object may come inside a ```json fence)."""
    m = re.search(r"\{.*\}", reply, re.S)
    if not m:
        raise ValueError("no JSON object in the reply")
    try:
        data = json.loads(m.group())
    except json.JSONDecodeError as e:
        raise ValueError(f"reply is not valid JSON ({e.msg})") from None
    items = data.get("statements") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ValueError('reply has no "statements" list')
    out = []
    for i, s in enumerate(items):
        verdict = str(s.get("verdict", "")).strip().lower() if isinstance(s, dict) else ""
        if verdict not in VERDICTS:
            raise ValueError(f"statement {i + 1}: verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
        out.append({"text": str(s.get("text", "")), "verdict": verdict})
    return out


def score_verdicts(statements: list[dict]) -> float:
    """``(correct + 0.5 * partial) / statements``; 0 for none."""
    if not statements:
        return 0.0
    c = Counter(s["verdict"] for s in statements)
    return (c["correct"] + 0.5 * c["partial"]) / len(statements)


def judge_captions(items: list[dict], params, cache_path: str | Path | None = None,
                   progress: bool = True) -> list[dict]:
    """Grade ``items`` (dicts with ``id``, ``mermaid``, ``caption``) with the judge configured by
    ``params`` (:class:`dicrepro.params.JudgeParams`: base_url, model, api_key_env, concurrency,
    timeout_s, max_retries). Returns one row per item, in order: ``id``, ``statements``, ``correct``,
    ``partial``, ``wrong``, ``judge_score`` and ``error`` ("" when the reply followed the rubric).
    An empty caption is scored 0 without asking. A misconfigured endpoint (401, unreachable) raises."""
    cache = ReplyCache(cache_path) if cache_path else None
    stats: Counter = Counter()
    complete = openai_backend(params, cache=cache, prompt_version=RUBRIC_VERSION, stats=stats, progress=progress)
    asked = [it for it in items if str(it.get("caption") or "").strip()]
    replies = dict(zip((it["id"] for it in asked),
                       complete([ChatRequest(str(it["id"]), judge_messages(str(it["mermaid"]), str(it["caption"])))
                                 for it in asked]))) if asked else {}
    rows = []
    for it in items:
        row = {"id": it["id"], "statements": 0, "correct": 0, "partial": 0, "wrong": 0, "judge_score": 0.0, "error": ""}
        reply = replies.get(it["id"])
        if reply is None:
            row["error"] = "empty caption"
        elif isinstance(reply, LLMError):
            row["error"] = str(reply)
        else:
            try:
                statements = parse_verdicts(reply)
            except ValueError as e:
                row["error"] = f"judge reply does not follow the rubric: {e}"
            else:
                c = Counter(s["verdict"] for s in statements)
                row.update(statements=len(statements), correct=c["correct"], partial=c["partial"], wrong=c["wrong"],
                           judge_score=score_verdicts(statements))
        rows.append(row)
    bad = sum(1 for r in rows if r["error"])
    if bad:
        log.warning("judge: %d of %d captions without a usable verdict (see the error column)", bad, len(rows))
    log.info("judge: %d captions, %d replies from cache, %d prompt + %d completion tokens", len(rows),
             stats["cache_hits"], stats["prompt_tokens"], stats["completion_tokens"])
    return rows


def judge_table(meta: list[dict], mermaid: list[str], preds: dict[str, dict[str, str]], params,
                cache_path: str | Path | None = None) -> pd.DataFrame:
    """Every model's captions judged: mean ``judge_score`` per model, overall and per diagram type, with
    the number of captions and of unusable verdicts. ``meta`` rows carry ``id`` and ``diagram_type``;
    ``mermaid`` is each caption's diagram source (rows without one are not judged)."""
    rows = []
    for model, texts in preds.items():
        items = [{"id": m["id"], "mermaid": src, "caption": texts.get(m["id"], "")}
                 for m, src in zip(meta, mermaid) if str(src or "").strip()]
        graded = {r["id"]: r for r in judge_captions(items, params, cache_path, progress=False)}
        by_type: dict[str, list[dict]] = {}
        for m in meta:
            if m["id"] in graded:
                by_type.setdefault(m.get("diagram_type", "all"), []).append(graded[m["id"]])
        groups = [("overall", "all", list(graded.values()))] + [("diagram_type", t, g) for t, g in sorted(by_type.items())]
        for group_by, group, g in groups:
            ok = [r for r in g if not r["error"]]
            rows.append({"model": model, "group_by": group_by, "group": group, "n": len(g),
                         "judge_score": sum(r["judge_score"] for r in ok) / len(ok) if ok else float("nan"),
                         "unjudged": len(g) - len(ok)})
    return pd.DataFrame(rows)
