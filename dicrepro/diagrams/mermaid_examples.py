"""mermaid's own example diagrams (npm package ``@mermaid-js/examples``, pinned in package.json), read
through node, and a per-type account of how :mod:`dicrepro.diagrams.parse` handles them."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass

from dicrepro.diagrams.parse import ParseResult
from dicrepro.paths import node_modules

_NODE_JS = ("import * as m from '@mermaid-js/examples';"
            "process.stdout.write(JSON.stringify(m.diagramData.map(d => ({id: d.id, name: d.name, "
            "examples: d.examples.map(e => ({title: e.title, code: e.code}))}))));")


@dataclass(frozen=True)
class Example:
    """One official example: mermaid's diagram id (``flowchart-v2``...), its title and Mermaid code."""

    diagram_id: str
    title: str
    code: str


def official_examples() -> list[Example]:
    """Every example of the installed ``@mermaid-js/examples``; FileNotFoundError says how to install it."""
    pkg = node_modules() / "@mermaid-js" / "examples"
    node = shutil.which("node")
    if not pkg.is_dir() or node is None:
        raise FileNotFoundError(f"@mermaid-js/examples not found at {pkg} (or no node): run `make setup`")
    out = subprocess.run([node, "--input-type=module", "-e", _NODE_JS], cwd=node_modules().parent,
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return [Example(d["id"], e["title"], e["code"]) for d in json.loads(out) for e in d["examples"]]


def coverage(examples: list[Example], results: list[ParseResult]) -> list[dict]:
    """Per mermaid diagram id: examples, parsed to a graph, labels-only fallback (unsupported), errors."""
    rows: dict[str, Counter] = {}
    for ex, res in zip(examples, results):
        c = rows.setdefault(ex.diagram_id, Counter())
        c["examples"] += 1
        c["parsed" if res.ok else "fallback" if res.unsupported else "error"] += 1
    return [{"diagram": k, "examples": c["examples"], "parsed": c["parsed"], "fallback": c["fallback"],
             "error": c["error"]} for k, c in sorted(rows.items())]


__all__ = ["Example", "official_examples", "coverage"]
