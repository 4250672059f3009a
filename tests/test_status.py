"""`dicrepro status`: a step is done, stale or missing according to what it was made from."""

from __future__ import annotations

from pathlib import Path

import yaml

from dicrepro.cli import main
from dicrepro.manifest import write_manifest
from dicrepro.params import load_params
from dicrepro.paths import RunPaths
from dicrepro.steps import STEP_NAMES, signatures, step_status, steps_to_run


def finished_run(tmp_path: Path) -> Path:
    """A params file and a run folder in which every step is recorded as finished with these params
    (outputs stand in as the files `status` looks for; no training)."""
    cfg = {"run_dir": str(tmp_path / "run"), "figures_dir": str(tmp_path / "figures")}
    params_file = tmp_path / "p.yaml"
    params_file.write_text(yaml.safe_dump(cfg))
    params = load_params(params_file)
    paths = RunPaths(Path(params.run_dir))
    for folder in (paths.base_model, paths.stage1_data, paths.stage2_data, paths.stage3_data):
        folder.mkdir(parents=True)
        (folder / ("config.json" if folder == paths.base_model else "dataset_dict.json")).write_text("{}")
    for k in (1, 2, 3):
        paths.stage_model(k).mkdir(parents=True)
        (paths.stage_model(k) / "lineage.json").write_text("{}")
    paths.results.mkdir(parents=True)
    (paths.results / "caption_scores.csv").write_text("model\n")
    Path(params.figures_dir).mkdir()
    (Path(params.figures_dir) / "a.png").write_bytes(b"png")
    sig = signatures(params)
    for name in STEP_NAMES:
        write_manifest(params, step_done=name, seconds=1.0, signature=sig[name])
    return params_file


def edit(params_file: Path, **changes) -> None:
    cfg = yaml.safe_load(params_file.read_text())
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = cfg
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    params_file.write_text(yaml.safe_dump(cfg))


def test_a_finished_run_is_done(tmp_path):
    params_file = finished_run(tmp_path)
    assert set(step_status(load_params(params_file)).values()) == {"done"}
    assert steps_to_run(load_params(params_file)) == []


def test_a_stage3_field_makes_exactly_vqa_sft3_evaluate_and_figures_stale(tmp_path):
    params_file = finished_run(tmp_path)
    edit(params_file, stage3__n_diagrams=7)
    status = step_status(load_params(params_file))
    assert [s for s, v in status.items() if v != "done"] == ["vqa", "sft3", "evaluate", "figures"]
    assert [s.name for s in steps_to_run(load_params(params_file))] == ["vqa", "sft3", "evaluate", "figures"]


def test_a_stage2_training_field_leaves_stage1_alone(tmp_path):
    params_file = finished_run(tmp_path)
    edit(params_file, sft__stage2__learning_rate=0.5)
    status = step_status(load_params(params_file))
    assert [s for s, v in status.items() if v != "done"] == ["sft2", "sft3", "evaluate", "figures"]


def test_a_deleted_output_is_missing_and_edited_annotations_make_stage2_stale(tmp_path):
    params_file = finished_run(tmp_path)
    params = load_params(params_file)
    (RunPaths(Path(params.run_dir)).stage_model(1) / "lineage.json").unlink()
    assert step_status(params)["sft1"] == "missing"
    assert step_status(params)["sft2"] == "done"  # its own record still matches; run redoes sft1 first

    ann = tmp_path / "ann.jsonl"
    ann.write_text('{"image": "a.png", "text": "x"}\n')
    edit(params_file, stage2__annotations=str(ann))
    sig = signatures(load_params(params_file))["expert"]
    ann.write_text('{"image": "a.png", "text": "y"}\n')
    assert signatures(load_params(params_file))["expert"] != sig


def test_status_command_says_what_run_would_redo(tmp_path, capsys):
    params_file = finished_run(tmp_path)
    assert main(["status", str(params_file)]) == 0
    out = capsys.readouterr().out
    assert "nothing to redo" in out and out.count(" done ") == len(STEP_NAMES)
    edit(params_file, eval__max_new_tokens=9)
    assert main(["status", str(params_file)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"next: dicrepro run {params_file}   (redoes evaluate, figures)"
