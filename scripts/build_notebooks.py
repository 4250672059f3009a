"""Write notebooks/*.ipynb from the cell lists below (clean: no outputs).

The notebooks are thin walk-throughs of the paper's steps (Unsloth's notebooks are the model): a title
with what the step does and a contents list, one commented settings cell (tagged ``parameters`` for
papermill), one sample followed end to end, then calls into dicrepro and displays, and a closing "next".
Logic lives in dicrepro. Edit here, then run `python scripts/build_notebooks.py`; the committed .ipynb
files are what users open in JupyterLab.
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parents[1] / "notebooks"
PARAMS = """# Settings. `dicrepro run` (papermill) replaces them with the run's own: edit here only to explore.
import os

# The run's params file. Relative paths (this one, and run_dir etc. inside it) are taken from the
# repository root, not from notebooks/, so the notebook runs as shipped from JupyterLab.
# $DICREPRO_PARAMS picks another file without editing the notebook (params/smoke.yaml: about a minute).
params_path = os.environ.get("DICREPRO_PARAMS", "params/tiny.yaml")"""
SETUP = """import logging
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
from dicrepro import workflow
from dicrepro.params import load_params
from dicrepro.report import show

params = load_params(params_path)   # validated here: a typo in the file fails now, naming the key
paths = workflow.run_paths(params)  # where this run's data, models and results live
print(params.name, "| seed", params.seed, "| run folder", paths.root, "| working directory", os.getcwd())"""
FOLLOWED = 'followed = workflow.one_sample(params, "stage1", params.stage1.n)  # the first held-out sample\n'


def head(title: str, what: str, contents: list[str]) -> str:
    """A notebook's opening: its title, what this step of the paper does, and its contents."""
    items = "\n".join(f"{i}. {c}" for i, c in enumerate(contents, 1))
    return f"# {title}\n\n{what}\n\n**Contents**\n\n{items}"


def nxt(text: str) -> tuple[str, str]:
    return ("md", f"## Next\n\nnext: {text}")


NOTEBOOKS = {
    "00_base_model.ipynb": [
        ("md", head("0. The base model",
                    "The paper fine-tunes a general vision-language model (Qwen2.5-VL-7B-Instruct) that can "
                    "describe diagrams but lacks ICT knowledge; its zero-shot captions are the baseline every "
                    "stage is measured against. In the paper profile the base is a local folder of real "
                    "weights. In the tiny profile it is the **embedded tiny stand-in**: the same architecture "
                    "with random init and a locally trained tokenizer, pre-trained briefly on *general, non-ICT* "
                    "diagrams. Its numbers say nothing about the paper's results.",
                    ["Settings", "One general diagram, end to end (what the stand-in is pre-trained on)",
                     "Build (or load) the base model", "The base model's caption of an ICT diagram", "Next"])),
        ("params", PARAMS),
        ("code", SETUP),
        ("md", "## 1. One general diagram, end to end\n\nA graph sampled from the *general* knowledge base, "
               "written as Mermaid, drawn by mermaid.js in headless Chromium, and described from its graph. "
               "The tiny base sees only diagrams like this one before the SFT stages."),
        ("code", 'general = workflow.one_sample(params, "pretrain", 0)\nshow.sample(general)'),
        ("md", "## 2. Build (or load) the base model\n\nKept when rebuilt from the same recipe, so running this "
               "again costs seconds. Its model card says what it is."),
        ("code", "base_dir = workflow.build_base(params)\nbase_dir"),
        ("code", 'card = base_dir / "README.md"\nprint(card.read_text()[:1500] if card.exists() else base_dir)'),
        ("md", "## 3. The base model's caption of an ICT diagram\n\nThe first held-out stage-1 diagram (01 builds "
               "it; 04 captions the same image after each SFT stage), beside the description it should give."),
        ("code", FOLLOWED + 'show.captions(followed, workflow.captions_for(params, followed, ["base"]),\n'
                            '              reference=followed["description"])'),
        nxt("[01_synthesize_pairs.ipynb](01_synthesize_pairs.ipynb) builds the stage-1 data: synthesized ICT "
            "diagram-text pairs."),
    ],
    "01_synthesize_pairs.ipynb": [
        ("md", head("1. Stage-1 data: synthesized ICT diagram-text pairs",
                    "The paper's first stage teaches the model what ICT diagrams look like and how to describe "
                    "them, from pairs made by a program rather than by people. Each sample is an ICT diagram "
                    "graph sampled from the knowledge base, written as Mermaid, rendered by the real mermaid.js "
                    "in headless Chromium, and described from the graph (global, partial and detailed views) by "
                    "the rewriting backend (the offline verbalizer by default).",
                    ["Settings", "One sample, end to end: graph, Mermaid, image, description, questions",
                     "The batch", "What the batch holds", "The rewriting prompt (LLM backends)", "Next"])),
        ("params", PARAMS),
        ("code", SETUP),
        ("md", "## 1. One sample, end to end\n\nSample 0 of the stage-1 set, made exactly as the batch will make "
               "it: the Mermaid source written from its graph, the image mermaid.js drew, the description the "
               "verbalizer wrote from the same graph, and (as 03 will ask) questions whose answer keys come "
               "from the graph too."),
        ("code", 'sample = workflow.one_sample(params, "stage1", 0)\n'
                 "show.sample(sample, workflow.vqa_for(params, sample))"),
        ("md", "## 2. The batch\n\n`stage1.n` training and `stage1.test_n` held-out pairs, rendered in parallel, "
               "written in shards (an interrupted run resumes), then saved as a Hugging Face dataset."),
        ("code", "ds = workflow.make_stage1(params)\n"
                 'assert ds["train"][0]["mermaid"] == sample["mermaid"], "the batch starts with the sample above"\n'
                 "ds"),
        ("md", "## 3. What the batch holds"),
        ("code", 'show.counts(ds["train"], ["diagram_type", "language"])'),
        ("code", 'show.gallery(ds["train"], n=6, columns=("mermaid", "description"))'),
        ("md", "## 4. The rewriting prompt\n\nWith `describe.backend: openai` or `hf`, an LLM rewrites each "
               "verbalizer draft with this versioned template (`dicrepro/text/prompts/`), and the faithfulness "
               "gate checks every reply against the graph. The default `verbalizer` backend needs no LLM."),
        ("code", "from dicrepro.text.rewrite_prompt import load_prompt\n\n"
                 "prompt = load_prompt(params.describe.prompt)\n"
                 'print("version:", prompt.version)\nprint(prompt.system)\nprint(prompt.user)'),
        nxt("[02_expert_pairs.ipynb](02_expert_pairs.ipynb) builds the stage-2 data: expert-annotated pairs "
            "(yours, or a labelled stand-in), and lets you review them."),
    ],
    "02_expert_pairs.ipynb": [
        ("md", head("2. Stage-2 data: expert-annotated pairs",
                    "The paper's second stage refines the model on about 2K pairs written by ICT experts: "
                    "denser diagrams, as they appear in documents, described with purpose and reasoning. Set "
                    "`stage2.annotations` in the params file to your experts' pairs (JSONL, CSV, a folder of "
                    "images with same-named .txt files, or a Label Studio export); every bad row is reported "
                    "with its file and line. Without annotations this builds a **stand-in** (denser diagrams in "
                    "page context with scan/JPEG artefacts and expert-style prose); every stand-in row carries "
                    "`source='standin'`.",
                    ["Settings", "One pair, end to end", "The candidates and the training set",
                     "What the training set holds", "Review: accept, reject or edit each pair", "Next"])),
        ("params", PARAMS),
        ("code", SETUP),
        ("md", "## 1. One pair, end to end\n\nWith your annotations there is no graph behind a pair (experts "
               "give an image and a text); the stand-in's first pair is shown from its graph to its text."),
        ("code", "if params.stage2.annotations is None:\n"
                 '    display(show.sample(workflow.one_sample(params, "stage2", 0)))\n'
                 "else:\n"
                 '    print("expert annotations from", params.stage2.annotations)'),
        ("md", "## 2. The candidates and the training set\n\nThe candidates (`RUN/data/stage2_candidates`) are "
               "every pair as the run built them: rendered once and reused while the params are unchanged, so "
               "this cell takes seconds after `dicrepro run`. The training set (`RUN/data/stage2`) is the "
               "candidates with the reviewers' decisions applied."),
        ("code", "ds, report = workflow.make_stage2(params)\n"
                 'print(report.text() if report else "STAND-IN data (no expert annotations given)")\nds'),
        ("md", "## 3. What the training set holds"),
        ("code", 'show.counts(ds["train"], ["source", "diagram_type"])'),
        ("code", 'show.gallery(ds["train"], n=4, columns=("source", "description"))'),
        ("md", "## 4. Review\n\nEdit, accept or reject each pair; rejected pairs stay in the list, marked. Keys "
               "(mouse over the image or the buttons): **a** accept, **r** reject, **n** / → next, **b** / ← "
               "back. Every decision is saved at once to `RUN/data/stage2_reviews.jsonl` (closing the notebook "
               "loses nothing) and applied to the training set the next time section 2 runs (or "
               "`dicrepro run PARAMS --from expert`). Under `dicrepro run` this cell shows a static table."),
        ("code", "from dicrepro.data.review import review\nfrom dicrepro.data.stage2 import load_candidates\n"
                 "from dicrepro.progress import unattended\n\n"
                 "candidates = load_candidates(paths)  # every pair, rejected ones included\n"
                 'review(candidates["train"], paths.stage2_reviews, live=not unattended())'),
        nxt("[03_vqa.ipynb](03_vqa.ipynb) builds the stage-3 data: questions with answer keys computed from "
            "each diagram's graph."),
    ],
    "03_vqa.ipynb": [
        ("md", head("3. Stage-3 data: VQA instructions",
                    "The paper's third stage trains the model to answer questions about a diagram at three "
                    "levels (global, partial, detail). Objective questions (multiple choice, true/false, "
                    "counting, ordering, paths, senders, transitions) get answer keys computed from each "
                    "diagram's graph, so accuracy needs no judge; open questions take their reference answers "
                    "from the verbalizer's views. Splits are by diagram.",
                    ["Settings", "One diagram and its questions", "The VQA set", "What it holds", "Next"])),
        ("params", PARAMS),
        ("code", SETUP),
        ("md", "## 1. One diagram and its questions\n\nThe first stage-3 diagram, end to end, with questions "
               "of the kinds the batch asks about it."),
        ("code", 'one = workflow.one_sample(params, "stage3", 0)\n'
                 "show.sample(one, workflow.vqa_for(params, one, params.stage3.questions_per_diagram))"),
        ("md", "## 2. The VQA set"),
        ("code", "ds = workflow.make_stage3(params)\nds"),
        ("md", "## 3. What it holds"),
        ("code", 'show.counts(ds["train"], ["dimension", "kind"])'),
        ("code", 'show.gallery(ds["test"], n=4, columns=("prompt", "target"))'),
        nxt("[04_sft.ipynb](04_sft.ipynb) trains the three stages, one per execution."),
    ],
    "04_sft.ipynb": [
        ("md", head("4. Progressive SFT (one stage per execution)",
                    "The paper's core: three supervised fine-tuning stages, each starting from the previous "
                    "stage's result (stage 1 synthesized pairs, stage 2 expert pairs, stage 3 VQA), with QLoRA "
                    "adapters. papermill runs this notebook three times with `stage` = 1, 2, 3. Each stage "
                    "trains LoRA adapters with TRL's SFTTrainer and saves the adapter, the merged model, a model "
                    "card, the loss curve and its lineage.",
                    ["Settings (which stage)", "Train this stage", "The loss",
                     "Before and after: the same image, captioned by the base and each stage so far", "Next"])),
        ("params", PARAMS + "\nstage = 1  # 1, 2 or 3: which SFT stage this execution trains"),
        ("code", SETUP),
        ("md", "## 1. Train this stage\n\nResumes from the last checkpoint made from the same inputs; an "
               "unchanged finished stage is kept."),
        ("code", "from dicrepro.train.backends import preload_unsloth\n\n"
                 "# Unsloth patches transformers, peft and trl: it must be imported before them (no-op without a GPU)\n"
                 "preload_unsloth(params)\n"
                 "from dicrepro.train.sft import train_stage\n\nstage_dir = train_stage(params, int(stage))\nstage_dir"),
        ("md", "## 2. The loss"),
        ("code", 'import pandas as pd\n\nloss = pd.read_csv(stage_dir / "loss.csv")\n'
                 'loss.plot(x="step", y="loss", title=f"stage {stage} training loss");\nloss.tail()'),
        ("code", 'print((stage_dir / "lineage.json").read_text())'),
        ("md", "## 3. Before and after\n\nThe first held-out stage-1 image (the one 00 showed the base model), "
               "captioned greedily by the base model and by every stage trained so far."),
        ("code", FOLLOWED + 'models = ["base"] + [f"stage{k}" for k in range(1, int(stage) + 1)]\n'
                            "show.captions(followed, workflow.captions_for(params, followed, models),\n"
                            '              reference=followed["description"])'),
        nxt("papermill runs this notebook again with `stage = 2`, then `stage = 3`; after stage 3, "
            "[05_evaluate.ipynb](05_evaluate.ipynb) scores every model on the held-out sets."),
    ],
    "05_evaluate.ipynb": [
        ("md", head("5. Evaluation",
                    "The paper's comparison: predictions (greedy, or beam search with eval.num_beams) on the "
                    "held-out caption splits and on the "
                    "objective questions, for the base model and every stage; corpus BLEU-1..4, METEOR, "
                    "ROUGE-L, CIDEr-D and objective accuracy, by diagram type and dimension. Scores are shown "
                    "in percent, except CIDEr-D, which stays on pycocoevalcap's scale (0-10). Predictions are "
                    "reused only while their model, data and generation settings are unchanged.",
                    ["Settings", "One image, every model", "Score every model", "Caption scores",
                     "Objective accuracy", "Faithfulness and confidence intervals", "Next"])),
        ("params", PARAMS),
        ("code", SETUP),
        ("md", "## 1. One image, every model\n\nThe image followed since 00, captioned by each model scored below."),
        ("code", FOLLOWED + "show.captions(followed, workflow.captions_for(params, followed, list(params.eval.models)),\n"
                            '              reference=followed["description"])'),
        ("md", "## 2. Score every model"),
        ("code", "results = workflow.evaluate(params)"),
        ("md", "## 3. Caption scores"),
        ("code", "from dicrepro.report.tables import shown_table\n"
                 'shown_table(results["captions"])  # in %, CIDEr-D on its own scale'),
        ("md", "## 4. Objective accuracy"),
        ("code", 'shown_table(results["objective"])'),
        ("md", "## 5. Faithfulness and confidence intervals\n\nEach caption is also scored against its diagram's "
               "graph, not a reference text: label recall, hallucinated names, relation recall, order of steps, "
               "and one faithfulness score (`dicrepro.evaluate.faithfulness`). Every per-sample number gets a "
               "bootstrap 95% CI (`results/confidence.csv`; BLEU-4 resampled as a corpus score) and each stage a "
               "paired p-value against the base and the stage before (`results/significance.csv`). With "
               "`stage3.mermaid_task: true` the Mermaid each model writes for a test diagram is scored by parse "
               "rate and node/edge/triple F1 too. The tiny stand-in model scores near zero on all of them; that "
               "is expected."),
        ("code", "from dicrepro.report.ci_tables import confidence_summary, significance_summary\n"
                 "confidence_summary(paths.root)  # mean and half the 95% CI, in % (CIDEr-D on its own scale)"),
        ("code", "significance_summary(paths.root)"),
        nxt("[06_figures.ipynb](06_figures.ipynb) turns the recorded results into the paper's tables and figures."),
    ],
    "06_figures.ipynb": [
        ("md", head("6. Tables and figures",
                    "The paper's tables and figures, regenerated from the recorded results only (no training, "
                    "no generation), in seconds: CSV, Markdown and LaTeX tables under `RUN/results`, PNG and "
                    "PDF figures (byte-identical across reruns) in `figures_dir`.",
                    ["Settings", "Regenerate", "The figures", "This run beside the paper", "Next"])),
        ("params", PARAMS),
        ("code", SETUP),
        ("md", "## 1. Regenerate"),
        ("code", "files = workflow.make_figures(params)\n[str(f) for f in files]"),
        ("md", "## 2. The figures"),
        ("code", "show.images(files)"),
        ("md", "## 3. This run beside the paper\n\nThe paper's published comparisons, and this run's numbers computed "
               "the same way from its results files. The whole results page (tables, figures, gallery, "
               "provenance) is `RUN/report/report.html`, also written by `dicrepro report RUN_DIR`."),
        ("code", "from dicrepro.report.page import paper_comparison\n"
                 "print(paths.root / 'report' / 'report.html')\npaper_comparison(paths.root)"),
        nxt("point the pipeline at your own model, data and GPU: copy `params/paper.yaml`, set `model.path`, "
            "`stage2.annotations` and the SFT settings, and run `dicrepro run your.yaml` (README)."),
    ],
}


def build() -> None:
    HERE.mkdir(exist_ok=True)
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        for kind, src in cells:
            if kind == "md":
                nb.cells.append(new_markdown_cell(src))
            else:
                cell = new_code_cell(src)
                if kind == "params":
                    cell.metadata["tags"] = ["parameters"]
                nb.cells.append(cell)
        for i, cell in enumerate(nb.cells):  # stable ids keep diffs quiet
            cell["id"] = f"{Path(name).stem[:2]}-{i:02d}"
        nbformat.write(nb, HERE / name)


if __name__ == "__main__":
    build()
