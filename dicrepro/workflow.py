"""One function per pipeline step: what each notebook calls. Notebooks only call these and show results."""

from __future__ import annotations

import io
import logging
import random
from pathlib import Path

from datasets import Dataset, DatasetDict, Features, Image, Sequence, Value, load_from_disk

from dicrepro.atomic import save_dataset_atomic, write_json_atomic
from dicrepro.data.augment import document_look
from dicrepro.data.expert import import_annotations, leakage_flags
from dicrepro.data.review import apply_reviews
from dicrepro.data.synth import FEATURES, SynthSpec, pretrain_spec, stage1_spec, synthesize
from dicrepro.data.vqa import make_vqa
from dicrepro.data.vqa_paraphrase import format_paraphrase_stats, paraphrase_items
from dicrepro.diagrams.graph import Diagram
from dicrepro.diagrams.knowledge import lexicon
from dicrepro.diagrams.render import MermaidRenderer
from dicrepro.params import Params
from dicrepro.paths import RunPaths
from dicrepro.report.figures import make_figures as _figures
from dicrepro.report.figures import write_tables
from dicrepro.text.describe import caption_prompt
from dicrepro.text.rewrite import format_stats, rewrite_dataset

log = logging.getLogger(__name__)

VQA_FEATURES = Features({
    "id": Value("string"), "diagram_id": Value("string"), "image": Image(),
    "question": Value("string"), "options": Sequence(Value("string")), "answer": Value("string"),
    "answer_key": Value("string"), "kind": Value("string"), "qtype": Value("string"), "dimension": Value("string"),
    "objective": Value("bool"), "split": Value("string"), "diagram_type": Value("string"),
    "language": Value("string"), "graph": Value("string"), "prompt": Value("string"),
    "target": Value("string"),
})


def run_paths(params: Params) -> RunPaths:
    return RunPaths(Path(params.run_dir))


def open_renderer(params: Params):
    """A running mermaid.js renderer configured from params (use as a context manager)."""

    r = params.render
    return MermaidRenderer(workers=r.workers, timeout_s=r.timeout_s, width=r.width, scale=r.scale)


# --- base model -------------------------------------------------------------------------------------

def build_base(params: Params) -> Path:
    """The zero-shot base: a local model path (paper profile) or the embedded tiny stand-in, built here
    and pre-trained on general (non-ICT) diagrams so it starts as a general model lacking ICT knowledge."""
    paths = run_paths(params)
    if params.model.kind == "local":
        log.info("base model: local weights at %s (nothing to build)", params.model.path)
        return Path(params.model.path)

    with open_renderer(params) as r:
        pre = synthesize(pretrain_spec(params), paths.pretrain_data, r)
    # A real base model's tokenizer was trained on web-scale text that includes ICT words; training ours
    # on general texts plus the domain lexicon mimics that without teaching any ICT descriptions.
    corpus = list(pre["train"]["target"]) + list(pre["train"]["prompt"]) + sorted(lexicon())
    for lang in ("en", "zh"):
        corpus.append(caption_prompt(lang))
    # Imported here, not at the top: 04_sft imports this module before preload_unsloth(), and Unsloth must
    # be imported before transformers/peft (which these modules pull in).
    from dicrepro.train.tiny_model import build_tiny_base
    from dicrepro.train.train_log import dataset_hash

    return build_tiny_base(params, pre, paths.base_model, tokenizer_corpus=corpus,
                           data_identity=dataset_hash(paths.pretrain_data))


# --- stage 1 ------------------------------------------------------------------------------------------

def make_stage1(params: Params) -> DatasetDict:
    """Stage-1 pairs: ICT diagrams in Mermaid, rendered by mermaid.js, described from their graphs by the
    verbalizer; with ``describe.backend`` openai/hf an LLM then rewrites every description through the
    faithfulness gate (stats in ``RUN/data/stage1_describe.json``)."""
    folder = run_paths(params).stage1_data
    with open_renderer(params) as r:
        dd = synthesize(stage1_spec(params), folder, r)
    if params.describe.backend != "verbalizer":
        log.info(format_stats(rewrite_dataset(folder, params)))
        dd = load_from_disk(str(folder))
    return dd


# --- stage 2 ------------------------------------------------------------------------------------------

def standin_spec(params: Params) -> SynthSpec:
    """The stage-2 stand-in: denser ICT diagrams in page context with scan/JPEG artefacts, described in
    expert style (purpose and reasoning). Every row says ``source='standin'``."""
    p = params.stage1
    return SynthSpec(n=params.stage2.n, test_n=params.stage2.test_n, seed=params.seed, domain="ict",
                     diagram_types=tuple(p.diagram_types), languages=dict(p.languages),
                     min_elements=max(p.min_elements, (p.min_elements + p.max_elements) // 2),
                     max_elements=p.max_elements + 4, style="expert", source="standin", id_prefix="s2",
                     augment=document_look)


def _language_of(text: str) -> str:
    cjk = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")
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


def _eval_images(params: Params) -> list[bytes]:
    paths = run_paths(params)
    imgs: list[bytes] = []
    for folder in (paths.stage1_data, paths.stage3_data):
        if folder.exists():
            test = load_from_disk(str(folder))["test"].cast_column("image", Image(decode=False))
            imgs += [x["bytes"] for x in test["image"]]
    return imgs


def make_stage2(params: Params):
    """Stage-2 pairs: the user's expert annotations (validated, leakage-guarded) or the labelled
    stand-in, with the reviewers' decisions (02_expert_pairs' widget) applied to the training split.
    Returns ``(DatasetDict, ImportReport | None)``."""
    paths = run_paths(params)
    report = None
    if params.stage2.annotations is None:
        log.warning("no expert annotations given: building the STAND-IN stage-2 set (source='standin')")
        with open_renderer(params) as r:
            dd = synthesize(standin_spec(params), paths.stage2_data, r)
    else:
        dd, report = _import_expert(params, paths)
    if paths.stage2_reviews.exists():
        before = len(dd["train"])
        dd = DatasetDict({"train": apply_reviews(dd["train"], paths.stage2_reviews), "test": dd["test"]})
        log.info("applied reviews from %s: %d -> %d training rows", paths.stage2_reviews, before,
                 len(dd["train"]))
        _save(dd, paths.stage2_data)
    return dd, report


def _save(dd: DatasetDict, folder: Path) -> None:
    save_dataset_atomic(dd, folder)


def _import_expert(params: Params, paths: RunPaths):
    report = import_annotations(params.stage2.annotations)
    rows = report.rows
    evals = _eval_images(params)
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
    _save(dd, paths.stage2_data)
    return dd, report


# --- stage 3 ------------------------------------------------------------------------------------------

def vqa_image_spec(params: Params) -> SynthSpec:
    p, q = params.stage1, params.stage3
    return SynthSpec(n=q.n_diagrams, test_n=q.test_diagrams, seed=params.seed, domain="ict",
                     diagram_types=tuple(p.diagram_types), languages=dict(p.languages),
                     min_elements=p.min_elements, max_elements=p.max_elements, id_prefix="s3img")


def make_stage3(params: Params) -> DatasetDict:
    """Stage-3 VQA: objective questions with answer keys computed from each diagram's graph, and open
    questions for the global/partial/detail views; split by diagram (no diagram in both splits)."""

    paths = run_paths(params)
    img_dir = paths.data / "stage3_images"
    with open_renderer(params) as r:
        images = synthesize(vqa_image_spec(params), img_dir, r)
    rng = random.Random(params.seed + 3)
    # Distractors from the domain for diagrams too small to supply three wrong options themselves.

    pool = sorted(x for x in lexicon("ict") if x.isascii() and 3 <= len(x) <= 40)
    out = {}
    for split in ("train", "test"):
        ds = images[split]
        diagrams = [(row["id"], Diagram.from_json(row["graph"])) for row in ds.remove_columns("image")]
        items = make_vqa(diagrams, rng, questions_per_diagram=params.stage3.questions_per_diagram,
                         distractor_pool=pool)
        if params.stage3.paraphrase and split == "train":
            # Test questions stay as generated: objective accuracy never depends on an LLM's wording.

            items, pstats = paraphrase_items(items, dict(diagrams), params.describe,
                                             cache_path=paths.data / "stage3_paraphrase_cache.jsonl")
            write_json_atomic(paths.data / "stage3_paraphrase.json", pstats)
            log.info(format_paraphrase_stats(pstats))
        by_id = {row_id: i for i, (row_id, _) in enumerate(diagrams)}
        img_col = ds.cast_column("image", Image(decode=False))["image"]
        graphs = ds["graph"]
        rows = []
        for it in items:
            i = by_id[it["diagram_id"]]
            rows.append({**{k: it.get(k) for k in VQA_FEATURES}, "image": img_col[i], "split": split,
                         "graph": graphs[i]})
        out[split] = Dataset.from_list(rows, features=VQA_FEATURES)
    dd = DatasetDict(out)
    _save(dd, paths.stage3_data)
    return dd


def image_of(row: dict):
    """A PIL image from a dataset row (decoded or raw bytes)."""
    from PIL import Image

    img = row["image"]
    if isinstance(img, dict):
        return Image.open(io.BytesIO(img["bytes"]))
    return img


# --- evaluation and figures -----------------------------------------------------------------------------

def evaluate(params: Params):
    """Step 5: see :func:`dicrepro.evaluate.run.evaluate`."""

    from dicrepro.evaluate.run import evaluate as _evaluate  # lazy for Unsloth's import order (see build_base)

    return _evaluate(params)


def make_figures(params: Params) -> list[Path]:
    """Step 6: tables (CSV/Markdown/LaTeX under RUN/results) and figures (PNG+PDF in figures_dir), from
    recorded results only."""

    paths = run_paths(params)
    if not (paths.results / "caption_scores.csv").exists():
        raise FileNotFoundError(f"no recorded results in {paths.results}: run the evaluate step first")
    return _figures(paths.root, Path(params.figures_dir)) + write_tables(paths.root)
