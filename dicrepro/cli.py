"""The ``dicrepro`` command. Every subcommand has ``--help``; the library logs, the CLI prints results."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

DEFAULT_PARAMS = "params/tiny.yaml"

_EPILOG = """\
pipeline steps (in order): base, synth, expert, vqa, sft1, sft2, sft3, evaluate, figures

examples:
  dicrepro run                               # whole pipeline on params/tiny.yaml
  dicrepro run params/paper.yaml --from sft1 # resume a run from stage-1 training
  dicrepro render diagrams/*.mmd --out png/  # render your own Mermaid files
  dicrepro synth --n 100 --out data/s1       # a stage-1 dataset without the notebooks
  dicrepro augment data/s1 --out data/s1aug  # + scanned/JPEG/page-context variants
  dicrepro metrics --pred pred.jsonl --ref ref.jsonl
  dicrepro faithfulness --mermaid d.mmd --caption c.txt  # caption vs the diagram's graph
  dicrepro structure --reference ref.mmd --prediction pred.mmd
  dicrepro caption docs/ --model runs/tiny/models/stage3 --out captions.jsonl
"""


def _params_file(arg: str) -> str:
    """A params path typed in a shell: from the working directory when it is there, else (like
    ``params/tiny.yaml`` typed anywhere) from the project root, which load_params does."""
    p = Path(arg).expanduser()
    return str(p.resolve()) if p.exists() else arg


def _whole_number(minimum: int):
    """argparse type: a whole number >= ``minimum`` (``--n 0`` asks for nothing and is a typo)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if v < minimum:
            need = f"at least {minimum}" if minimum else "0 or more"
            raise argparse.ArgumentTypeError(f"must be {need}, got {v}")
        return v
    return parse


_positive_int, _count = _whole_number(1), _whole_number(0)


def _seconds(text: str) -> float:
    """argparse type: a finite number of seconds > 0 (``nan`` and ``inf`` would never time out)."""
    import math

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text}")
    return v


def _cmd_run(a: argparse.Namespace) -> int:
    from dicrepro.pipeline import StepFailed, run_pipeline

    try:
        params = run_pipeline(a.params, only=a.only, start=a.start, progress=not a.quiet, force=a.force)
    except StepFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"done: run folder {params.run_dir}, figures in {params.figures_dir}")
    return 0


def _cmd_render(a: argparse.Namespace) -> int:
    from dicrepro.diagrams.render import render_files
    from dicrepro.outputs import OutputError, claim_output, output_kind, write_marker

    out = Path(a.out)
    # Render adds PNGs to a folder; it never replaces a PNG it did not write itself (--overwrite does).
    with claim_output(out, "render", allow_files=True, overwrite=a.overwrite):
        if out.is_dir() and not a.overwrite and output_kind(out) != "render":
            clash = sorted({Path(f).stem for f in a.files if (out / f"{Path(f).stem}.png").exists()})
            if clash:
                more = f" (and {len(clash) - 1} more)" if len(clash) > 1 else ""
                raise OutputError(f"--out {out}: {clash[0]}.png{more} exists and was not written by dicrepro "
                                  "render; choose another --out or pass --overwrite")
        if not out.exists() or not any(out.iterdir()):
            out.mkdir(parents=True, exist_ok=True)
            write_marker(out, "render")
        summary = render_files([Path(p) for p in a.files], out, workers=a.workers, timeout_s=a.timeout)
    print(summary["summary"])
    for fail in summary["failures"]:
        print(f"  FAILED {fail['path']}: {fail['error']}", file=sys.stderr)
    return 1 if summary["failures"] else 0


def _cmd_synth(a: argparse.Namespace) -> int:
    from dataclasses import replace

    from dicrepro.data.synth import stage1_spec, synthesize
    from dicrepro.diagrams.render import MermaidRenderer
    from dicrepro.outputs import check_output
    from dicrepro.params import load_params

    params = load_params(a.params, need_model=False)  # synthesis uses no model
    spec = replace(stage1_spec(params), n=a.n, test_n=a.test_n,
                   seed=a.seed if a.seed is not None else params.seed)
    check_output(a.out, ("synth", "dataset"), overwrite=a.overwrite)  # before the browser starts
    with MermaidRenderer(workers=params.render.workers, timeout_s=params.render.timeout_s,
                         width=params.render.width, scale=params.render.scale) as r:
        dd = synthesize(spec, a.out, r, overwrite=a.overwrite)
    print(f"wrote {a.out}: {len(dd['train'])} train, {len(dd['test'])} test rows")
    return 0


def _cmd_augment(a: argparse.Namespace) -> int:
    from dicrepro.data.augment_dataset import augment_main

    print(augment_main(a.src, a.out, seed=a.seed, kinds=a.kinds, copies=a.copies, overwrite=a.overwrite))
    return 0


def _cmd_describe(a: argparse.Namespace) -> int:
    from dicrepro.text.rewrite import describe_main, format_stats

    print(format_stats(describe_main(a.dataset, backend=a.backend, params_path=a.params)))
    return 0


def _cmd_expert(a: argparse.Namespace) -> int:
    from dicrepro.atomic import save_dataset_atomic, write_text_atomic
    from dicrepro.data.expert import import_annotations
    from dicrepro.data.stage2 import expert_rows_to_dataset
    from dicrepro.outputs import check_output, claim_output

    check_output(a.out, ("expert",), overwrite=a.overwrite)  # before reading a big import
    report = import_annotations(a.annotations)
    for problem in report.problems:
        print(problem)
    if not report.rows:
        print(f"error: {a.annotations}: no row could be imported ({report.summary()}); nothing written",
              file=sys.stderr)
        return 2
    test_n = min(a.test_n, len(report.rows) // 5)
    dd = expert_rows_to_dataset(report.rows, seed=a.seed, test_n=test_n)
    with claim_output(a.out, "expert", overwrite=a.overwrite):
        save_dataset_atomic(dd, a.out, kind="expert")
        write_text_atomic(Path(a.out) / "import_report.txt", report.text())
    print(f"{report.summary()}; wrote {a.out}: {len(dd['train'])} train, {len(dd['test'])} test rows "
          f"(report in {Path(a.out) / 'import_report.txt'})")
    return 0


def _cmd_metrics(a: argparse.Namespace) -> int:
    from dicrepro.evaluate.metrics import metrics_from_files

    print(json.dumps(metrics_from_files(a.pred, a.ref), indent=2, sort_keys=True))
    return 0


def _cmd_figures(a: argparse.Namespace) -> int:
    from dicrepro.params import load_params
    from dicrepro.workflow import make_figures

    params = load_params(a.params, need_model=False)
    paths = make_figures(params)
    print(f"wrote {len(paths)} files to {params.figures_dir}")
    return 0


def _cmd_check(a: argparse.Namespace) -> int:
    from dicrepro.params import load_params

    p = load_params(a.params)
    from dicrepro.train.model_folder import check_params_models

    for what, folder in check_params_models(p):  # config, safetensors weights (no pickle), processor
        print(f"{what}: {folder}: loadable model folder")
    print(f"{a.params}: valid (name={p.name}, seed={p.seed}, run_dir={p.run_dir})")
    return 0


def _cmd_caption(a: argparse.Namespace) -> int:
    from dicrepro.caption.run import caption_inputs

    model_params = None
    if a.params:
        from dicrepro.params import load_params

        model_params = load_params(a.params).model
    report = caption_inputs(a.inputs, a.model, a.out, model_params=model_params, batch_size=a.batch_size,
                            max_new_tokens=a.max_new_tokens, limit=a.limit, language=a.language,
                            prompt=a.prompt, backend=a.backend, fmt=a.format, num_beams=a.num_beams)
    for problem in report.problems:
        print(f"  SKIPPED {problem}", file=sys.stderr)
    print(report.summary())
    if a.format == "md":
        print(f"also wrote {Path(a.out).with_suffix('.md')}")
    print(f"next: load {a.out} into your RAG index (rows have page_content + metadata)")
    return 0 if report.captioned or report.skipped or not report.problems else 2


def _cmd_status(a: argparse.Namespace) -> int:
    from dicrepro.params import load_params
    from dicrepro.paths import resolve
    from dicrepro.steps import format_status

    print(format_status(load_params(resolve(a.params), need_model=False), a.params))
    return 0


def _cmd_report(a: argparse.Namespace) -> int:
    from dicrepro.report.page import build_report

    md, page = build_report(a.run_dir, a.out)
    print(f"wrote {md} and {page}")
    print(f"next: open {page} in a browser")
    return 0


def _cmd_harvest(a: argparse.Namespace) -> int:
    from dicrepro.data.harvest import harvest
    from dicrepro.diagrams.render import MermaidRenderer
    from dicrepro.outputs import check_output

    check_output(a.out, ("harvest", "dataset"), overwrite=a.overwrite)  # before the browser starts
    with MermaidRenderer(workers=a.workers, timeout_s=a.timeout, progress=False) as r:
        report = harvest(a.paths, a.out, split=a.split, renderer=r, overwrite=a.overwrite)
    print(report.text())
    print(f"wrote {a.out} (split {a.split}); failures also in {Path(a.out).name}_failures.jsonl beside it")
    return 0


def _add_harvest(sub) -> None:
    p = sub.add_parser("harvest", help="Mermaid blocks of your docs (Markdown, MDX, RST, AsciiDoc, .mmd) as a dataset",
                       description="Walks PATHs for Mermaid blocks, keeps each that mermaid.js parses and draws "
                                   "(securityLevel strict, no network), drops duplicates, and writes a "
                                   "stage-1-shaped DatasetDict with source_file/line/repo/commit/license "
                                   "columns. A failing block is listed as file:line: mermaid's message.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders (a git checkout or any folder)")
    p.add_argument("--out", required=True, help="output dataset folder")
    p.add_argument("--split", choices=("test", "train"), default="test",
                   help="the split every row goes to (default test: a held-out real test set)")
    p.add_argument("--workers", type=_positive_int, default=1, help="browser pages in parallel (default 1)")
    p.add_argument("--timeout", type=_seconds, default=20.0, help="seconds per diagram (default 20)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out even if it is not an earlier dicrepro dataset")
    p.set_defaults(func=_cmd_harvest)


def _cmd_faithfulness(a: argparse.Namespace) -> int:
    from dicrepro.evaluate.graph_inputs import faithfulness_batch, faithfulness_files

    if a.jsonl:
        if a.mermaid or a.caption:
            raise ValueError("give either --jsonl or --mermaid with --caption, not both")
        out = faithfulness_batch(a.jsonl)
        for b in out["bad_rows"]:
            print(f"  BAD {b['error']}", file=sys.stderr)
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0 if out["summary"]["scored"] else 2
    if not (a.mermaid and a.caption):
        raise ValueError("give --mermaid FILE.mmd and --caption FILE.txt (or --jsonl FILE)")
    print(json.dumps(faithfulness_files(a.mermaid, a.caption), ensure_ascii=False, indent=2))
    return 0


def _cmd_structure(a: argparse.Namespace) -> int:
    from dicrepro.evaluate.graph_inputs import structure_batch, structure_files

    if a.jsonl:
        if a.reference or a.prediction:
            raise ValueError("give either --jsonl or --reference with --prediction, not both")
        out = structure_batch(a.jsonl, threshold=a.threshold)
        for b in out["bad_rows"]:
            print(f"  BAD {b['error']}", file=sys.stderr)
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0 if out["summary"]["n"] else 2
    if not (a.reference and a.prediction):
        raise ValueError("give --reference REF.mmd and --prediction PRED.mmd (or --jsonl FILE)")
    print(json.dumps(structure_files(a.reference, a.prediction, threshold=a.threshold), ensure_ascii=False,
                     indent=2))
    return 0


def _add_graph_eval(sub) -> None:
    p = sub.add_parser("faithfulness", help="is a caption right about its diagram? scores against the graph (JSON)",
                       description="Parses the Mermaid with mermaid.js's own parser and scores the caption "
                                   "against its graph: label_recall, hallucination_rate and the hallucinated "
                                   "spans, relation_recall, order_tau (values 0-1, null where a part does "
                                   "not apply) and faithfulness, their one score. --jsonl: rows {id, caption, mermaid | graph}; "
                                   "bad rows are listed on stderr and counted. Exit 2 on bad input.")
    p.add_argument("--mermaid", help="the diagram's Mermaid source (.mmd)")
    p.add_argument("--caption", help="the caption (UTF-8 text)")
    p.add_argument("--jsonl", help="batch: JSON lines {id, caption, mermaid or graph}")
    p.set_defaults(func=_cmd_faithfulness)

    p = sub.add_parser("structure", help="node, edge and triple F1 of a predicted Mermaid against a reference (JSON)",
                       description="Both files are parsed with mermaid.js's own parser. F1 strict (exact "
                                   "after normalisation) and relaxed (rapidfuzz ratio >= --threshold). A "
                                   "level the reference lacks (a pie chart's edges) scores null and is left "
                                   "out of the summary's means. A prediction that does not parse scores "
                                   "parsed: false and zeros; a "
                                   "reference that does not parse is an error (exit 2). --jsonl: rows "
                                   "{id, reference, prediction}.")
    p.add_argument("--reference", help="reference Mermaid (.mmd)")
    p.add_argument("--prediction", help="predicted Mermaid (.mmd)")
    p.add_argument("--jsonl", help="batch: JSON lines {id, reference, prediction}")
    p.add_argument("--threshold", type=float, default=80.0, help="relaxed match: rapidfuzz ratio 0-100 (default 80)")
    p.set_defaults(func=_cmd_structure)


def _cmd_realism(a: argparse.Namespace) -> int:
    from dicrepro.report.realism import realism_main

    out = realism_main(a.dataset, a.against or [], md=a.md, figure=a.figure, split=a.split, graphs=a.graphs)
    print(f"wrote {out['md']} and {out['figure']}")
    bad = out["outside_tolerance"]
    print("every statistic within tolerance of ../shared/REALISM.md" if not bad
          else f"outside tolerance: {', '.join(bad)}")
    return 0


def _add_realism(sub) -> None:
    p = sub.add_parser("realism", help="how real a diagram dataset looks: REALISM.md's statistics, table + figure",
                       description="Type mix, sequence messages/blocks/notes/activations, flowchart nodes/"
                                   "subgraphs/edge labels, state composites, label lengths and line breaks, "
                                   "from each row's graph (parsed again from its Mermaid with mermaid.js), "
                                   "against the real-docs targets; --against adds more datasets as columns.")
    p.add_argument("dataset", help="dataset folder (save_to_disk) with graph and mermaid columns")
    p.add_argument("--against", action="append", metavar="DATASET", help="another dataset to compare (repeatable)")
    p.add_argument("--md", default=None, help="Markdown table to write (default DATASET_realism.md beside it)")
    p.add_argument("--figure", default=None, help="comparison figure PNG (default: the table's name, .png)")
    p.add_argument("--split", choices=("all", "train", "test"), default="all", help="rows to measure (default all)")
    p.add_argument("--graphs", action="store_true",
                   help="read the stored graph column instead of parsing the Mermaid again (faster)")
    p.set_defaults(func=_cmd_realism)


def _cmd_author(a: argparse.Namespace) -> int:
    from dicrepro.data.author import author
    from dicrepro.diagrams.render import MermaidRenderer
    from dicrepro.outputs import check_output
    from dicrepro.params import load_params

    params = load_params(a.params, need_model=False).author
    params = params.model_copy(update={k: v for k, v in (("base_url", a.base_url), ("model", a.model)) if v})
    check_output(a.out, ("author", "dataset"), overwrite=a.overwrite)  # before the browser starts
    with MermaidRenderer(workers=1, progress=False) as r:
        report = author(a.paths, a.out, params, split=a.split, renderer=r, overwrite=a.overwrite)
    print(report.text())
    print(f"wrote {a.out} (split {a.split}); rejected passages also in {Path(a.out).name}_failures.jsonl")
    return 0


def _add_author(sub) -> None:
    p = sub.add_parser("author", help="an LLM writes Mermaid for ICT text passages (parsed, rendered, gated)",
                       description="Each passage chunk of the .md/.txt files under PATH goes to the params' "
                                   "author endpoint (OpenAI-compatible); the reply's Mermaid must parse, render "
                                   "and use only the passage's words, else it is retried once with the reason. "
                                   "Writes a stage-1-shaped dataset with provenance and the prompt kept.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="passage files or folders (.md, .txt)")
    p.add_argument("--out", required=True, help="output dataset folder")
    p.add_argument("--params", default=DEFAULT_PARAMS, type=_params_file, help="params YAML (its author: section)")
    p.add_argument("--base-url", default=None, help="chat endpoint, e.g. http://localhost:8000/v1 (over the params)")
    p.add_argument("--model", default=None, help="served model name (over the params)")
    p.add_argument("--split", choices=("train", "test"), default="train", help="the split of every row (default train)")
    p.add_argument("--overwrite", action="store_true", help="replace --out even if it is not an earlier dicrepro dataset")
    p.set_defaults(func=_cmd_author)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="dicrepro",
        description="DICModel, reproducible: synthesize ICT diagram data with real Mermaid, train a "
                    "vision-language model in three SFT stages, evaluate it.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="execute the pipeline notebooks with papermill",
                       description="Run the notebooks in order; executed notebooks go to RUN/notebooks/. "
                                   "Without --only/--from, only the steps that `dicrepro status` reports "
                                   "stale or missing run. Stops at the first failing notebook, naming it "
                                   "and the cell.")
    p.add_argument("params", nargs="?", default=DEFAULT_PARAMS, type=_params_file, help=f"params YAML (default {DEFAULT_PARAMS})")
    p.add_argument("--only", nargs="+", metavar="STEP", help="run only these steps")
    p.add_argument("--from", dest="start", metavar="STEP", help="run from this step to the end")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-cell progress bar")
    p.add_argument("--force", action="store_true",
                   help="run every step, even those `dicrepro status` reports done (default: only stale "
                        "or missing steps, when neither --only nor --from is given)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("status", help="which steps are done, stale or missing, and what `run` would redo",
                       description="Compares what each finished step was made from (recorded in the run's "
                                   "manifest.json: the params it reads, the files it reads, the steps it "
                                   "reads from) with the params file now, as `dvc status` does.")
    p.add_argument("params", nargs="?", default=DEFAULT_PARAMS, help=f"params YAML (default {DEFAULT_PARAMS})")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("render", help="render Mermaid files to PNG with mermaid.js in headless Chromium",
                       description="One PNG per input, same stem. Exit status 1 if any file failed.")
    p.add_argument("files", nargs="+", help="Mermaid source files (.mmd)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="browser pages in parallel (default: cores)")
    p.add_argument("--timeout", type=_seconds, default=20.0, help="seconds per diagram (default 20)")
    p.add_argument("--overwrite", action="store_true", help="replace PNGs in --out that render did not write")
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("synth", help="synthesize stage-1 image-text pairs as a Hugging Face dataset",
                       description="Writes a DatasetDict (load_from_disk) in shards; a killed run resumes.")
    p.add_argument("--n", type=_positive_int, required=True, help="training samples")
    p.add_argument("--test-n", type=_count, default=0, help="held-out samples (default 0)")
    p.add_argument("--out", required=True, help="output dataset folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out even if it is not an earlier dicrepro dataset")
    p.add_argument("--seed", type=int, default=None, help="seed (default: the params file's)")
    p.add_argument("--params", default=DEFAULT_PARAMS, type=_params_file, help="params YAML for types, languages, rendering")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("augment", help="seeded realism augmentations of a dataset (clean rows kept)",
                       description="Writes a new dataset: the train split's clean rows plus COPIES augmented "
                                   "variants each (ids <id>~aug<k>, column `augment` says what ran); other "
                                   "splits are copied unchanged so evaluation stays clean.")
    p.add_argument("src", help="dataset folder (save_to_disk DatasetDict)")
    p.add_argument("--out", required=True, help="output dataset folder")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--kinds", nargs="+", default=["page", "scan", "jpeg", "rescale", "blur"],
                   help="page scan jpeg rescale blur, or the preset 'document'")
    p.add_argument("--copies", type=_count, default=1, help="augmented variants per training row (default 1)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out even if it is not an earlier augment output")
    p.set_defaults(func=_cmd_augment)

    p = sub.add_parser("describe", help="(re)write a dataset's descriptions with a rewriting backend",
                       description="Adds/overwrites description, view_global, view_partial, view_detail and "
                                   "target. LLM texts pass the faithfulness gate or are replaced by the "
                                   "verbalizer's; replies are cached beside the dataset, so a rerun is free.")
    p.add_argument("dataset", help="dataset folder written by `dicrepro synth` (save_to_disk)")
    p.add_argument("--backend", choices=["verbalizer", "openai", "hf"], default=None,
                   help="default: describe.backend of the params file")
    p.add_argument("--params", default=DEFAULT_PARAMS, type=_params_file, help="params YAML (endpoint, model, retries)")
    p.set_defaults(func=_cmd_describe)

    p = sub.add_parser("expert", help="import expert annotations (stage 2) as a dataset, reporting bad rows",
                       description="Reads JSONL, CSV, a Label Studio JSON export or a folder of images with "
                                   "same-named .txt files. Prints one line per rejected row (file:line: "
                                   "field: reason) and a summary; imports every good row. Exit status 0 "
                                   "when some rows were imported, 2 when none.")
    p.add_argument("annotations", help="annotation file or folder")
    p.add_argument("--out", required=True, help="output dataset folder (save_to_disk)")
    p.add_argument("--test-n", type=_count, default=0,
                   help="rows held out as the test split (at most a fifth of the rows; default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed for the split and prompts (default 0)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out even if it is not an earlier expert import")
    p.set_defaults(func=_cmd_expert)

    p = sub.add_parser("metrics", help="caption metrics for predictions vs references (JSON)",
                       description="Files of JSON lines {\"id\": ..., \"text\": ...} matched by id. Prints "
                                   "bleu1..bleu4, meteor, rougeL as fractions in 0..1 and cider, "
                                   "CIDEr-D on pycocoevalcap's scale (0..10).")
    p.add_argument("--pred", required=True, help="predictions JSONL")
    p.add_argument("--ref", required=True, help="references JSONL")
    p.set_defaults(func=_cmd_metrics)

    p = sub.add_parser("figures", help="regenerate tables and figures from a run's recorded results")
    p.add_argument("params", nargs="?", default=DEFAULT_PARAMS, type=_params_file, help=f"params YAML (default {DEFAULT_PARAMS})")
    p.set_defaults(func=_cmd_figures)

    p = sub.add_parser("caption", help="caption your own images, SVGs, PDFs and Mermaid-in-Markdown (JSONL)",
                       description="Finds the figures in INPUT files and folders (PNG, JPEG, WebP, SVG; PDF "
                                   "embedded images and vector-drawn figures, with page and bbox; ```mermaid "
                                   "blocks of Markdown, rendered first), captions them with a trained model "
                                   "and appends one JSON line each to --out (page_content + metadata, for "
                                   "LangChain/LlamaIndex). Resumes: ids already in --out are skipped. "
                                   "Unreadable files are listed and skipped.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files or folders (searched recursively)")
    p.add_argument("--model", required=True,
                   help="a stage folder (runs/NAME/models/stage3: its merged/ weights) or any model folder")
    p.add_argument("--out", default="captions.jsonl", help="output JSONL (default captions.jsonl)")
    p.add_argument("--format", choices=["jsonl", "md"], default="jsonl",
                   help="md: also write a Markdown page beside the JSONL")
    p.add_argument("--params", default=None,
                   help="params YAML whose model.min_pixels/max_pixels size the images (default: the "
                        "model's own processor settings)")
    p.add_argument("--batch-size", type=_positive_int, default=8, help="figures per generation batch (default 8)")
    p.add_argument("--max-new-tokens", type=_positive_int, default=512, help="caption length limit (default 512)")
    p.add_argument("--num-beams", type=_positive_int, default=1,
                   help="1: greedy (default); n > 1: beam search over n beams, about n times the compute")
    p.add_argument("--limit", type=_count, default=None, help="caption at most this many new figures")
    p.add_argument("--language", choices=["en", "zh"], default="en", help="caption language (default en)")
    p.add_argument("--prompt", default=None, help="instruction (default: the captioning prompt of training)")
    p.add_argument("--backend", choices=["transformers", "vllm"], default="transformers",
                   help="vllm needs vllm installed and a CUDA GPU")
    p.set_defaults(func=_cmd_caption)

    p = sub.add_parser("report", help="one results page (Markdown + HTML) of a run, beside the paper's numbers",
                       description="Reads RUN_DIR's results, figures, gallery and manifest (nothing is "
                                   "computed anew) and writes RUN_DIR/report/report.md and report.html.")
    p.add_argument("run_dir", help="a run folder, e.g. runs/tiny")
    p.add_argument("--out", default=None, help="output folder (default RUN_DIR/report)")
    p.set_defaults(func=_cmd_report)

    _add_harvest(sub)
    _add_realism(sub)
    _add_author(sub)
    _add_graph_eval(sub)

    p = sub.add_parser("check", help="validate a params file and exit")
    p.add_argument("params", type=_params_file, help="params YAML")
    p.set_defaults(func=_cmd_check)
    return ap


def error_message(e: BaseException) -> tuple[int, str]:
    """The exit status and the message the user sees for an exception that ends a command.

    Bad input (params, paths, rows: ValueError and OSError, which name their file/row/field) exits 2;
    a refusing service (RuntimeError, e.g. dicrepro.text.llm.LLMError) 1; anything else is a bug, shown
    as one line (``-v`` shows the traceback).
    """
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        return 2, f"{e.filename}: {e.strerror}"
    if isinstance(e, (ValueError, OSError)):
        return 2, str(e) or type(e).__name__
    first = (str(e).strip().splitlines() or [""])[0][:300]
    if isinstance(e, RuntimeError):
        return 1, str(e) or type(e).__name__
    return 1, f"internal error ({type(e).__name__}: {first}); rerun with -v for the traceback"


def quiet_closed_loop(unraisable) -> None:
    """sys.unraisablehook for ``run``: papermill's kernel clients leave ZMQ sockets whose finalizers run
    after their event loop closed, printing a 'RuntimeError: Event loop is closed' traceback at exit of a
    run that succeeded. That one is logged at debug level; anything else goes to Python's own hook."""
    exc = unraisable.exc_value
    if isinstance(exc, RuntimeError) and "Event loop is closed" in str(exc):
        logging.getLogger("dicrepro.cli").debug("ignored at exit: %s in %r", exc, unraisable.object)
        return
    sys.__unraisablehook__(unraisable)


def _close_progress_bars() -> None:
    """Finish the line of any progress bar an interrupt left open, so the message gets its own line."""
    try:
        from tqdm import tqdm

        for bar in list(getattr(tqdm, "_instances", ())):
            bar.close()
    except Exception:  # noqa: BLE001 - cosmetics must never hide the interrupt
        pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Quiet by default: each step's own progress bar, warnings, and the summary the command prints once.
    # -v adds the library's log, the progress bars of datasets/transformers, and tracebacks.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger("dicrepro.pipeline").setLevel(logging.INFO)  # "step X done in 42 s" for `run`
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # read when datasets is imported
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if args.cmd == "run" and not args.verbose:
        sys.unraisablehook = quiet_closed_loop
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _close_progress_bars()
        print("interrupted (a rerun resumes where this one stopped)", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the user gets one line, the traceback only with -v
        if args.verbose:
            import traceback

            traceback.print_exc()
        code, msg = error_message(e)
        print(f"error: {msg}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
