"""Stage-1 synthesis: real Mermaid renders, reproducible bytes, resume after a kill."""

import hashlib
from pathlib import Path

import pytest
from datasets import load_from_disk

from dicrepro.data.synth import SynthSpec, synthesize
from dicrepro.diagrams.graph import Diagram
from dicrepro.diagrams.render import MermaidRenderer

SPEC = SynthSpec(n=9, test_n=3, seed=42, diagram_types=("flowchart", "sequence", "state", "pie"),
                 languages={"en": 0.6, "zh": 0.4}, max_elements=6, shard_size=4)


@pytest.fixture(scope="module")
def renderer():
    with MermaidRenderer(workers=2, timeout_s=20) as r:
        yield r


def tree_digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


class KilledRenderer:
    """Delegates to the real renderer, then dies on the n-th batch, as a killed process would."""

    def __init__(self, real, die_on: int):
        self.real, self.die_on, self.calls = real, die_on, 0

    def render_batch(self, items, **kw):
        self.calls += 1
        if self.calls == self.die_on:
            raise KeyboardInterrupt("killed")
        return self.real.render_batch(items, **kw)


def test_dataset_columns_and_graph_round_trip(tmp_path, renderer):
    dd = synthesize(SPEC, tmp_path / "s1", renderer, progress=False)
    assert (len(dd["train"]), len(dd["test"])) == (9, 3)
    row = dd["train"][0]
    d = Diagram.from_json(row["graph"])
    assert d.diagram_type == row["diagram_type"] and d.language == row["language"]
    assert row["target"] == row["description"] and row["source"] == "synthetic"
    assert row["image"].getextrema() != ((255, 255), (255, 255), (255, 255))
    assert load_from_disk(str(tmp_path / "s1"))["test"]["split"] == ["test"] * 3


def test_same_seed_same_bytes_and_resume_after_kill(tmp_path, renderer):
    synthesize(SPEC, tmp_path / "a", renderer, progress=False)
    with pytest.raises(KeyboardInterrupt):
        synthesize(SPEC, tmp_path / "b", KilledRenderer(renderer, die_on=2), progress=False)
    shards = tmp_path / ".b.shards"
    assert sorted(p.name for p in shards.glob("shard-*")) == ["shard-00000"]  # one shard survived
    counting = KilledRenderer(renderer, die_on=-1)
    synthesize(SPEC, tmp_path / "b", counting, progress=False)
    assert counting.calls == 2  # only the missing shards were rendered
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")


def test_other_seed_other_data(tmp_path, renderer):
    from dataclasses import replace

    a = synthesize(replace(SPEC, n=3, test_n=0), tmp_path / "a", renderer, progress=False)
    b = synthesize(replace(SPEC, n=3, test_n=0, seed=43), tmp_path / "b", renderer, progress=False)
    assert a["train"]["mermaid"] != b["train"]["mermaid"]


def test_broken_mermaid_is_recorded_and_skipped(tmp_path, renderer, monkeypatch):
    import zlib

    import dicrepro.data.synth as synth

    real = synth.to_mermaid

    def sometimes_broken(d):
        return "flowchart TD\n  A[unclosed --> " if zlib.crc32(d.to_json().encode()) % 3 == 0 else real(d)

    monkeypatch.setattr(synth, "to_mermaid", sometimes_broken)
    from dataclasses import replace

    dd = synthesize(replace(SPEC, n=9, test_n=0), tmp_path / "x", renderer, progress=False)
    errors = (tmp_path / "x_errors.jsonl").read_text().splitlines()
    assert errors, "expected some planted failures"
    assert len(dd["train"]) + len(errors) == 9
    assert "unclosed" in errors[0] or "Parse error" in errors[0] or "error" in errors[0].lower()
