"""Write notebooks/*.ipynb from the cell lists below (clean: no outputs).

The notebooks are thin: a parameters cell, then calls into dicrepro and displays. Edit here, then run
`python scripts/build_notebooks.py`; the committed .ipynb files are what users open in JupyterLab.
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parents[1] / "notebooks"
PARAMS = 'params_path = "params/tiny.yaml"  # papermill injects the run\'s params file here'
SETUP = """import logging
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
from dicrepro.params import load_params
from dicrepro import workflow
from dicrepro.report import show
params = load_params(params_path)
paths = workflow.run_paths(params)
print(params.name, "| seed", params.seed, "| run folder", paths.root)"""

NOTEBOOKS = {
    "00_base_model.ipynb": [
        ("md", "# 0. The base model\n\nThe zero-shot baseline that the three SFT stages start from. In the paper "
               "profile it is Qwen2.5-VL-7B-Instruct from a local folder. In the tiny profile it is the "
               "**embedded tiny stand-in**: a Qwen2.5-VL-architecture model with random init and a locally "
               "trained tokenizer, pre-trained briefly on *general, non-ICT* diagrams, so that like the "
               "paper's base it can describe diagrams but lacks ICT knowledge. Its numbers say nothing "
               "about the paper's results."),
        ("params", PARAMS),
        ("code", SETUP),
        ("code", "base_dir = workflow.build_base(params)\nbase_dir"),
        ("code", "print((base_dir / 'README.md').read_text()[:1500] if (base_dir / 'README.md').exists() else base_dir)"),
    ],
    "01_synthesize_pairs.ipynb": [
        ("md", "# 1. Stage-1 data: synthesized ICT diagram-text pairs\n\nEach sample is an ICT diagram graph "
               "sampled from the knowledge base, written as Mermaid, rendered by the real mermaid.js in "
               "headless Chromium, and described from the graph (global, partial and detailed views) by "
               "the rewriting backend (offline verbalizer by default)."),
        ("params", PARAMS),
        ("code", SETUP),
        ("code", "ds = workflow.make_stage1(params)\nds"),
        ("code", "show.counts(ds['train'], ['diagram_type', 'language'])"),
        ("md", "A sample gallery: the rendered image beside its Mermaid source and the training text."),
        ("code", "show.gallery(ds['train'], n=6, columns=('mermaid', 'description'))"),
        ("md", "## The rewriting prompt\n\nWith `describe.backend: openai` or `hf`, an LLM rewrites each "
               "verbalizer draft with this versioned template (`dicrepro/prompts/`), and the faithfulness gate "
               "checks every reply against the graph. The default `verbalizer` backend needs no LLM."),
        ("code", "from dicrepro.text.rewrite_prompt import load_prompt\nprompt = load_prompt(params.describe.prompt)\n"
                 "print('version:', prompt.version)\nprint(prompt.system)\nprint(prompt.user)"),
    ],
    "02_expert_pairs.ipynb": [
        ("md", "# 2. Stage-2 data: expert-annotated pairs\n\nSet `stage2.annotations` in the params file to your "
               "experts' pairs (JSONL, CSV, a folder of images with same-named .txt files, or a Label "
               "Studio export). Every bad row is reported with its file and line. Without annotations "
               "this builds a **stand-in** (denser diagrams in page context with scan/JPEG artefacts and "
               "expert-style prose); every stand-in row carries `source='standin'`."),
        ("params", PARAMS),
        ("code", SETUP),
        ("code", "ds, report = workflow.make_stage2(params)\nprint(report.summary() if report else 'STAND-IN data (no expert annotations given)')\nds"),
        ("code", "show.counts(ds['train'], ['source', 'diagram_type'])"),
        ("code", "show.gallery(ds['train'], n=4, columns=('source', 'description'))"),
        ("md", "## Review\n\nIn JupyterLab: edit, accept or reject each pair. Every decision is saved at once "
               "to `RUN/data/stage2_reviews.jsonl` (closing the notebook loses nothing) and applied to the "
               "training split the next time this step runs."),
        ("code", "from dicrepro.data.review import review_widget\nreview_widget(ds['train'], paths.stage2_reviews)"),
    ],
    "03_vqa.ipynb": [
        ("md", "# 3. Stage-3 data: VQA instructions\n\nObjective questions (multiple choice, true/false, "
               "counting, ordering, paths, senders, transitions) with answer keys computed from each "
               "diagram's graph, and open questions over the global, partial and detail views. Splits are "
               "by diagram."),
        ("params", PARAMS),
        ("code", SETUP),
        ("code", "ds = workflow.make_stage3(params)\nds"),
        ("code", "show.counts(ds['train'], ['dimension', 'kind'])"),
        ("code", "show.gallery(ds['test'], n=4, columns=('prompt', 'target'))"),
    ],
    "04_sft.ipynb": [
        ("md", "# 4. Progressive SFT (one stage per execution)\n\npapermill runs this notebook three times with "
               "`stage` = 1, 2, 3. Each stage trains LoRA adapters with TRL's SFTTrainer on that stage's "
               "data, starting from the previous stage's result, and saves the adapter, the merged model, "
               "a model card, the loss curve and its lineage."),
        ("params", PARAMS + "\nstage = 1"),
        ("code", SETUP),
        ("code", "from dicrepro.train.backends import preload_unsloth\n"
                 "# Unsloth patches transformers, peft and trl: it must be imported before them (no-op without a GPU)\n"
                 "preload_unsloth(params)\n"
                 "from dicrepro.train.sft import train_stage\nstage_dir = train_stage(params, int(stage))\nstage_dir"),
        ("code", "import pandas as pd\nloss = pd.read_csv(stage_dir / 'loss.csv')\nloss.plot(x='step', y='loss', title=f'stage {stage} training loss');\nloss.tail()"),
        ("code", "print((stage_dir / 'lineage.json').read_text())"),
    ],
    "05_evaluate.ipynb": [
        ("md", "# 5. Evaluation\n\nGreedy predictions on the held-out caption splits and the objective "
               "questions, for the base model and every stage; corpus BLEU-1..4, METEOR, ROUGE-L, CIDEr and "
               "objective accuracy, by diagram type and dimension."),
        ("params", PARAMS),
        ("code", SETUP),
        ("code", "results = workflow.evaluate(params)"),
        ("code", "results['captions']"),
        ("code", "results['objective']"),
    ],
    "06_figures.ipynb": [
        ("md", "# 6. Tables and figures\n\nRegenerated from the recorded results only (no training, no "
               "generation), in seconds."),
        ("params", PARAMS),
        ("code", SETUP),
        ("code", "files = workflow.make_figures(params)\n[str(f) for f in files]"),
        ("code", "show.images(files)"),
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
