"""One function per pipeline step: what each notebook calls. Notebooks only call these and show results."""

from __future__ import annotations

import io
import logging
import random
from pathlib import Path

from datasets import Dataset, DatasetDict, Features, Image, Sequence, Value, load_from_disk

from dicrepro.atomic import save_dataset_atomic, write_json_atomic
from dicrepro.data import stage2
from dicrepro.data.augment import document_look_share
from dicrepro.data.synth import SynthSpec, plan_sample, pretrain_spec, stage1_spec, synthesize
from dicrepro.data.vqa import diagram_language, document_type_rows, make_vqa
from dicrepro.data.vqa_paraphrase import format_paraphrase_stats, paraphrase_items
from dicrepro.diagrams.graph import Diagram
from dicrepro.diagrams.knowledge import lexicon
from dicrepro.diagrams.render import MermaidRenderer
from dicrepro.params import Params
from dicrepro.paths import RunPaths, resolve
from dicrepro.report.figures import make_figures as _figures
from dicrepro.report.figures import write_tables
from dicrepro.report.page import build_report
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
    return RunPaths(resolve(params.run_dir))


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

def make_stage2(params: Params):
    """Stage-2 pairs: see :func:`dicrepro.data.stage2.make_stage2` (the user's expert annotations or the
    labelled stand-in, reviewers' decisions applied). Returns ``(DatasetDict, ImportReport | None)``."""
    return stage2.make_stage2(params, run_paths(params))


def _save(dd: DatasetDict, folder: Path) -> None:
    save_dataset_atomic(dd, folder)


# --- stage 3 ------------------------------------------------------------------------------------------

def vqa_image_spec(params: Params) -> SynthSpec:
    p, q = params.stage1, params.stage3
    return SynthSpec(n=q.n_diagrams, test_n=q.test_diagrams, seed=params.seed, domain="ict",
                     diagram_types=tuple(p.diagram_types), languages=dict(p.languages),
                     min_elements=p.min_elements, max_elements=p.max_elements, id_prefix="s3img",
                     realism=p.realism, augment=document_look_share(q.document_share) if q.document_share else None)


def distractor_pool() -> list[str]:
    """Wrong options from the domain, for diagrams too small to supply three of their own."""
    return sorted(x for x in lexicon("ict") if x.isascii() and 3 <= len(x) <= 40)


def make_stage3(params: Params) -> DatasetDict:
    """Stage-3 VQA: objective questions with answer keys computed from each diagram's graph, and open
    questions for the global/partial/detail views; split by diagram (no diagram in both splits)."""

    paths = run_paths(params)
    img_dir = paths.data / "stage3_images"
    with open_renderer(params) as r:
        images = synthesize(vqa_image_spec(params), img_dir, r)
    rng = random.Random(params.seed + 3)
    pool = distractor_pool()
    out = {}
    for split in ("train", "test"):
        ds = images[split]
        diagrams = [(row["id"], Diagram.from_json(row["graph"])) for row in ds.remove_columns("image")]
        # the test set keeps one type question per diagram, in its language: objective scores stay comparable
        items = make_vqa(diagrams, rng, questions_per_diagram=params.stage3.questions_per_diagram,
                         distractor_pool=pool, mermaid_task=params.stage3.mermaid_task,
                         type_question_languages=params.stage3.type_question_languages if split == "train" else ())
        if params.stage3.paraphrase and split == "train":
            # Test questions stay as generated: objective accuracy never depends on an LLM's wording.

            # A question in another language than its diagram's (type_question_languages) stays as generated:
            # the paraphrase check takes the language from the diagram.
            by_diagram = dict(diagrams)
            foreign = {it["id"] for it in items if it["language"] != diagram_language(by_diagram[it["diagram_id"]])}
            reworded, pstats = paraphrase_items([it for it in items if it["id"] not in foreign], by_diagram,
                                                params.describe,
                                                cache_path=paths.data / "stage3_paraphrase_cache.jsonl")
            new = {it["id"]: it for it in reworded}
            items = [it if it["id"] in foreign else new[it["id"]] for it in items]
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
        if params.stage3.document_type_questions and split == "train":
            rows += document_type_rows(rows, params.seed)
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


# --- one sample, end to end (what the notebooks show before the batch runs) -----------------------

SPECS = {"pretrain": pretrain_spec, "stage1": stage1_spec, "stage2": stage2.standin_spec, "stage3": vqa_image_spec}


def one_sample(params: Params, which: str = "stage1", index: int = 0) -> dict:
    """Sample ``index`` of a dataset (``pretrain``, ``stage1``, ``stage2`` stand-in, ``stage3`` images)
    followed from its graph to Mermaid, to mermaid.js pixels, to its description, without building the
    dataset: the same row the batch will hold (same seed, same renderer settings)."""
    from PIL import Image as PILImage

    spec = SPECS[which](params)
    plan = plan_sample(spec, index)
    with open_renderer(params) as r:
        res = r.render(plan["mermaid"], plan["render_config"])
    if res.error is not None or not res.png:
        raise RuntimeError(f"{plan['id']} ({plan['diagram_type']}): mermaid.js could not render it: {res.error}")
    png = res.png if spec.augment is None else spec.augment(res.png, random.Random(plan["_aug_seed"]))
    return {**{k: v for k, v in plan.items() if not k.startswith("_")}, "image": PILImage.open(io.BytesIO(png))}


def vqa_for(params: Params, row: dict, questions: int = 4) -> list[dict]:
    """Stage-3 questions for one sample's diagram (answer keys from its graph), as 03 makes them."""
    return make_vqa([(row["id"], Diagram.from_json(row["graph"]))], random.Random(params.seed + 3),
                    questions_per_diagram=questions, distractor_pool=distractor_pool())


def captions_for(params: Params, row: dict, models: list[str] | None = None) -> dict[str, str]:
    """model name -> its caption of ``row``'s image (``row['prompt']``, decoded as ``eval.num_beams``
    says), for the models of this run that exist (``base``, ``stage1``..``stage3`` by default): the same
    image before and after each stage."""
    from dicrepro.evaluate.predict import generate  # lazy for Unsloth's import order (see build_base)

    paths = run_paths(params)
    names = models or ["base", "stage1", "stage2", "stage3"]
    out = {}
    for name in names:
        folder = Path(params.model.path) if name == "base" and params.model.kind == "local" else paths.model_dir(name)
        if (folder / "config.json").exists():
            out[name] = generate(folder, [row], batch_size=1, max_new_tokens=params.eval.max_new_tokens,
                                 model_params=params.model, progress=False, num_beams=params.eval.num_beams)[0]
    return out


# --- evaluation and figures -----------------------------------------------------------------------------

def evaluate(params: Params):
    """Step 5: see :func:`dicrepro.evaluate.run.evaluate`."""

    from dicrepro.evaluate.run import evaluate as _evaluate  # lazy for Unsloth's import order (see build_base)

    return _evaluate(params)


def make_figures(params: Params) -> list[Path]:
    """Step 6: tables (CSV/Markdown/LaTeX under RUN/results), figures (PNG+PDF in figures_dir) and the
    results page (RUN/report/report.{md,html}), from recorded results only."""
    paths = run_paths(params)
    if not (paths.results / "caption_scores.csv").exists():
        raise FileNotFoundError(f"no recorded results in {paths.results}: run the evaluate step first")
    written = _figures(paths.root, resolve(params.figures_dir)) + write_tables(paths.root)
    return written + list(build_report(paths.root))
