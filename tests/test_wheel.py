"""Installed, not only checked out: the built wheel carries the notebooks, prompts and knowledge base,
and `dicrepro run` works from a fresh environment in a directory that is not the repository.

Nothing is downloaded: the wheel is built without build isolation and installed with --no-deps into a
fresh venv that sees the project venv's packages through a .pth file (not its editable dicrepro)."""

import os
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def package_data() -> dict[str, list[str]]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]


def source_dir(package: str) -> Path:
    """Where a package's files live in the checkout (setup.py maps dicrepro.notebooks to notebooks/)."""
    if package == "dicrepro.notebooks":
        return REPO / "notebooks"
    return REPO.joinpath(*package.split("."))


def test_package_data_lists_only_what_exists():
    for package, globs in package_data().items():
        for pattern in globs:
            assert list(source_dir(package).glob(pattern)), f"package-data {package}: {pattern} matches nothing"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the sources (a stale build/ in the checkout cannot leak in)."""
    import shutil

    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
    shutil.copytree(REPO / "dicrepro", src / "dicrepro", ignore=ignore)
    shutil.copytree(REPO / "notebooks", src / "notebooks", ignore=ignore)
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(dist), str(src)], check=True, capture_output=True, timeout=300)
    return next(dist.glob("dicrepro-*.whl"))


def test_wheel_carries_notebooks_prompts_and_knowledge_base(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for nb in (REPO / "notebooks").glob("*.ipynb"):
        assert f"dicrepro/notebooks/{nb.name}" in names
    for package, globs in package_data().items():
        prefix = package.replace(".", "/")
        for pattern in globs:
            for f in source_dir(package).glob(pattern):
                assert f"{prefix}/{f.relative_to(source_dir(package)).as_posix()}" in names, f


@pytest.mark.slow
def test_installed_wheel_runs_a_step_from_another_directory(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # The project venv's third-party packages, as a plain path: its .pth files (the editable dicrepro
    # among them) are not processed from there, so `import dicrepro` can only find the wheel.
    (site / "project_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, timeout=300)

    work = tmp_path / "elsewhere"  # a user's own project folder, no checkout in sight
    (work / "params").mkdir(parents=True)
    cfg = yaml.safe_load((REPO / "params" / "smoke.yaml").read_text())
    cfg["stage1"].update(n=4, test_n=2)  # the cheapest step that renders, describes and saves
    (work / "params" / "smoke.yaml").write_text(yaml.safe_dump(cfg))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DICREPRO_", "PYTHON", "VIRTUAL_ENV"))}
    # mermaid.js comes from npm, not from the wheel: point at the checkout's (README: installed use)
    env["DICREPRO_MERMAID_JS"] = str(REPO / "node_modules" / "mermaid" / "dist" / "mermaid.min.js")
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"

    where = subprocess.run([str(py), "-c", "import dicrepro, sys; print(dicrepro.__file__)"], cwd=work, env=env,
                           check=True, capture_output=True, text=True).stdout
    assert where.startswith(str(site)), where
    out = subprocess.run([str(venv / "bin" / "dicrepro"), "run", "params/smoke.yaml", "--only", "synth", "-q"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    run = work / "runs" / "smoke"  # run_dir is relative: under the working directory of an installed wheel
    assert (run / "notebooks" / "01_synthesize_pairs.ipynb").is_file()
    assert (run / "data" / "stage1" / "dataset_dict.json").is_file()
