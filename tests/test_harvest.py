"""dicrepro harvest: Mermaid blocks of a docs tree (Markdown, MDX, RST, AsciiDoc, .mmd) into a dataset with
provenance; broken blocks reported with file:line, duplicates dropped, hostile ones requesting nothing."""

import http.server
import json
import subprocess
import threading
from pathlib import Path

import pytest
from datasets import load_from_disk

from dicrepro.cli import main
from dicrepro.data.harvest import dedupe_key, extract_blocks, harvest
from dicrepro.diagrams.graph import Diagram
from dicrepro.diagrams.render import MermaidRenderer

SEQ = """sequenceDiagram
    participant C as Client
    participant S as Server
    C->>S: POST /v1/orders (idempotency-key)
    alt token valid
        S-->>C: 201 Created
    else expired
        S-->>C: 401 Unauthorized
    end
"""
FLOW = "flowchart LR\n  A[Reconcile MachineDeployment] --> B{Ready?}\n  B -->|yes| C[Done]\n"
ZH = "flowchart TD\n  A[用户设备] -->|注册请求| B[接入和移动性管理功能]\n  B --> C[统一数据管理]\n"


@pytest.fixture(scope="module")
def renderer():
    with MermaidRenderer(workers=1, progress=False) as r:
        yield r


def docs_tree(root: Path, evil_url: str) -> Path:
    """A small git checkout of docs pages: good, broken, duplicate, hostile and Chinese blocks."""
    repo = root / "proj"
    (repo / "docs" / "zh").mkdir(parents=True)
    (repo / "LICENSE").write_text("MIT License\n")
    (repo / "docs" / "zh" / "LICENSE.md").write_text("CC-BY-4.0\n")
    (repo / "README.md").write_text(f"# Proj\n\nIntro.\n\n```mermaid\n{SEQ}```\n\nMore text.\n")
    (repo / "docs" / "broken.md").write_text("Title\n\n```mermaid\nflowchart LR\n  A --> \n```\n")
    # the same diagram again, indented inside a list item: a duplicate, dropped
    indented = "".join("   " + ln + "\n" for ln in SEQ.splitlines())
    (repo / "docs" / "copy.mdx").write_text(f"import X from 'y'\n\n1. step\n   ```mermaid\n{indented}   ```\n")
    (repo / "docs" / "flow.rst").write_text("Flow\n====\n\n.. mermaid::\n   :caption: flow\n\n"
                                            + "".join("   " + ln + "\n" for ln in FLOW.splitlines()) + "\nEnd.\n")
    (repo / "docs" / "state.adoc").write_text("= State\n\n[mermaid]\n----\nstateDiagram-v2\n  [*] --> Idle\n"
                                              "  Idle --> Busy: job\n----\n")
    (repo / "docs" / "zh" / "reg.md").write_text(f"# 注册\n\n~~~mermaid\n{ZH}~~~\n")
    (repo / "docs" / "hostile.md").write_text(
        "```mermaid\n%%{init: {\"securityLevel\": \"loose\", \"themeCSS\": \"@import url(" + evil_url + "/css);\"}}%%\n"
        f"flowchart LR\n  A[\"<img src='{evil_url}/img.png'> Login\"] --> B[\"<script>fetch('{evil_url}/s')</script>Token\"]\n"
        f"  click A \"{evil_url}/click\"\n  click B call fetch(\"{evil_url}/cb\")\n"
        "```\n")
    (repo / "diagram.mmd").write_text("journey\n  title Onboarding\n  section Sign up\n    Get SIM: 5: Me\n")
    (repo / "node_modules" / "x").mkdir(parents=True)
    (repo / "node_modules" / "x" / "README.md").write_text(f"```mermaid\n{FLOW}```\n")  # skipped
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "remote", "add", "origin", "https://user:secret@example.com/org/proj.git"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "docs"], check=True)
    return repo


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        _Counter.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture()
def evil_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    _Counter.hits = []
    yield f"http://127.0.0.1:{srv.server_address[1]}", _Counter.hits
    srv.shutdown()


def test_harvest_keeps_provenance_reports_broken_drops_duplicates(tmp_path, renderer, evil_server):
    url, hits = evil_server
    repo = docs_tree(tmp_path, url)
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    report = harvest([repo], tmp_path / "real", renderer=renderer, progress=False)

    assert report.files == 9 and report.blocks == 8 and report.duplicates == 1
    assert [str(f) for f in report.failures] == [f"{repo / 'docs' / 'broken.md'}:4: " + report.failures[0].error]
    assert report.failures[0].error.startswith("parse error: Parse error on line") and "got 'EOF'" in \
        report.failures[0].error
    ds = load_from_disk(str(tmp_path / "real"))
    assert len(ds["train"]) == 0 and len(ds["test"]) == report.rows == 6  # 8 blocks - broken - duplicate
    by_file = {r["source_file"]: r for r in ds["test"]}
    assert sorted(by_file) == ["README.md", "diagram.mmd", "docs/flow.rst", "docs/hostile.md", "docs/state.adoc",
                               "docs/zh/reg.md"]  # node_modules skipped, copy.mdx a duplicate
    readme = by_file["README.md"]
    assert (readme["source_line"], readme["source_repo"], readme["source_commit"], readme["source_license"]) == \
        (6, "https://example.com/org/proj.git", commit, "LICENSE")  # the token is not kept
    assert readme["split"] == "test" and readme["source"] == "harvested" and readme["diagram_type"] == "sequence"
    g = Diagram.from_json(readme["graph"])
    assert g.meta["blocks"][0]["branches"][1]["condition"] == "expired"
    assert "POST /v1/orders (idempotency-key)" in readme["description"]
    assert by_file["docs/flow.rst"]["source_line"] == 7 and by_file["docs/flow.rst"]["diagram_type"] == "flowchart"
    assert by_file["docs/state.adoc"]["source_line"] == 5 and by_file["docs/state.adoc"]["diagram_type"] == "state"
    zh = by_file["docs/zh/reg.md"]
    assert (zh["language"], zh["source_license"], zh["source_line"]) == ("zh", "docs/zh/LICENSE.md", 4)
    assert "接入和移动性管理功能" in zh["description"]
    journey = by_file["diagram.mmd"]
    assert journey["source_status"] == "unsupported: journey" and journey["description"] == ""
    hostile = by_file["docs/hostile.md"]
    assert "Login" in hostile["description"] and hostile["image"].size[0] > 0
    # Nothing reached the loopback server the hostile block points at (which does answer, see below).
    assert hits == []
    import urllib.request

    urllib.request.urlopen(url + "/probe", timeout=5).close()
    assert hits == ["/probe"]
    failures = [json.loads(x) for x in (tmp_path / "real_failures.jsonl").read_text().splitlines()]
    assert failures == [{"file": str(repo / "docs" / "broken.md"), "line": 4, "error": report.failures[0].error}]


def test_extract_blocks_per_format():
    md = "a\n\n````mermaid\npie\n  \"x\" : 1\n````\n\n```python\nprint()\n```\n"
    assert extract_blocks(md, ".md") == [(4, 'pie\n  "x" : 1\n')]
    rst = "T\n=\n\n.. code-block:: mermaid\n\n   graph TD\n     A --> B\n\ntext\n"
    assert extract_blocks(rst, ".rst") == [(6, "graph TD\n  A --> B\n")]
    adoc = "[source,mermaid]\n....\ngraph LR\n  A --> B\n....\n"
    assert extract_blocks(adoc, ".adoc") == [(3, "graph LR\n  A --> B\n")]
    assert dedupe_key("graph LR\n  A --> B\n") == dedupe_key("\n   graph LR\n\n     A --> B   \r\n")


def test_cli_harvest_prints_failures_and_refuses_a_users_folder(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text(f"```mermaid\n{FLOW}```\n\n```mermaid\ngraph LR\n  A -->\n```\n")
    assert main(["harvest", str(docs), "--out", str(tmp_path / "h"), "--split", "train"]) == 0
    out = capsys.readouterr().out
    assert "1 kept (flowchart 1)" in out and f"FAILED {docs / 'a.md'}:8: parse error" in out
    assert len(load_from_disk(str(tmp_path / "h"))["train"]) == 1
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert main(["harvest", str(docs), "--out", str(tmp_path / "mine")]) == 2
    assert main(["harvest", str(tmp_path / "nope"), "--out", str(tmp_path / "h2")]) == 2
