"""Diagram-type accuracy: the first type a caption names, in English or Chinese, against the true type."""

from __future__ import annotations

import math
import random

from test_describe import fixture_diagrams

from dicrepro.evaluate.diagram_type import caption_type, type_accuracy, type_marks
from dicrepro.text.describe import describe


def test_the_verbalizers_own_captions_name_their_type_first():
    # Every reference the pipeline writes (both languages, every fixture type) must read as its own type:
    # otherwise the references themselves would score below 100%.
    for lang in ("en", "zh"):
        for d in fixture_diagrams(lang):
            for seed, style in ((0, "structural"), (1, "structural"), (2, "expert")):
                text = describe(d, random.Random(seed), style)["description"]
                assert caption_type(text) == d.diagram_type, (lang, d.diagram_type, text[:120])


def test_first_mention_wins_and_synonyms_are_read():
    assert caption_type("This pie chart, unlike the flowchart before it, ...") == "pie"
    assert caption_type("The figure is a class diagram of the billing service.") == "class"
    assert caption_type("这张饼图展示了流量的分配。") == "pie"
    assert caption_type("“图书馆借书”是关于图书馆借书的实体关系图（日常生活）。") == "er"
    assert caption_type("A bar chart of monthly traffic") == "xychart"
    assert caption_type("该脑图围绕5G核心网展开") == "mindmap"
    assert caption_type("An ERD of the subscriber database") == "er"
    # a quoted title is a label, not the caption's claim
    assert caption_type('"NR RRC state machine" is a mind map of RRC states') == "mindmap"
    assert caption_type("“流程图规范”是一张类图") == "class"
    # stray quotes around the caption's own words: the type is still read
    assert caption_type('" is a block diagram named "Network procedures" about SDN') == "block"
    # names inside other words are not type names
    assert caption_type("The ordered classes of service") is None
    assert caption_type("") is None and caption_type(None) is None


def test_accuracy_counts_wrong_and_unnamed_types_and_drops_known_bad_inputs():
    types = ["pie", "mindmap", "class", "sequence"]
    right = ["This is a pie chart.", "这是一张思维导图。", "A class diagram.", "A sequence diagram of attach."]
    acc = type_accuracy(types, right)
    assert acc == {"accuracy": 1.0, "n": 4, "unnamed": 0.0, "chance": 0.25}
    # a blind model that always writes the commonest template: one right out of four
    blind = ["This is a pie chart."] * 4
    assert type_accuracy(types, blind)["accuracy"] == 0.25
    # captions that name no type are wrong and counted as unnamed
    none = type_accuracy(types, ["It shows things."] * 4)
    assert none["accuracy"] == 0.0 and none["unnamed"] == 1.0


def test_unknown_reference_types_are_left_out():
    assert type_marks(["pie", "unknown"], ["a pie chart", "a pie chart"]) == [True, None]
    acc = type_accuracy(["unknown"], ["a pie chart"])
    assert acc["n"] == 0 and math.isnan(acc["accuracy"])
