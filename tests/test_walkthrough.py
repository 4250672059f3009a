"""The notebooks read as the paper's walk-through, as shipped: generated from scripts/build_notebooks.py,
each opens with what its step does and a contents list, has one commented settings cell whose default
is params/tiny.yaml, and ends with "next"."""

import subprocess
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_notebooks_are_what_the_build_script_writes(tmp_path):
    script = (REPO / "scripts" / "build_notebooks.py").read_text()
    copy = tmp_path / "scripts" / "build_notebooks.py"
    copy.parent.mkdir()
    copy.write_text(script)
    subprocess.run([sys.executable, str(copy)], check=True, timeout=120)
    for nb in NOTEBOOKS:
        assert (tmp_path / "notebooks" / nb.name).read_bytes() == nb.read_bytes(), \
            f"{nb.name} differs from scripts/build_notebooks.py: run it and commit the notebooks"


def test_each_notebook_is_a_walkthrough():
    assert len(NOTEBOOKS) == 7
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        first, last = nb.cells[0], nb.cells[-1]
        assert first.cell_type == "markdown" and first.source.startswith("# ") and "**Contents**" in first.source, path.name
        assert "paper" in first.source, path.name
        assert last.cell_type == "markdown" and "next:" in last.source, path.name
        settings = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        assert settings.source.startswith("# Settings") and '"params/tiny.yaml"' in settings.source, path.name
        assert nb.cells.index(settings) == 1, path.name  # right after the introduction


def test_a_sample_is_followed_before_the_batch():
    for name, batch in (("01_synthesize_pairs", "make_stage1"), ("03_vqa", "make_stage3"),
                        ("02_expert_pairs", "make_stage2")):
        code = [c.source for c in nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4).cells
                if c.cell_type == "code"]
        first_sample = next(i for i, s in enumerate(code) if "one_sample" in s)
        assert first_sample < next(i for i, s in enumerate(code) if batch in s), name
    sft = "\n".join(c.source for c in nbformat.read(REPO / "notebooks" / "04_sft.ipynb", as_version=4).cells)
    assert "captions_for(params, followed, models)" in sft and 'models = ["base"] + ' in sft  # same image
