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
import pandas as pd
from scipy import sparse


def encode(corpora: Sequence[Sequence[Sequence[str]]]) -> list[list[np.ndarray]]:
    """Token ids (int64 arrays) of several tokenised corpora, one vocabulary for all of them."""
    flat = [t for corpus in corpora for doc in corpus for t in doc]
    # pandas' hash table in C gives each distinct token its id, in order of first appearance
    ids = pd.factorize(pd.Series(flat, dtype=object), sort=False)[0].astype(np.int64) if flat else np.zeros(0, np.int64)
    out, pos = [], 0
    for corpus in corpora:
        docs = []
        for doc in corpus:
            docs.append(ids[pos:pos + len(doc)])
            pos += len(doc)
        out.append(docs)
    return out


def count_matrices(docs_by_corpus: list[list[np.ndarray]], n: int = 4) -> list[list[sparse.csr_matrix]]:
    """For each corpus, for k = 1..n, the (items x n-grams) count matrix; the column of an n-gram is the
    same in every corpus, so matrices of one order can be compared elementwise.

    Every k-gram gets an id from its (k-1)-gram's id and its last token (one int64 key, whatever the
    vocabulary's size), so each order costs one ``np.unique`` over the corpus."""
    sizes = [sum(len(d) for d in docs) for docs in docs_by_corpus]
    lengths = np.array([len(d) for docs in docs_by_corpus for d in docs], dtype=np.int64)
    tokens = np.concatenate([d for docs in docs_by_corpus for d in docs]) if sum(sizes) else np.zeros(0, np.int64)
    doc_of = np.repeat(np.arange(lengths.size), lengths)  # global doc number of each position
    first_doc = np.cumsum([0] + [len(docs) for docs in docs_by_corpus])
    corpus_of = np.searchsorted(first_doc, doc_of, side="right") - 1
    ends = np.cumsum(lengths)[doc_of] if tokens.size else np.zeros(0, np.int64)  # where each position's doc ends
    vmax = int(tokens.max()) + 1 if tokens.size else 1
    out: list[list[sparse.csr_matrix]] = [[] for _ in docs_by_corpus]
    pos = np.arange(tokens.size)
    ids = tokens  # ids of the k-grams starting at pos (k = 1: the tokens)
    for k in range(1, n + 1):
        if k > 1:
            ok = pos + k <= ends[pos]  # the k-gram starting there stays inside its doc
            pos = pos[ok]
            ids = pd.factorize(ids[ok] * vmax + tokens[pos + k - 1])[0].astype(np.int64)  # (hashing: no sort)
        width = int(ids.max()) + 1 if ids.size else 0
        owner, corp = doc_of[pos], corpus_of[pos]
        for c, docs in enumerate(docs_by_corpus):
            sel = corp == c
            m = sparse.coo_matrix((np.ones(int(sel.sum())), (owner[sel] - first_doc[c], ids[sel])),
                                  shape=(len(docs), width))
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


def cider_d(refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]],
            sigma: float = 6.0) -> tuple[float, list[float]]:
    """pycocoevalcap CIDEr-D (0..10) of tokenised captions, one reference per item, idf over these items:
    ``(corpus mean, per-item scores)``."""
    return cider_d_from_counts(count(refs, hyps, 4), sigma)
