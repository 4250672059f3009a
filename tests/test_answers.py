"""The answer extractor on the kinds of replies models really give to objective questions."""

import pytest

from dicrepro.evaluate.answers import extract_bool, extract_choice, extract_number, is_correct

OPTS = ["Router", "Switch", "Firewall", "Load balancer"]
ZH_OPTS = ["接入和移动管理功能", "会话管理功能", "用户面功能", "统一数据管理"]

CHOICES = [
    ("B", "B"),
    ("(B)", "B"),
    ("B.", "B"),
    ("B)", "B"),
    ("**C**", "C"),
    ("Answer: B", "B"),
    ("answer:c", "C"),
    ("The answer is B", "B"),
    ("The answer is (D).", "D"),
    ("I think the answer is (c).", "C"),
    ("B. Switch", "B"),
    ("Option C is correct because traffic is filtered.", "C"),
    ("The correct option is D: Load balancer", "D"),
    ("switch", "B"),
    ("  FIREWALL ", "C"),
    ("load  balancer", "D"),
    ("It is the firewall that drops the packet.", "C"),
    ("答案：C", "C"),
    ("答案是 B", "B"),
    ("选B", "B"),
    ("我选择 D。", "D"),
    ("正确答案为A", "A"),
    ("b", "B"),
    ("d.", "D"),
    ("A", "A"),
    # unparseable or ambiguous
    ("A or B", None),
    ("Either B or C could be right.", None),
    ("Router and Switch", None),
    ("I cannot see the diagram clearly.", None),
    ("", None),
    ("E", None),  # not one of four options
]


@pytest.mark.parametrize("reply,letter", CHOICES)
def test_extract_choice(reply, letter):
    assert extract_choice(reply, OPTS) == letter


@pytest.mark.parametrize("reply,letter", [("会话管理功能", "B"), ("答案是：用户面功能", "C"),
                                          ("统一数据管理 (UDM)", "D"), ("B. 会话管理功能", "B")])
def test_extract_choice_by_chinese_option_text(reply, letter):
    assert extract_choice(reply, ZH_OPTS, "zh") == letter


def test_a_reply_that_is_exactly_an_option_chooses_it_even_with_a_capital_letter_inside():
    # a label such as "Type B" listed as option C: the reply "Type B" means C, not the letter B
    opts = ["Type A", "Type D", "Type B", "Type C"]
    assert extract_choice("Type B", opts) == "C"
    assert extract_choice("type b.", opts) == "C"


def test_a_sentence_starting_with_the_article_a_is_not_option_a():
    assert extract_choice("A packet reaches the switch first.", OPTS) == "B"


@pytest.mark.parametrize("reply,value", [
    ("True", True), ("false.", False), ("Yes", True), ("No, it is not.", False), ("This is not true.", False),
    ("The statement is correct.", True), ("incorrect", False), ("正确", True), ("错误", False),
    ("不正确", False), ("答案是正确的", True), ("对", True), ("maybe", None), ("True or false", None),
])
def test_extract_bool(reply, value):
    assert extract_bool(reply) is value


@pytest.mark.parametrize("reply,value", [
    ("3", 3), ("three", 3), ("三", 3), ("There are 3 nodes.", 3), ("共有十二个节点", 12), ("二十", 20),
    ("Five participants exchange messages.", 5), ("3 or 4", None), ("2.5", None), ("none", None),
])
def test_extract_number(reply, value):
    assert extract_number(reply) == value


def test_is_correct_for_each_answer_key_kind():
    mc = {"kind": "mc", "options": OPTS, "answer_key": "C"}
    assert is_correct(mc, "Answer: C") == (True, True)
    assert is_correct(mc, "B. Switch") == (False, True)
    assert is_correct(mc, "no idea") == (False, False)
    tf = {"kind": "tf", "options": [], "answer_key": "false"}
    assert is_correct(tf, "错误") == (True, True) and is_correct(tf, "True") == (False, True)
    tf_lettered = {"kind": "tf", "options": ["True", "False"], "answer_key": "true"}
    assert is_correct(tf_lettered, "A") == (True, True)
    count = {"kind": "count", "options": [], "answer_key": "4"}
    assert is_correct(count, "There are four hosts.") == (True, True)
    assert is_correct(count, "四") == (True, True) and is_correct(count, "5") == (False, True)
    with pytest.raises(ValueError, match="answer_key"):
        is_correct({"options": [], "answer_key": "maybe"}, "yes")
