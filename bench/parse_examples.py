#!/usr/bin/env python
"""Parse mermaid's official examples (@mermaid-js/examples) with dicrepro's parser and write the per-type
table docs/parse_coverage.md (parsed to a graph / labels-only fallback / error), with the parse speed.

    .venv/bin/python bench/parse_examples.py            # writes docs/parse_coverage.md
    .venv/bin/python bench/parse_examples.py --print    # only print it
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dicrepro.atomic import write_text_atomic  # noqa: E402
from dicrepro.diagrams.mermaid_examples import coverage, official_examples  # noqa: E402
from dicrepro.diagrams.parse import SUPPORTED_TYPES, parse_mermaid  # noqa: E402
from dicrepro.diagrams.render import MermaidRenderer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--print", action="store_true", help="print the table, write nothing")
    ap.add_argument("--repeat", type=int, default=5, help="parse passes timed for the speed line (default 5)")
    a = ap.parse_args()
    examples = official_examples()
    with MermaidRenderer(workers=1, progress=False) as r:
        results = parse_mermaid([e.code for e in examples], renderer=r)
        mapped = [e.code for e, res in zip(examples, results) if res.ok]
        t0 = time.perf_counter()
        for _ in range(a.repeat):
            parse_mermaid(mapped, renderer=r)
        rate = a.repeat * len(mapped) / (time.perf_counter() - t0)
    rows = coverage(examples, results)
    errors = [(e, res.error) for e, res in zip(examples, results) if not res.ok and not res.unsupported]
    lines = ["# Parsing mermaid's official examples", "",
             "Written by `bench/parse_examples.py`, not by hand: every example of the pinned `@mermaid-js/examples` "
             "parsed with `dicrepro.diagrams.parse` (mermaid.js's own parser in the render page). *parsed*: mapped "
             "to a graph; *fallback*: a type dicrepro does not map, so only its labels come back with "
             "`unsupported: <type>`; *error*: the parser or the mapping failed.", "",
             f"Mapped types: {', '.join(SUPPORTED_TYPES)}.", "",
             "| mermaid diagram | examples | parsed | fallback | error |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['diagram']} | {r['examples']} | {r['parsed']} | {r['fallback']} | {r['error']} |" for r in rows]
    tot = {k: sum(r[k] for r in rows) for k in ("examples", "parsed", "fallback", "error")}
    lines += [f"| **all** | {tot['examples']} | {tot['parsed']} | {tot['fallback']} | {tot['error']} |", "",
              f"Parse speed: {rate:.0f} diagrams/s on one page for the {len(mapped)} parsed examples (parse and map only, "
              f"nothing drawn; {a.repeat} passes; the fallback types read every getter and are slower).", ""]
    if errors:
        lines += ["Errors:", ""] + [f"- {e.diagram_id} / {e.title}: {msg}" for e, msg in errors] + [""]
    text = "\n".join(lines)
    print(text)
    if not a.print:
        write_text_atomic(ROOT / "docs" / "parse_coverage.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
