"""Run the pipeline's notebooks in order with papermill; stop on the first failure, resume from a step.

The executed notebooks are outputs of the run (``RUN/notebooks/``), never edited by hand.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path

from dicrepro.manifest import write_manifest
from dicrepro.params import Params, load_params
from dicrepro.paths import RunPaths, notebooks_dir, repo_root, resolve
from dicrepro.steps import STEP_NAMES, STEPS, Step, select_steps, signatures, steps_to_run  # noqa: F401

log = logging.getLogger(__name__)


class StepFailed(RuntimeError):
    """A notebook raised: the message names the step, the notebook, the cell and the error."""


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
                 kernel_name: str = "python3", progress: bool = True, force: bool = False) -> Params:
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
    if only or start or force:
        steps = select_steps(only, start)
    else:  # only what is stale or missing (dicrepro status), in order
        steps = steps_to_run(params)
        if not steps:
            log.info("every step is done and current (dicrepro status); --force reruns them")
    paths = RunPaths(Path(params.run_dir))
    paths.notebooks.mkdir(parents=True, exist_ok=True)
    root = repo_root()
    cwd = root / "notebooks" if (root / "notebooks").is_dir() else root
    env = {"DICREPRO_ROOT": str(root), "DICREPRO_PROGRESS": "text",
           # Hugging Face's own bars are widgets in a kernel (saved at 0%); they are short, so: none
           "HF_DATASETS_DISABLE_PROGRESS_BARS": os.environ.get("HF_DATASETS_DISABLE_PROGRESS_BARS", "1"),
           "HF_HUB_DISABLE_PROGRESS_BARS": os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS", "1")}
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
        write_manifest(params, step_done=step.name, seconds=time.time() - t0,
                       signature=signatures(params)[step.name])
    return params
