"""Run the pipeline's notebooks in order with papermill; stop on the first failure, resume from a step.

The executed notebooks are outputs of the run (``RUN/notebooks/``), never edited by hand.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from dicrepro.manifest import write_manifest
from dicrepro.params import Params, load_params
from dicrepro.paths import RunPaths

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"


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


def run_pipeline(params_path: str | Path, *, only: list[str] | None = None, start: str | None = None,
                 kernel_name: str = "python3", progress: bool = True) -> Params:
    """Execute the selected notebooks with papermill on ``params_path``; returns the validated params.

    Params are validated first, so a bad file fails before any work starts.
    """
    import papermill as pm

    params_path = Path(params_path).resolve()
    params = load_params(params_path)
    steps = select_steps(only, start)
    paths = RunPaths(Path(params.run_dir))
    paths.notebooks.mkdir(parents=True, exist_ok=True)
    for step in steps:
        out_nb = paths.notebooks / step.output_name
        log.info("step %s: %s -> %s", step.name, step.notebook, out_nb)
        t0 = time.time()
        try:
            pm.execute_notebook(
                str(NOTEBOOKS / step.notebook), str(out_nb),
                parameters={"params_path": str(params_path), **step.parameters},
                kernel_name=kernel_name, cwd=str(Path.cwd()), progress_bar=progress,
            )
        except Exception as err:  # papermill's PapermillExecutionError carries cell and error
            raise StepFailed(_failure_message(step, out_nb, err)) from None
        log.info("step %s done in %.1fs", step.name, time.time() - t0)
        write_manifest(params, step_done=step.name, seconds=time.time() - t0)
    return params
