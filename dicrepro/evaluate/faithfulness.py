"""Is a caption right about its diagram? Faithfulness scored against the graph, not a reference text.

``faithfulness(diagram, caption)`` returns, per sample (values 0-1, ``None`` where a part does not apply):

- ``label_recall``: share of the graph's labels (nodes, participants, states, edge and message labels,
  class members and ER fields as :func:`dicrepro.text.describe.diagram_labels` lists them, and block
  conditions) the caption mentions. Matching is on :func:`dicrepro.text.gate.normalize`d tokens (case,
  punctuation, hyphen = space), with plural -s/-es/-ies folded and Chinese matched character by
  character, so "AMFs" names "AMF", "keep alive" names "Keep-alive" and no whitespace is needed in
  Chinese. A label counts only where it stands on its own, not inside a longer string of the diagram that
  holds it ("gNB" inside "Source gNB" does not prove "gNB" was mentioned).
- ``hallucination_rate`` and ``hallucinated``: label-like mentions that match nothing in the graph
  (knowledge-base lexicon entries found by the faithfulness gate :func:`dicrepro.text.gate.check_faithful`,
  quoted names and acronyms such as "PCF" or "N4" that no string of the diagram holds), as a share of all
  label-like mentions (found labels + hallucinated ones) and as the list of offending spans.
- ``relation_recall``: share of the edges (messages, transitions, relations, links) the caption states
  with the right source, target and label, plus alt/par/critical branches stated with their condition.
  An edge is stated by a sentence that reads as one of the verbalizer's phrasings
  (:mod:`dicrepro.text.phrasings_en`, :mod:`dicrepro.text.phrasings_zh`) with the edge's source, target and
  label in the template's ``{a}``, ``{b}`` and ``{label}`` slots (so "B receives X from A" states A -> B
  and "B sends X to A" does not); a sentence no phrasing reads counts when it names source, label and
  target, source first.
- ``order_tau``: Kendall's tau between the diagram's order (sequence messages, timeline periods) and the
  order in which the caption states them; ``None`` below two matched items.
- ``faithfulness``: the mean of the parts that apply (recall, 1 - hallucination rate, relation recall,
  (tau + 1) / 2): one matching score per sample. A caption that names no label at all gets 0, not 1, for
  the hallucination part (saying nothing is not precision).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

from dicrepro.diagrams.graph import Diagram
from dicrepro.text import phrasings_en, phrasings_zh
from dicrepro.text.describe import diagram_labels
from dicrepro.text.gate import check_faithful, diagram_strings, normalize, ordered_labels

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_HAN}]|[^\W_{_HAN}]+")
# Sentences end at a full stop ('?' and '!' end labels like "Load below threshold?" too often to split on).
_SENTENCE_END = re.compile(r"(?<=[.])\s+|(?<=[。])\s*|\n+")
_NUMBERING = re.compile(r"(?:^|[:：]\s*)\d+[.)]$")  # "3." alone, or a lead-in "... happen: 5."
_QUOTED = re.compile(r'"([^"\n]{1,80})"|“([^”\n]{1,80})”|「([^」\n]{1,80})」')
_WORD = re.compile(r"(?<![A-Za-z0-9_])[A-Za-z0-9_]*[A-Za-z][A-Za-z0-9_]*")
METRICS = ("label_recall", "hallucination_rate", "relation_recall", "order_tau", "faithfulness")


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
    toks = [_stem(t) for t in _TOKEN.findall(normalize(text or ""))]
    return " " + " ".join(toks) + " " if toks else ""


def _occurrences(k: str, text_key: str) -> list[tuple[int, int]]:
    out, i = [], text_key.find(k)
    while k and i >= 0:
        out.append((i, i + len(k)))
        i = text_key.find(k, i + 1)
    return out


def _standalone(k: str, text_key: str, covers: Iterable[str]) -> list[int]:
    """Start offsets of ``k`` in ``text_key`` that are not inside an occurrence of a longer string."""
    spans = _occurrences(k, text_key)
    if not spans:
        return []
    longer = [c for c in covers if len(c) > len(k) and k in c]
    cover = [sp for c in longer for sp in _occurrences(c, text_key)]
    return [s for s, e in spans if not any(cs <= s and e <= ce for cs, ce in cover)]


def split_sentences(text: str) -> list[str]:
    """Sentences of a caption ('1.' step numbers stay with their sentence), in order."""
    parts = [p.strip() for p in _SENTENCE_END.split(text or "") if p and p.strip()]
    out: list[str] = []
    for p in parts:
        if out and _NUMBERING.search(out[-1]):  # "2." was a step number, not a sentence end
            out[-1] = out[-1] + " " + p
        else:
            out.append(p)
    return out


# --- relation templates from the verbalizer's phrasing tables -----------------------------------------

_SLOT = re.compile(r"\{(\w+)\}")
_ROLE = {"a": "a", "b": "b", "label": "label", "m": "label", "list": "list"}


@functools.lru_cache(maxsize=2)
def _templates(relational: bool = True) -> tuple[tuple[tuple[str, ...], str], ...]:
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


def _fits(pieces: tuple[str, ...], values: dict[str, str], sentence: str) -> bool:
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


def _read_by_template(sentence: str) -> bool:
    """Whether some phrasing with text of its own reads this sentence (whatever its slots hold): such a
    sentence states what its template says ("There are 4 components: A, B" states no link A -> B)."""
    return any(lit and f" {lit} " in sentence and _fits(p, {}, sentence) for p, lit in _templates(False))


# --- the score -----------------------------------------------------------------------------------------

def graph_labels(diagram: Diagram) -> list[str]:
    """Every label a caption should mention: ``diagram_labels`` plus block conditions (``meta["blocks"]``)."""
    labels = diagram_labels(diagram)
    for b in diagram.meta.get("blocks") or []:
        labels += [br.get("condition", "") for br in b.get("branches", [])]
    return [x for x in dict.fromkeys(labels) if x.strip()]


def _hallucinations(diagram: Diagram, caption: str, allowed_keys: list[str], lexicon) -> list[str]:
    allowed_blob = "|".join(allowed_keys)
    gate = check_faithful(diagram, caption, lexicon=lexicon, require_all=False, check_order=False)
    cap_key = key(caption)
    spans = [sp for a in allowed_keys for sp in _occurrences(a, cap_key)]
    out: dict[str, str] = {}
    for x in gate.invented:
        # An entry that only ever straddles the edge of a diagram label is no mention of its own: in
        # Chinese "报告" + "于" reads as the entry "报告于", across sentences "Serial number. ONU" as another.
        occ = _occurrences(key(x), cap_key)
        if occ and all(any(s < ae and e > as_ for as_, ae in spans) for s, e in occ):
            continue
        out[key(x)] = x
    for m in _QUOTED.finditer(caption):
        q = next(g for g in m.groups() if g is not None).strip()
        kq = key(q)
        if kq and kq not in allowed_blob and kq not in out and kq.strip() not in _phrasing_keys():
            out[kq] = q
    for m in _WORD.finditer(caption):
        w = m.group(0)
        upper = sum(c.isupper() for c in w)
        if not (upper >= 2 or (upper and any(c.isdigit() for c in w))):
            continue
        kw = key(w)
        if kw in allowed_blob or any(kw in k for k in out) or kw.strip() in _phrasing_keys():
            continue
        out[kw] = w
    return list(out.values())


@functools.lru_cache(maxsize=1)
def _phrasing_keys() -> frozenset[str]:
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


def _kendall_tau(positions: list[float]) -> float | None:
    n = len(positions)
    if n < 2:
        return None
    conc = disc = 0
    for i in range(n):
        for j in range(i + 1, n):
            d = positions[j] - positions[i]
            conc += d > 0
            disc += d < 0
    return (conc - disc) / (n * (n - 1) / 2)


def _edge_stated(src: str, dst: str, label: str, sent_key: str, read: bool, covers) -> bool:
    """Does this sentence state the edge: through a phrasing template with source, target and label in
    their slots, or (a sentence no template reads) naming source, label and target, source first."""
    ks, kd, kl = key(src).strip(), key(dst).strip(), key(label).strip()
    if ks and f" {ks} " not in sent_key or kd and f" {kd} " not in sent_key:
        return False
    values = {"a": ks, "b": kd, "label": kl}
    for pieces, literal in _templates():
        slots = set(pieces[1::2])
        if (literal and f" {literal} " not in sent_key) or bool(ks) != ("a" in slots) \
                or bool(kl) != ("label" in slots):
            continue
        if not kd and "b" in slots or kd and kd != ks and "b" not in slots and "list" not in slots:
            continue  # (a self-message "A handles X locally" has no target slot)
        if _fits(pieces, {k: v for k, v in values.items() if k in slots}, sent_key):
            return True
    if read:
        return False
    pa = _standalone(f" {ks} ", sent_key, covers) if ks else [0]
    pb = _standalone(f" {kd} ", sent_key, covers) if kd else [len(sent_key)]
    if not pa or not pb or (kl and f" {kl} " not in sent_key):
        return False
    return min(pa) < max(pb) if ks and kd and ks != kd else True


def faithfulness(diagram: Diagram, caption: str, *, lexicon: Iterable[str] | None = None) -> dict[str, Any]:
    """Score ``caption`` against ``diagram``'s graph (see the module doc). Raises ValueError on an empty caption."""
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError("the caption is empty")
    cap_key = key(caption)
    labels = graph_labels(diagram)
    allowed = [k for k in dict.fromkeys(key(s) for s in diagram_strings(diagram) + labels) if k]
    label_keys = {lab: key(lab) for lab in labels}
    found = [lab for lab, k in label_keys.items() if k and _standalone(k, cap_key, allowed)]
    label_recall = len(found) / len(labels) if labels else None

    hallucinated = _hallucinations(diagram, caption, allowed, None if lexicon is None else tuple(lexicon))
    mentions = len(found) + len(hallucinated)
    hallucination_rate = len(hallucinated) / mentions if mentions else 0.0

    sentences = split_sentences(caption)
    sent_keys = [key(s) for s in sentences]
    sent_read = [_read_by_template(sk) for sk in sent_keys]
    lab = {n.id: n.label for n in diagram.nodes}
    edges = [e for e in diagram.ordered_edges() if lab.get(e.src, "").strip() or lab.get(e.dst, "").strip()]
    stated_at: list[int | None] = []
    taken: set[int] = set()
    for e in edges:
        where = [i for i, (read, sk) in enumerate(zip(sent_read, sent_keys))
                 if _edge_stated(lab.get(e.src, ""), lab.get(e.dst, ""), e.label, sk, read, allowed)]
        # A repeated message ("Response" twice) is placed at its own sentence, not the first one's.
        free = [i for i in where if i not in taken]
        stated_at.append(free[0] if free else (where[0] if where else None))
        taken.update(free[:1])
    hits, total = sum(w is not None for w in stated_at), len(edges)
    all_msgs = [key(e.label) for e in diagram.ordered_edges() if key(e.label)]
    for b in diagram.meta.get("blocks") or []:
        # A branch is stated with its condition and one of its messages in the same sentence, or, when the
        # condition's sentence is a lead-in that names no message ('If instead "X":'), in the next sentence
        # that names a message (a note may come between).
        for br in b.get("branches", []):
            cond = key(br.get("condition", ""))
            msgs = [key(diagram.ordered_edges()[i].label) for i in br.get("messages", [])
                    if i < len(diagram.edges)]
            if not cond or not msgs:
                continue
            total += 1
            for i, sk in enumerate(sent_keys):
                if not _standalone(cond, sk, allowed):
                    continue
                lead_in = not any(m in sk for m in all_msgs)
                nxt = next((t for t in sent_keys[i + 1:] if any(m in t for m in all_msgs)), "") if lead_in else ""
                if any(m and (m in sk or m in nxt) for m in msgs):
                    hits += 1
                    break
    relation_recall = hits / total if total else None

    order_tau = None
    if diagram.diagram_type == "sequence":
        order_tau = _kendall_tau([w for w in stated_at if w is not None])
    elif diagram.diagram_type == "timeline":  # a period is placed where it is stated with one of its events
        lab_key = {n.id: key(n.label) for n in diagram.nodes}
        pos = [next((i for i, sk in enumerate(sent_keys) if key(g.label) and _standalone(key(g.label), sk, allowed)
                     and any(lab_key.get(m) and lab_key[m] in sk for m in g.members)), None)
               for g in diagram.groups]
        order_tau = _kendall_tau([p for p in pos if p is not None])
    elif ordered_labels(diagram):
        pos = [_standalone(key(x), cap_key, allowed) for x in ordered_labels(diagram)]
        order_tau = _kendall_tau([p[0] for p in pos if p])

    # A caption that names nothing of the diagram hallucinates nothing, but is not thereby precise.
    parts = [label_recall, (1 - hallucination_rate) if mentions else 0.0, relation_recall,
             None if order_tau is None else (order_tau + 1) / 2]
    parts = [p for p in parts if p is not None]
    return {
        "label_recall": label_recall, "hallucination_rate": hallucination_rate, "hallucinated": hallucinated,
        "relation_recall": relation_recall, "order_tau": order_tau, "faithfulness": sum(parts) / len(parts),
        "missing": [x for x in labels if x not in found], "labels": len(labels), "relations": total,
        "language_ok": language_ok(diagram, caption),
    }


def language_ok(diagram: Diagram, caption: str) -> bool:
    """False when the graph's labels are Chinese and the caption is not, or a ``zh``/``en`` diagram is
    captioned in the other language (labels left out: a zh caption quotes English message names)."""
    han = len(re.findall(f"[{_HAN}]", caption))
    latin = len(re.findall(r"[A-Za-z]", caption))
    label_text = " ".join(graph_labels(diagram))
    label_han = len(re.findall(f"[{_HAN}]", label_text))
    wants_zh = diagram.language.startswith("zh") or label_han > 0.3 * max(1, len(label_text.replace(" ", "")))
    if wants_zh:
        return han > 0
    return han <= max(2, 0.1 * (han + latin)) or label_han > 0


def aggregate(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Mean of each metric over the rows where it applies (``None`` where it applies to none)."""
    out: dict[str, float | None] = {}
    for m in METRICS:
        vals = [r[m] for r in rows if r.get(m) is not None]
        out[m] = sum(vals) / len(vals) if vals else None
    return out


__all__ = ["faithfulness", "aggregate", "graph_labels", "key", "split_sentences",
           "language_ok", "METRICS"]
