"""pycocoevalcap's CIDEr-D, with the per-item scoring spread over processes for large corpora.

pycocoevalcap's ``CiderScorer`` is pure Python: on 10,000 caption pairs of ~90 words it spends a few
seconds counting n-grams (``cook_append``), a couple on document frequencies (``compute_doc_freq``) and
most of the time in ``compute_cider``, which scores each item independently given two corpus-wide
numbers: the document frequencies (of the references) and ``ref_len = log(number of items)``. So
:func:`cider_d` counts the references' n-grams and computes the document frequencies once, with
pycocoevalcap's own methods, then runs pycocoevalcap's own ``cook_test`` and ``compute_cider`` on
contiguous shards of items in forked worker processes that inherit the corpus-wide state, and concatenates
the per-item scores in order. Every item goes through exactly the same
floating-point operations as in ``Cider().compute_score``, so the scores are identical, not merely close
(tests check this); the corpus score is ``np.mean`` of the same array, as in ``CiderScorer.compute_score``.

No formula is re-implemented here: this module only decides which items each ``compute_cider`` call sees.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from itertools import pairwise

import numpy as np

log = logging.getLogger(__name__)

# Below this many pairs, forking a pool costs more than it saves (scoring 2,000 pairs serially takes
# about a second on one core).
PARALLEL_MIN_PAIRS = 2_000
SHARDS_PER_WORKER = 4  # a few shards per worker keep cores busy when other jobs slow one of them

_corpus = None  # (CiderScorer with cooked references and corpus-wide df, hypotheses) for forked workers


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), which is what a pool of workers can use."""
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use, not all of the machine's
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _can_fork() -> bool:
    # a daemonic process (e.g. a multiprocessing.Pool worker) may not have children; without fork the
    # workers could not inherit the cooked corpus and would have to be sent it, which costs more than it saves
    return "fork" in multiprocessing.get_all_start_methods() and not multiprocessing.current_process().daemon


def _shard_scorer(full, hyps: list[str], start: int, stop: int):
    """A CiderScorer whose ``compute_cider`` scores ``hyps[start:stop]`` against items ``start:stop`` of
    ``full`` with its corpus-wide document frequencies and ref_len."""
    from pycocoevalcap.cider.cider_scorer import CiderScorer, cook_test

    shard = CiderScorer(n=full.n, sigma=full.sigma)
    shard.document_frequency = full.document_frequency
    # the hypotheses are cooked here, in the worker, as cook_append would (df needs only the references)
    shard.ctest = [cook_test(h) for h in hyps[start:stop]]
    # compute_cider sets ref_len = log(len(crefs)) and pairs zip(ctest, crefs): all of the corpus's
    # references, rotated so that this shard's come first, give the corpus-wide ref_len while zip stops
    # after the shard's own items.
    shard.crefs = full.crefs[start:] + full.crefs[:start]
    return shard


def _score_shard(bounds: tuple[int, int]) -> list[float]:
    return _shard_scorer(*_corpus, *bounds).compute_cider()


def cider_d(refs: list[str], hyps: list[str], workers: int | None = None) -> tuple[float, list[float]]:
    """pycocoevalcap CIDEr-D (n=4, sigma=6, 0..10) of tokenised, space-joined strings, one reference per
    item, idf over these items: exactly ``Cider().compute_score({i: [refs[i]]}, {i: [hyps[i]]})``, as
    ``(corpus mean, per-item scores)``.

    ``workers``: processes for the per-item scoring; ``None`` uses every core this process may use when
    there are more than :data:`PARALLEL_MIN_PAIRS` pairs and fork is available, else scores in this process.
    """
    global _corpus
    from pycocoevalcap.cider.cider_scorer import CiderScorer

    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    if not refs:
        raise ValueError("nothing to score: no references")
    n = len(refs)
    if workers is None:
        workers = usable_cores() if n > PARALLEL_MIN_PAIRS and _can_fork() else 1
    if workers > 1 and not _can_fork():
        log.warning("CIDEr: no fork start method in this process; scoring %d pairs in one process", n)
        workers = 1

    scorer = CiderScorer(n=4, sigma=6.0)  # Cider()'s defaults
    for ref, hyp in zip(refs, hyps):
        # what Cider.compute_score adds, item by item; the workers cook their own hypotheses
        scorer += (hyp if workers == 1 else None, [ref])
    scorer.compute_doc_freq()
    if workers == 1:
        scores = scorer.compute_cider()
    else:
        n_shards = min(n, workers * SHARDS_PER_WORKER)
        cuts = [n * k // n_shards for k in range(n_shards + 1)]
        _corpus = (scorer, list(hyps))
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
                parts = list(pool.map(_score_shard, pairwise(cuts)))
        finally:
            _corpus = None
        scores = [s for part in parts for s in part]
        log.debug("CIDEr: scored %d pairs in %d shards over %d processes", n, n_shards, workers)
    return float(np.mean(np.array(scores))), [float(s) for s in scores]
