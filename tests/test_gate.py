"""The faithfulness gate: the verbalizer's own texts pass; planted omissions, inventions and reorderings
do not."""

from __future__ import annotations

import random

import pytest
from test_describe import TYPES, fixture_diagrams

from dicrepro.diagrams.graph import Diagram, Edge, Node
from dicrepro.text.describe import describe, diagram_labels
from dicrepro.text.gate import (
    candidate_labels,
    check_faithful,
    detail_labels,
    diagram_strings,
    normalize,
    ordered_labels,
)

# Domain labels a careless LLM might add (a stand-in for knowledge.lexicon(), so the test is self-contained).
LEXICON = ["SMF", "UPF", "AUSF", "UDM", "AMF", "gNB", "N3", "Nsmf_PDUSession_CreateSMContext",
           "PDU Session Establishment Request", "Registration Request", "会话管理功能", "用户面功能"]
INVENT = {"en": ("The {x} is consulted as well.", ["UDM", "Nsmf_PDUSession_CreateSMContext", "UPF", "SMF"]),
          "zh": ("此外还会调用{x}。", ["会话管理功能", "用户面功能", "UDM"])}


def _diagram(language: str, diagram_type: str) -> Diagram:
    return next(d for d in fixture_diagrams(language) if d.diagram_type == diagram_type)


def _sequence(language="en") -> Diagram:
    return _diagram(language, "sequence")


@pytest.mark.parametrize("language", ["en", "zh"])
@pytest.mark.parametrize("diagram_type", TYPES)
def test_the_verbalizers_own_text_passes_for_every_type(diagram_type, language):
    d = _diagram(language, diagram_type)
    for seed in range(4):
        for style in ("structural", "expert"):
            views = describe(d, random.Random(seed), style=style)
            result = check_faithful(d, views["description"], lexicon=LEXICON)
            assert result.ok, (seed, style, result.reasons)
            assert check_faithful(d, views["detail"], lexicon=LEXICON, required=detail_labels(d)).ok
            for part in ("global", "partial"):
                assert check_faithful(d, views[part], lexicon=LEXICON, require_all=False).ok, part


@pytest.mark.parametrize("language", ["en", "zh"])
@pytest.mark.parametrize("diagram_type", TYPES)
def test_a_dropped_label_is_caught(diagram_type, language):
    d = _diagram(language, diagram_type)
    text = describe(d, random.Random(1))["description"]
    labels = diagram_labels(d)
    # A label no other label contains, so removing it removes nothing else.
    victim = next(lab for lab in reversed(labels)
                  if not any(o != lab and normalize(lab) in normalize(o) for o in diagram_strings(d)))
    result = check_faithful(d, text.replace(victim, "…"), lexicon=LEXICON)
    assert not result.ok and victim in result.missing
    assert any(victim in r for r in result.reasons)


@pytest.mark.parametrize("language", ["en", "zh"])
@pytest.mark.parametrize("diagram_type", TYPES)
def test_an_invented_label_is_caught(diagram_type, language):
    d = _diagram(language, diagram_type)
    template, candidates = INVENT[language]
    fake = next(x for x in candidates if not any(normalize(x) in normalize(s) for s in diagram_strings(d)))
    text = describe(d, random.Random(2))["description"] + template.format(x=fake)
    result = check_faithful(d, text, lexicon=LEXICON)
    assert not result.ok and result.invented == [fake] and not result.missing


@pytest.mark.parametrize("language", ["en", "zh"])
def test_swapped_messages_are_caught(language):
    d = _sequence(language)
    msgs = ordered_labels(d)
    assert msgs == [e.label for e in d.edges]  # the fixture lists its messages in time order
    a, b = "Registration Request", "Registration Accept"  # messages 3 and 5
    for view in ("detail", "description"):
        text = describe(d, random.Random(3))[view]
        swapped = text.replace(a, "\x00").replace(b, a).replace("\x00", b)
        assert check_faithful(d, text, lexicon=LEXICON, required=detail_labels(d)).order_ok
        result = check_faithful(d, swapped, lexicon=LEXICON, required=detail_labels(d))
        assert not result.ok and not result.order_ok and not result.missing
        assert any("order" in r for r in result.reasons)


def test_an_llm_style_rewrite_passes_and_a_summary_may_name_a_later_message_first():
    d = _sequence()
    text = ("This sequence diagram, \"Initial registration\", follows a UE from RRC Setup Request to "
            "Registration Accept. In the RRC connection phase the UE sends RRC Setup Request to the gNB, "
            "which answers with RRC Setup. In the NAS registration phase the UE sends a Registration "
            "Request to the AMF; the AMF asks the AUSF (Nausf_UEAuthentication) and finally returns "
            "Registration Accept to the UE.")
    result = check_faithful(d, text, lexicon=LEXICON)
    assert result.ok, result.reasons
    # A later message named first is fine; the same text with the real sequence broken is not.
    broken = text.replace("which answers with RRC Setup. ", "").replace("to the UE.", "to the UE. Then RRC Setup.")
    assert not check_faithful(d, broken, lexicon=LEXICON).order_ok


def test_normalisation_case_width_punctuation_and_spacing():
    d = Diagram("sequence", "Attach", "attach", "core", nodes=[Node("u", "UE"), Node("m", "MME")],
                edges=[Edge("u", "m", "Attach Request", order=0), Edge("m", "u", "Attach_Accept", order=1)])
    assert check_faithful(d, "ＵＥ sends “attach request” to the mme; the MME replies with Attach Accept.",
                          lexicon=()).ok
    zh = Diagram("sequence", "附着", "附着", "核心网", language="zh", nodes=[Node("u", "UE"), Node("m", "MME")],
                 edges=[Edge("u", "m", "发送Attach Request", order=0)])
    assert check_faithful(zh, "终端 UE 向 MME 发送 Attach Request，流程到此结束。", lexicon=()).ok


def test_a_label_only_counts_on_its_own_not_inside_a_longer_one_or_a_word():
    d = Diagram("gantt", "Upgrade", "upgrade", "core",
                nodes=[Node("a", "Upgrade AMF"), Node("b", "AMF"), Node("c", "5G")])
    assert check_faithful(d, "Tasks: Upgrade AMF, then AMF, on 5G.", lexicon=()).ok
    result = check_faithful(d, "Tasks: Upgrade AMF, then the AMFs, on 5GC.", lexicon=())
    assert result.missing == ["AMF", "5G"]


def test_labels_of_the_diagram_are_never_invented():
    d = _sequence()
    text = describe(d, random.Random(0))["description"]
    lexicon = [d.title, d.topic, d.area, "AMF", "AUSF", "RRC Setup"]  # all in the diagram
    assert check_faithful(d, text, lexicon=lexicon).invented == []
    assert check_faithful(d, text + " The SMF and the AMF selection are involved.",
                          lexicon=lexicon + ["SMF", "AMF selection"]).invented == ["SMF", "AMF selection"]


def test_the_wrong_language_is_rejected():
    en, zh = _diagram("en", "flowchart"), _diagram("zh", "flowchart")
    english_text = describe(en, random.Random(0))["description"]
    chinese_text = describe(zh, random.Random(0))["description"]
    # The zh diagram's labels in an English sentence frame are still English prose.
    frame = "The diagram covers " + ", ".join(diagram_labels(zh)) + " in this order, step by step."
    result = check_faithful(zh, frame, lexicon=LEXICON)
    assert not result.ok and any("Chinese" in r for r in result.reasons)
    assert check_faithful(en, english_text, lexicon=LEXICON).ok
    assert check_faithful(zh, chinese_text, lexicon=LEXICON).ok
    chinese_frame = "该流程图依次包含" + "、".join(diagram_labels(en)) + "等步骤，按顺序执行。"
    result = check_faithful(en, chinese_frame, lexicon=LEXICON)
    assert not result.ok and any("written in Chinese" in r for r in result.reasons)


def test_an_empty_text_fails_with_everything_missing():
    d = _sequence()
    result = check_faithful(d, "  ", lexicon=LEXICON)
    assert not result.ok and result.missing == diagram_labels(d) and result.reasons == ["the text is empty"]


def test_candidate_labels_keep_specific_entries_only():
    kept = candidate_labels(["AMF", "gNB", "N3", "RRC_IDLE", "Registration Request", "会话管理功能",
                             "Router", "Start", "开始", "the end", "value"])
    assert kept == ["AMF", "gNB", "N3", "RRC_IDLE", "Registration Request", "会话管理功能"]


def test_sampled_diagrams_pass_with_the_knowledge_base_lexicon():
    diagrams = pytest.importorskip("dicrepro.diagrams.sample")
    rng = random.Random(5)
    for language in ("en", "zh"):
        for t in TYPES:
            for _ in range(2):
                d = diagrams.sample_diagram(rng, t, language=language)
                views = describe(d, random.Random(0))
                result = check_faithful(d, views["description"])  # default lexicon: knowledge.lexicon()
                assert result.ok, (t, language, result.reasons)
                assert check_faithful(d, views["detail"], required=detail_labels(d)).ok, (t, language)
