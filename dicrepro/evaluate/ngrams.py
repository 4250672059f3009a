"""N-gram counts of a whole corpus as sparse matrices, and the two n-gram metrics computed on them.

nltk's ``corpus_bleu`` and pycocoevalcap's ``CiderScorer`` count n-grams with Python dicts, item by item:
on 10,000 captions of ~90 words that is most of an evaluation's time. Here every token becomes an
integer, every n-gram one int64 key (computed for the whole corpus at once with numpy), and each order's
counts one ``scipy.sparse`` matrix (items x distinct n-grams). Clipped matches, document frequencies,
tf-idf vectors and their norms are then a few sparse operations. Both metrics read one set of counts
(:func:`count` -> :class:`NgramCounts`), so a caller scoring BLEU and CIDEr-D counts once.

The formulas are those of the reference libraries, written out, and tests compare both to them on
English and Chinese captions (equal to 1e-9):

- BLEU (:func:`corpus_bleu`): nltk's ``corpus_bleu`` with one reference per item: modified n-gram
  precision pooled over the corpus (each item's denominator at least 1, as nltk), brevity penalty from
  the pooled lengths, smoothing ``method1`` (epsilon 0.1 on a zero numerator), 0 when no unigram matches.
- CIDEr-D (:func:`cider_d`): pycocoevalcap's ``CiderScorer`` (n=4, sigma=6): tf x (log N - log max(1, df))
  per order, clipped similarity ``min(h, r) * r`` over the product of the norms, Gaussian penalty on the
  length difference (which pycocoevalcap counts in *bigrams*, and so do we), mean over orders, x10.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse


def encode(corpora: Sequence[Sequence[Sequence[str]]]) -> list[list[np.ndarray]]:
    """Token ids (int64 arrays) of several tokenised corpora, one vocabulary for all of them."""
    vocab: dict[str, int] = {}
    get = vocab.setdefault
    return [[np.fromiter((get(t, len(vocab)) for t in doc), dtype=np.int64, count=len(doc)) for doc in corpus]
            for corpus in corpora]


def count_matrices(docs_by_corpus: list[list[np.ndarray]], n: int = 4) -> list[list[sparse.csr_matrix]]:
    """For each corpus, for k = 1..n, the (items x n-grams) count matrix; the column of an n-gram is the
    same in every corpus, so matrices of one order can be compared elementwise."""
    lengths = [np.array([len(d) for d in docs], dtype=np.int64) for docs in docs_by_corpus]
    flat = np.concatenate([np.concatenate(docs) if len(docs) and sum(map(len, docs)) else np.zeros(0, np.int64)
                           for docs in docs_by_corpus])
    vmax = int(flat.max()) + 1 if flat.size else 1
    out: list[list[sparse.csr_matrix]] = [[] for _ in docs_by_corpus]
    for k in range(1, n + 1):
        keys, owners, corpus_of = [], [], []
        for c, docs in enumerate(docs_by_corpus):
            ln = lengths[c]
            if not len(docs):
                keys.append(np.zeros((0, k), np.int64))
                owners.append(np.zeros(0, np.int64))
                corpus_of.append(np.zeros(0, np.int64))
                continue
            tokens = np.concatenate(docs) if ln.sum() else np.zeros(0, np.int64)
            starts = np.concatenate([[0], np.cumsum(ln)[:-1]])
            # an n-gram starting at i belongs to doc d when i + k <= start_d + len_d
            doc_of = np.repeat(np.arange(len(docs)), ln)
            ok = np.arange(tokens.size) + k <= (starts + ln)[doc_of] if tokens.size else np.zeros(0, bool)
            idx = np.nonzero(ok)[0]
            keys.append(np.stack([tokens[idx + j] for j in range(k)], axis=1) if idx.size else np.zeros((0, k), np.int64))
            owners.append(doc_of[idx])
            corpus_of.append(np.full(idx.size, c, np.int64))
        allkeys = np.concatenate(keys)
        if vmax ** k < 2 ** 62:  # one int64 per n-gram: fast unique
            packed = np.zeros(len(allkeys), np.int64)
            for j in range(k):
                packed = packed * vmax + allkeys[:, j]
            cols = np.unique(packed, return_inverse=True)[1] if packed.size else packed
        else:
            cols = np.unique(allkeys, axis=0, return_inverse=True)[1].ravel() if allkeys.size else np.zeros(0, np.int64)
        width = int(cols.max()) + 1 if cols.size else 0
        corpus_all, owner_all = np.concatenate(corpus_of), np.concatenate(owners)
        for c, docs in enumerate(docs_by_corpus):
            sel = corpus_all == c
            m = sparse.coo_matrix((np.ones(int(sel.sum())), (owner_all[sel], cols[sel])), shape=(len(docs), width))
            out[c].append(m.tocsr())  # duplicates are summed: counts
    return out


@dataclass(frozen=True)
class NgramCounts:
    """One corpus of (reference, hypothesis) pairs counted once: ``ref[k-1]`` / ``hyp[k-1]`` the (items x
    k-grams) count matrices for k = 1..n (same columns), and each side's length in tokens. BLEU and
    CIDEr-D both read them (:func:`bleu_from_counts`, :func:`cider_d_from_counts`)."""

    ref: list[sparse.csr_matrix]
    hyp: list[sparse.csr_matrix]
    ref_len: np.ndarray
    hyp_len: np.ndarray


def count(refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]], n: int = 4) -> NgramCounts:
    """The n-gram counts of tokenised references and hypotheses (one reference per item), orders 1..n."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    if not refs:
        raise ValueError("nothing to score: no references")
    ref_docs, hyp_docs = encode([refs, hyps])
    ref_m, hyp_m = count_matrices([ref_docs, hyp_docs], n)
    return NgramCounts(ref_m, hyp_m, np.array([len(r) for r in refs], np.int64),
                       np.array([len(h) for h in hyps], np.int64))


def bleu_from_counts(c: NgramCounts, weights: Sequence[Sequence[float]]) -> list[float]:
    """nltk ``corpus_bleu([[r] for r in refs], hyps, weights=w, smoothing_function=method1)`` for each
    ``w`` in ``weights`` (one reference per item), from counts of order at least ``max(len(w))``."""
    order = max(len(w) for w in weights)
    if order > len(c.ref):
        raise ValueError(f"BLEU of order {order} needs counts up to {order}-grams, not {len(c.ref)}")
    numerators, denominators = [], []
    for k in range(order):
        numerators.append(float(c.hyp[k].minimum(c.ref[k]).sum()))
        denominators.append(float(np.maximum(1.0, np.asarray(c.hyp[k].sum(axis=1)).ravel()).sum()))
    hyp_len, ref_len = int(c.hyp_len.sum()), int(c.ref_len.sum())
    bp = 0.0 if hyp_len == 0 else (1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len))
    out = []
    for w in weights:
        if numerators[0] == 0:
            out.append(0.0)
            continue
        p = [(numerators[k] if numerators[k] else 0.1) / denominators[k] for k in range(len(w))]
        out.append(bp * math.exp(math.fsum(wi * math.log(pi) for wi, pi in zip(w, p))))
    return out


def corpus_bleu(refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]],
                weights: Sequence[Sequence[float]]) -> list[float]:
    """:func:`bleu_from_counts` of these tokenised captions."""
    return bleu_from_counts(count(refs, hyps, max(len(w) for w in weights)), weights)


def cider_d_from_counts(c: NgramCounts, sigma: float = 6.0) -> tuple[float, list[float]]:
    """pycocoevalcap CIDEr-D (0..10) from 1..4-gram counts, idf over these items:
    ``(corpus mean, per-item scores)``."""
    if len(c.ref) < 4:
        raise ValueError(f"CIDEr-D needs counts up to 4-grams, not {len(c.ref)}")
    ref_m, hyp_m = c.ref, c.hyp
    log_n = np.log(float(ref_m[0].shape[0]))
    # pycocoevalcap's "length" sums the counts of 2-grams (its n == 1 is the bigram order)
    delta = np.asarray(hyp_m[1].sum(axis=1)).ravel() - np.asarray(ref_m[1].sum(axis=1)).ravel()
    penalty = np.e ** (-(delta.astype(float) ** 2) / (2 * sigma ** 2))
    total = np.zeros(ref_m[0].shape[0])
    for k in range(4):
        df = np.asarray((ref_m[k] > 0).sum(axis=0)).ravel().astype(float)
        idf = log_n - np.log(np.maximum(1.0, df))
        vh, vr = hyp_m[k].multiply(idf).tocsr(), ref_m[k].multiply(idf).tocsr()
        norm_h = np.sqrt(np.asarray(vh.multiply(vh).sum(axis=1)).ravel())
        norm_r = np.sqrt(np.asarray(vr.multiply(vr).sum(axis=1)).ravel())
        val = np.asarray(vh.minimum(vr).multiply(vr).sum(axis=1)).ravel()
        both = (norm_h != 0) & (norm_r != 0)
        val[both] /= norm_h[both] * norm_r[both]
        total += val * penalty
    scores = total / 4 * 10.0
    return float(np.mean(scores)), [float(s) for s in scores]


def cider_d(refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]], sigma: float = 6.0) -> tuple[float, list[float]]:
    """pycocoevalcap CIDEr-D (0..10) of tokenised captions, one reference per item, idf over these items:
    ``(corpus mean, per-item scores)``."""
    return cider_d_from_counts(count(refs, hyps, 4), sigma)
