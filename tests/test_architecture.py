"""The package's layout holds: layers import downward only, no import cycles (import-linter contracts in
pyproject.toml), and docs/ARCHITECTURE.md names every module."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def documented_modules(doc: str) -> set[str]:
    """Module paths named in the doc's "### `pkg/`" sections (top-level modules under "### Top level")."""
    found = set()
    for section in doc.split("\n### ")[1:]:
        head, _, body = section.partition("\n")
        pkg = re.match(r"`(\w+)/`", head)
        prefix = f"{pkg.group(1)}/" if pkg else ""
        found |= {prefix + name for name in re.findall(r"`(\w+)\.py`", body)}
    return found


def test_architecture_doc_names_every_module():
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    modules = {p.relative_to(ROOT / "dicrepro").with_suffix("").as_posix()
               for p in (ROOT / "dicrepro").rglob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    missing = sorted(modules - documented_modules(doc))
    assert not missing, f"docs/ARCHITECTURE.md does not name: {missing}"
    assert not documented_modules(doc) - modules, "docs/ARCHITECTURE.md names modules that do not exist"
