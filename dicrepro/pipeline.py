"""Run the pipeline's notebooks in order with papermill; stop on the first failure, resume from a step.

The executed notebooks are outputs of the run (``RUN/notebooks/``), never edited by hand.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dicrepro.manifest import write_manifest
from dicrepro.params import Params, load_params
from dicrepro.paths import RunPaths, notebooks_dir, repo_root, resolve

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    name: str
    notebook: str
    parameters: dict

    @property
    def output_name(self) -> str:
        stem = Path(self.notebook).stem
        return f"{stem}_stage{self.parameters['stage']}.ipynb" if "stage" in self.parameters else f"{stem}.ipynb"


STEPS: tuple[Step, ...] = (
    Step("base", "00_base_model.ipynb", {}),
    Step("synth", "01_synthesize_pairs.ipynb", {}),
    Step("expert", "02_expert_pairs.ipynb", {}),
    Step("vqa", "03_vqa.ipynb", {}),
    Step("sft1", "04_sft.ipynb", {"stage": 1}),
    Step("sft2", "04_sft.ipynb", {"stage": 2}),
    Step("sft3", "04_sft.ipynb", {"stage": 3}),
    Step("evaluate", "05_evaluate.ipynb", {}),
    Step("figures", "06_figures.ipynb", {}),
)
STEP_NAMES = tuple(s.name for s in STEPS)


class StepFailed(RuntimeError):
    """A notebook raised: the message names the step, the notebook, the cell and the error."""


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


def _failure_message(step: Step, out_nb: Path, err: Exception) -> str:
    cell = getattr(err, "exec_count", None)
    ename = getattr(err, "ename", type(err).__name__)
    evalue = getattr(err, "evalue", str(err))
    where = f"cell [{cell}]" if cell is not None else "a cell"
    return (f"step '{step.name}' failed in notebooks/{step.notebook}, {where}: {ename}: {evalue}\n"
            f"  executed notebook with the traceback: {out_nb}\n"
            f"  after fixing, resume with: dicrepro run PARAMS --from {step.name}")


@contextmanager
def _kernel_env(**values: str):
    """Environment variables for the notebook kernels papermill starts (they inherit this process's
    environment; papermill has no other way in), restored afterwards."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_pipeline(params_path: str | Path, *, only: list[str] | None = None, start: str | None = None,
                 kernel_name: str = "python3", progress: bool = True) -> Params:
    """Execute the selected notebooks with papermill on ``params_path``; returns the validated params.

    Params are validated first, so a bad file fails before any work starts. A relative ``params_path``
    is taken from the project root (:func:`dicrepro.paths.repo_root`). Each notebook runs with
    ``notebooks/`` as its working directory, as in JupyterLab (for an installed wheel without a
    checkout: the current directory), and with text progress bars, which an executed notebook keeps in
    their final state (widget bars would stay at their first frame).
    """
    import papermill as pm

    params_path = resolve(params_path)
    params = load_params(params_path)
    steps = select_steps(only, start)
    paths = RunPaths(Path(params.run_dir))
    paths.notebooks.mkdir(parents=True, exist_ok=True)
    root = repo_root()
    cwd = root / "notebooks" if (root / "notebooks").is_dir() else root
    env = {"DICREPRO_ROOT": str(root), "DICREPRO_PROGRESS": "text",
           "HF_DATASETS_DISABLE_PROGRESS_BARS": os.environ.get("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")}
    for step in steps:
        out_nb = paths.notebooks / step.output_name
        log.info("step %s: %s -> %s", step.name, step.notebook, out_nb)
        t0 = time.time()
        try:
            with _kernel_env(**env):
                pm.execute_notebook(
                    str(notebooks_dir() / step.notebook), str(out_nb),
                    parameters={"params_path": str(params_path), **step.parameters},
                    kernel_name=kernel_name, cwd=str(cwd), progress_bar=progress,
                )
        except Exception as err:  # papermill's PapermillExecutionError carries cell and error
            raise StepFailed(_failure_message(step, out_nb, err)) from None
        log.info("step %s done in %.1fs", step.name, time.time() - t0)
        write_manifest(params, step_done=step.name, seconds=time.time() - t0)
    return params
