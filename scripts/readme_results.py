"""Copy a run's result tables into README.md, so that no number in its results section is typed in.

Each ``<!-- results:NAME -->`` ... ``<!-- /results:NAME -->`` pair of marker comments in the README is filled
with the run's ``NAME.md`` (what ``dicrepro figures`` writes under ``RUN/results/``: the table's caption,
the table and its notes), and everything between the two markers is replaced. ``--check`` writes nothing
and exits 1 when the README differs from what it would write (after a new run, or a hand edit).

Usage: ``.venv/bin/python scripts/readme_results.py [--readme README.md] [--results runs/tiny/results] [--check]``
Exit status: 0 (written, or already up to date), 1 (``--check``: out of date), 2 (a marker without its pair,
or a results file missing).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

log = logging.getLogger("readme_results")

MARKER = re.compile(r"<!-- (/?)results:([\w.-]+) -->")


def filled(readme: str, results: Path) -> str:
    """``readme`` with every marked block replaced by its results file; ValueError names a marker left
    open, closed without opening, or whose file is missing."""
    out, pos, open_name, open_end = [], 0, None, 0
    for m in MARKER.finditer(readme):
        closing, name = m.group(1) == "/", m.group(2)
        if not closing:
            if open_name is not None:
                raise ValueError(f"<!-- results:{open_name} --> is not closed before <!-- results:{name} -->")
            open_name, open_end = name, m.end()
            continue
        if name != open_name:
            raise ValueError(f"<!-- /results:{name} --> closes no <!-- results:{name} -->")
        source = results / f"{name}.md"
        if not source.is_file():
            raise ValueError(f"{source} not found (README marker results:{name}): run the pipeline first")
        out += [readme[pos:open_end], "\n\n", source.read_text(encoding="utf-8").strip(), "\n\n"]
        pos, open_name = m.start(), None
    if open_name is not None:
        raise ValueError(f"<!-- results:{open_name} --> has no <!-- /results:{open_name} -->")
    out.append(readme[pos:])
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme", type=Path, default=Path("README.md"))
    ap.add_argument("--results", type=Path, default=Path("runs/tiny/results"))
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if the README is out of date")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        before = a.readme.read_text(encoding="utf-8")
        after = filled(before, a.results)
    except (OSError, ValueError) as e:
        log.error("readme_results: %s", e)
        return 2
    blocks = len(MARKER.findall(before)) // 2
    if after == before:
        log.info("%s: %d result table(s) match %s", a.readme, blocks, a.results)
        return 0
    if a.check:
        log.error("%s: result tables differ from %s (run scripts/readme_results.py)", a.readme, a.results)
        return 1
    a.readme.write_text(after, encoding="utf-8")
    log.info("%s: %d result table(s) copied from %s", a.readme, blocks, a.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
