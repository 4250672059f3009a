"""Every notebook, executed headlessly by papermill on params/smoke.yaml with notebooks/ as its working
directory (as JupyterLab runs it), leaves the artifacts it promises; then the same notebooks run in
JupyterLab in a real browser.

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
    return {"root": root / "run", "figures": root / "figures", "cfg": cfg, "params": params,
            "params_file": params_file}


def test_every_step_left_an_executed_notebook(run):
    for step in STEPS:
        assert (run["root"] / "notebooks" / step.output_name).exists(), step.name


def executed_outputs(path: Path) -> list[dict]:
    import nbformat

    return [o for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code" for o in c.outputs]


def test_notebooks_ran_in_notebooks_folder_and_wrote_nothing_there(run):
    """JupyterLab's working directory is notebooks/: the run still lands in run_dir, nothing strays."""
    for step in STEPS:
        text = "".join(o.get("text", "") for o in executed_outputs(run["root"] / "notebooks" / step.output_name))
        assert f"working directory {REPO / 'notebooks'}" in text, step.name
    assert not (REPO / "notebooks" / "runs").exists()


def test_executed_notebooks_read_well(run):
    """Progress bars end in their final state and the review widget is a static table, not widget text."""
    for step in STEPS:
        for o in executed_outputs(run["root"] / "notebooks" / step.output_name):
            assert "application/vnd.jupyter.widget-view+json" not in o.get("data", {}), (step.name, o)
    synth = executed_outputs(run["root"] / "notebooks" / "01_synthesize_pairs.ipynb")
    bars = [o["text"] for o in synth if o.get("name") == "stderr" and "synthesize stage1" in o.get("text", "")]
    assert bars and "100%" in bars[-1].split("\r")[-1]
    review = executed_outputs(run["root"] / "notebooks" / "02_expert_pairs.ipynb")[-1]
    assert "Stage-2 review" in review["data"]["text/html"] and "VBox" not in review["data"]["text/plain"]


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
    # stage3.type_question_languages: [en, zh] asks each training diagram its type in both languages; the
    # test set keeps the one question in the diagram's language, so objective scores stay comparable
    # stage3.document_type_questions asks the training ones again of a document-look copy ("-doc")
    asked = {}
    for split, rows in (("train", train), ("test", test)):
        for r in rows:
            if r["kind"] == "type":
                look = "document" if r["id"].endswith("-doc") else "clean"
                asked.setdefault((split, r["diagram_id"]), []).append((r["language"], look))
    assert {split for split, _ in asked} == {"train", "test"}
    assert all(sorted(q) == [("en", "clean"), ("en", "document"), ("zh", "clean"), ("zh", "document")]
               for (split, _), q in asked.items() if split == "train")
    assert all(len(q) == 1 and q[0][1] == "clean" for (split, _), q in asked.items() if split == "test")


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
    for m in ("bleu1", "bleu4", "meteor", "rougeL"):
        assert overall[m].between(0, 1).all(), m
    assert overall["cider"].between(0, 10).all()  # CIDEr-D on pycocoevalcap's scale
    obj = pd.read_csv(res / "objective_scores.csv")
    o = obj[obj.group_by == "overall"]
    assert o.accuracy.between(0, 1).all() and (o.chance > 0).all()
    meta = json.loads((res / "meta.json").read_text())
    assert meta["tiny_model"] and meta["standin_stage2"]


def test_blind_evaluation_ran_for_every_model_and_its_rows_are_labelled_blind(run):
    res = run["root"] / "results"
    models = ["base", "stage1", "stage2", "stage3"]
    for name in ("caption_scores_blind", "objective_scores_blind"):
        df = pd.read_csv(res / f"{name}.csv")
        overall = df[df.group_by == "overall"]
        assert set(overall.condition) == {"blind-blank", "blind-shuffled"}, name
        for cond, rows in overall.groupby("condition"):
            assert list(rows.model) == models, (name, cond)
    types = pd.read_csv(res / "type_scores.csv")
    assert set(types.condition) == {"image", "blind-blank", "blind-shuffled"}
    assert set(types.set) == {"captions", "objective"}
    assert types.accuracy.between(0, 1).all()
    blind = pd.read_csv(res / "blind_table.csv")
    assert {"model", "score", "image", "blind-blank", "blind-shuffled", "gain"} <= set(blind.columns)
    assert set(blind.model) == set(models)
    gain = blind.image - blind[["blind-blank", "blind-shuffled"]].max(axis=1)
    assert (blind.gain - gain).abs().max() < 1e-9
    main = pd.read_csv(res / "main_table.csv")
    assert main.type_accuracy.between(0, 1).all() and main.type_accuracy_vqa.between(0, 1).all()
    faith = pd.read_csv(res / "faithfulness_scores_blind.csv")
    faith = faith[faith.group_by == "overall"]
    assert set(faith.condition) == {"blind-blank", "blind-shuffled"} and set(faith.model) == set(models)
    assert "Faithfulness (graph)" in set(blind.score)
    # the blind predictions saw other images: blank ones are white, shuffled ones another diagram's
    paths = run["root"] / "predictions"
    for name in models:
        for kind in ("captions", "objective"):
            for mode in ("blank", "shuffled"):
                identity = json.loads((paths / f"{name}__{kind}__blind-{mode}.identity.json").read_text())
                assert identity["blind"] == {"mode": mode, "seed": run["cfg"]["seed"]}


def test_no_prediction_contains_a_broken_character(run):
    """Every prediction file of the run (with the image and blind) and the gallery: whole UTF-8 characters
    only, never U+FFFD from a multi-byte character cut in half."""
    files = sorted((run["root"] / "predictions").glob("*.jsonl"))
    assert len(files) >= 4 * 2 * 3 + 1
    n = 0
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            texts = [row["text"]] if "text" in row else list(row.get("predictions", {}).values())
            for text in texts:
                assert "\ufffd" not in text, (f.name, row.get("id"), text)
                n += 1
    assert n > 0


def test_gallery_marks_each_captions_type_right_or_wrong(run):
    from dicrepro.evaluate.diagram_type import caption_type

    rows = [json.loads(x) for x in (run["root"] / "predictions" / "gallery.jsonl").read_text().splitlines()]
    assert rows
    for row in rows:
        assert set(row["type_right"]) == set(row["predictions"])
        for m, text in row["predictions"].items():
            assert row["type_right"][m] == (caption_type(text) == row["diagram_type"])


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


def test_figures_are_byte_identical_when_regenerated(run):
    """The figures step twice more on the recorded results: the same bytes as the run's (no dates)."""
    from dicrepro.workflow import make_figures

    figures = sorted(run["figures"].glob("*.p[dn][fg]"))
    first = {p.name: p.read_bytes() for p in figures}
    assert any(n.endswith(".pdf") for n in first) and any(n.endswith(".png") for n in first)
    for _ in range(2):
        make_figures(run["params"])
        assert {p.name: p.read_bytes() for p in sorted(run["figures"].glob("*.p[dn][fg]"))} == first
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in figures)


def test_stage2_reuses_its_candidates_and_keeps_rejected_rows(run, caplog):
    """Opening 02 again costs seconds (no re-rendering); a rejected pair leaves the training set but
    stays among the candidates the review widget walks through."""
    import logging

    from dicrepro.data.review import record_decision
    from dicrepro.data.stage2 import load_candidates
    from dicrepro.paths import RunPaths
    from dicrepro.workflow import make_stage2

    paths = RunPaths(run["root"])
    first = load_candidates(paths)["train"]["id"][0]
    record_decision(paths.stage2_reviews, first, "reject")
    try:
        with caplog.at_level(logging.INFO, logger="dicrepro.data.stage2"):
            ds, _ = make_stage2(run["params"])
        assert "reusing" in caplog.text
        assert first not in ds["train"]["id"] and len(ds["train"]) == run["cfg"]["stage2"]["n"] - 1
        assert first in load_candidates(paths)["train"]["id"]
    finally:  # leave the run as the pipeline made it
        paths.stage2_reviews.unlink()
        make_stage2(run["params"])


# --- JupyterLab in a real browser -----------------------------------------------------------------------

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(run, tmp_path):
    """JupyterLab on notebooks/ (as `make lab` starts it), with the run's smoke params picked through
    $DICREPRO_PARAMS, so the shipped notebooks run unedited; autosave off, so they stay unexecuted."""
    import os
    import secrets
    import subprocess
    import sys
    import time
    import urllib.request

    port, token = _free_port(), secrets.token_hex(16)
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "docmanager-extension"
    settings.mkdir(parents=True)
    (settings / "plugin.jupyterlab-settings").write_text('{"autosave": false}')
    env = {**os.environ, "DICREPRO_PARAMS": str(run["params_file"]),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime")}
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={REPO / 'notebooks'}", "--LabApp.expose_app_in_browser=True",
           "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate"]
    if os.getuid() == 0:
        cmd.append("--allow-root")
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "lab.log").read_text()
                time.sleep(0.5)
        yield {"url": url, "token": token, "log": tmp_path / "lab.log"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


NOTEBOOK_DONE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!w || !w.sessionContext || !w.content || !w.content.model) return false;
  const cells = w.content.model.toJSON().cells.filter(c => c.cell_type === "code");
  if (cells.some(c => (c.outputs || []).some(o => o.output_type === "error"))) return true;
  const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
  return !!kernel && kernel.status === "idle" && cells.length > 0 && cells.every(c => c.execution_count);
}"""


def test_jupyterlab_runs_00_and_01_as_shipped(lab):
    """What a user does: open JupyterLab, open a notebook, Run All; every cell runs, none errs."""
    from playwright.sync_api import sync_playwright

    from dicrepro.diagrams.render import chromium_path  # Debian's /usr/bin/chromium, or $DICREPRO_CHROMIUM

    shipped = {p: p.read_bytes() for p in (REPO / "notebooks").glob("*.ipynb")}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium_path()), headless=True, args=["--no-sandbox"])
        try:
            for name in ("00_base_model.ipynb", "01_synthesize_pairs.ipynb"):
                page = browser.new_page(viewport={"width": 1366, "height": 768})  # a laptop screen
                page.goto(f"{lab['url']}/lab/tree/{name}?reset&token={lab['token']}")
                page.wait_for_function("""() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                    const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
                    return !!k && k.status === "idle" && w.context.path.endsWith(%r); }""" % name, timeout=90_000)
                page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
                page.wait_for_function(NOTEBOOK_DONE, timeout=150_000, polling=1000)
                nb = page.evaluate("window.jupyterapp.shell.currentWidget.content.model.toJSON()")
                code = [c for c in nb["cells"] if c["cell_type"] == "code"]
                errors = [f"{o['ename']}: {o['evalue']}" for c in code for o in c["outputs"]
                          if o["output_type"] == "error"]
                assert not errors, f"{name}: {errors}"
                assert all(c["execution_count"] for c in code), name
                html = [o for c in code for o in c["outputs"] if "text/html" in o.get("data", {})]
                assert html, f"{name}: no rendered sample"  # show.sample / show.captions
                page.close()
        finally:
            browser.close()
    assert {p: p.read_bytes() for p in (REPO / "notebooks").glob("*.ipynb")} == shipped  # nothing saved
    assert not (REPO / "notebooks" / "runs").exists()
