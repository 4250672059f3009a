"""Optional LLM paraphrase of stage-3 VQA question wording, kept only where it provably asks the same thing.

``paraphrase_items(items, diagrams, params.describe, cache_path=...)`` sends each question (never its
options, answer or instruction) to a rewriting backend (``openai`` or ``hf``, see :mod:`dicrepro.text.llm`) and
keeps the reply only if :func:`check_paraphrase` finds no problem:

- **missing / extra / order**: the labels of the question (its quoted strings: every element a
  generated question names is quoted) are all still there verbatim, each as often as before, in the
  same order, and no other element of the diagram is named. The answer key was computed from exactly
  these labels in these roles, so keeping them in order (with options and answer untouched) keeps it.
- **invented**: nothing the diagram does not hold is named: the faithfulness gate's lexicon check
  (:func:`dicrepro.text.gate.check_faithful`) and any quoted string that is not a string of the diagram.
- **numbers / negation**: the numbers outside labels ("bits 0-15", "lasts 4 days") and the count of
  negations ("not", "不") are unchanged: either would flip a true/false or counting answer.
- **language**: a ``zh`` question stays Chinese, an ``en`` one English (the gate's language check).
- **format**: the reply is one non-empty line.

A rejected paraphrase (or a failed request) leaves the item exactly as it was. With the ``verbalizer``
backend (the default) nothing is sent and the items come back unchanged. Replies are cached in
``cache_path`` (:class:`dicrepro.text.llm.ReplyCache`), so a rerun sends nothing already answered.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from dicrepro.progress import tqdm

from dicrepro.diagrams.graph import Diagram
from dicrepro.text.describe import diagram_labels
from dicrepro.text.gate import (
    _contains,
    _pattern,
    _standalone,
    candidate_labels,
    check_faithful,
    diagram_strings,
    normalize,
)
from dicrepro.text.llm import BACKENDS, ChatRequest, LLMError, ReplyCache
from dicrepro.text.rewrite_prompt import LANGUAGE_NAMES, Prompt, load_prompt, retry_messages

log = logging.getLogger(__name__)

PROMPT = "paraphrase_question_v1"
# Generated questions quote every label: "x" in English, “x” in Chinese (dicrepro.data.vqa_kinds.Ctx.q).
_QUOTED = re.compile(r'"([^"\n]+)"|“([^”\n]+)”')
_NEGATION_EN = re.compile(r"(?<![a-z])(?:not|no|never|none|neither|nor|without|cannot)(?![a-z])|(?<=n) t(?![a-z])")
_NEGATION_ZH = re.compile(r"[不没无非否未勿莫别]")
_ZH_NOT_NEGATION = re.compile(r"是否|能否|可否|与否")  # "whether": question words, not negations
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def question_labels(question: str) -> list[str]:
    """The quoted strings of a question, in order: the diagram elements it names."""
    return [a or b for a, b in _QUOTED.findall(question)]


@dataclass
class _Job:
    item: dict
    diagram: Diagram
    messages: list[dict]
    result: str | None = None
    reply: str | None = None
    problems: dict[str, str] = field(default_factory=dict)
    tries: int = 0


@functools.lru_cache(maxsize=4096)
def _specific(labels: tuple[str, ...]) -> tuple[str, ...]:
    # candidate_labels re-reads the phrasing tables on every call: once per diagram is enough.
    return tuple(candidate_labels(labels))


def _mentions(norm_text: str, norm_labels: list[str], strings: list[str]) -> list[str]:
    """The labels as they occur in the text, in order; a label inside a longer string of the diagram
    ("AMF" inside "Upgrade AMF") is not a mention of it (the gate's rule)."""
    found = []
    for nl in dict.fromkeys(norm_labels):
        longer = [s for s in strings if len(s) > len(nl) and _contains(s, nl)]
        found += [(pos, nl) for pos in _standalone(nl, norm_text, longer)]
    return [nl for _, nl in sorted(found)]


def _prose(norm_text: str, strings: list[str]) -> str:
    """The text without the given names (labels, title): what is left is the question's own wording."""
    for s in sorted(strings, key=len, reverse=True):
        if s in norm_text:
            norm_text = _pattern(s).sub(" ", norm_text)
    return norm_text


def _negations(prose: str, zh: bool) -> int:
    if zh:
        return len(_NEGATION_ZH.findall(_ZH_NOT_NEGATION.sub(" ", prose)))
    return len(_NEGATION_EN.findall(prose))


def check_paraphrase(diagram: Diagram, question: str, reworded: str, *, lexicon=None) -> dict[str, str]:
    """Problems of ``reworded`` as a replacement for ``question`` about ``diagram``, by kind (missing,
    extra, order, invented, numbers, negation, language, format); empty when it may replace it.

    ``lexicon``: labels the gate looks for as inventions (default: the knowledge base's, see
    :func:`dicrepro.text.gate.default_lexicon`).
    """
    nq, nr = normalize(question), normalize(reworded)
    if not nr:
        return {"format": "the reworded question is empty"}
    if "\n" in reworded.strip():
        return {"format": "the reply must be the reworded question alone, on a single line"}
    raw = question_labels(question)
    labels = [normalize(x) for x in raw if normalize(x)]
    by_norm = {normalize(x): x for x in raw}
    strings = [s for s in dict.fromkeys([normalize(s) for s in diagram_strings(diagram)] + labels) if s]
    problems: dict[str, str] = {}

    want, got = _mentions(nq, labels, strings), _mentions(nr, labels, strings)
    if want != got:
        cw, cg = Counter(want), Counter(got)
        lost = [by_norm[x] for x in cw if cg[x] < cw[x]]
        more = [by_norm[x] for x in cg if cg[x] > cw[x]]
        if lost:
            problems["missing"] = "labels missing (each must be kept verbatim): " + "; ".join(lost)
        if more:
            problems["extra"] = "labels named more often than in the question: " + "; ".join(more)
        if not lost and not more:
            problems["order"] = ("labels out of order: keep " + " -> ".join(f'"{by_norm[x]}"' for x in want)
                                 + ", not " + " -> ".join(f'"{by_norm[x]}"' for x in got))
    # Another element of the same diagram named: the question would be about something else.
    others = [lab for lab in _specific(tuple(diagram_labels(diagram))) if normalize(lab) not in labels]
    named = [lab for lab in others if _mentions(nr, [normalize(lab)], strings) and
             not _mentions(nq, [normalize(lab)], strings)]
    if named:
        problems["extra"] = "; ".join(filter(None, [problems.get("extra"), "other elements of the diagram named: "
                                                    + "; ".join(named)]))

    gate_new = check_faithful(diagram, reworded, lexicon=lexicon, require_all=False)
    gate_old = check_faithful(diagram, question, lexicon=lexicon, require_all=False)
    invented = [x for x in gate_new.invented if x not in gate_old.invented]
    invented += [x for x in question_labels(reworded) if normalize(x) not in strings]
    if invented:
        problems["invented"] = "labels invented (not in the diagram): " + "; ".join(dict.fromkeys(invented))
    lang = [r for r in gate_new.reasons if "written in" in r]
    if lang and not any("written in" in r for r in gate_old.reasons):
        problems["language"] = lang[0]

    # Numbers and negations are counted in the wording around the labels; attribute values (days, bits)
    # are not stripped, since they are exactly the numbers a question asks about.
    names = [normalize(s) for s in [*diagram_labels(diagram), diagram.title, diagram.topic, diagram.area]]
    names = [s for s in dict.fromkeys(names + labels) if s]
    pq, pr = _prose(nq, names), _prose(nr, names)
    if _NUMBER.findall(pq) != _NUMBER.findall(pr):
        problems["numbers"] = (f"numbers changed: the question has {_NUMBER.findall(pq) or 'none'}, "
                               f"the rewording {_NUMBER.findall(pr) or 'none'}")
    zh = diagram.language.startswith("zh")
    if _negations(pq, zh) != _negations(pr, zh):
        problems["negation"] = "negation changed: keep every negation of the question and add none"
    return problems


def parse_question(reply: str) -> str:
    """The reworded question from a reply: reasoning blocks, code fences and a leading "Question:" removed."""
    t = re.sub(r"<think>.*?</think>", "", reply or "", flags=re.DOTALL).strip()
    t = re.sub(r"^```\w*\s*|\s*```$", "", t).strip()
    return re.sub(r"^(?:(?:reworded|rephrased|paraphrased)\s+)?question\s*[:：]\s*|^改写后的问题[:：]\s*", "", t,
                  flags=re.IGNORECASE).strip()


def build_question_messages(d: Diagram, question: str, prompt: Prompt) -> list[dict]:
    """The chat asking to reword one question (the options, answer and instruction are never sent)."""
    from string import Template

    lang = "zh" if d.language.startswith("zh") else "en"
    labels = list(dict.fromkeys(question_labels(question)))
    rule = ("Keep every quoted label exactly as written, with its quotes, in the same order: "
            + " -> ".join(f"“{x}”" if lang == "zh" else f'"{x}"' for x in labels)
            if labels else "The question names no element: do not name any.")
    user = Template(prompt.user).substitute(diagram_type=d.diagram_type, language_name=LANGUAGE_NAMES[lang],
                                            question=question, label_rule=rule)
    return [{"role": "system", "content": prompt.system}, {"role": "user", "content": user}]


def _jobs(items: list[dict], diagrams: dict[str, Diagram], prompt: Prompt) -> list[_Job]:
    jobs = []
    for i, it in enumerate(items):
        missing = [k for k in ("id", "diagram_id", "question", "prompt") if k not in it]
        if missing:
            raise ValueError(f"VQA item #{i} (id {it.get('id')!r}): no field(s) {missing}")
        if it["diagram_id"] not in diagrams:
            raise ValueError(f"VQA item {it['id']!r}: diagram_id {it['diagram_id']!r} is not in the diagrams given")
        if not it["prompt"].startswith(it["question"]):
            # The new prompt is the new question + the untouched rest (options, instruction).
            raise ValueError(f"VQA item {it['id']!r}: field 'prompt' does not start with its 'question'")
        d = diagrams[it["diagram_id"]]
        jobs.append(_Job(it, d, build_question_messages(d, it["question"], prompt)))
    return jobs


def _run(jobs: list[_Job], complete, prompt: Prompt, *, retries: int, lexicon, progress: bool) -> int:
    """Send, check, and (``retries`` times) resend rejected ones with the reasons; returns rows retried."""
    pending, retried = jobs, 0
    for attempt in range(retries + 1):
        if not pending:
            break
        retried += len(pending) if attempt else 0
        replies = complete([ChatRequest(j.item["id"], j.messages, draft=j.item["question"]) for j in pending])
        again = []
        for j, reply in tqdm(list(zip(pending, replies)), desc="check paraphrases", unit="question",
                             disable=not progress):
            j.tries += 1
            j.reply = None if isinstance(reply, LLMError) else reply
            if isinstance(reply, LLMError):
                j.problems = {"error": str(reply)}
            else:
                new = parse_question(reply)
                j.problems = check_paraphrase(j.diagram, j.item["question"], new, lexicon=lexicon)
                if not j.problems:
                    j.result = new
                    continue
            log.debug("%s rejected (try %d): %s", j.item["id"], j.tries, "; ".join(j.problems.values()))
            if attempt < retries:
                if j.reply is not None:  # a failed request is simply sent again
                    j.messages = retry_messages(j.messages, j.reply, list(j.problems.values()), prompt)
                again.append(j)
        pending = again
    return retried


def paraphrase_items(items: list[dict], diagrams: dict[str, Diagram], describe_params, *,
                     backend: str | None = None, cache_path: str | Path, progress: bool = True,
                     prompt: str = PROMPT, retries: int = 0, lexicon=None,
                     backend_options: dict | None = None) -> tuple[list[dict], dict]:
    """Reword the ``question`` of each VQA item (from :func:`dicrepro.data.vqa.make_vqa`) through a backend.

    ``diagrams`` maps each item's ``diagram_id`` to its :class:`Diagram`; ``describe_params`` is a
    :class:`dicrepro.params.DescribeParams` (or a ``Params``), ``backend`` overrides its ``backend``.
    A kept paraphrase replaces ``question`` and the question part of ``prompt``; options, answer_key,
    answer, target and the instruction are never touched. ``retries``: a rejected reply is sent back this
    often with the check's reasons. Returns (new items, stats): accepted (reworded and kept), unchanged
    (the reply was the question itself), rejected (with ``rejections`` by reason and ``rejected_items``),
    errors (no reply), and the backend's requests / cache_hits; ``accepted + unchanged + rejected + errors
    == items``.
    """
    t0 = time.time()
    dp = getattr(describe_params, "describe", describe_params)
    name = backend or dp.backend
    if name not in BACKENDS:
        raise ValueError(f"unknown describe backend {name!r}; expected one of {sorted(BACKENDS)}")
    items = list(items)
    tmpl = load_prompt(prompt)
    stats = {"backend": name, "prompt_version": tmpl.version, "paraphrased": name != "verbalizer",
             "model": dp.model if name == "openai" else str(dp.hf_path) if name == "hf" else None,
             "items": len(items), "accepted": 0, "unchanged": 0, "rejected": 0, "errors": 0, "retried": 0,
             "rejections": {}, "rejected_items": [], "requests": 0, "cache_hits": 0, "http_retries": 0,
             "cache": None}
    if name == "verbalizer":
        # The offline verbalizer has no other wording to offer: the generated questions stay as they are.
        log.info("paraphrase: backend 'verbalizer' rewords nothing; %d questions kept as generated", len(items))
        return [dict(it) for it in items], {**stats, "unchanged": len(items), "seconds": round(time.time() - t0, 2)}
    jobs = _jobs(items, diagrams, tmpl)
    cache = ReplyCache(cache_path)
    http = Counter()
    if name == "hf":  # a question is short: do not let a rambling model run to the description budget
        backend_options = {"max_new_tokens": 256, **(backend_options or {})}
    complete = BACKENDS[name](dp, cache=cache, prompt_version=tmpl.version, stats=http, progress=progress,
                              **(backend_options or {}))
    stats["retried"] = _run(jobs, complete, tmpl, retries=retries, lexicon=lexicon, progress=progress)

    out, reasons = [], Counter()
    for j in jobs:
        it = j.item
        if j.result is None:
            key = "errors" if "error" in j.problems else "rejected"
            stats[key] += 1
            if key == "rejected":
                reasons.update(j.problems.keys())
                stats["rejected_items"].append({"id": it["id"], "problems": j.problems, "reply": j.reply})
            out.append(dict(it))
        elif j.result == it["question"]:
            stats["unchanged"] += 1
            out.append(dict(it))
        else:
            stats["accepted"] += 1
            out.append({**it, "question": j.result, "prompt": j.result + it["prompt"][len(it["question"]):]})
    stats.update(rejections=dict(sorted(reasons.items())), requests=http["requests"],
                 cache_hits=http["cache_hits"], http_retries=http["http_retries"], cache=str(cache_path),
                 prompt_tokens=http["prompt_tokens"], completion_tokens=http["completion_tokens"],
                 seconds=round(time.time() - t0, 2))
    log.info("paraphrase with %s: %s", name, format_paraphrase_stats(stats))
    return out, stats


def format_paraphrase_stats(stats: dict) -> str:
    """One line for people: accepted / unchanged / rejected (by reason) / errors, requests and cache hits."""
    why = ", ".join(f"{k} {v}" for k, v in stats["rejections"].items())
    return (f"{stats['items']} questions: {stats['accepted']} reworded, {stats['unchanged']} unchanged, "
            f"{stats['rejected']} rejected{f' ({why})' if why else ''}, {stats['errors']} errors; "
            f"{stats['requests']} requests, {stats['cache_hits']} cache hits")
