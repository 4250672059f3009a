"""Every notebook, executed headlessly by papermill on params/smoke.yaml, leaves the artifacts it promises.

The pipeline runs once for the module (a few minutes on 2 cores); each test then checks one artifact.
"""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from datasets import load_from_disk

from dicrepro.manifest import sha256_file
from dicrepro.pipeline import STEPS, run_pipeline

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke")
    cfg = yaml.safe_load((REPO / "params" / "smoke.yaml").read_text())
    cfg["run_dir"] = str(root / "run")
    cfg["figures_dir"] = str(root / "figures")
    params_file = root / "smoke.yaml"
    params_file.write_text(yaml.safe_dump(cfg))
    params = run_pipeline(params_file, progress=False)
    return {"root": root / "run", "figures": root / "figures", "cfg": cfg, "params": params}


def test_every_step_left_an_executed_notebook(run):
    for step in STEPS:
        assert (run["root"] / "notebooks" / step.output_name).exists(), step.name


def test_stage1_dataset_rows_and_columns(run):
    dd = load_from_disk(str(run["root"] / "data" / "stage1"))
    assert len(dd["train"]) == run["cfg"]["stage1"]["n"]
    assert len(dd["test"]) == run["cfg"]["stage1"]["test_n"]
    row = dd["train"][0]
    for col in ("id", "image", "mermaid", "diagram_type", "topic", "area", "language", "graph", "seed",
                "description", "view_global", "view_partial", "view_detail", "prompt", "target"):
        assert col in row, col
    assert row["image"].size[0] > 50 and row["description"]
    assert set(dd["train"]["language"]) <= {"en", "zh"}
    assert not set(dd["train"]["id"]) & set(dd["test"]["id"])


def test_stage2_standin_is_labelled(run):
    dd = load_from_disk(str(run["root"] / "data" / "stage2"))
    assert set(dd["train"]["source"]) == {"standin"}
    assert len(dd["train"]) == run["cfg"]["stage2"]["n"]


def test_stage3_vqa_has_answer_keys_and_disjoint_splits(run):
    dd = load_from_disk(str(run["root"] / "data" / "stage3"))
    train, test = dd["train"].remove_columns("image"), dd["test"].remove_columns("image")
    assert set(train["diagram_id"]).isdisjoint(set(test["diagram_id"]))
    objective = [r for r in test if r["objective"]]
    assert objective and all(r["answer_key"] for r in objective)
    assert {r["dimension"] for r in train} <= {"global", "partial", "detail"}


def test_models_of_every_stage_reload_with_lineage(run):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    models = run["root"] / "models"
    assert (models / "base" / "config.json").exists()
    for k in (1, 2, 3):
        stage = models / f"stage{k}"
        merged = stage / "merged"
        assert list(merged.glob("*.safetensors")), merged
        assert (stage / "adapter").exists() and (stage / "README.md").exists()
        lineage = json.loads((stage / "lineage.json").read_text())
        prev = "base" if k == 1 else f"stage{k - 1}"
        assert prev in json.dumps(lineage)
        loss = pd.read_csv(stage / "loss.csv")
        assert len(loss) >= 1 and all(math.isfinite(x) for x in loss["loss"])
    AutoProcessor.from_pretrained(models / "stage3" / "merged")
    AutoModelForImageTextToText.from_pretrained(models / "stage3" / "merged")


def test_results_tables_have_every_model_and_sane_scores(run):
    res = run["root"] / "results"
    cap = pd.read_csv(res / "caption_scores.csv")
    overall = cap[cap.group_by == "overall"]
    assert list(overall.model) == ["base", "stage1", "stage2", "stage3"]
    for m in ("bleu1", "bleu4", "meteor", "rougeL", "cider"):
        assert overall[m].between(0, 1).all(), m
    obj = pd.read_csv(res / "objective_scores.csv")
    o = obj[obj.group_by == "overall"]
    assert o.accuracy.between(0, 1).all() and (o.chance > 0).all()
    meta = json.loads((res / "meta.json").read_text())
    assert meta["tiny_model"] and meta["standin_stage2"]


def test_predictions_record_the_model_they_came_from(run):
    """A rerun reuses predictions only while the model is the same: each file names its model's hash."""
    from dicrepro.manifest import folder_identity
    from dicrepro.paths import RunPaths

    paths = RunPaths(run["root"])
    for name in ("base", "stage1", "stage2", "stage3"):
        for kind in ("captions", "objective"):
            identity = json.loads((paths.predictions / f"{name}__{kind}.identity.json").read_text())
            assert identity["model"] == folder_identity(paths.model_dir(name)), (name, kind)
            assert identity["max_new_tokens"] == run["params"].eval.max_new_tokens

def test_stage_model_cards_show_the_evaluation(run):
    cap = pd.read_csv(run["root"] / "results" / "caption_scores.csv")
    overall = cap[cap.group_by == "overall"].set_index("model")
    for k in (1, 2, 3):
        card = (run["root"] / "models" / f"stage{k}" / "README.md").read_text()
        assert "## Evaluation" in card and "NOT Qwen2.5-VL-7B" in card
        row = next(line for line in card.splitlines() if line.startswith(f"| **stage{k}** |"))
        assert row.split("|")[2].strip() == f"{100 * overall.loc[f'stage{k}', 'bleu1']:.1f}"
        assert "| base |" in card


def test_figures_were_regenerated(run):
    pngs = sorted(p.name for p in run["figures"].glob("*.png"))
    pdfs = sorted(p.name for p in run["figures"].glob("*.pdf"))
    assert len(pngs) >= 5 and len(pdfs) >= 5, pngs


def test_manifest_records_params_versions_and_hashes(run):
    manifest = json.loads((run["root"] / "manifest.json").read_text())
    assert manifest["seed"] == run["cfg"]["seed"]
    assert manifest["params"]["stage1"]["n"] == run["cfg"]["stage1"]["n"]
    assert manifest["packages"]["transformers"] and manifest["mermaid_js"]
    assert set(manifest["steps"]) == {s.name for s in STEPS}
    arts = manifest["artifacts"]
    assert any(k.startswith("models/stage3/merged/") for k in arts)
    assert any(k.startswith("data/stage1/") for k in arts)
    some = "results/caption_scores.csv"
    assert arts[some] == sha256_file(run["root"] / some)
