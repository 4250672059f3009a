"""dicrepro author against a real OpenAI-compatible server on loopback: replies parsed, rendered and gated
(labels from the passage), retried once with mermaid's own error, provenance and prompt kept."""

import json

import pytest
from chat_server import ChatServer, Reply, completion
from datasets import load_from_disk

from dicrepro.cli import main
from dicrepro.data.author import author, passage_gate, passages
from dicrepro.diagrams.graph import Diagram, Node
from dicrepro.diagrams.render import MermaidRenderer
from dicrepro.params import AuthorParams

REGISTRATION = """# Registration

The UE sends a RegistrationRequest to the AMF. The AMF asks the AUSF to authenticate the UE.
If authentication succeeds, the AMF sends RegistrationAccept to the UE.
"""
DHCP = """The DHCP client broadcasts DHCPDISCOVER. A DHCP server answers with DHCPOFFER.
The client sends DHCPREQUEST and the server confirms with DHCPACK.
"""
BGP = "A BGP speaker opens a session with OPEN and keeps it with KEEPALIVE messages.\n"

GOOD_REG = """```mermaid
sequenceDiagram
  participant UE
  participant AMF
  participant AUSF
  UE->>AMF: RegistrationRequest
  AMF->>AUSF: authenticate the UE
  alt authentication succeeds
    AMF-->>UE: RegistrationAccept
  end
```"""
BROKEN = "```mermaid\nsequenceDiagram\n  DHCP client->>\n```"
GOOD_DHCP = ("```mermaid\nsequenceDiagram\n  participant C as DHCP client\n  participant S as DHCP server\n"
             "  C->>S: DHCPDISCOVER\n  S-->>C: DHCPOFFER\n  C->>S: DHCPREQUEST\n  S-->>C: DHCPACK\n```")
INVENTED = "```mermaid\nflowchart LR\n  A[BGP speaker] -->|OPEN| B[Route reflector]\n```"


def respond(body: dict, n: int) -> Reply:
    """A model that gets the registration right, fixes DHCP once told the parse error, invents for BGP."""
    chat = body["messages"]
    passage = chat[0]["content"]
    if "RegistrationRequest" in passage:
        return Reply(payload=completion(GOOD_REG))
    if "DHCPDISCOVER" in passage:
        return Reply(payload=completion(BROKEN if len(chat) == 1 else GOOD_DHCP))
    return Reply(payload=completion(INVENTED))


@pytest.fixture(scope="module")
def renderer():
    with MermaidRenderer(workers=1, progress=False) as r:
        yield r


def test_author_keeps_good_fixes_broken_once_and_rejects_invented(tmp_path, renderer):
    docs = tmp_path / "passages"
    docs.mkdir()
    (docs / "registration.md").write_text(REGISTRATION)
    (docs / "dhcp.txt").write_text(DHCP)
    (docs / "bgp.txt").write_text("\n\n" + BGP)
    with ChatServer(respond) as server:
        params = AuthorParams(base_url=server.base_url, model="test-model", api_key_env="DICREPRO_NO_KEY")
        report = author([docs], tmp_path / "authored", params, renderer=renderer, progress=False)
        sent = list(server.requests)
        # a rerun asks the server nothing: every reply is cached (beside the output)
        again = author([docs], tmp_path / "authored", params, renderer=renderer, progress=False)
        assert len(server.requests) == len(sent) and again.rows == 2
    assert (report.passages, report.rows, report.retried) == (3, 2, 1)
    [rejected] = report.failures
    assert (rejected.file, rejected.line) == (str(docs / "bgp.txt"), 3)
    assert rejected.error == "labels not in the passage: Route reflector"
    # the retry carried mermaid's own parse message, in the same chat
    retry = next(r for r in sent if len(r["messages"]) == 3 and "DHCPDISCOVER" in r["messages"][0]["content"])
    assert retry["messages"][1]["content"] == BROKEN
    assert "Parse error on line" in retry["messages"][2]["content"]
    assert len(sent) == 5  # 3 first replies + 2 retries (DHCP and BGP)

    ds = load_from_disk(str(tmp_path / "authored"))["train"]
    rows = {r["source_file"]: r for r in ds}
    assert set(rows) == {"registration.md", "dhcp.txt"}
    reg = rows["registration.md"]
    assert (reg["source"], reg["diagram_type"], reg["author_attempts"], reg["source_line"]) == \
        ("authored", "sequence", 1, 1)
    assert json.loads(reg["author_prompt"])[0]["content"].rstrip().endswith(REGISTRATION.strip())
    assert reg["author_reply"] == GOOD_REG and reg["author_model"] == "test-model"
    assert '"authentication succeeds"' in reg["description"] and "RegistrationAccept" in reg["description"]
    assert rows["dhcp.txt"]["author_attempts"] == 2 and "DHCPACK" in rows["dhcp.txt"]["mermaid"]
    assert rows["dhcp.txt"]["image"].size[0] > 0
    failures = [json.loads(x) for x in (tmp_path / "authored_failures.jsonl").read_text().splitlines()]
    assert failures == [{"file": str(docs / "bgp.txt"), "line": 3, "error": rejected.error}]



def test_passage_gate_and_chunks(tmp_path):
    d = Diagram("flowchart", "", "", "", nodes=[Node("a", "DHCP Server"), Node("b", "Route reflector")])
    assert passage_gate(d, "the dhcp   server answers") == ["Route reflector"]
    f = tmp_path / "long.txt"
    f.write_text("\n\n".join(f"Paragraph {i} " + "word " * 60 for i in range(10)))
    chunks = passages([f], max_chars=800)
    assert len(chunks) > 2 and all(len(c.text) <= 800 for c in chunks)
    assert chunks[0].line == 1 and chunks[1].line > 1
    assert f.read_text().splitlines()[chunks[1].line - 1].startswith("Paragraph")


def test_cli_author_needs_an_endpoint(tmp_path, capsys):
    (tmp_path / "p.txt").write_text(BGP)
    assert main(["author", str(tmp_path / "p.txt"), "--out", str(tmp_path / "out")]) == 2
    assert "author.base_url is required" in capsys.readouterr().err
