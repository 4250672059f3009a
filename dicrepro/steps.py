"""The pipeline's steps, what each one is made from, and whether its recorded output is still current.

Each step records in ``manifest.json`` a *signature* when it finishes: a hash of the params it depends on
(only those: a stage-3 field never touches stage 1), of the files named by params that it reads (expert
annotations, review decisions, a local base model), and of the signatures of the steps it reads from.
``step_status(params)`` recomputes the signatures and compares, as ``dvc status`` does:

- ``done``: recorded with the same signature, and its output is there;
- ``stale``: recorded with another signature (params, inputs or an upstream step changed), or recorded
  by a dicrepro that kept no signature;
- ``missing``: never finished, or its output was deleted.

``dicrepro run`` runs the steps that are not ``done`` (and ``--force`` all of them).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from dicrepro.manifest import folder_identity, sha256_file
from dicrepro.params import Params, dump_params
from dicrepro.paths import RunPaths, resolve

# The stage-1 fields every synthesized image set shares (pre-training, stand-in and VQA images follow
# stage 1's types, languages and sizes); stage 1's own counts are not among them.
_DIAGRAM_SHAPE = ("stage1.diagram_types", "stage1.languages", "stage1.min_elements", "stage1.max_elements")
_SFT_SHARED = ("sft.backend", "sft.collator", "sft.load_in_4bit", "sft.continue_from", "sft.lora",
               "sft.batch_size", "sft.grad_accum", "sft.max_length", "sft.warmup_ratio", "sft.resume",
               "sft.replay", "sft.bf16")


@dataclass(frozen=True)
class Step:
    """One pipeline step: its notebook (with papermill parameters), the params it reads (dotted paths)
    and the steps whose outputs it reads."""

    name: str
    notebook: str
    parameters: dict
    reads: tuple[str, ...] = ()
    after: tuple[str, ...] = ()

    @property
    def output_name(self) -> str:
        stem = Path(self.notebook).stem
        return f"{stem}_stage{self.parameters['stage']}.ipynb" if "stage" in self.parameters else f"{stem}.ipynb"


STEPS: tuple[Step, ...] = (
    Step("base", "00_base_model.ipynb", {}, ("seed", "model", "render") + _DIAGRAM_SHAPE),
    Step("synth", "01_synthesize_pairs.ipynb", {}, ("seed", "stage1", "render", "describe")),
    Step("expert", "02_expert_pairs.ipynb", {}, ("seed", "stage2", "render", "describe") + _DIAGRAM_SHAPE),
    Step("vqa", "03_vqa.ipynb", {}, ("seed", "stage3", "render", "describe") + _DIAGRAM_SHAPE),
    Step("sft1", "04_sft.ipynb", {"stage": 1}, ("seed", "model") + _SFT_SHARED + ("sft.stage1",), ("base", "synth")),
    Step("sft2", "04_sft.ipynb", {"stage": 2}, ("seed", "model") + _SFT_SHARED + ("sft.stage2",),
         ("sft1", "synth", "expert")),
    Step("sft3", "04_sft.ipynb", {"stage": 3}, ("seed", "model") + _SFT_SHARED + ("sft.stage3",),
         ("sft2", "synth", "expert", "vqa")),
    Step("evaluate", "05_evaluate.ipynb", {}, ("seed", "eval", "model.min_pixels", "model.max_pixels"),
         ("base", "sft1", "sft2", "sft3", "synth", "expert", "vqa")),
    Step("figures", "06_figures.ipynb", {}, ("name", "figures_dir"), ("evaluate",)),
)
STEP_NAMES = tuple(s.name for s in STEPS)
_BY_NAME = {s.name: s for s in STEPS}


def select_steps(only: list[str] | None = None, start: str | None = None) -> list[Step]:
    """The steps to run: all, ``only`` the named ones, or every step ``start``-ing from one."""
    for name in (only or []) + ([start] if start else []):
        if name not in STEP_NAMES:
            raise ValueError(f"unknown step {name!r}; steps are: {', '.join(STEP_NAMES)}")
    if only:
        return [s for s in STEPS if s.name in only]
    if start:
        return list(STEPS[STEP_NAMES.index(start):])
    return list(STEPS)


def _get(tree: dict, dotted: str):
    for key in dotted.split("."):
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree


def _file_identity(path: Path | None) -> str | None:
    if path is None or not Path(path).exists():
        return None
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    return hashlib.sha256("\n".join(f"{f.relative_to(path)}:{sha256_file(f)}" for f in sorted(path.rglob("*"))
                                    if f.is_file()).encode()).hexdigest()


def _files_read(step: Step, params: Params, paths: RunPaths) -> dict:
    """Identities of the files outside the run that a step reads, as named by params."""
    if step.name == "expert":
        return {"annotations": _file_identity(params.stage2.annotations),
                "reviews": _file_identity(paths.stage2_reviews)}
    if step.name in ("base", "sft1") and params.model.kind == "local" and params.model.path:
        return {"base_model": folder_identity(Path(params.model.path)) if Path(params.model.path).is_dir() else None}
    if step.name == "evaluate":
        out = {b.name: folder_identity(Path(b.path)) if Path(b.path).is_dir() else None
               for b in params.eval.baselines}
        if params.eval.real_test is not None:  # a re-harvested real test set makes the scores stale
            real = resolve(params.eval.real_test)
            out["real_test"] = folder_identity(real) if real.is_dir() else None
        return out
    return {}


def signatures(params: Params) -> dict[str, str]:
    """The signature every step would record if it finished now with these params and inputs."""
    dumped = dump_params(params)
    paths = RunPaths(Path(params.run_dir))
    out: dict[str, str] = {}
    for step in STEPS:  # in order, so every upstream signature is already known
        record = {"reads": {k: _get(dumped, k) for k in step.reads},
                  "files": _files_read(step, params, paths),
                  "after": {u: out[u] for u in step.after}}
        if _DIAGRAM_SHAPE[0] in step.reads and _get(dumped, "stage1.realism") is not None:
            # the realism knobs shape every synthesized image set too; read only when set, so a plain
            # profile's signatures (and its finished steps) stay as they were
            record["reads"]["stage1.realism"] = _get(dumped, "stage1.realism")
        out[step.name] = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return out


def output_present(step: Step, params: Params) -> bool:
    """Whether the step's main output is on disk (a deleted output makes a step ``missing``)."""
    paths = RunPaths(Path(params.run_dir))
    if step.name == "base":
        folder = Path(params.model.path) if params.model.kind == "local" and params.model.path else paths.base_model
        return (folder / "config.json").is_file()
    if step.name in ("synth", "expert", "vqa"):
        stage = {"synth": 1, "expert": 2, "vqa": 3}[step.name]
        return (paths.stage_data(stage) / "dataset_dict.json").is_file()
    if step.name.startswith("sft"):
        return (paths.stage_model(int(step.name[3:])) / "lineage.json").is_file()
    if step.name == "evaluate":
        return (paths.results / "caption_scores.csv").is_file()
    return Path(params.figures_dir).is_dir() and any(Path(params.figures_dir).iterdir())


def step_status(params: Params) -> dict[str, str]:
    """``{step: "done" | "stale" | "missing"}`` from the run's manifest and the current params."""
    paths = RunPaths(Path(params.run_dir))
    recorded = {}
    if paths.manifest.exists():
        try:
            recorded = json.loads(paths.manifest.read_text()).get("steps", {})
        except ValueError:
            recorded = {}
    now = signatures(params)
    status = {}
    for step in STEPS:
        rec = recorded.get(step.name)
        if not isinstance(rec, dict) or not output_present(step, params):
            status[step.name] = "missing"
        elif rec.get("signature") != now[step.name]:
            status[step.name] = "stale"
        else:
            status[step.name] = "done"
    return status


def steps_to_run(params: Params) -> list[Step]:
    """The steps ``dicrepro run`` redoes: those not ``done``, in pipeline order."""
    status = step_status(params)
    return [s for s in STEPS if status[s.name] != "done"]


def format_status(params: Params, params_path: str | Path) -> str:
    """A table of the steps' states, then one line saying what to run next."""
    status = step_status(params)
    lines = [f"{s.name:<9} {status[s.name]:<8} {s.notebook}" for s in STEPS]
    todo = [s.name for s in STEPS if status[s.name] != "done"]
    if todo:
        lines.append(f"next: dicrepro run {params_path}   (redoes {', '.join(todo)})")
    else:
        lines.append(f"next: nothing to redo; dicrepro report {params.run_dir} shows the results")
    return "\n".join(lines)
