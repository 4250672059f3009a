"""Rewrite a synthesized dataset's descriptions with a text backend, through the faithfulness gate.

For every row: the offline verbalizer drafts the four views from the row's ``graph``; the backend
(``verbalizer``, ``openai`` or ``hf``, see :mod:`dicrepro.text.llm`) rewrites them; the gate checks each
reply against the graph. A rejected reply is retried with the gate's reasons fed back (``gate_retries``
times), then replaced by the verbalizer's draft. Per run we count:

- ``accepted``: rows whose backend text passed the gate (``accepted_first_try`` of them at once);
- ``retried``: rows whose first text was rejected (or failed) and that were asked again;
- ``replaced``: rows that ended with the verbalizer's text.

``accepted + replaced == rows``. The counts are returned, logged and written to
``<DATASET>_describe.json`` beside the dataset; LLM replies are cached in ``<DATASET>_llm_cache.jsonl``
so a rerun (or a resumed crash) sends nothing already answered. The dataset is rewritten atomically.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from dicrepro.atomic import save_dataset_atomic, write_json_atomic
from dicrepro.diagrams.graph import Diagram
from dicrepro.params import load_params
from dicrepro.text.describe import describe
from dicrepro.text.gate import check_faithful, default_lexicon, detail_labels
from dicrepro.text.llm import BACKENDS, ChatRequest, LLMError, ReplyCache
from dicrepro.text.rewrite_prompt import build_messages, load_prompt, parse_reply, retry_messages

log = logging.getLogger(__name__)

COLUMNS = ("description", "view_global", "view_partial", "view_detail", "target")


@dataclass
class Job:
    """One row on its way through the backend and the gate."""

    id: str
    diagram: Diagram
    draft: dict[str, str]
    messages: list[dict]
    result: dict[str, str] | None = None
    reasons: list[str] = field(default_factory=list)
    tries: int = 0


def draft_views(diagram: Diagram, row: dict) -> dict[str, str]:
    """The verbalizer's views for a row, from its own seed (deterministic, whatever the backend)."""
    rng = random.Random(f"{row.get('seed', 0)}:{row['id']}:describe")
    style = "expert" if row.get("source") == "standin" else "structural"
    return describe(diagram, rng, style=style)


def gate_views(diagram: Diagram, views: dict[str, str], lexicon=None) -> tuple[list[str], Counter]:
    """Gate the four views: description and detail carry every label (in order); global and partial
    invent nothing. Returns (reasons, kinds): kinds holds 1 for each problem found (missing, invented,
    order, language) in any view, so the run's counts are numbers of rejected replies per problem."""
    checks = {
        "description": check_faithful(diagram, views["description"], lexicon=lexicon),
        "detail": check_faithful(diagram, views["detail"], lexicon=lexicon, required=detail_labels(diagram)),
        "global": check_faithful(diagram, views["global"], lexicon=lexicon, require_all=False),
        "partial": check_faithful(diagram, views["partial"], lexicon=lexicon, require_all=False),
    }
    reasons, kinds = [], Counter()
    for view, g in checks.items():
        reasons += [f"{view}: {r}" for r in g.reasons]
        kinds |= Counter({"missing": bool(g.missing), "invented": bool(g.invented), "order": not g.order_ok,
                          "language": any("written in" in r for r in g.reasons)})
    return reasons, +kinds


def rewrite_jobs(jobs: list[Job], complete, *, prompt, gate_retries: int = 1, lexicon=None) -> Counter:
    """Run ``jobs`` through ``complete`` and the gate, retrying with feedback; fill each ``job.result``."""
    counts: Counter = Counter()
    pending = jobs
    for attempt in range(gate_retries + 1):
        if not pending:
            break
        if attempt:
            counts["retried"] += sum(1 for j in pending if j.tries == 1)
        replies = complete([ChatRequest(j.id, j.messages, draft=_as_reply(j.draft)) for j in pending])
        again = []
        for job, reply in zip(pending, replies):
            job.tries += 1
            text = None
            if isinstance(reply, LLMError):
                job.reasons, kinds = [f"no reply: {reply}"], Counter(error=1)
            else:
                text = reply
                try:
                    views = parse_reply(reply)
                except ValueError as e:
                    job.reasons, kinds = [str(e)], Counter(format=1)
                else:
                    job.reasons, kinds = gate_views(job.diagram, views, lexicon)
                    if not job.reasons:
                        job.result = views
                        counts["accepted"] += 1
                        counts["accepted_first_try"] += attempt == 0
                        continue
            counts.update({f"rejected_{k}": v for k, v in kinds.items()})
            log.debug("%s rejected (try %d): %s", job.id, job.tries, "; ".join(job.reasons))
            if attempt < gate_retries:
                # A failed request is simply sent again; a rejected text gets the reasons back.
                if text is not None:
                    job.messages = retry_messages(job.messages, text, job.reasons, prompt)
                again.append(job)
        pending = again
    for job in jobs:
        if job.result is None:
            counts["replaced"] += 1
            log.info("%s: replaced by the verbalizer's text after %d tries: %s", job.id, job.tries,
                     "; ".join(job.reasons)[:300])
            job.result = job.draft
    return counts


def _as_reply(views: dict[str, str]) -> str:
    import json

    return json.dumps({k: views[k] for k in ("global", "partial", "detail", "description")}, ensure_ascii=False)


def _load(dataset_dir: Path):
    from datasets import DatasetDict, load_from_disk

    if not dataset_dir.exists():
        raise FileNotFoundError(f"no dataset at {dataset_dir}")
    data = load_from_disk(str(dataset_dir))
    return data if isinstance(data, DatasetDict) else DatasetDict({"train": data})


def _jobs_for(ds, split: str, dataset_dir: Path, prompt) -> list[Job]:
    missing = [c for c in ("id", "graph") if c not in ds.column_names]
    if missing:
        raise ValueError(f"{dataset_dir} [{split}]: no column(s) {missing}; is this a dicrepro dataset?")
    cols = [c for c in ("id", "graph", "seed", "source") if c in ds.column_names]
    jobs = []
    for i, row in enumerate(ds.select_columns(cols).to_list()):  # select first: images are not decoded
        try:
            diagram = Diagram.from_json(row["graph"])
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{dataset_dir} [{split}] row {i} (id {row.get('id')!r}): field 'graph' is not a "
                             f"Diagram JSON: {e}") from None
        draft = draft_views(diagram, row)
        jobs.append(Job(str(row["id"]), diagram, draft,
                        build_messages(diagram, draft, prompt, detail_labels(diagram))))
    return jobs


def rewrite_dataset(dataset_dir: str | Path, params, *, backend: str | None = None, progress: bool = True,
                    gate_retries: int | None = None, prompt: str | None = None, lexicon=None,
                    backend_options: dict | None = None) -> dict:
    """Add or overwrite the description columns of a saved dataset (``save_to_disk`` folder) in place.

    ``params``: a :class:`dicrepro.params.Params` or its ``describe`` part; ``backend`` overrides
    ``describe.backend``. Returns the run's counts (see the module docstring), also written to
    ``<DATASET>_describe.json``. Columns written: description, view_global, view_partial, view_detail
    and target (= description). ``backend_options`` go to the backend's factory (e.g. ``backoff_s`` for
    openai, ``max_new_tokens`` for hf); ``lexicon`` overrides the knowledge base's (see dicrepro.text.gate).
    """
    t0 = time.time()
    dataset_dir = Path(dataset_dir)
    dp = getattr(params, "describe", params)
    name = backend or dp.backend
    gate_retries = getattr(dp, "gate_retries", 1) if gate_retries is None else gate_retries
    prompt = getattr(dp, "prompt", "rewrite_v1") if prompt is None else prompt
    if name == "hf" and hasattr(dp, "hf_max_new_tokens"):
        backend_options = {"max_new_tokens": dp.hf_max_new_tokens, **(backend_options or {})}
    if name not in BACKENDS:
        raise ValueError(f"unknown describe backend {name!r}; expected one of {sorted(BACKENDS)}")
    tmpl = load_prompt(prompt)
    lexicon = tuple(default_lexicon() if lexicon is None else lexicon)
    data = _load(dataset_dir)
    cache_path = dataset_dir.with_name(f"{dataset_dir.name}_llm_cache.jsonl")
    cache = ReplyCache(cache_path) if name != "verbalizer" else None
    http = Counter()
    factory = BACKENDS[name]
    complete = factory(dp, cache=cache, prompt_version=tmpl.version, stats=http, progress=progress,
                       **(backend_options or {}))

    counts, per_split, out = Counter(), {}, {}
    for split, ds in data.items():
        jobs = _jobs_for(ds, split, dataset_dir, tmpl)
        c = rewrite_jobs(jobs, complete, prompt=tmpl, gate_retries=gate_retries, lexicon=lexicon)
        per_split[split] = {"rows": len(jobs), **_summary(c)}
        counts.update(c)
        counts["rows"] += len(jobs)
        out[split] = _with_views(ds, jobs, tmpl.version, name)

    _save(data.__class__(out), dataset_dir, progress)
    stats = {
        "dataset": str(dataset_dir), "backend": name, "prompt_version": tmpl.version,
        "model": (dp.model if name == "openai" else str(dp.hf_path) if name == "hf" else None),
        "rows": counts["rows"], **_summary(counts), "splits": per_split,
        "requests": http["requests"], "cache_hits": http["cache_hits"], "http_retries": http["http_retries"],
        "request_errors": http["errors"], "prompt_tokens": http["prompt_tokens"],
        "completion_tokens": http["completion_tokens"], "cache": str(cache_path) if cache else None,
        "seconds": round(time.time() - t0, 2),
    }
    write_json_atomic(dataset_dir.with_name(f"{dataset_dir.name}_describe.json"), stats)
    log.info("describe %s with %s: %s", dataset_dir, name, format_stats(stats))
    return stats


def _summary(c: Counter) -> dict:
    keys = ("accepted", "accepted_first_try", "retried", "replaced")
    out = {k: c[k] for k in keys}
    out["rejections"] = {k[len("rejected_"):]: v for k, v in sorted(c.items()) if k.startswith("rejected_")}
    return out


def _with_views(ds, jobs: list[Job], version: str, backend: str):
    import hashlib

    from datasets import Value

    cols = {"description": [j.result["description"] for j in jobs],
            "view_global": [j.result["global"] for j in jobs],
            "view_partial": [j.result["partial"] for j in jobs],
            "view_detail": [j.result["detail"] for j in jobs]}
    cols["target"] = cols["description"]
    order = list(ds.column_names) + [c for c in COLUMNS if c not in ds.column_names]
    ds = ds.remove_columns([c for c in COLUMNS if c in ds.column_names])
    # Content-derived fingerprints keep the saved folder byte-identical for identical results.
    h = hashlib.sha256(f"{ds._fingerprint}|{backend}|{version}".encode())
    for name in COLUMNS:
        h.update("\x00".join(cols[name]).encode("utf-8"))
        ds = ds.add_column(name, cols[name], feature=Value("string"), new_fingerprint=h.hexdigest()[:16])
    return ds.select_columns(order, new_fingerprint=h.hexdigest()[16:32])


def _save(data, dataset_dir: Path, progress: bool) -> None:
    import datasets as hf_datasets  # its progress-bar switches

    quiet = not progress and not hf_datasets.are_progress_bars_disabled()
    if quiet:
        hf_datasets.disable_progress_bars()
    try:
        save_dataset_atomic(data, dataset_dir)
    finally:
        if quiet:
            hf_datasets.enable_progress_bars()


def format_stats(stats: dict) -> str:
    """One line for people: rows, accepted / retried / replaced, requests and cache hits."""
    return (f"{stats['rows']} rows: {stats['accepted']} accepted ({stats['accepted_first_try']} at first try), "
            f"{stats['retried']} retried, {stats['replaced']} replaced by the verbalizer; "
            f"{stats['requests']} requests, {stats['cache_hits']} cache hits")


def describe_main(dataset_dir: str | Path, backend: str | None = None,
                  params_path: str | Path = "params/tiny.yaml", *, progress: bool = True, lexicon=None) -> dict:
    """``dicrepro describe DATASET_DIR [--backend B] [--params P]``: rewrite the dataset, return the stats.

    The CLI prints :func:`format_stats` of the result; the stats JSON lies beside the dataset.
    """

    return rewrite_dataset(dataset_dir, load_params(params_path, need_model=False), backend=backend, progress=progress,
                           lexicon=lexicon)
