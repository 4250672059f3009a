"""Stage-2 data: the candidate pairs (the user's expert annotations, or the labelled stand-in) and the
training set made from them by the reviewers' decisions.

Two folders of a run: ``data/stage2_candidates`` holds every candidate (what the review widget walks
through, rejected rows included) and ``data/stage2`` the training set (edits applied, rejects removed).
The stand-in's candidates are rendered once and reused while their spec and rendering settings are
unchanged (``stage2_candidates.identity.json``), so opening 02 again in JupyterLab costs seconds.
"""

from __future__ import annotations

import logging
import random

from datasets import Dataset, DatasetDict, Image, load_from_disk

from dicrepro.atomic import matches_json_record, save_dataset_atomic, write_json_atomic, write_text_atomic
from dicrepro.data.augment import document_look
from dicrepro.data.expert import ImportReport, import_annotations, leakage_flags
from dicrepro.data.review import apply_reviews
from dicrepro.data.synth import FEATURES, SynthSpec, synthesize
from dicrepro.diagrams.render import MermaidRenderer
from dicrepro.params import Params
from dicrepro.paths import RunPaths
from dicrepro.text.describe import caption_prompt
from dicrepro.text.han import HAN_CHAR

log = logging.getLogger(__name__)


def standin_spec(params: Params) -> SynthSpec:
    """The stage-2 stand-in: denser ICT diagrams in page context with scan/JPEG artefacts, described in
    expert style (purpose and reasoning). Every row says ``source='standin'``."""
    p = params.stage1
    return SynthSpec(n=params.stage2.n, test_n=params.stage2.test_n, seed=params.seed, domain="ict",
                     diagram_types=tuple(p.diagram_types), languages=dict(p.languages),
                     min_elements=max(p.min_elements, (p.min_elements + p.max_elements) // 2),
                     max_elements=p.max_elements + 4, style="expert", source="standin", id_prefix="s2",
                     augment=document_look, realism=p.realism)


def _language_of(text: str) -> str:
    cjk = len(HAN_CHAR.findall(text))
    return "zh" if cjk > 0.2 * max(1, len(text.replace(" ", ""))) else "en"


def expert_rows_to_dataset(rows: list[dict], *, seed: int, test_n: int) -> DatasetDict:
    """Imported expert rows -> the common dataset columns (no graph/Mermaid: experts give text only)."""
    rng = random.Random(seed)
    order = list(range(len(rows)))
    rng.shuffle(order)
    test_ids = set(order[:test_n])
    out = []
    for i, row in enumerate(rows):
        lang = _language_of(row["text"])
        out.append({
            "id": row["id"], "image": {"bytes": row["image_bytes"], "path": None}, "mermaid": "",
            "diagram_type": row["diagram_type"], "topic": "", "area": "", "language": lang, "graph": "",
            "seed": seed, "source": "expert", "description": row["text"], "view_global": "",
            "view_partial": "", "view_detail": "", "split": "test" if i in test_ids else "train",
            "prompt": caption_prompt(lang, rng), "target": row["text"],
        })
    ds = Dataset.from_list(out, features=FEATURES)
    return DatasetDict({s: ds.filter(lambda x, s=s: x == s, input_columns="split") for s in ("train", "test")})


def _eval_images(paths: RunPaths) -> list[bytes]:
    imgs: list[bytes] = []
    for folder in (paths.stage1_data, paths.stage3_data):
        if folder.exists():
            test = load_from_disk(str(folder))["test"].cast_column("image", Image(decode=False))
            imgs += [x["bytes"] for x in test["image"]]
    return imgs


def import_expert(params: Params, paths: RunPaths) -> tuple[DatasetDict, ImportReport]:
    """The user's annotations as candidates: validated, and near-duplicates of evaluation images kept out."""
    report = import_annotations(params.stage2.annotations)
    # One line per rejected row (file:line: field: reason) and the summary, kept with the run
    write_text_atomic(paths.stage2_candidates.with_name("stage2_import_report.txt"), report.text())
    rows = report.rows
    evals = _eval_images(paths)
    if evals and rows:
        flags = leakage_flags([r["image_bytes"] for r in rows], evals)
        for r, leak in zip(rows, flags):
            if leak:
                log.warning("leakage guard: %s (%s:%s) is near-identical to an evaluation image; kept out "
                            "of training", r["id"], r["file"], r["line"])
        rows = [r for r, leak in zip(rows, flags) if not leak]
    if not rows:
        raise ValueError(f"{params.stage2.annotations}: no valid rows to train on ({report.summary()})")
    dd = expert_rows_to_dataset(rows, seed=params.seed, test_n=min(params.stage2.test_n, len(rows) // 5))
    return dd, report


def standin_identity(params: Params) -> dict:
    """What the stand-in's candidates are made from: its spec and the rendering settings."""
    spec = standin_spec(params)
    fields = {k: v for k, v in spec.__dict__.items() if k != "augment"}
    return {"spec": fields, "augment": getattr(spec.augment, "__name__", None),
            "render": params.render.model_dump(mode="json")}


def build_standin(params: Params, paths: RunPaths) -> DatasetDict:
    """The stand-in's candidates: rendered once, reused while :func:`standin_identity` is unchanged."""
    folder, record = paths.stage2_candidates, paths.stage2_candidates.with_name("stage2_candidates.identity.json")
    identity = standin_identity(params)
    if folder.exists() and matches_json_record(record, identity):
        log.info("stage-2 stand-in: reusing %s (same spec and rendering)", folder)
        return load_from_disk(str(folder))
    log.warning("no expert annotations given: building the STAND-IN stage-2 set (source='standin')")
    r = params.render
    with MermaidRenderer(workers=r.workers, timeout_s=r.timeout_s, width=r.width, scale=r.scale) as renderer:
        dd = synthesize(standin_spec(params), folder, renderer)
    write_json_atomic(record, identity)
    return dd


def make_stage2(params: Params, paths: RunPaths) -> tuple[DatasetDict, ImportReport | None]:
    """Stage-2 pairs: the candidates (expert annotations, or the stand-in) with the reviewers' decisions
    applied to the training split, saved as ``data/stage2``. Returns ``(training DatasetDict, report)``;
    the report is None for the stand-in."""
    report = None
    if params.stage2.annotations is None:
        candidates = build_standin(params, paths)
    else:
        candidates, report = import_expert(params, paths)
        save_dataset_atomic(candidates, paths.stage2_candidates)
    train = candidates["train"]
    if paths.stage2_reviews.exists():
        train = apply_reviews(train, paths.stage2_reviews)
        log.info("applied reviews from %s: %d -> %d training rows", paths.stage2_reviews,
                 len(candidates["train"]), len(train))
    dd = DatasetDict({"train": train, "test": candidates["test"]})
    save_dataset_atomic(dd, paths.stage2_data)
    return dd, report


def load_candidates(paths: RunPaths) -> DatasetDict:
    """The stage-2 candidates this run built (every row, rejected ones included), for review."""
    if not paths.stage2_candidates.exists():
        raise FileNotFoundError(f"no stage-2 candidates in {paths.stage2_candidates}: run the expert step "
                                "(notebook 02 or `dicrepro run PARAMS --only expert`) first")
    return load_from_disk(str(paths.stage2_candidates))
