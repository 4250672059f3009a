"""Caption faithfulness against the graph: faithful verbalizer captions score 1, and every corruption of one
(drop a label, invent a component, swap source and target, reverse two steps, swap a condition) lowers
the score while no metric moves the wrong way, for every diagram type in English and Chinese."""

import random

import pytest

from dicrepro.diagrams.graph import Diagram, Edge, Node
from dicrepro.diagrams.sample import BUILDERS, sample_diagram
from dicrepro.diagrams.sample_realism import enrich
from dicrepro.params import RealismParams
from dicrepro.evaluate.faithfulness import aggregate, faithfulness, key, split_sentences
from dicrepro.text.describe import describe
from dicrepro.text.gate import default_lexicon, diagram_strings

SEEDS = range(12)


def caption_of(d: Diagram, seed: int) -> str:
    return describe(d, random.Random(seed + 7))["description"]


def join(d: Diagram, sentences: list[str]) -> str:
    return ("" if d.language == "zh" else " ").join(sentences)


def states(d: Diagram, sentence: str, e: Edge) -> bool:
    """Whether this one sentence states edge ``e`` (the metric on a one-edge view of the diagram)."""
    one = Diagram(d.diagram_type, d.title, d.topic, d.area, d.language, d.nodes, [e])
    return faithfulness(one, sentence)["relation_recall"] == 1.0


# --- corruptions: each returns a corrupted caption, or None where it does not apply ---------------------

def drop_label(d: Diagram, caption: str) -> str | None:
    others = diagram_strings(d)
    for n in sorted(d.nodes, key=lambda n: -len(n.label)):
        lab = n.label.strip()
        if lab and lab in caption and not any(lab != s and lab in s for s in others):
            return caption.replace(lab, "另一个元素" if d.language == "zh" else "another element")
    return None


def invent_component(d: Diagram, caption: str) -> str:
    allowed = "|".join(key(s) for s in diagram_strings(d))
    invented = next(x for x in sorted(default_lexicon()) if x.isupper() and len(x) >= 3 and key(x) not in allowed)
    return caption + (f"图中还包括{invented}。" if d.language == "zh" else f" It also includes {invented}.")


def swap_source_and_target(d: Diagram, caption: str) -> str | None:
    sentences = split_sentences(caption)
    lab = {n.id: n.label for n in d.nodes}
    others = list(lab.values())
    for e in d.edges:
        a, b = lab[e.src], lab[e.dst]
        if not a or not b or a == b or any(x in s and x != s for x in (a, b) for s in others):
            continue
        for i, s in enumerate(sentences):
            if states(d, s, e):
                sentences[i] = s.replace(a, "\0").replace(b, a).replace("\0", b)
                return join(d, sentences)
    return None


def reverse_two_steps(d: Diagram, caption: str) -> str | None:
    """Swap the sentences of two consecutive messages (sequence) or periods (timeline)."""
    sentences = split_sentences(caption)
    if d.diagram_type == "sequence":
        where = []
        for e in d.ordered_edges():
            where.append(next((i for i, s in enumerate(sentences) if states(d, s, e)), None))
    elif d.diagram_type == "timeline":
        where = [next((i for i, s in enumerate(sentences) if g.label in s and d.node(g.members[0]).label in s), None)
                 for g in d.groups]
    else:
        return None
    for x, y in zip(where, where[1:]):
        if x is not None and y is not None and x != y:
            sentences[x], sentences[y] = sentences[y], sentences[x]
            return join(d, sentences)
    return None


def swap_condition(d: Diagram, caption: str) -> str | None:
    """Swap the conditions of an alt block's first two branches, or else the branch labels ("yes"/"no") of
    one decision in the sentences stating its branches."""
    for b in d.meta.get("blocks", []):
        conds = [br["condition"] for br in b["branches"][:2] if br["condition"]]
        if b["kind"] == "alt" and len(set(conds)) == 2 and all(c in caption for c in conds):
            x, y = conds
            return caption.replace(x, "\0").replace(y, x).replace("\0", y)
    sentences = split_sentences(caption)
    for n in d.nodes:
        out = [e for e in d.edges if e.src == n.id and e.label]
        if n.kind != "decision" or len(out) < 2 or out[0].label == out[1].label:
            continue
        at = [next((i for i, s in enumerate(sentences) if states(d, s, e)), None) for e in out[:2]]
        if None in at or at[0] == at[1]:
            continue
        (i, j), (x, y) = at, (out[0].label, out[1].label)
        sentences[i] = sentences[i].replace(f"“{x}”" if d.language == "zh" else f'"{x}"',
                                            f"“{y}”" if d.language == "zh" else f'"{y}"')
        sentences[j] = sentences[j].replace(f"“{y}”" if d.language == "zh" else f'"{y}"',
                                            f"“{x}”" if d.language == "zh" else f'"{x}"')
        return join(d, sentences)
    return None


CORRUPTIONS = {"drop_label": drop_label, "invent_component": invent_component,
               "swap_source_and_target": swap_source_and_target, "reverse_two_steps": reverse_two_steps,
               "swap_condition": swap_condition}
TARGET = {"drop_label": "label_recall", "invent_component": "hallucination_rate",
          "swap_source_and_target": "relation_recall", "reverse_two_steps": "order_tau",
          "swap_condition": "relation_recall"}


def no_metric_improves(before: dict, after: dict) -> list[str]:
    worse = []
    for m in ("label_recall", "relation_recall", "order_tau"):
        if before[m] is not None and after[m] is not None and after[m] > before[m] + 1e-12:
            worse.append(m)
    if after["hallucination_rate"] < before["hallucination_rate"] - 1e-12:
        worse.append("hallucination_rate")
    return worse


RICH = RealismParams(block_p=1, nested_block_p=0.5, note_p=1, activation_p=1, self_message_p=1, subgraph_p=1,
                     nested_subgraph_p=0.5, line_break_p=0.5, long_label_p=0.5, composite_state_p=1)


def check_corruptions(d: Diagram, caption: str, applied: set) -> None:
    faithful = faithfulness(d, caption)
    assert faithful["faithfulness"] == 1.0 and faithful["hallucinated"] == [] and faithful["language_ok"], faithful
    assert faithfulness(d, join(d, split_sentences(caption)))["faithfulness"] == 1.0  # re-joining changes nothing
    for name, corrupt in CORRUPTIONS.items():
        bad = corrupt(d, caption)
        if bad is None:
            continue
        applied.add(name)
        got = faithfulness(d, bad)
        target = TARGET[name]
        assert got["faithfulness"] < faithful["faithfulness"], (name, bad)
        if target == "hallucination_rate":
            assert got[target] > faithful[target], (name, got)
        else:
            assert got[target] < faithful[target], (name, got, bad)
        assert not no_metric_improves(faithful, got), (name, no_metric_improves(faithful, got))


@pytest.mark.parametrize("language", ["en", "zh"])
@pytest.mark.parametrize("dtype", ["sequence", "flowchart", "state"])
def test_rich_diagrams_blocks_notes_subgraphs_too(dtype, language):
    """Diagrams as rich as real ones (alt/loop/opt/par blocks, notes, self-messages, nested subgraphs,
    composite states): their faithful captions score 1 and the corruptions, an alt condition swap
    included, lower it."""
    applied: set = set()
    for seed in range(8):
        d = enrich(random.Random(seed), sample_diagram(random.Random(seed), dtype, language=language, min_elements=4,
                                                       max_elements=10), RICH)
        check_corruptions(d, caption_of(d, seed), applied)
    assert {"drop_label", "invent_component", "swap_source_and_target"} <= applied
    if dtype == "sequence":
        assert {"reverse_two_steps", "swap_condition"} <= applied


@pytest.mark.parametrize("language", ["en", "zh"])
@pytest.mark.parametrize("dtype", sorted(BUILDERS))
def test_faithful_captions_score_one_and_every_corruption_lowers_the_score(dtype, language):
    applied = set()
    for seed in SEEDS:
        d = sample_diagram(random.Random(seed), dtype, language=language, min_elements=3, max_elements=12)
        caption = caption_of(d, seed)
        faithful = faithfulness(d, caption)
        assert faithful["faithfulness"] == 1.0 and faithful["hallucinated"] == [] and faithful["language_ok"], faithful
        assert faithfulness(d, join(d, split_sentences(caption)))["faithfulness"] == 1.0  # re-joining changes nothing
        for name, corrupt in CORRUPTIONS.items():
            bad = corrupt(d, caption)
            if bad is None:
                continue
            applied.add(name)
            got = faithfulness(d, bad)
            target = TARGET[name]
            assert got["faithfulness"] < faithful["faithfulness"], (name, bad)
            if target == "hallucination_rate":
                assert got[target] > faithful[target], (name, got)
            else:
                assert got[target] < faithful[target], (name, got, bad)
            assert not no_metric_improves(faithful, got), (name, no_metric_improves(faithful, got))
    # Every type gets the label and invention corruptions; relational ones wherever the type has them.
    assert {"drop_label", "invent_component"} <= applied
    if dtype in ("sequence", "timeline"):
        assert "reverse_two_steps" in applied
    if dtype in ("sequence", "state", "class", "er", "flowchart", "requirement", "gantt", "block"):
        assert "swap_source_and_target" in applied


def test_flowchart_decisions_get_the_condition_swap():
    swapped = 0
    for seed in range(8):
        for language in ("en", "zh"):
            d = sample_diagram(random.Random(seed), "flowchart", language=language, min_elements=5, max_elements=12)
            caption = caption_of(d, seed)
            bad = swap_condition(d, caption)
            if bad is not None:
                swapped += 1
                assert faithfulness(d, bad)["relation_recall"] < faithfulness(d, caption)["relation_recall"]
    assert swapped >= 4


def alt_diagram() -> Diagram:
    d = Diagram("sequence", "Registration", "", "", "en",
                [Node("UE", "UE", "participant"), Node("AMF", "AMF", "participant")],
                [Edge("UE", "AMF", "Registration Request", "sync", 0),
                 Edge("AMF", "UE", "Registration Accept", "reply", 1),
                 Edge("AMF", "UE", "Registration Reject", "reply", 2)])
    d.meta["blocks"] = [{"kind": "alt", "parent": None, "branches": [
        {"condition": "subscriber known", "messages": [1]}, {"condition": "subscriber unknown", "messages": [2]}]}]
    return d


def test_alt_conditions_count_as_labels_and_relations():
    d = alt_diagram()
    good = ('1. UE sends "Registration Request" to AMF. If "subscriber known", AMF replies to UE with '
            '"Registration Accept". If "subscriber unknown", AMF replies to UE with "Registration Reject".')
    swapped = good.replace("subscriber known", "\0").replace("subscriber unknown", "subscriber known").replace(
        "\0", "subscriber unknown")
    f_good, f_bad = faithfulness(d, good), faithfulness(d, swapped)
    assert f_good["label_recall"] == 1.0 and f_good["relation_recall"] == 1.0
    assert f_bad["label_recall"] == 1.0 and f_bad["relation_recall"] < 1.0 and f_bad["faithfulness"] < f_good["faithfulness"]
    assert faithfulness(d, good.replace('If "subscriber unknown", ', ""))["label_recall"] < 1.0


def test_normalisation_case_punctuation_plural_and_chinese_characters():
    d = Diagram("flowchart", "t", "", "", "en", [Node("a", "Keep-alive Timer"), Node("b", "AMF"),
                                                 Node("c", "Policy")], [Edge("a", "b")])
    f = faithfulness(d, "The keep alive timers lead to two AMFs and several policies.")
    assert f["label_recall"] == 1.0 and f["hallucinated"] == []
    zh = Diagram("flowchart", "t", "", "", "zh", [Node("a", "用户面功能"), Node("b", "会话管理")], [Edge("a", "b")])
    assert faithfulness(zh, "图中用户面功能连到会话管理。")["label_recall"] == 1.0
    assert faithfulness(zh, "图中用户面连到会话。")["label_recall"] == 0.0


def test_hallucinated_spans_are_listed():
    d = alt_diagram()
    f = faithfulness(d, 'UE sends "Registration Request" to AMF, then the PCF sends "Policy Update" to SMF.')
    assert {"PCF", "SMF", "Policy Update"} <= set(f["hallucinated"])
    assert 0 < f["hallucination_rate"] < 1


def test_empty_caption_and_wrong_language():
    d = alt_diagram()
    with pytest.raises(ValueError, match="empty"):
        faithfulness(d, "  \n")
    zh = Diagram("flowchart", "t", "", "", "zh", [Node("a", "用户面功能")], [])
    assert not faithfulness(zh, "The user plane function is shown.")["language_ok"]


def test_aggregate_skips_what_does_not_apply():
    rows = [{"label_recall": 1.0, "hallucination_rate": 0.0, "relation_recall": None, "order_tau": None,
             "faithfulness": 1.0}, {"label_recall": 0.5, "hallucination_rate": 0.5, "relation_recall": 1.0,
                             "order_tau": -1.0, "faithfulness": 0.25}]
    assert aggregate(rows) == {"label_recall": 0.75, "hallucination_rate": 0.25, "relation_recall": 1.0,
                               "order_tau": -1.0, "faithfulness": 0.625}
