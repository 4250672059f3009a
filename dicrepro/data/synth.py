"""Image-text pair synthesis: sample a diagram graph, write its Mermaid, render it with mermaid.js,
describe it from the graph. Used for stage-1 data, the general-domain pre-training set of the tiny base
and (with expert-style text and document augmentation) the stage-2 stand-in.

The dataset is written in shards, each one atomically; a killed run resumes at the first missing shard,
and because every sample draws from its own seed (derived from the run seed and its index) the resumed
result is byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict, Features, Image, Value, concatenate_datasets, load_from_disk
from dicrepro.progress import tqdm

from dicrepro.atomic import append_jsonl, replace_dir_atomic, save_dataset_atomic, write_json_atomic
from dicrepro.diagrams.graph import Diagram
from dicrepro.diagrams.sample import render_config, sample_diagram, to_mermaid, topics_for
from dicrepro.diagrams.sample_realism import enrich
from dicrepro.outputs import claim_output
from dicrepro.text.describe import caption_prompt, describe

log = logging.getLogger(__name__)

FEATURES = Features({
    "id": Value("string"),
    "image": Image(),
    "mermaid": Value("string"),
    "diagram_type": Value("string"),
    "topic": Value("string"),
    "area": Value("string"),
    "language": Value("string"),
    "graph": Value("string"),
    "seed": Value("int64"),
    "source": Value("string"),
    "description": Value("string"),
    "view_global": Value("string"),
    "view_partial": Value("string"),
    "view_detail": Value("string"),
    "split": Value("string"),
    "prompt": Value("string"),
    "target": Value("string"),
})


@dataclass
class SynthSpec:
    """What to synthesize. ``n`` train samples then ``test_n`` held-out samples (distinct diagrams)."""

    n: int
    test_n: int = 0
    seed: int = 1234
    domain: str = "ict"
    diagram_types: Sequence[str] = ("flowchart", "sequence", "state")
    languages: dict[str, float] = field(default_factory=lambda: {"en": 1.0})
    min_elements: int = 3
    max_elements: int = 12
    style: str = "structural"  # or "expert" (purpose and reasoning, for the stage-2 stand-in)
    source: str = "synthetic"
    id_prefix: str = "s1"
    shard_size: int = 64
    # Seeded image post-processing (realism: page context, scan noise, JPEG); None keeps clean renders.
    augment: Callable[[bytes, random.Random], bytes] | None = None
    # Type weights and the constructs of hand-written diagrams (dicrepro.params.RealismParams); None: plain.
    realism: Any = None


def sample_seed(seed: int, stream: str, index: int) -> int:
    """A per-sample seed independent of every other sample (so shards can be built in any order).

    ``stream`` separates datasets drawn from the same run seed (stage 1, the stand-in, VQA images...).
    """
    digest = hashlib.sha256(f"{seed}:{stream}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _weighted(rng: random.Random, weights: dict[str, float]) -> str:
    keys = sorted(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys], k=1)[0]


@functools.lru_cache(maxsize=256)
def feasible_min_elements(diagram_type: str, domain: str, wanted: int) -> int:
    """``wanted``, lowered to the largest size some topic of the knowledge base can fill for this type
    (class and ER topics hold a handful of entities; asking for more must not stop the run)."""
    lo = wanted
    while lo > 2 and not topics_for(diagram_type, domain, lo):
        lo -= 1
    if lo < wanted:
        log.debug("%s/%s: no topic fills %d elements; using %d", domain, diagram_type, wanted, lo)
    return lo


def plan_sample(spec: SynthSpec, index: int) -> dict:
    """Everything about sample ``index`` except its pixels: graph, Mermaid, texts, split."""
    s = sample_seed(spec.seed, f"{spec.domain}/{spec.id_prefix}", index)
    rng = random.Random(s)
    knobs = spec.realism
    if knobs is not None and knobs.type_weights:
        dtype = _weighted(rng, {t: knobs.type_weights.get(t, knobs.other_types_weight) for t in spec.diagram_types})
    else:
        dtype = rng.choice(list(spec.diagram_types))
    language = _weighted(rng, spec.languages)
    wanted_lo, hi = spec.min_elements, spec.max_elements
    # per-type sizes of docs for stage 1; the stand-in (expert style) keeps its own denser range
    if knobs is not None and dtype in knobs.element_ranges and spec.style == "structural":
        wanted_lo, hi = knobs.element_ranges[dtype]
    lo = feasible_min_elements(dtype, spec.domain, wanted_lo)
    diagram: Diagram = sample_diagram(
        rng, dtype, domain=spec.domain, language=language,
        min_elements=lo, max_elements=max(lo, hi),
    )
    if knobs is not None and knobs.active:  # its own stream: the plain draws above stay as they were
        enrich(random.Random(s ^ 0x7EA115), diagram, knobs, spec.domain)
    views = describe(diagram, rng, style=spec.style)
    prompt = caption_prompt(language, rng)
    return {
        "id": f"{spec.id_prefix}-{index:06d}",
        "mermaid": to_mermaid(diagram),
        "render_config": render_config(diagram),
        "diagram_type": diagram.diagram_type,
        "topic": diagram.topic,
        "area": diagram.area,
        "language": language,
        "graph": diagram.to_json(),
        "seed": s,
        "source": spec.source,
        "description": views["description"],
        "view_global": views["global"],
        "view_partial": views["partial"],
        "view_detail": views["detail"],
        "split": "train" if index < spec.n else "test",
        "prompt": prompt,
        "target": views["description"],
        "_aug_seed": s ^ 0x5EED,
    }


def _rows_to_dataset(rows: list[dict]) -> Dataset:
    # from_list([]) would lose the columns (a shard whose every diagram failed must still load back)
    return Dataset.from_dict({k: [r[k] for r in rows] for k in FEATURES}, features=FEATURES)


def _fixed_fingerprint(ds: Dataset, token: str) -> Dataset:
    # datasets gives from_list() a random fingerprint, which lands in state.json; a content-derived one
    # keeps the saved folder byte-identical across runs with the same params and seed.
    fp = hashlib.sha256(token.encode()).hexdigest()[:16]
    return ds.select(range(len(ds)), new_fingerprint=fp).flatten_indices(new_fingerprint=fp)


def _build_shard(plans: list[dict], renderer, spec: SynthSpec, errors_path: Path) -> list[dict]:
    results = renderer.render_batch([(p["mermaid"], p["render_config"]) for p in plans], progress=False)
    rows = []
    for plan, res in zip(plans, results):
        if res.error is not None or not res.png:
            append_jsonl(errors_path, {"id": plan["id"], "diagram_type": plan["diagram_type"],
                                       "error": res.error or "empty image", "mermaid": plan["mermaid"]})
            log.warning("render failed for %s (%s): %s", plan["id"], plan["diagram_type"], res.error)
            continue
        png = res.png
        if spec.augment is not None:
            png = spec.augment(png, random.Random(plan["_aug_seed"]))
        row = {k: v for k, v in plan.items() if k in FEATURES}
        row["image"] = {"bytes": png, "path": None}
        rows.append(row)
    return rows


def synthesize(spec: SynthSpec, out_dir: str | Path, renderer, *, progress: bool = True,
               overwrite: bool = False) -> DatasetDict:
    """Write ``spec`` as a DatasetDict (train/test) to ``out_dir``; resume from finished shards.

    ``renderer`` is an open :class:`dicrepro.diagrams.render.MermaidRenderer`. Samples whose Mermaid fails to
    render are listed in ``out_dir/../<name>_errors.jsonl`` with the error and skipped; the batch goes on.
    ``out_dir`` is replaced only when it is an earlier dicrepro dataset (or ``overwrite``); a second process
    writing the same ``out_dir`` fails at once (:class:`dicrepro.outputs.OutputError`).
    """
    if spec.n < 0 or spec.test_n < 0:
        raise ValueError(f"synthesize: n and test_n must be >= 0, got n={spec.n}, test_n={spec.test_n}")
    with claim_output(out_dir, "synth", overwrite=overwrite, accept=("dataset",)):
        return _synthesize(spec, Path(out_dir), renderer, progress)


def _synthesize(spec: SynthSpec, out_dir: Path, renderer, progress: bool) -> DatasetDict:
    work = out_dir.with_name(f".{out_dir.name}.shards")
    work.mkdir(parents=True, exist_ok=True)
    errors_path = out_dir.with_name(f"{out_dir.name}_errors.jsonl")
    fields = {k: v for k, v in spec.__dict__.items() if k not in ("augment", "realism")}
    if spec.realism is not None:  # absent when None: a plain run's bytes (fingerprints) stay as they were
        fields["realism"] = spec.realism.model_dump(mode="json")
    spec_token = json.dumps(fields, sort_keys=True, default=str) + f"|augment={getattr(spec.augment, '__name__', None)}"
    meta_path = work / "spec.json"
    if meta_path.exists() and json.loads(meta_path.read_text())["token"] != spec_token:
        log.info("params changed since the unfinished run in %s: starting over", work)
        shutil.rmtree(work)
        work.mkdir(parents=True)
        errors_path.unlink(missing_ok=True)
    write_json_atomic(meta_path, {"token": spec_token})

    total = spec.n + spec.test_n
    n_shards = (total + spec.shard_size - 1) // spec.shard_size
    bar = tqdm(total=total, desc=f"synthesize {out_dir.name}", unit="diagram", disable=not progress)
    for k in range(n_shards):
        shard_dir = work / f"shard-{k:05d}"
        lo, hi = k * spec.shard_size, min(total, (k + 1) * spec.shard_size)
        if shard_dir.exists():
            bar.update(hi - lo)
            continue
        plans = [plan_sample(spec, i) for i in range(lo, hi)]
        rows = _build_shard(plans, renderer, spec, errors_path)
        tmp = work / f".tmp-shard-{k:05d}"
        shutil.rmtree(tmp, ignore_errors=True)
        if rows:
            _rows_to_dataset(rows).save_to_disk(str(tmp))
        else:  # every diagram of the shard failed: datasets cannot load a saved empty table back
            tmp.mkdir(parents=True)
            (tmp / "EMPTY").write_text("every sample of this shard failed to render\n")
        replace_dir_atomic(tmp, shard_dir)
        bar.update(hi - lo)
    bar.close()

    shards = [load_from_disk(str(work / f"shard-{k:05d}")) for k in range(n_shards)
              if not (work / f"shard-{k:05d}" / "EMPTY").exists()]
    full = concatenate_datasets(shards) if shards else _rows_to_dataset([])
    dd = DatasetDict({
        split: _fixed_fingerprint(full.filter(lambda s, sp=split: s == sp, input_columns="split"),
                                  spec_token + split)
        for split in ("train", "test")
    })
    save_dataset_atomic(dd, out_dir, kind="synth")
    shutil.rmtree(work, ignore_errors=True)
    n_err = sum(1 for _ in open(errors_path)) if errors_path.exists() else 0
    log.info("wrote %s: %d train, %d test, %d render failures", out_dir, len(dd["train"]), len(dd["test"]),
             n_err)
    return dd


def stage1_spec(params) -> SynthSpec:
    """The stage-1 spec from validated params."""
    p = params.stage1
    return SynthSpec(n=p.n, test_n=p.test_n, seed=params.seed, domain="ict",
                     diagram_types=tuple(p.diagram_types), languages=dict(p.languages),
                     min_elements=p.min_elements, max_elements=p.max_elements, id_prefix="s1", realism=p.realism)


def pretrain_spec(params) -> SynthSpec:
    """General (non-ICT) diagrams for the tiny base's pre-training: the same types, another world, in
    ``model.tiny.pretrain_languages`` (default: stage 1's)."""
    p = params.stage1
    t = params.model.tiny
    return SynthSpec(n=max(t.pretrain_samples, t.vision_warmup_samples), test_n=0, seed=params.seed,
                     domain="general",
                     diagram_types=tuple(p.diagram_types), languages=dict(t.pretrain_languages or p.languages),
                     min_elements=p.min_elements, max_elements=p.max_elements, source="general",
                     id_prefix="g", realism=p.realism)
