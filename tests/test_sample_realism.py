"""Realism knobs: sequence blocks (alt/else, loop, opt, par, nested), notes, activations, self-messages;
flowchart nested subgraphs and classDef; two-line labels. Written as Mermaid, parsed back by mermaid.js to
the same graph; described (conditions, loops, notes) and gated; off by default (plain samples unchanged)."""

import random
import re

import pytest

from dicrepro.data.synth import SynthSpec, plan_sample
from dicrepro.diagrams.graph import Diagram
from dicrepro.diagrams.mermaid import to_mermaid
from dicrepro.diagrams.parse import parse_mermaid
from dicrepro.diagrams.render import MermaidRenderer
from dicrepro.diagrams.sample import sample_diagram
from dicrepro.diagrams.sample_realism import enrich
from dicrepro.params import RealismParams
from dicrepro.text.describe import describe
from dicrepro.text.gate import check_faithful

RICH = RealismParams(block_p=1, nested_block_p=0.5, note_p=1, activation_p=1, self_message_p=0.7,
                     autonumber_p=0.2, subgraph_p=1, nested_subgraph_p=0.6, class_def_p=0.5, line_break_p=0.5,
                     long_label_p=0.5, composite_state_p=0.5, state_start_p=0.5, decision_p=0.5)


def rich(dtype: str, seed: int) -> Diagram:
    d = sample_diagram(random.Random(seed), dtype, language="zh" if seed % 3 == 0 else "en",
                       min_elements=3, max_elements=16)
    return enrich(random.Random(seed), d, RICH)


def by_labels(d: Diagram):
    """What must survive Mermaid and back: labels, ordered messages, blocks, notes, nesting of groups."""
    lab = {n.id: n.label for n in d.nodes}
    glab = {g.id: g.label for g in d.groups}
    return {
        "nodes": sorted(lab.values()),
        "edges": [(lab[e.src], lab[e.dst], e.label) for e in d.ordered_edges()] if d.diagram_type == "sequence"
        else sorted((lab[e.src], lab[e.dst], e.label) for e in d.edges),
        "groups": sorted((g.label, sorted(lab[m] if m in lab else m for m in g.members)) for g in d.groups),
        "blocks": [(b["kind"], b["parent"], [(br["condition"], br["messages"]) for br in b["branches"]])
                   for b in d.meta.get("blocks", [])],
        "notes": [(n["text"], [lab[x] for x in n["over"]], n["position"], n["after"]) for n in d.meta.get("notes", [])],
        "nesting": {glab[c]: glab[p] for c, p in d.meta.get("group_parents", {}).items()},
    }


@pytest.fixture(scope="module")
def renderer():
    with MermaidRenderer(workers=1, progress=False) as r:
        yield r


@pytest.mark.parametrize("dtype", ["sequence", "flowchart", "state"])
def test_rich_diagrams_round_trip_through_mermaid(renderer, dtype):
    diagrams = [rich(dtype, seed) for seed in range(30)]
    if dtype == "sequence":
        assert sum(bool(d.meta.get("blocks")) for d in diagrams) >= 25
        assert any(b["parent"] is not None for d in diagrams for b in d.meta.get("blocks", []))
        assert any(e.src == e.dst for d in diagrams for e in d.edges)
        assert {b["kind"] for d in diagrams for b in d.meta.get("blocks", [])} >= {"alt", "loop", "opt"}
    elif dtype == "flowchart":
        assert sum(bool(d.meta.get("group_parents")) for d in diagrams) >= 4
        assert any(not any(n.kind == "decision" for n in d.nodes) for d in diagrams)
    else:
        assert sum(any(n.kind == "composite" for n in d.nodes) for d in diagrams) >= 8
        assert any(not any(n.kind == "start" for n in d.nodes) for d in diagrams)
    sources = [to_mermaid(d) for d in diagrams]
    for d, src, res in zip(diagrams, sources, parse_mermaid(sources, renderer=renderer)):
        assert res.ok, (res.error, src)
        assert by_labels(res.diagram) == by_labels(d), src
    assert all(r.ok for r in renderer.render_batch(sources, progress=False))


def test_descriptions_say_conditions_loops_and_notes_and_pass_the_gate():
    d = rich("sequence", 4)
    d.meta["blocks"] = [{"kind": "loop", "parent": None, "branches": [{"condition": "Retry up to 3 times",
                                                                       "messages": [0, 1]}]},
                        {"kind": "alt", "parent": 0, "branches": [{"condition": "Token valid", "messages": [1]},
                                                                  {"condition": "Expired", "messages": [2]}]}]
    d.meta["notes"] = [{"text": "Idempotent: a retry reuses the same key", "over": [d.edges[0].src],
                        "position": "right of", "after": 1}]
    for seed in range(5):
        text = describe(d, random.Random(seed))["description"]
        assert '"Retry up to 3 times"' in text and '"Token valid"' in text and '"Expired"' in text
        assert '"Idempotent: a retry reuses the same key"' in text
        assert text.index("Retry up to 3 times") < text.index("Token valid") < text.index("Expired")
        assert check_faithful(d, text).ok
        # a description that drops the else branch's condition is caught
        assert not check_faithful(d, text.replace('"Expired"', '""')).ok
    # a text that adds a loop the diagram does not have invents its condition
    plain = sample_diagram(random.Random(4), "sequence", min_elements=3, max_elements=16)
    plain_text = describe(plain, random.Random(0))["description"]
    assert check_faithful(plain, plain_text).ok
    invented = check_faithful(plain, plain_text + ' The exchange repeats: "Retry up to 3 times".')
    assert invented.invented == ["Retry up to 3 times"]
    zh = rich("sequence", 3)
    text = describe(zh, random.Random(0))["description"]
    assert all(br["condition"] in text for b in zh.meta.get("blocks", []) for br in b["branches"])
    assert check_faithful(zh, text).ok


@pytest.mark.parametrize("language", ["en", "zh"])
def test_descriptions_say_who_is_active_over_which_messages_and_pass_the_gate(language):
    d = sample_diagram(random.Random(4), "sequence", language=language, min_elements=5, max_elements=16)
    msgs = d.ordered_edges()
    assert len(msgs) >= 4
    p, q = msgs[1].dst, msgs[3].src
    d.meta["activations"] = [[p, 1, 2], [q, 3, 3]]
    lab = {n.id: n.label for n in d.nodes}
    quote = "“{}”" if language == "zh" else '"{}"'
    seen = set()
    for seed in range(12):
        text = describe(d, random.Random(seed))["description"]
        assert check_faithful(d, text).ok, check_faithful(d, text).reasons
        # one sentence per activation, after the message that ends it: the participant, both message
        # numbers and both messages' labels; a one-message activation names that message
        end = text.index(quote.format(msgs[2].label), text.index("3. "))
        sentence = next(s for s in re.split(r"(?<=[.。])\s*(?=\S)", text[end:]) if lab[p] in s and "3" in s)
        assert "2" in sentence and quote.format(msgs[1].label) in sentence and quote.format(msgs[2].label) in sentence
        after4 = text[text.index("4. "):]
        assert any(lab[q] in s and "4" in s and quote.format(msgs[3].label) in s
                   for s in re.split(r"(?<=[.。])\s*(?=\S)", after4)[1:3])
        seen.add(sentence)
    assert len(seen) >= 3  # several phrasings
    # a diagram without activations says none of it
    d.meta.pop("activations")
    plain = describe(d, random.Random(0))["description"]
    assert not any(w in plain for w in ("activ", "激活"))


def test_vqa_asks_who_is_active_with_keys_from_the_graph():
    from dicrepro.data.vqa_kinds import Cand, objective_candidates

    d = sample_diagram(random.Random(4), "sequence", min_elements=5, max_elements=16)
    msgs = d.ordered_edges()
    assert len({m.label for m in msgs}) == len(msgs) >= 5 and len(d.nodes) >= 4
    d.meta["activations"] = [[msgs[1].dst, 1, 3]]
    cands = []
    for x in objective_candidates(d, random.Random(0)):
        cands += [x] if isinstance(x, Cand) else [y for y in x if y]
    [mc] = [x for x in cands if x.qtype == "mc.active"]
    asked = next(k for k, m in enumerate(msgs) if f'"{m.label}"' in mc.question)
    assert 2 <= asked <= 3 and mc.options[mc.correct] == d.label_of(msgs[1].dst)
    tf = {x.key: x.question for x in cands if x.qtype == "tf.active"}
    assert set(tf) == {"true", "false"}
    false_msg = next(k for k, m in enumerate(msgs) if f'"{m.label}"' in tf["false"])
    assert not 1 <= false_msg <= 3
    d.meta.pop("activations")
    assert not any(getattr(x, "qtype", "").endswith(".active") for x in objective_candidates(d, random.Random(0)))


def test_off_by_default_and_on_in_its_own_stream():
    plain = SynthSpec(n=6, diagram_types=("sequence", "flowchart", "pie"))
    off = SynthSpec(n=6, diagram_types=("sequence", "flowchart", "pie"), realism=RealismParams())
    assert [plan_sample(plain, i) for i in range(6)] == [plan_sample(off, i) for i in range(6)]
    weighted = SynthSpec(n=40, diagram_types=("sequence", "flowchart", "pie"),
                         realism=RealismParams(type_weights={"sequence": 1.0}, block_p=1.0))
    plans = [plan_sample(weighted, i) for i in range(40)]
    assert {p["diagram_type"] for p in plans} == {"sequence"}
    assert sum("alt " in p["mermaid"] or "loop " in p["mermaid"] or "opt " in p["mermaid"]
               or "par " in p["mermaid"] for p in plans) >= 30


def test_vqa_asks_about_conditions_loops_and_notes_with_keys_from_the_graph():
    from dicrepro.data.vqa_kinds import Cand, objective_candidates

    d = rich("sequence", 4)
    msgs = d.ordered_edges()
    d.meta["blocks"] = [{"kind": "alt", "parent": None, "branches": [
        {"condition": "Token valid", "messages": [0]}, {"condition": "Expired", "messages": [1]}]},
        {"kind": "loop", "parent": None, "branches": [{"condition": "Every 30 s", "messages": [2]}]}]
    d.meta["notes"] = [{"text": "Keys never leave the USIM", "over": [msgs[0].src], "position": "over", "after": 1}]
    cands = []
    for x in objective_candidates(d, random.Random(0)):
        cands += [x] if isinstance(x, Cand) else [y for y in x if y]
    by = {}
    for x in cands:
        by.setdefault(x.qtype, []).append(x)
    cond = {x.question: x.options[x.correct] for x in by["mc.condition"]}
    assert cond[f'Under which condition is "{msgs[0].label}" sent?'] == "Token valid"
    assert cond[f'Under which condition is "{msgs[1].label}" sent?'] == "Expired"
    [loop] = by["mc.loop"]
    assert loop.options[loop.correct] == msgs[2].label and "Every 30 s" in loop.question
    [note] = by["mc.note"]
    assert note.options[note.correct] == "Keys never leave the USIM" and len(set(note.options)) == 4
    assert {x.key for x in by["tf.condition"]} == {"true", "false"}
    # a plain diagram gets none of these
    plain = sample_diagram(random.Random(4), "sequence", min_elements=3, max_elements=16)
    assert not any(getattr(x, "qtype", "").startswith(("mc.condition", "mc.loop", "mc.note"))
                   for x in objective_candidates(plain, random.Random(0)))


def test_realism_knobs_reach_every_synthesized_set_and_their_signatures():
    from dicrepro.data.stage2 import standin_spec
    from dicrepro.params import dump_params, load_params
    from dicrepro.steps import signatures
    from dicrepro.workflow import SPECS

    tiny = load_params("params/tiny.yaml", need_model=False)
    assert "realism" not in dump_params(tiny)["stage1"]  # plain profiles dump (and sign) as before
    rich_params = tiny.model_copy(deep=True)
    rich_params.stage1.realism = RealismParams(block_p=0.3)
    assert all(f(rich_params).realism == RealismParams(block_p=0.3) for f in SPECS.values())
    assert standin_spec(rich_params).realism is not None and standin_spec(tiny).realism is None
    before, after = signatures(tiny), signatures(rich_params)
    assert all(before[s] != after[s] for s in ("base", "synth", "expert", "vqa"))


def test_a_nested_subgraph_is_said_to_sit_inside_its_parent():
    d = next(d for d in (rich("flowchart", s) for s in range(40)) if d.meta.get("group_parents"))
    (child, parent), = d.meta["group_parents"].items()
    labels = {g.id: g.label for g in d.groups}
    from dicrepro.text.describe import describe_parts

    for seed in range(5):
        sections = {s.title: s.text for s in describe_parts(d, random.Random(seed)).sections}
        assert labels[parent] in sections[labels[child]]  # the child's own section names its parent
        flat = Diagram.from_json(d.to_json())
        del flat.meta["group_parents"]
        assert labels[parent] not in {s.title: s.text for s in describe_parts(flat, random.Random(seed)).sections
                                      }[labels[child]]
        assert check_faithful(d, describe(d, random.Random(seed))["description"]).ok


def test_paper_profile_samples_round_trip(renderer):
    """The paper profile as synthesized (realism on: long and two-line labels, blocks, notes, nesting,
    composite states, every type): mermaid.js reads back the graph that was written."""
    from dicrepro.data.synth import stage1_spec
    from dicrepro.params import load_params

    spec = stage1_spec(load_params("params/paper.yaml", need_model=False))
    plans = [plan_sample(spec, i) for i in range(120)]
    assert any("<br/>" in p["mermaid"] for p in plans) and any("alt " in p["mermaid"] for p in plans)
    for p, res in zip(plans, parse_mermaid([p["mermaid"] for p in plans], renderer=renderer)):
        assert res.ok, (res.error, p["mermaid"])
        if p["diagram_type"] in ("sequence", "flowchart", "state"):
            assert by_labels(res.diagram) == by_labels(Diagram.from_json(p["graph"])), p["mermaid"]
