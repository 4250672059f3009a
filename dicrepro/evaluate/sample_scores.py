"""Per-sample scores of every evaluated model, their bootstrap 95% CIs and paired significance tests.

What the evaluate step adds under ``RUN/results/`` (fractions 0-1, like the other CSVs; CIDEr-D
on pycocoevalcap's scale, 0-10):

- ``caption_samples.csv``: one row per (model, caption id): faithfulness against the graph
  (:mod:`dicrepro.evaluate.faithfulness`: label_recall, hallucination_rate, relation_recall, order_tau,
  faithfulness = its one score) and the per-caption METEOR, ROUGE-L and CIDEr-D of the caption metrics;
  ``objective_samples.csv``: one row per (model, question id): correct 0/1.
- ``faithfulness_scores.csv``: per (model, group_by, group) with group_by overall / diagram_type / language:
  n and, for each faithfulness metric, its mean with ``_low``/``_high`` (bootstrap 95% CI).
- ``confidence.csv``: per (model, metric): mean, low, high, n for the headline numbers (BLEU-4, METEOR,
  ROUGE-L, CIDEr-D, objective accuracy, faithfulness parts). BLEU-4 is a corpus statistic, not a mean:
  its CI and p-values come from resampling captions and recomputing corpus BLEU-4 from per-caption n-gram
  counts (:func:`bleu4_tables`; equal to the caption metrics' BLEU-4 on the full set).
- ``significance.csv``: per (metric, model_a, model_b): mean difference A - B, its CI and the paired
  approximate-randomization p-value, for each stage against the base and each stage against the one before.
- with a real test set (``eval.real_test``, from ``dicrepro harvest``): ``real_samples.csv`` and
  ``faithfulness_scores_real.csv``, the faithfulness parts as ``real_*`` (also in confidence/significance).
- with the structure task (``stage3.mermaid_task``): ``structure_samples.csv``, one row per (model, item):
  parsed 0/1 and node/edge/triple F1 strict and relaxed of the model's Mermaid against the diagram's
  (:mod:`dicrepro.evaluate.structure`), and ``structure_scores.csv``: per (model, group_by, group) the
  parse rate and mean F1s with CIs; both also in ``confidence.csv`` and ``significance.csv``.

Captions whose row has no graph (e.g. expert data imported without one) get no faithfulness score. All
resampling is seeded with the run's seed, so a rerun gives the same intervals.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dicrepro.atomic import write_text_atomic
from dicrepro.diagrams.graph import Diagram
from dicrepro.evaluate.answers import is_correct
from dicrepro.evaluate.faithfulness import faithfulness
from dicrepro.evaluate import ngrams
from dicrepro.evaluate.metrics import score_cider, score_meteor, score_rougeL, tokenize
from dicrepro.evaluate.stats import bootstrap_ci, paired_test
from dicrepro.evaluate.structure import LEVELS, structure_from_mermaid

log = logging.getLogger(__name__)

FAITH_METRICS = ("label_recall", "hallucination_rate", "relation_recall", "order_tau", "faithfulness")
CAPTION_ITEM_METRICS = ("meteor", "rougeL", "cider")
REAL_METRICS = tuple(f"real_{m}" for m in FAITH_METRICS)
STRUCT_METRICS = ("parsed", *(f"{lv}_f1_{mode}" for lv in LEVELS for mode in ("strict", "relaxed")))
HEADLINE = (*CAPTION_ITEM_METRICS, "accuracy", *FAITH_METRICS, *STRUCT_METRICS, *REAL_METRICS)
GROUPS = ("overall", "diagram_type", "language")
STAGES = ("base", "stage1", "stage2", "stage3")


def _graph(row: dict) -> Diagram | None:
    g = row.get("graph")
    if not g:
        return None
    try:
        return Diagram.from_json(g) if isinstance(g, str) else Diagram.from_dict(g)
    except (ValueError, KeyError, TypeError):
        return None


def faithfulness_samples(rows: list[dict], preds: dict[str, dict[str, str]], prefix: str = "") -> pd.DataFrame:
    """Per (model, id): the faithfulness parts only (no reference needed), column names with ``prefix``."""
    graphs = {r["id"]: _graph(r) for r in rows}
    out = []
    for model, by_id in preds.items():
        for r in rows:
            d, text = graphs[r["id"]], by_id[r["id"]]
            rec: dict[str, Any] = {"model": model, "id": r["id"], "diagram_type": r["diagram_type"],
                                   "language": r["language"]}
            if d is not None:
                f = faithfulness(d, text) if text.strip() else dict.fromkeys(FAITH_METRICS, 0.0) | {"order_tau": None}
                rec.update({prefix + m: f[m] for m in FAITH_METRICS})
            out.append(rec)
    return pd.DataFrame(out, columns=["model", "id", "diagram_type", "language", *(prefix + m for m in FAITH_METRICS)])


def caption_samples(rows: list[dict], preds: dict[str, dict[str, str]]) -> pd.DataFrame:
    """Per (model, id): faithfulness parts and per-caption METEOR/ROUGE-L/CIDEr-D. ``rows``: the caption
    set's rows (``id``, ``reference``, ``language``, ``diagram_type``, ``graph``)."""
    graphs = {r["id"]: _graph(r) for r in rows}
    out = []
    for model, by_id in preds.items():
        refs = [r["reference"] for r in rows]
        hyps = [by_id[r["id"]] for r in rows]
        langs = [r["language"] for r in rows]
        items = {name: fn(refs, hyps, langs)[1] for name, fn in
                 (("meteor", score_meteor), ("rougeL", score_rougeL), ("cider", score_cider))}
        for k, r in enumerate(rows):
            rec: dict[str, Any] = {"model": model, "id": r["id"], "diagram_type": r["diagram_type"],
                                   "language": r["language"], **{m: items[m][k] for m in items}}
            d, text = graphs[r["id"]], hyps[k]
            if d is not None:
                if text.strip():
                    f = faithfulness(d, text)
                    rec.update({m: f[m] for m in FAITH_METRICS[:-1]}, faithfulness=f["faithfulness"])
                else:  # an empty caption says nothing right: zero, not "not applicable"
                    rec.update(label_recall=0.0, hallucination_rate=0.0, relation_recall=0.0, order_tau=None,
                               faithfulness=0.0)
            out.append(rec)
    df = pd.DataFrame(out, columns=None if out else ["model", "id", "diagram_type", "language",
                                                     *CAPTION_ITEM_METRICS, *FAITH_METRICS])
    for m in FAITH_METRICS:
        if m not in df:
            df[m] = None
    return df


def objective_samples(items: list[dict], preds: dict[str, dict[str, str]]) -> pd.DataFrame:
    """Per (model, question id): ``accuracy`` 1.0 when the answer is right (unparsed counts as wrong)."""
    rows = [{"model": model, "id": it["id"], "accuracy": float(is_correct(it, by_id[it["id"]])[0])}
            for model, by_id in preds.items() for it in items]
    return pd.DataFrame(rows, columns=["model", "id", "accuracy"])


def structure_samples(items: list[dict], preds: dict[str, dict[str, str]], **renderer_kw) -> pd.DataFrame:
    """Per (model, item) of the structure task: parsed and the F1s of the model's Mermaid against the
    item's target (the diagram's own Mermaid), all parsed in one browser batch."""
    keys = [(model, it) for model, by_id in preds.items() for it in items]
    pairs = [(it["target"], preds[model][it["id"]]) for model, it in keys]
    scores = structure_from_mermaid(pairs, progress=False, **renderer_kw) if pairs else []
    rows = []
    for (model, it), sc in zip(keys, scores):
        rec: dict[str, Any] = {"model": model, "id": it["id"], "diagram_type": it["diagram_type"],
                               "language": it["language"]}
        if "parsed" not in sc:  # the reference itself did not parse: a bug in our writer, not the model's
            log.warning("structure item %s: %s", it["id"], sc.get("error"))
            continue
        rec["parsed"] = float(sc["parsed"])
        for lv in LEVELS:
            for mode in ("strict", "relaxed"):
                rec[f"{lv}_f1_{mode}"] = sc[f"{lv}_f1"][mode]
        rows.append(rec)
    return pd.DataFrame(rows, columns=["model", "id", "diagram_type", "language", *STRUCT_METRICS])


def _values(df: pd.DataFrame, metric: str) -> list[float | None]:
    return [None if pd.isna(v) else float(v) for v in df[metric]] if metric in df else []


def group_cis(samples: pd.DataFrame, metrics: tuple[str, ...], seed: int) -> pd.DataFrame:
    """Per (model, group_by, group): n and each metric's mean, ``_low`` and ``_high`` (bootstrap 95% CI)."""
    rows = []
    for model, by_model in samples.groupby("model", sort=False):
        for group_by in GROUPS:
            parts = [("all", by_model)] if group_by == "overall" else list(by_model.groupby(group_by))
            for g, sel in parts:
                rec: dict[str, Any] = {"model": model, "group_by": group_by, "group": g, "n": len(sel)}
                for m in metrics:
                    ci = bootstrap_ci(_values(sel, m), seed=seed)
                    rec.update({m: ci["mean"], f"{m}_low": ci["low"], f"{m}_high": ci["high"]})
                rows.append(rec)
    cols = ["model", "group_by", "group", "n", *(f"{m}{x}" for m in metrics for x in ("", "_low", "_high"))]
    return pd.DataFrame(rows, columns=cols)


def comparison_pairs(models: list[str]) -> list[tuple[str, str]]:
    """(A, B) pairs to test: every stage against base, and each stage against the stage before it."""
    present = [m for m in STAGES if m in models]
    pairs = [(m, "base") for m in present if m != "base" and "base" in present]
    pairs += [(b, a) for a, b in zip(present, present[1:]) if a != "base"]
    return list(dict.fromkeys(pairs))


def headline_cis(samples: dict[str, pd.DataFrame], seed: int) -> pd.DataFrame:
    """Per (model, metric): mean, low, high, n over the whole set."""
    rows = []
    for df in samples.values():
        metrics = [m for m in HEADLINE if m in df]
        for model, sel in df.groupby("model", sort=False):
            for m in metrics:
                rows.append({"model": model, "metric": m, **bootstrap_ci(_values(sel, m), seed=seed)})
    return pd.DataFrame(rows, columns=["model", "metric", "mean", "low", "high", "n"])


def significance(samples: dict[str, pd.DataFrame], models: list[str], seed: int) -> pd.DataFrame:
    """Paired tests (approximate randomization) of every headline metric for :func:`comparison_pairs`."""
    rows = []
    for df in samples.values():
        metrics = [m for m in HEADLINE if m in df]
        wide = {model: sel.set_index("id") for model, sel in df.groupby("model", sort=False)}
        for a, b in comparison_pairs(models):
            if a not in wide or b not in wide:
                continue
            ids = [i for i in wide[a].index if i in wide[b].index]
            for m in metrics:
                va, vb = _values(wide[a].loc[ids], m), _values(wide[b].loc[ids], m)
                rows.append({"metric": m, "model_a": a, "model_b": b, **paired_test(va, vb, seed=seed)})
    return pd.DataFrame(rows, columns=["metric", "model_a", "model_b", "diff", "low", "high", "p", "n"])


def bleu4_stats(refs: list[str], hyps: list[str], langs: list[str]) -> np.ndarray:
    """Per caption, what corpus BLEU-4 sums (items x 10): clipped n-gram matches k=1..4, n-gram totals
    (at least 1, as nltk), hypothesis and reference length. Tokens as :mod:`dicrepro.evaluate.metrics`."""
    rt = [tokenize(r, lg) for r, lg in zip(refs, langs)]
    pt = [tokenize(h, lg) for h, lg in zip(hyps, langs)]
    c = ngrams.count(rt, pt, 4)
    cols = [np.asarray(c.hyp[k].minimum(c.ref[k]).sum(axis=1)).ravel() for k in range(4)]
    cols += [np.maximum(1.0, np.asarray(c.hyp[k].sum(axis=1)).ravel()) for k in range(4)]
    cols += [c.hyp_len.astype(float), c.ref_len.astype(float)]
    return np.stack(cols, axis=1).astype(float)


def bleu4_of_sums(sums: np.ndarray) -> np.ndarray:
    """Corpus BLEU-4 (nltk, method1 smoothing) of each row of summed :func:`bleu4_stats`."""
    sums = np.atleast_2d(sums)
    num, den, hl, rl = sums[:, :4], sums[:, 4:8], sums[:, 8], sums[:, 9]
    with np.errstate(divide="ignore", invalid="ignore"):
        bp = np.where(hl <= 0, 0.0, np.where(hl > rl, 1.0, np.exp(1 - rl / np.where(hl > 0, hl, 1))))
        logp = np.log(np.where(num > 0, num, 0.1) / den).mean(axis=1)
    return np.where(num[:, 0] == 0, 0.0, bp * np.exp(logp))


def _resampled_sums(stats: list[np.ndarray], seed: int, resamples: int = 1000, chunk: int = 100):
    """The same bootstrap resamples of items applied to each stats matrix: yields lists of (chunk x 10) sums."""
    rng = np.random.default_rng(seed)
    n = stats[0].shape[0]
    for start in range(0, resamples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, resamples - start), n))
        weights = np.stack([np.bincount(row, minlength=n) for row in idx]).astype(float)
        yield [weights @ s for s in stats]


def bleu4_tables(rows: list[dict], preds: dict[str, dict[str, str]], models: list[str], seed: int):
    """Corpus BLEU-4 with a bootstrap 95% CI per model (resampling captions and recomputing the corpus
    score) and paired-bootstrap p-values for :func:`comparison_pairs`: (confidence rows, significance rows)."""
    if not rows or not preds:
        return [], []
    refs, langs = [r["reference"] for r in rows], [r["language"] for r in rows]
    stats = {m: bleu4_stats(refs, [by_id[r["id"]] for r in rows], langs) for m, by_id in preds.items()}
    names = list(stats)
    boot = {m: [] for m in names}
    for sums in _resampled_sums([stats[m] for m in names], seed):
        for m, s in zip(names, sums):
            boot[m].append(bleu4_of_sums(s))
    boot = {m: np.concatenate(v) for m, v in boot.items()}
    point = {m: float(bleu4_of_sums(stats[m].sum(axis=0))[0]) for m in names}
    conf = [{"model": m, "metric": "bleu4", "mean": point[m], "low": float(np.quantile(boot[m], 0.025)),
             "high": float(np.quantile(boot[m], 0.975)), "n": len(rows)} for m in names]
    sig = []
    for a, b in comparison_pairs(models):
        if a in boot and b in boot:
            diff, d = point[a] - point[b], boot[a] - boot[b]
            far = np.mean(np.abs(d - diff) >= abs(diff) - 1e-12)  # centred: the null around zero
            p = 1.0 if np.allclose(d, 0) and diff == 0 else float(min(1.0, 2 * far))
            sig.append({"metric": "bleu4", "model_a": a, "model_b": b, "diff": diff,
                        "low": float(np.quantile(d, 0.025)), "high": float(np.quantile(d, 0.975)), "p": p,
                        "n": len(rows)})
    return conf, sig


def write_sample_scores(results: Path, cap_rows: list[dict], cap_preds: dict[str, dict[str, str]],
                        obj_items: list[dict], obj_preds: dict[str, dict[str, str]], seed: int,
                        structure_items: list[dict] | None = None,
                        structure_preds: dict[str, dict[str, str]] | None = None,
                        real_rows: list[dict] | None = None, real_preds: dict[str, dict[str, str]] | None = None,
                        **renderer_kw) -> dict[str, Path]:
    """Compute and write the files listed in the module doc; returns name -> path. ``renderer_kw`` go to
    the browser that parses the structure task's Mermaid (e.g. ``workers``)."""
    cap = caption_samples(cap_rows, cap_preds)
    obj = objective_samples(obj_items, obj_preds)
    samples = {"captions": cap, "objective": obj}
    models = list(dict.fromkeys([*cap_preds, *obj_preds]))
    out = {
        "caption_samples": (cap, None), "objective_samples": (obj, None),
        "faithfulness_scores": (group_cis(cap, FAITH_METRICS, seed), None),
    }
    for stale in ("structure_samples", "structure_scores", "real_samples", "faithfulness_scores_real"):
        (results / f"{stale}.csv").unlink(missing_ok=True)  # no structure scores from an earlier run
    if structure_items and structure_preds:
        st = structure_samples(structure_items, structure_preds, **renderer_kw)
        samples["structure"] = st
        out["structure_samples"] = (st, None)
        out["structure_scores"] = (group_cis(st, STRUCT_METRICS, seed), None)
    if real_rows and real_preds:  # the harvested real test set: faithfulness against its parsed graphs
        real = faithfulness_samples(real_rows, real_preds, prefix="real_")
        samples["real"] = real
        out["real_samples"] = (real, None)
        out["faithfulness_scores_real"] = (group_cis(real, REAL_METRICS, seed), None)
    bconf, bsig = bleu4_tables(cap_rows, cap_preds, models, seed)
    conf = headline_cis(samples, seed)
    sig = significance(samples, models, seed)
    out["confidence"] = (pd.concat([pd.DataFrame(bconf, columns=conf.columns), conf]) if bconf else conf, None)
    out["significance"] = (pd.concat([pd.DataFrame(bsig, columns=sig.columns), sig]) if bsig else sig, None)
    paths = {}
    for name, (df, _) in out.items():
        paths[name] = results / f"{name}.csv"
        write_text_atomic(paths[name], df.to_csv(index=False, float_format="%.6f"))
    n_graph = int(cap["faithfulness"].notna().sum()) if len(cap) else 0
    log.info("per-sample scores: %d captions (%d with a graph), %d questions; CIs and tests in %s",
             len(cap), n_graph, len(obj), results)
    return paths


__all__ = ["bleu4_stats", "bleu4_of_sums", "bleu4_tables", "caption_samples", "faithfulness_samples", "objective_samples",
           "structure_samples", "group_cis", "headline_cis", "significance",
           "comparison_pairs", "write_sample_scores", "FAITH_METRICS", "HEADLINE"]
