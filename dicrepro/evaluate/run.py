"""Step 5: predictions for every model on the held-out splits, then scores and breakdowns.

Caption set: the test splits of stage 1 (synthetic ICT) and stage 2 (expert data, or the stand-in).
Objective set: the objective questions of the stage-3 test split (diagrams never seen in training).
Predictions are cached as JSONL per model, so a rerun only scores; a model retrained, data rebuilt or
generation settings changed are predicted again (``predictions/NAME__SET.identity.json``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
from datasets import concatenate_datasets, load_from_disk

from dicrepro.atomic import read_jsonl, write_bytes_atomic, write_json_atomic, write_text_atomic
from dicrepro.evaluate.blind import blind_dataset
from dicrepro.evaluate.diagram_type import caption_type, type_accuracy
from dicrepro.evaluate.judge import judge_table
from dicrepro.evaluate.metrics import caption_scores, objective_scores
from dicrepro.evaluate.ocr import ocr_to_jsonl
from dicrepro.evaluate.predict import predict_to_jsonl
from dicrepro.evaluate.sample_scores import FAITH_METRICS, caption_samples, group_cis, write_sample_scores
from dicrepro.manifest import folder_identity
from dicrepro.params import Params
from dicrepro.paths import RunPaths, resolve
from dicrepro.train.sft import write_card_evaluation
from dicrepro.train.train_log import dataset_hash

log = logging.getLogger(__name__)

CAPTION_GROUPS = ("overall", "diagram_type", "language", "source")
OBJECTIVE_GROUPS = ("overall", "dimension", "kind", "qtype", "diagram_type")
METRIC_KEYS = ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rougeL", "cider")
TYPE_QTYPE = "type.diagram"  # the objective "What kind of diagram is this?" (dicrepro.data.vqa_kinds)


def model_dirs(params: Params) -> dict[str, Path]:
    """Model name -> folder, in the order of params.eval.models, then user baselines."""
    paths = RunPaths(Path(params.run_dir))
    out = {}
    for name in params.eval.models:
        if name == "base" and params.model.kind == "local":
            out[name] = Path(params.model.path)
        else:
            out[name] = paths.model_dir(name)
    for b in params.eval.baselines:
        out[b.name] = Path(b.path)
    return out


def caption_eval_set(paths: RunPaths):
    parts = [load_from_disk(str(f))["test"] for f in (paths.stage1_data, paths.stage2_data) if f.exists()]
    if not parts:
        raise FileNotFoundError(f"no caption test split under {paths.data}: run the data steps first")
    return concatenate_datasets(parts)


def objective_eval_set(paths: RunPaths):
    test = load_from_disk(str(paths.stage3_data))["test"]
    return test.filter(lambda o: o, input_columns="objective")


def real_eval_set(params: Params):
    """The harvested real test set (eval.real_test: a `dicrepro harvest --split test` folder), or None."""
    if params.eval.real_test is None:
        return None
    path = resolve(params.eval.real_test)
    if not path.exists():
        raise FileNotFoundError(f"eval.real_test: {path} not found (write it with `dicrepro harvest DOCS --split "
                                "test --out FOLDER`, or remove eval.real_test)")
    dd = load_from_disk(str(path))
    return dd["test"] if "test" in dd else dd


def structure_eval_set(paths: RunPaths):
    """The structure task's test items ("write this diagram as Mermaid", stage3.mermaid_task); may be empty."""
    test = load_from_disk(str(paths.stage3_data))["test"]
    return test.filter(lambda k: k == "mermaid", input_columns="kind")


def score_captions(meta: list[dict], preds: dict[str, dict[str, str]]) -> pd.DataFrame:
    """One row per (model, group_by, group): n and every caption metric."""

    rows = []
    for model, by_id in preds.items():
        for group_by in CAPTION_GROUPS:
            keys = sorted({m.get(group_by, "all") if group_by != "overall" else "all" for m in meta})
            for g in keys:
                sel = [m for m in meta if group_by == "overall" or m[group_by] == g]
                scores = caption_scores([m["reference"] for m in sel], [by_id[m["id"]] for m in sel],
                                        [m["language"] for m in sel])
                rows.append({"model": model, "group_by": group_by, "group": g, "n": len(sel),
                             **{k: float(scores[k]) for k in METRIC_KEYS}})
    return pd.DataFrame(rows)


def score_objective(items: list[dict], preds: dict[str, dict[str, str]]) -> pd.DataFrame:
    """Accuracy per (model, group_by, group), with unparsed answers counted (as wrong) and chance level."""

    rows = []
    for model, by_id in preds.items():
        for group_by in OBJECTIVE_GROUPS:
            keys = sorted({it[group_by] for it in items}) if group_by != "overall" else ["all"]
            for g in keys:
                sel = [it for it in items if group_by == "overall" or it[group_by] == g]
                sc = objective_scores(sel, by_id)
                rows.append({"model": model, "group_by": group_by, "group": g, "n": sc["n"],
                             "accuracy": sc["accuracy"], "unparsed": sc["unparsed"], "chance": sc["chance"]})
    return pd.DataFrame(rows)


def score_types(cap_meta: list[dict], obj_items: list[dict], cap_preds: dict[str, dict[str, str]],
                obj_preds: dict[str, dict[str, str]], condition: str = "image") -> pd.DataFrame:
    """Diagram-type accuracy per model: of the captions (the type named first, dicrepro.evaluate.diagram_type;
    overall and per source) and of the objective "What kind of diagram is this?" questions."""

    rows = []
    for model, by_id in cap_preds.items():
        for group_by in ("overall", "source"):
            keys = sorted({m[group_by] for m in cap_meta}) if group_by != "overall" else ["all"]
            for g in keys:
                sel = [m for m in cap_meta if group_by == "overall" or m[group_by] == g]
                sc = type_accuracy([m["diagram_type"] for m in sel], [by_id[m["id"]] for m in sel])
                rows.append({"model": model, "condition": condition, "set": "captions", "group_by": group_by,
                             "group": g, **sc})
    kind_items = [it for it in obj_items if it["qtype"] == TYPE_QTYPE]
    for model, by_id in obj_preds.items():
        if kind_items:
            sc = objective_scores(kind_items, by_id)
            rows.append({"model": model, "condition": condition, "set": "objective", "group_by": "overall",
                         "group": "all", "accuracy": sc["accuracy"], "n": sc["n"],
                         "unnamed": sc["unparsed"] / sc["n"], "chance": sc["chance"]})
    return pd.DataFrame(rows)


def _write_blind_and_type_scores(paths: RunPaths, cap_meta, obj_items, cap_preds, obj_preds, blind_cap,
                                 blind_obj) -> None:
    """``type_scores.csv`` (with the image and blind) and, when blind runs were made,
    ``caption_scores_blind.csv`` / ``objective_scores_blind.csv``: the same rows as the main files with a
    ``condition`` column saying ``blind-blank`` or ``blind-shuffled``."""

    types = [score_types(cap_meta, obj_items, cap_preds, obj_preds)]
    caps, objs = [], []
    for mode in blind_cap:
        condition = f"blind-{mode}"
        types.append(score_types(cap_meta, obj_items, blind_cap[mode], blind_obj[mode], condition))
        caps.append(score_captions(cap_meta, blind_cap[mode]).assign(condition=condition))
        objs.append(score_objective(obj_items, blind_obj[mode]).assign(condition=condition))
    res = paths.results
    write_text_atomic(res / "type_scores.csv", pd.concat(types).to_csv(index=False, float_format="%.6f"))
    for name, parts in (("caption_scores_blind", caps), ("objective_scores_blind", objs)):
        if parts:
            df = pd.concat(parts)
            df = df[["model", "condition", *[c for c in df.columns if c not in ("model", "condition")]]]
            write_text_atomic(res / f"{name}.csv", df.to_csv(index=False, float_format="%.6f"))
        else:
            (res / f"{name}.csv").unlink(missing_ok=True)  # no stale blind scores from an earlier run


def _write_blind_faithfulness(paths: RunPaths, cap_rows: list[dict], blind_cap, seed: int) -> None:
    """``faithfulness_scores_blind.csv``: the blind captions' faithfulness to the graph of the diagram
    they were asked about (rows as in faithfulness_scores.csv, plus ``condition``)."""
    out = paths.results / "faithfulness_scores_blind.csv"
    parts = [group_cis(caption_samples(cap_rows, preds), FAITH_METRICS, seed).assign(condition=f"blind-{mode}")
             for mode, preds in blind_cap.items() if preds]
    if not parts:
        out.unlink(missing_ok=True)
        return
    df = pd.concat(parts)
    write_text_atomic(out, df[["model", "condition", *[c for c in df.columns if c not in ("model", "condition")]]]
                      .to_csv(index=False, float_format="%.6f"))


def _predict_all(params: Params, paths: RunPaths, name: str, model_dir: Path, ds, kind: str,
                 model_id: str, data: list[str], blind: str | None = None) -> dict[str, str]:
    """Predictions of model ``name`` on ``ds``, reused while the model (``model_id``, its
    ``folder_identity``), the data (``data``: hashes of the dataset folders) and the generation settings
    are unchanged. ``blind`` (a mode of dicrepro.evaluate.blind) names a blind run: ``ds`` then holds the
    replaced images and the predictions go to ``NAME__SET__blind-MODE.jsonl``."""

    out = paths.predictions / (f"{name}__{kind}.jsonl" if blind is None else f"{name}__{kind}__blind-{blind}.jsonl")
    e = params.eval
    tokens = e.objective_max_new_tokens if kind == "objective" else e.max_new_tokens
    identity = {"model": model_id, "data": data, "max_new_tokens": tokens,
                "batch_size": e.batch_size, "pixels": [params.model.min_pixels, params.model.max_pixels]}
    if e.num_beams != 1:  # absent when greedy, so predictions made before the option existed stay valid
        identity["num_beams"] = e.num_beams
    if blind is not None:
        identity["blind"] = {"mode": blind, "seed": params.seed}
    predict_to_jsonl(model_dir, name, ds, out, batch_size=e.batch_size, max_new_tokens=tokens,
                     model_params=params.model, identity=identity, num_beams=e.num_beams)
    return {r["id"]: r["text"] for r in read_jsonl(out)}


def _ocr_predictions(paths: RunPaths, ds) -> dict[str, str]:
    out = paths.predictions / "ocr__captions.jsonl"
    ocr_to_jsonl(ds, out)
    return {r["id"]: r["text"] for r in read_jsonl(out)}


def _write_gallery(params: Params, paths: RunPaths, cap_ds, preds: dict[str, dict[str, str]]) -> None:
    gdir = paths.results / "gallery"
    rows = []
    for row in cap_ds.select(range(min(params.eval.gallery_n, len(cap_ds)))):
        img_path = gdir / f"{row['id']}.png"
        import io

        buf = io.BytesIO()
        row["image"].convert("RGB").save(buf, format="PNG")
        write_bytes_atomic(img_path, buf.getvalue())
        rows.append({"id": row["id"], "image_path": str(img_path), "reference": row["target"],
                     "diagram_type": row["diagram_type"],
                     "predictions": {m: p[row["id"]] for m, p in preds.items()},
                     # the type each caption names first, and whether it is the diagram's (the gallery's mark)
                     "caption_types": {m: caption_type(p[row["id"]]) for m, p in preds.items()},
                     "type_right": {m: caption_type(p[row["id"]]) == row["diagram_type"] for m, p in preds.items()}})
    write_text_atomic(paths.predictions / "gallery.jsonl",
                      "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _write_model_cards(params: Params, paths: RunPaths, captions: pd.DataFrame, objective: pd.DataFrame) -> None:
    """Each evaluated stage's model card gets the overall scores of every evaluated model."""

    obj = {r["model"]: r for r in objective.to_dict("records")}
    rows = []
    for r in captions.to_dict("records"):
        o = obj.get(r["model"], {})
        rows.append({**r, "n_captions": r["n"], "n_objective": o.get("n"), "accuracy": o.get("accuracy"),
                     "unparsed": o.get("unparsed"), "chance": o.get("chance")})
    evaluated = {r["model"] for r in rows}
    for k in (1, 2, 3):
        if f"stage{k}" in evaluated and (paths.stage_model(k) / "lineage.json").exists():
            write_card_evaluation(params, k, rows)


def evaluate(params: Params) -> dict[str, pd.DataFrame]:
    """Predict with every model, score, and write RUN/results/*.csv + meta.json. Returns the overall tables."""

    paths = RunPaths(Path(params.run_dir))
    cap_ds = caption_eval_set(paths)
    obj_ds = objective_eval_set(paths)
    st_ds = structure_eval_set(paths)
    real_ds = real_eval_set(params)
    real_data = [dataset_hash(resolve(params.eval.real_test))] if real_ds is not None else []
    cap_meta = [{"id": r["id"], "reference": r["target"], "language": r["language"],
                 "diagram_type": r["diagram_type"], "source": r["source"]}
                for r in cap_ds.remove_columns("image")]
    obj_items = list(obj_ds.remove_columns("image"))
    cap_preds, obj_preds, st_preds, real_preds = {}, {}, {}, {}
    cap_data = [dataset_hash(f) for f in (paths.stage1_data, paths.stage2_data) if f.exists()]
    obj_data = [dataset_hash(paths.stage3_data)]
    # Blind copies of both sets (same rows, images blank or shuffled between diagrams), built once.
    blind_sets = {m: (blind_dataset(cap_ds, m, params.seed), blind_dataset(obj_ds, m, params.seed))
                  for m in params.eval.blind}
    blind_cap: dict[str, dict[str, dict[str, str]]] = {m: {} for m in blind_sets}
    blind_obj: dict[str, dict[str, dict[str, str]]] = {m: {} for m in blind_sets}
    for name, mdir in model_dirs(params).items():
        if not mdir.exists():
            raise FileNotFoundError(f"model {name!r} not found at {mdir}: train it first (04_sft) or "
                                    "remove it from eval.models")
        log.info("predicting with %s (%s)", name, mdir)
        model_id = folder_identity(mdir)  # a content hash for small folders: once per model, not per set
        cap_preds[name] = _predict_all(params, paths, name, mdir, cap_ds, "captions", model_id, cap_data)
        obj_preds[name] = _predict_all(params, paths, name, mdir, obj_ds, "objective", model_id, obj_data)
        if len(st_ds):
            st_preds[name] = _predict_all(params, paths, name, mdir, st_ds, "structure", model_id, obj_data)
        if real_ds is not None and len(real_ds):
            real_preds[name] = _predict_all(params, paths, name, mdir, real_ds, "real", model_id, real_data)
        for mode, (bcap, bobj) in blind_sets.items():
            log.info("predicting with %s, blind (%s images)", name, mode)
            blind_cap[mode][name] = _predict_all(params, paths, name, mdir, bcap, "captions", model_id, cap_data,
                                                 blind=mode)
            blind_obj[mode][name] = _predict_all(params, paths, name, mdir, bobj, "objective", model_id, obj_data,
                                                 blind=mode)
    if params.eval.ocr_baseline:
        cap_preds["ocr"] = _ocr_predictions(paths, cap_ds)
    captions = score_captions(cap_meta, cap_preds)
    objective = score_objective(obj_items, obj_preds)
    paths.results.mkdir(parents=True, exist_ok=True)
    write_text_atomic(paths.results / "caption_scores.csv", captions.to_csv(index=False, float_format="%.6f"))
    write_text_atomic(paths.results / "objective_scores.csv", objective.to_csv(index=False, float_format="%.6f"))
    _write_blind_and_type_scores(paths, cap_meta, obj_items, cap_preds, obj_preds, blind_cap, blind_obj)
    # Per-sample scores: faithfulness against each caption's graph, bootstrap CIs, paired p-values.
    graphs = cap_ds["graph"] if "graph" in cap_ds.column_names else [""] * len(cap_meta)
    real_rows = [{"id": r["id"], "reference": r["target"], "language": r["language"],
                  "diagram_type": r["diagram_type"], "source": r["source"], "graph": r["graph"]}
                 for r in real_ds.remove_columns("image")] if real_preds else []
    write_sample_scores(paths.results, [{**m, "graph": g} for m, g in zip(cap_meta, graphs)], cap_preds,
                        obj_items, obj_preds, params.seed, list(st_ds.remove_columns("image")), st_preds,
                        real_rows=real_rows, real_preds=real_preds,
                        workers=params.render.workers, timeout_s=params.render.timeout_s)
    _write_blind_faithfulness(paths, [{**m, "graph": g} for m, g in zip(cap_meta, graphs)], blind_cap, params.seed)
    with_ref = [r for r in real_rows if r["reference"].strip()]
    if with_ref:  # harvested rows of a mapped type carry the verbalizer's description as reference
        write_text_atomic(paths.results / "caption_scores_real.csv",
                          score_captions(with_ref, real_preds).to_csv(index=False, float_format="%.6f"))
    else:
        (paths.results / "caption_scores_real.csv").unlink(missing_ok=True)
    if params.eval.judge.enabled:  # optional LLM-as-judge against each caption's Mermaid source
        mermaid = cap_ds["mermaid"] if "mermaid" in cap_ds.column_names else [""] * len(cap_meta)
        judged = judge_table(cap_meta, mermaid, cap_preds, params.eval.judge, paths.results / "judge_cache.jsonl")
        write_text_atomic(paths.results / "judge_scores.csv", judged.to_csv(index=False, float_format="%.6f"))
    stage2_sources = set(load_from_disk(str(paths.stage2_data))["train"]["source"])
    write_json_atomic(paths.results / "meta.json", {
        "tiny_model": params.model.kind == "tiny",
        "standin_stage2": "standin" in stage2_sources,
        "model_order": list(cap_preds),
        "caption_set": {"n": len(cap_meta), "splits": ["stage1/test", "stage2/test"]},
        "objective_set": {"n": len(obj_items), "split": "stage3/test"},
        "blind": {"modes": list(params.eval.blind), "seed": params.seed,
                  "note": "blind = the same sets with blank images or images shuffled between diagrams"},
        "bleu": "corpus BLEU on words (jieba-segmented Chinese); see dicrepro.evaluate.metrics",
        "decoding": {"num_beams": params.eval.num_beams, "max_new_tokens": params.eval.max_new_tokens,
                     "objective_max_new_tokens": params.eval.objective_max_new_tokens},
        "units": "scores are fractions 0-1, except cider: CIDEr-D on pycocoevalcap's scale (0-10)",
    })
    _write_gallery(params, paths, cap_ds, cap_preds)
    overall_c = captions[captions.group_by == "overall"].drop(columns=["group_by", "group"])
    overall_o = objective[objective.group_by == "overall"].drop(columns=["group_by", "group"])
    _write_model_cards(params, paths, overall_c, overall_o)
    return {"captions": overall_c.reset_index(drop=True), "objective": overall_o.reset_index(drop=True)}
