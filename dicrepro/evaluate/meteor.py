"""nltk's METEOR (``nltk.translate.meteor_score.single_meteor_score``) written out, with each word's stem and
WordNet synonyms looked up once per process instead of once per caption.

nltk aligns a hypothesis with its reference in three passes: exact words, then Porter stems of the words
left, then WordNet synonyms of the stems left (a hypothesis word matches a reference word found among the
lemma names, without "_", of its synsets, or itself). In each pass the hypothesis words are taken from
the last to the first, and each takes the last reference word still free that fits. The score is
``(1 - gamma * (chunks / matches) ** beta) * fmean`` with ``fmean = P * R / (alpha * P + (1 - alpha) * R)``
(alpha 0.9, beta 3, gamma 0.5), 0 without a match. nltk rebuilds a word's synonym set from WordNet's
synsets and lemmas every time the word is left unmatched; on 10,000 captions that rebuilding is most of
METEOR's time. The passes, their order and the formula are nltk's, so the scores are nltk's (tests compare
both on English and Chinese captions).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def _match(hyp: list[tuple[int, str]], ref: list[tuple[int, str]], fits=None):
    """One pass: (matches (hyp index, ref index), hyp left, ref left). ``fits(word)``: the reference words
    a hypothesis word matches (default: itself), the last free one taken (nltk's ``_match_enums`` and
    ``_enum_wordnetsyn_match``)."""
    positions: dict[str, list[int]] = {}
    for j, (_, word) in enumerate(ref):
        positions.setdefault(word, []).append(j)
    matches, used_h, used_r = [], set(), set()
    for i in range(len(hyp) - 1, -1, -1):
        if fits is None:
            free = positions.get(hyp[i][1])
            if not free:
                continue
            j = free.pop()
        else:
            best_j, best = -1, None
            for w in fits(hyp[i][1]):
                free = positions.get(w)
                if free and free[-1] > best_j:
                    best_j, best = free[-1], w
            if best is None:
                continue
            j = positions[best].pop()
        used_h.add(i)
        used_r.add(j)
        matches.append((hyp[i][0], ref[j][0]))
    return (matches, [p for i, p in enumerate(hyp) if i not in used_h],
            [p for j, p in enumerate(ref) if j not in used_r])


def _chunks(matches: list[tuple[int, int]]) -> int:
    """Fewest runs of matches adjacent in both texts (nltk's ``_count_chunks``)."""
    return 1 + sum(1 for a, b in zip(matches, matches[1:]) if not (b[0] == a[0] + 1 and b[1] == a[1] + 1))


def meteor(reference: Sequence[str], hypothesis: Sequence[str], stem: Callable[[str], str],
           synonyms: Callable[[str], frozenset[str]], alpha: float = 0.9, beta: float = 3.0,
           gamma: float = 0.5) -> float:
    """METEOR of one tokenised hypothesis against one reference, as nltk's ``single_meteor_score`` with
    ``preprocess`` the identity; ``stem`` and ``synonyms`` (memoised by the caller) as nltk derives them."""
    hyp, ref = list(enumerate(hypothesis)), list(enumerate(reference))
    exact, hyp_left, ref_left = _match(hyp, ref)
    stems, hyp_left, ref_left = _match([(i, stem(w)) for i, w in hyp_left], [(j, stem(w)) for j, w in ref_left])
    syns, _, _ = _match(hyp_left, ref_left, synonyms)  # (on the stems left, as nltk)
    matches = sorted(exact + stems + syns, key=lambda m: m[0])
    n = len(matches)
    try:
        precision = float(n) / len(hyp)
        recall = float(n) / len(ref)
        fmean = (precision * recall) / (alpha * precision + (1 - alpha) * recall)
        frag_frac = float(_chunks(matches)) / n
    except ZeroDivisionError:
        return 0.0
    return (1 - gamma * frag_frac**beta) * fmean
