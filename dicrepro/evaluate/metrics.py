"""Caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D) and objective-question accuracy.

Every caption metric is one function with the pycocoevalcap-style interface
``score_xxx(refs, preds, langs=None) -> (corpus: float, per_item: list[float])`` and is listed in
:data:`CAPTION_METRICS`; adding a metric is one function plus one registry line. The scores come from
the maintained libraries themselves, fed with our tokens:

- **Tokens.** Word level, lower-cased, punctuation dropped (as the COCO caption tokenizer does). Runs of
  Chinese characters are segmented with jieba; Latin runs are split into words that keep ICT terms whole
  (``802.1x``, ``ipv6``, ``pdu-session``). ``langs`` (per item, or one for all) chooses: ``"zh"`` uses jieba,
  ``"en"`` splits CJK characters one per token, ``None`` detects CJK characters per item.
- **BLEU-n**: ``nltk.translate.bleu_score.corpus_bleu``, cumulative BLEU-n (uniform weights over 1..n-grams,
  as COCO's Bleu_n), one reference per item, *corpus level* (n-gram counts pooled over the corpus, one
  brevity penalty), on words -- not character-level BLEU, not sacreBLEU's internal tokenisation.
  Smoothing: nltk ``SmoothingFunction().method1`` (epsilon 0.1 added to a zero n-gram match count), which
  only changes a score whose corpus holds no matching n-gram of some order; per item: sentence BLEU-4
  with the same smoothing.
- **METEOR**: ``nltk.translate.meteor_score.meteor_score`` (exact, Porter-stem and WordNet-synonym
  matches) with WordNet 3.0 read from Debian's ``wordnet-base``, its passes written out with memoised stems
  and synonyms (:mod:`dicrepro.evaluate.meteor`; equal to nltk, tests); corpus score = mean of the item
  scores (nltk has no corpus METEOR).
- **ROUGE-L**: rouge-score's ROUGE-L F-measure (``RougeScorer(["rougeL"])``) on our tokens (its own
  tokenizer drops every non-ASCII character, hence Chinese), LCS length from rapidfuzz for speed;
  corpus = mean of items.
- **CIDEr-D**: pycocoevalcap's ``Cider`` (which is CIDEr-D: clipped counts, Gaussian length penalty, x10),
  idf over the scored corpus, reported as pycocoevalcap reports it: **0..10**, not a fraction and not
  divided by 10 (every other key is a fraction in 0..1; tables show those in percent and CIDEr-D as it
  is). A corpus of one item has no idf and scores 0.

Names: :data:`METRIC_NAMES` is the one display name of each key, used by the CLI's help, every table and
every figure; the key ``cider`` is always CIDEr-D on pycocoevalcap's scale (:data:`RAW_SCALE_KEYS`).

Corpus BLEU and CIDEr-D are computed on sparse n-gram count matrices (:mod:`dicrepro.evaluate.ngrams`),
the reference libraries' formulas written out, from one set of counts shared by both
(:func:`caption_scores`); tests hold them equal to nltk's ``corpus_bleu`` and pycocoevalcap's ``Cider``
(to 1e-9). Per-item sentence BLEU still comes from nltk itself.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path

from dicrepro.evaluate import ngrams
from dicrepro.evaluate.answers import is_correct
from dicrepro.evaluate.diagram_type import KNOWN_TYPES
from dicrepro.evaluate.meteor import meteor_items
from dicrepro.text.han import HAN_RUN

log = logging.getLogger(__name__)

METRIC_KEYS = ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rougeL", "cider")
METRIC_NAMES = {"bleu1": "BLEU-1", "bleu2": "BLEU-2", "bleu3": "BLEU-3", "bleu4": "BLEU-4", "meteor": "METEOR",
                "rougeL": "ROUGE-L", "cider": "CIDEr-D"}
RAW_SCALE_KEYS = frozenset({"cider"})  # not a fraction: CIDEr-D on pycocoevalcap's own scale, 0..10
BLEU_WEIGHTS = ((1.0,), (0.5, 0.5), (1 / 3,) * 3, (0.25,) * 4)  # cumulative BLEU-1..4

# --- tokens ------------------------------------------------------------------------------------------

# a word: letters/digits, optionally joined by . - / ' _ (keeps "802.1x", "ipv6", "n2", "pdu-session")
_WORD = re.compile(r"[^\W_]+(?:[.\-/'_][^\W_]+)*")


@functools.cache
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)  # its dictionary-load chatter is not ours to print
    jieba.initialize()
    return jieba


@functools.lru_cache(maxsize=200_000)
def tokenize(text: str, lang: str | None = None) -> tuple[str, ...]:
    """Word tokens of ``text`` for scoring (cached: the same text is tokenised once per process)."""
    text = text.lower()
    if lang is None:
        lang = "zh" if HAN_RUN.search(text) else "en"
    out: list[str] = []
    pos = 0
    for m in HAN_RUN.finditer(text):
        out.extend(_WORD.findall(text, pos, m.start()))
        out.extend(_jieba().lcut(m.group(), HMM=True) if lang == "zh" else m.group())
        pos = m.end()
    out.extend(_WORD.findall(text, pos))
    return tuple(out)


def _langs(langs, n: int) -> list[str | None]:
    if langs is None or isinstance(langs, str):
        return [langs] * n
    langs = list(langs)
    if len(langs) != n:
        raise ValueError(f"langs has {len(langs)} entries for {n} items")
    return langs


def _tokens(refs: Sequence[str], preds: Sequence[str], langs) -> tuple[list, list]:
    if len(refs) != len(preds):
        raise ValueError(f"{len(refs)} references but {len(preds)} predictions")
    if not refs:
        raise ValueError("nothing to score: no references")
    ls = _langs(langs, len(refs))
    return ([tokenize(r, lg) for r, lg in zip(refs, ls)], [tokenize(p, lg) for p, lg in zip(preds, ls)])


# --- the metrics --------------------------------------------------------------------------------------

def _bleu(refs, preds, langs, weights, per_item=True):
    from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu

    rt, pt = _tokens(refs, preds, langs)
    smooth = SmoothingFunction().method1
    # nltk's corpus_bleu, computed on sparse n-gram counts (ngrams.corpus_bleu; equal, ~3x faster)
    corpus = ngrams.corpus_bleu(rt, pt, weights)
    if not per_item:
        return corpus, []
    # sentence BLEU of the highest order asked for (what nltk's sentence_bleu computes)
    items = [corpus_bleu([[r]], [p], weights=weights[-1], smoothing_function=smooth) for r, p in zip(rt, pt)]
    return corpus, items


def bleu_all(refs: list[str], preds: list[str], langs=None, per_item: bool = False):
    """Corpus BLEU-1..4 in one pass over the n-grams -> ([b1, b2, b3, b4], per-item sentence BLEU-4)."""
    return _bleu(refs, preds, langs, list(BLEU_WEIGHTS), per_item)


def _bleu_n(n: int):
    def score(refs: list[str], preds: list[str], langs=None) -> tuple[float, list[float]]:
        corpus, items = _bleu(refs, preds, langs, [tuple([1.0 / n] * n)])
        return corpus[0], items

    score.__name__ = f"score_bleu{n}"
    score.__doc__ = f"Corpus cumulative BLEU-{n} (nltk, method1 smoothing); per item: sentence BLEU-{n}."
    return score


score_bleu1, score_bleu2, score_bleu3, score_bleu4 = (_bleu_n(n) for n in (1, 2, 3, 4))


def score_meteor(refs: list[str], preds: list[str], langs=None) -> tuple[float, list[float]]:
    """nltk METEOR per item (WordNet from Debian), through :func:`dicrepro.evaluate.meteor.meteor` (nltk's
    passes and formula with memoised stems and synonyms; equal to nltk's ``meteor_score``, tests); corpus =
    mean of the items."""
    items = meteor_items(*_tokens(refs, preds, langs))
    return math.fsum(items) / len(items), items


class RougeTokenizer:
    """Our tokens in rouge-score's tokenizer interface (its default drops non-ASCII, hence Chinese):
    ``RougeScorer(["rougeL"], tokenizer=RougeTokenizer())`` gives what :func:`score_rougeL` gives."""

    def tokenize(self, text: str) -> list[str]:
        return list(tokenize(text))


def _rougeL_items(rt, pt) -> list[float]:
    from rapidfuzz.distance import LCSseq
    from rouge_score.scoring import fmeasure

    items = []
    for r, p in zip(rt, pt):
        if not r or not p:
            items.append(0.0)  # as rouge-score: an empty side scores 0
            continue
        lcs = LCSseq.similarity(r, p)
        items.append(fmeasure(lcs / len(p), lcs / len(r)))
    return items


def score_rougeL(refs: list[str], preds: list[str], langs=None) -> tuple[float, list[float]]:
    """ROUGE-L F-measure per item exactly as rouge-score's ``RougeScorer(["rougeL"])._score_lcs`` computes
    it on our tokens (P = LCS/len(pred), R = LCS/len(ref), ``rouge_score.scoring.fmeasure``), with the LCS
    length from rapidfuzz (C++): rouge-score's own LCS table is pure Python, ~15 s per 10k captions.
    Tests check equality with RougeScorer. Corpus = mean of the items."""
    items = _rougeL_items(*_tokens(refs, preds, langs))
    return math.fsum(items) / len(items), items


def score_cider(refs: list[str], preds: list[str], langs=None) -> tuple[float, list[float]]:
    """pycocoevalcap CIDEr-D on its own scale (0..10), idf over this corpus; per item likewise. Computed
    on sparse n-gram counts (:func:`dicrepro.evaluate.ngrams.cider_d`), equal to pycocoevalcap's
    ``Cider().compute_score`` (tests), ~7x faster and in one process."""
    return ngrams.cider_d(*_tokens(refs, preds, langs))


CAPTION_METRICS = {
    "bleu1": score_bleu1, "bleu2": score_bleu2, "bleu3": score_bleu3, "bleu4": score_bleu4,
    "meteor": score_meteor, "rougeL": score_rougeL, "cider": score_cider,
}


def caption_scores(refs: list[str], preds: list[str], langs=None) -> dict[str, float]:
    """Corpus-level scores, keys bleu1..bleu4, meteor, rougeL (fractions in 0..1) and cider (CIDEr-D on
    pycocoevalcap's scale, 0..10). Each text is tokenised once, and BLEU-1..4 and CIDEr-D share one set
    of n-gram counts; the scores are those of the registry's functions (tests)."""
    rt, pt = _tokens(refs, preds, langs)
    counts = ngrams.count(rt, pt, 4)
    out = {f"bleu{n}": float(b) for n, b in zip((1, 2, 3, 4), ngrams.bleu_from_counts(counts, BLEU_WEIGHTS))}
    out["meteor"] = math.fsum(meteor_items(rt, pt)) / len(rt)
    out["rougeL"] = math.fsum(_rougeL_items(rt, pt)) / len(rt)
    out["cider"] = float(ngrams.cider_d_from_counts(counts)[0])
    return out


# --- files --------------------------------------------------------------------------------------------

def _jsonl_lines(path: str | Path):
    """(line number, parsed JSON) of each non-blank line of a regular UTF-8 file; ValueError names the
    file and line of the first line that is not JSON (a FIFO or a device is refused, not read)."""
    import stat

    if not stat.S_ISREG(Path(path).stat().st_mode):
        raise ValueError(f"{path}: not a regular file")
    with open(path, "rb") as f:
        for i, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8-sig" if i == 1 else "utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{path}:{i}: not UTF-8 text") from None
            if not line.strip():
                continue
            try:
                yield i, json.loads(line)
            except (json.JSONDecodeError, RecursionError) as e:
                raise ValueError(f"{path}:{i}: not valid JSON ({getattr(e, 'msg', 'nested too deeply')})") from None


def _read_id_text(path: str | Path) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    first_line: dict[str, int] = {}
    for i, row in _jsonl_lines(path):
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{i}: a line must be a JSON object like {{\"id\": ..., \"text\": ...}}")
        for key in ("id", "text"):
            if key not in row:
                raise ValueError(f"{path}:{i}: no {key!r} field")
        if isinstance(row["id"], bool) or not isinstance(row["id"], (str, int)):
            raise ValueError(f"{path}:{i}: id: must be a string or a whole number, got {type(row['id']).__name__}")
        if not isinstance(row["text"], str):
            raise ValueError(f"{path}:{i}: text: must be a string, got {type(row['text']).__name__}")
        if row.get("language") is not None and not isinstance(row["language"], str):
            raise ValueError(f"{path}:{i}: language: must be a string")
        rid = str(row["id"])
        if rid in rows:
            raise ValueError(f"{path}:{i}: id {rid!r} appears twice (first on line {first_line[rid]})")
        rows[rid], first_line[rid] = row, i
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def _name_ids(ids: list[str], limit: int = 10) -> str:
    shown = ", ".join(repr(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def metrics_from_files(pred_path: str | Path, ref_path: str | Path) -> dict[str, float]:
    """Corpus scores for two JSONL files of ``{"id", "text"}`` lines matched by id (reference lines may
    carry ``"language"``). An id present on one side only is a ValueError naming the id(s) and the file."""
    preds, refs = _read_id_text(pred_path), _read_id_text(ref_path)
    no_pred = [i for i in refs if i not in preds]
    if no_pred:
        raise ValueError(f"{pred_path}: no prediction for id(s) {_name_ids(no_pred)} of {ref_path}")
    no_ref = [i for i in preds if i not in refs]
    if no_ref:
        raise ValueError(f"{ref_path}: no reference for id(s) {_name_ids(no_ref)} of {pred_path}")
    ids = list(refs)
    return caption_scores([refs[i]["text"] for i in ids], [preds[i]["text"] for i in ids],
                          [refs[i].get("language") for i in ids])


# --- objective questions ------------------------------------------------------------------------------

def chance_level(item: dict) -> float:
    """Probability of a blind guess being right: 1/len(options); 0.5 for true/false; 1/(known types) for
    "What kind of diagram is this?"; 0 for free numbers."""
    if item.get("kind") == "type":
        return 1.0 / len(KNOWN_TYPES)
    if item.get("options"):
        return 1.0 / len(item["options"])
    if str(item.get("answer_key", "")).lower() in ("true", "false"):
        return 0.5
    return 0.0


def objective_scores(items: list[dict], preds: dict[str, str]) -> dict[str, float | int]:
    """Accuracy over objective items (``id``, ``options``, ``answer_key``, ``kind``) given id -> answer
    text. Unparsed answers count as wrong and are counted in ``unparsed``; ``chance`` is the mean guessing
    rate. A missing prediction is a ValueError naming the id(s)."""

    missing = [str(it["id"]) for it in items if it["id"] not in preds]
    if missing:
        raise ValueError(f"no prediction for objective item(s) {_name_ids(missing)}")
    n = len(items)
    judged = [is_correct(it, preds[it["id"]]) for it in items]
    return {"accuracy": sum(c for c, _ in judged) / n if n else 0.0, "n": n,
            "correct": sum(c for c, _ in judged), "unparsed": sum(not p for _, p in judged),
            "chance": math.fsum(chance_level(it) for it in items) / n if n else 0.0}


# --- breakdowns ---------------------------------------------------------------------------------------

def score_table(pred_rows: list[dict], ref_rows: list[dict],
                by: Sequence[str] = ("diagram_type", "language")):
    """Long table, one row per (model, group_by, group): ``n`` and every caption metric.

    ``pred_rows``: ``{"model", "id", "text"}`` (the predictions JSONL); ``ref_rows``: ``{"id", "text"}``
    plus the columns named in ``by`` (and optionally ``language``). ``group_by == "overall"`` rows score
    each model's whole set. Each group is its own corpus (CIDEr-D's idf included)."""
    import pandas as pd

    refs = {str(r["id"]): r for r in ref_rows}
    by_model: dict[str, dict[str, str]] = {}
    for p in pred_rows:
        by_model.setdefault(p["model"], {})[str(p["id"])] = p["text"]
    rows = []
    for model, texts in by_model.items():
        missing = [i for i in refs if i not in texts]
        if missing:
            raise ValueError(f"model {model!r}: no prediction for id(s) {_name_ids(missing)}")
        for group_by in ("overall", *by):
            groups: dict[str, list[str]] = {}
            for i, r in refs.items():
                groups.setdefault("all" if group_by == "overall" else str(r[group_by]), []).append(i)
            for g in sorted(groups):
                ids = groups[g]
                s = caption_scores([refs[i]["text"] for i in ids], [texts[i] for i in ids],
                                   [refs[i].get("language") for i in ids])
                rows.append({"model": model, "group_by": group_by, "group": g, "n": len(ids), **s})
    return pd.DataFrame(rows, columns=["model", "group_by", "group", "n", *METRIC_KEYS])


def relative_improvement(a: float, b: float) -> float:
    """(a - b) / b, as the paper reports gains ("+56.8% BLEU over X" is 0.568)."""
    if b == 0:
        raise ValueError(f"relative improvement of {a} over a baseline of 0 is undefined")
    return (a - b) / b


def format_improvement(a: float, b: float) -> str:
    """``relative_improvement`` as the paper writes it, e.g. ``"+56.8%"``."""
    return f"{relative_improvement(a, b) * 100:+.1f}%"
