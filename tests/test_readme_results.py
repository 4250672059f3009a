"""scripts/readme_results.py: the README's result tables are the run's files, copied between markers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("readme_results", REPO / "scripts" / "readme_results.py")
readme_results = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_results)

README = """# Project

## Results of the tiny run

Intro text stays.

<!-- results:main_table -->
| old | table |
|---|---|
| 1 | 2 |
<!-- /results:main_table -->

Between the tables, prose stays.

<!-- results:ci_table -->
<!-- /results:ci_table -->

## Next section
"""


@pytest.fixture
def tree(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    (res / "main_table.md").write_text("**Main**\n\n| model | BLEU-4 |\n|:--|--:|\n| base | 1.6 |\n\nScores in %.\n")
    (res / "ci_table.md").write_text("**CIs**\n\n| Model | CIDEr-D |\n|:--|:--|\n| base | 0.012 ± 0.003 |\n")
    readme = tmp_path / "README.md"
    readme.write_text(README)
    return readme, res


def run(readme: Path, res: Path, *extra: str) -> int:
    return readme_results.main(["--readme", str(readme), "--results", str(res), *extra])


def test_tables_are_copied_between_their_markers_and_nothing_else_changes(tree):
    readme, res = tree
    assert run(readme, res, "--check") == 1  # out of date: says so, writes nothing
    assert readme.read_text() == README
    assert run(readme, res) == 0
    text = readme.read_text()
    assert "| old | table |" not in text
    assert "<!-- results:main_table -->\n\n**Main**\n\n| model | BLEU-4 |" in text
    assert "| base | 0.012 ± 0.003 |\n\n<!-- /results:ci_table -->" in text
    for kept in ("Intro text stays.", "Between the tables, prose stays.", "## Next section"):
        assert kept in text
    assert run(readme, res, "--check") == 0 and run(readme, res) == 0  # idempotent
    assert readme.read_text() == text


def test_a_new_run_makes_the_check_fail_until_copied_again(tree):
    readme, res = tree
    run(readme, res)
    (res / "main_table.md").write_text("**Main**\n\n| model | BLEU-4 |\n|:--|--:|\n| base | 2.0 |\n")
    assert run(readme, res, "--check") == 1
    run(readme, res)
    assert "| base | 2.0 |" in readme.read_text() and "| base | 1.6 |" not in readme.read_text()


@pytest.mark.parametrize("bad, message", [
    ("<!-- results:main_table -->\nno end\n", "has no <!-- /results:main_table -->"),
    ("<!-- /results:main_table -->\n", "closes no"),
    ("<!-- results:a -->\n<!-- results:b -->\n<!-- /results:b -->\n", "is not closed before"),
    ("<!-- results:blind_table -->\n<!-- /results:blind_table -->\n", "blind_table.md not found"),
])
def test_broken_markers_and_missing_files_are_named(tree, bad, message, caplog):
    readme, res = tree
    readme.write_text(bad)
    assert run(readme, res) == 2
    assert message in caplog.text and readme.read_text() == bad
