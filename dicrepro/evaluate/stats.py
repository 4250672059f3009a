"""Confidence intervals and significance for per-sample metrics: seeded, so the same scores give the same
interval and p-value on every machine.

- :func:`bootstrap_ci`: percentile bootstrap 95% CI of a mean (resampling samples with replacement).
- :func:`paired_test`: model A vs model B on the same samples: the mean difference, its paired-bootstrap
  95% CI and a two-sided p-value, by approximate randomization (random swaps of A and B within each pair;
  the default) or by the paired bootstrap (Koehn 2004's shifted form).

Samples where a metric does not apply (``None``) are left out, in both members of a pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0


def _clean(values: Sequence[float | None]) -> np.ndarray:
    return np.asarray([float(v) for v in values if v is not None], dtype=float)


def bootstrap_ci(values: Sequence[float | None], *, resamples: int = DEFAULT_RESAMPLES, level: float = 0.95,
                 seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """``{"mean", "low", "high", "n"}``: the mean of ``values`` and its percentile bootstrap CI.

    With fewer than two values the interval is the mean itself (nothing to resample); none gives Nones.
    """
    x = _clean(values)
    if x.size == 0:
        return {"mean": None, "low": None, "high": None, "n": 0}
    mean = float(x.mean())
    if x.size < 2:
        return {"mean": mean, "low": mean, "high": mean, "n": int(x.size)}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(resamples, x.size))
    means = x[idx].mean(axis=1)
    a = (1 - level) / 2
    low, high = np.quantile(means, [a, 1 - a])
    return {"mean": mean, "low": float(low), "high": float(high), "n": int(x.size)}


def paired_test(a: Sequence[float | None], b: Sequence[float | None], *, method: str = "randomization",
                resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Is A's mean different from B's on the same samples? ``{"diff" (mean A - B), "low", "high", "p", "n"}``.

    ``method``: ``"randomization"`` (approximate randomization: each pair's two scores swapped with
    probability 1/2; p = share of shuffles at least as extreme as observed, with the +1 correction) or
    ``"bootstrap"`` (paired bootstrap: p = twice the share of resampled differences on the far side of
    zero after centring). ``low``/``high``: the paired-bootstrap 95% CI of the difference either way.
    """
    if len(a) != len(b):
        raise ValueError(f"paired scores need equal lengths, got {len(a)} and {len(b)}")
    if method not in ("randomization", "bootstrap"):
        raise ValueError(f"method must be 'randomization' or 'bootstrap', got {method!r}")
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    if not pairs:
        return {"diff": None, "low": None, "high": None, "p": None, "n": 0}
    d = np.asarray([x - y for x, y in pairs], dtype=float)
    diff = float(d.mean())
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    low, high = (float(v) for v in np.quantile(boot, [0.025, 0.975]))
    if np.allclose(d, 0):
        p = 1.0
    elif method == "randomization":
        signs = rng.choice([-1.0, 1.0], size=(resamples, d.size))
        perm = np.abs((signs * d).mean(axis=1))
        p = float((np.sum(perm >= abs(diff) - 1e-12) + 1) / (resamples + 1))
    else:
        centred = boot - diff  # the null distribution: differences around zero
        p = float(min(1.0, 2 * np.mean(np.abs(centred) >= abs(diff) - 1e-12)))
    return {"diff": diff, "low": low, "high": high, "p": p, "n": int(d.size)}


def significance_mark(p: float | None, alpha: float = 0.05) -> str:
    """A table mark: '*' when p < alpha (and '**' below alpha / 5), else ''."""
    if p is None:
        return ""
    return "**" if p < alpha / 5 else "*" if p < alpha else ""


def format_ci(ci: dict[str, Any], scale: float = 100.0, digits: int = 1) -> str:
    """'52.3 ± 4.1' (half the CI's width) in percent by default; '-' when there is no mean."""
    if ci.get("mean") is None:
        return "-"
    half = (ci["high"] - ci["low"]) / 2 * scale
    return f"{ci['mean'] * scale:.{digits}f} ± {half:.{digits}f}"


__all__ = ["bootstrap_ci", "paired_test", "significance_mark", "format_ci", "DEFAULT_RESAMPLES", "DEFAULT_SEED"]
