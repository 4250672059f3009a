"""How a caption is read against a diagram: matching keys, sentences, and the verbalizer's phrasings as
templates.

- :func:`key`: a text's matching form, :func:`dicrepro.text.gate.normalize`d tokens (Chinese one per
  character) with plurals folded, space-joined and space-padded, so ``key(label) in key(text)`` means the
  label's tokens stand in the text in a row; :func:`standalone` finds a label where it stands on its own,
  not inside a longer string of the diagram.
- :func:`split_sentences` and :func:`caption_key` (a caption's key from its sentences' keys).
- :func:`templates`: every phrasing of :mod:`dicrepro.text.phrasings_en` / ``phrasings_zh`` as pieces of
  literal text and slots (``a`` source, ``b`` target, ``label``, ``list``); :func:`fits` says whether a
  sentence reads as one with given values in its slots, :func:`templates_in` which ones can (looked up by
  the rarest word of their literal text), :func:`read_by_template` whether any phrasing reads a sentence.

Used by :mod:`dicrepro.evaluate.faithfulness`; memoised per text (:func:`clear_caches`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from itertools import chain

from dicrepro.text import phrasings_en, phrasings_zh
from dicrepro.text.gate import normalize
from dicrepro.text.han import HAN

_TOKEN = re.compile(rf"[{HAN}]|[^\W_{HAN}]+")
# Sentences end at a full stop ('?' and '!' end labels like "Load below threshold?" too often to split on).
_SENTENCE_END = re.compile(r"(?<=[.])\s+|(?<=[。])\s*|\n+")
_SENTENCE_END_NO_ZH = re.compile(r"(?<=[.])\s+|\n+")
_NUMBERING = re.compile(r"(?:^|[:：]\s*)\d+[.)]$")  # "3." alone, or a lead-in "... happen: 5."


@functools.lru_cache(maxsize=65536)
def _stem(tok: str) -> str:
    """Plural folded: 'policies' -> 'policy', 'switches' -> 'switch', 'AMFs' -> 'amf' (after casefold)."""
    if len(tok) > 4 and tok.endswith("ies"):
        return tok[:-3] + "y"
    if len(tok) > 4 and tok.endswith(("ches", "shes", "sses", "xes", "zes")):
        return tok[:-2]
    if len(tok) > 2 and tok.endswith("s") and not tok.endswith(("ss", "us", "is")) and tok[-2].isalpha():
        return tok[:-1]
    return tok


@functools.lru_cache(maxsize=65536)
def key(text: str) -> str:
    """Matching form: normalised tokens (Chinese one per character), plural folded, space-joined and
    space-padded, so ``key(label) in key(text)`` means the label's tokens stand in the text in a row."""
    toks = _TOKEN.findall(normalize(text or ""))
    return " " + " ".join(map(_stem, toks)) + " " if toks else ""


def occurrences(k: str, text_key: str) -> list[tuple[int, int]]:
    out, i = [], text_key.find(k)
    while k and i >= 0:
        out.append((i, i + len(k)))
        i = text_key.find(k, i + 1)
    return out


def standalone(k: str, text_key: str, covers: Iterable[str]) -> list[int]:
    """Start offsets of ``k`` in ``text_key`` that are not inside an occurrence of a longer string."""
    return standalone_among(k, text_key, [c for c in covers if len(c) > len(k) and k in c])


def standalone_among(k: str, text_key: str, longer: list[str]) -> list[int]:
    """:func:`standalone` with the longer strings that hold ``k`` already chosen."""
    spans = occurrences(k, text_key)
    if not spans:
        return []
    cover = [sp for c in longer for sp in occurrences(c, text_key)]
    return [s for s, e in spans if not any(cs <= s and e <= ce for cs, ce in cover)]


def caption_key(sentence_keys: list[str]) -> str:
    """``key(caption)`` from the keys of its sentences (:func:`split_sentences`): a sentence ends at
    whitespace or after "。", where no token goes on and no character changes the next one's normal form,
    so the caption's tokens are its sentences' tokens in a row (tests check both ways agree)."""
    inner = [k[1:-1] for k in sentence_keys if k]
    return " " + " ".join(inner) + " " if inner else ""


def split_sentences(text: str) -> list[str]:
    """Sentences of a caption ('1.' step numbers stay with their sentence), in order."""
    text = text or ""
    # (without a "。" the pattern's empty-after-"。" branch never matches: a simpler scan, the same split)
    parts = [p.strip() for p in (_SENTENCE_END if "。" in text else _SENTENCE_END_NO_ZH).split(text) if p and p.strip()]
    out: list[str] = []
    for p in parts:
        if out and _NUMBERING.search(out[-1]):  # "2." was a step number, not a sentence end
            out[-1] = out[-1] + " " + p
        else:
            out.append(p)
    return out


# --- the verbalizer's phrasings as templates ---------------------------------------------------------

_SLOT = re.compile(r"\{(\w+)\}")
_ROLE = {"a": "a", "b": "b", "label": "label", "m": "label", "list": "list"}


@functools.lru_cache(maxsize=2)
def templates(relational: bool = True) -> tuple[tuple[tuple[str, ...], str], ...]:
    """The verbalizer's phrasings as (pieces, longest literal): pieces alternate literal key text and slot
    names (``a``, ``b``, ``label``, ``list`` or ``*`` for any other slot). ``relational``: only those with
    a source or target slot; else all of them."""
    out = []
    for mod in (phrasings_en, phrasings_zh):
        for templates in mod.P.values():
            # "{a} {rel} {b}" with {rel} left open would read "B can only start after A" as a relation
            # A -> B: one template per relation phrase instead.
            expanded = [t.replace("{rel}", r) if "{rel}" in t else t
                        for t in (templates if isinstance(templates, (list, tuple)) else [templates])
                        for r in (sorted(set(mod.RELATIONS.values())) if "{rel}" in t else [""])]
            for t in dict.fromkeys(expanded):
                if relational and not ({"a", "b"} & set(_SLOT.findall(t))):
                    continue
                pieces: list[str] = []
                for i, part in enumerate(_SLOT.split(t)):
                    pieces.append(key(part).strip() if i % 2 == 0 else _ROLE.get(part, "*"))
                literal = max(pieces[::2], key=len)
                out.append((tuple(pieces), literal))
    return tuple(out)


def fits(pieces: tuple[str, ...], values: dict[str, str], sentence: str) -> bool:
    """Does ``sentence`` (a key) read as this template with ``values`` in its slots (others: anything)?
    Known text between wildcards must appear in order; the first and last pieces anchor the ends."""
    segs: list[str] = []  # known text, with None for a wildcard between
    cur: list[str] = []
    for i, p in enumerate(pieces):
        if i % 2 == 0:
            if p:
                cur.append(p)
        elif p in values:
            if values[p]:
                cur.append(values[p])
        else:
            segs.append(" ".join(cur))
            segs.append(None)
            cur = []
    segs.append(" ".join(cur))
    text = sentence.strip()
    if len(segs) == 1:  # no open slot: the sentence is exactly the template
        return text == segs[0]
    pos = 0
    for i, seg in enumerate(segs):
        if seg is None:
            continue
        if i == 0:
            if not (text == seg or text.startswith(seg + " ") or not seg):
                return False
            pos = len(seg)
        elif i == len(segs) - 1:
            if seg and not (text.endswith(" " + seg) or text == seg) or text.rfind(seg) < pos:
                return False
        else:
            j = text.find(seg, pos) if seg else pos
            if j < 0:
                return False
            pos = j + len(seg)
    return True


@functools.lru_cache(maxsize=2)
def _template_index(relational: bool) -> tuple[dict[str, list[int]], list[int]]:
    """Positions in :func:`templates` by the rarest word of their longest literal (a literal stands in a
    sentence only if each of its words does), and those without a literal."""
    phrasings = templates(relational)
    freq: dict[str, int] = {}
    for _, literal in phrasings:
        for w in set(literal.split()):
            freq[w] = freq.get(w, 0) + 1
    by_word: dict[str, list[int]] = {}
    bare = []
    for i, (_, literal) in enumerate(phrasings):
        if literal:
            by_word.setdefault(min(literal.split(), key=lambda w: (freq[w], w)), []).append(i)
        else:
            bare.append(i)
    return by_word, bare


@functools.lru_cache(maxsize=65536)
def templates_in(sentence: str, relational: bool = True) -> tuple[tuple[tuple[str, ...], str], ...]:
    """The phrasings of :func:`templates` whose longest literal stands in this sentence (a key), or that
    have none, in their order: ``f" {literal} " in sentence`` asked only of those whose literal's rarest
    word the sentence holds."""
    by_word, bare = _template_index(relational)
    # (filter, not ``keys() & words``: intersecting a dict's keys with a list first copies all the keys)
    cand = set(bare).union(chain.from_iterable(map(by_word.__getitem__,
                                                   filter(by_word.__contains__, set(sentence.split())))))
    phrasings = templates(relational)
    return tuple(phrasings[i] for i in sorted(cand) if not phrasings[i][1] or f" {phrasings[i][1]} " in sentence)


@functools.lru_cache(maxsize=65536)
def read_by_template(sentence: str) -> bool:
    """Whether some phrasing with text of its own reads this sentence (whatever its slots hold): such a
    sentence states what its template says ("There are 4 components: A, B" states no link A -> B)."""
    return any(lit and fits(p, {}, sentence) for p, lit in templates_in(sentence, False))



@functools.lru_cache(maxsize=1)
def phrasing_keys() -> frozenset[str]:
    """Tokens of the verbalizer's own connective language (never a label)."""
    words: set[str] = set()
    for mod in (phrasings_en, phrasings_zh):
        stack = [getattr(mod, t, None) for t in ("TYPES", "RELATIONS", "P", "WORDS", "GENERIC_TYPE")]
        while stack:
            x = stack.pop()
            if isinstance(x, str):
                words |= set(key(_SLOT.sub(" ", x)).split())
            elif isinstance(x, dict):
                stack.extend(x.values())
            elif isinstance(x, (list, tuple)):
                stack.extend(x)
    return frozenset(words)



@functools.lru_cache(maxsize=4096)
def slots(pieces: tuple[str, ...]) -> tuple[bool, bool, bool, bool]:
    """Which of the slots a (source), b (target), label and list the template has."""
    slots = set(pieces[1::2])
    return "a" in slots, "b" in slots, "label" in slots, "list" in slots


def clear_caches() -> None:
    """Forget every memoised key, stem and sentence reading."""
    for f in (key, _stem, templates_in, read_by_template):
        f.cache_clear()
