"""The ICT and general knowledge bases: size, bilingual labels, validation errors that name the entry."""

from __future__ import annotations

import re

import pytest

from dicrepro.diagrams.knowledge import KnowledgeError, areas, build_kb, lexicon, load_kb, topics

HAN = re.compile(r"[\u4e00-\u9fff]")


def test_ict_kb_has_150_topics_in_8_areas():
    kb = load_kb("ict")
    assert len(kb["topics"]) >= 150
    assert len(areas("ict")) >= 8
    per_area = {a: len(topics(a)) for a in areas("ict")}
    assert min(per_area.values()) >= 10, per_area


def test_general_kb_is_separate_and_has_30_topics():
    general = load_kb("general")
    assert len(general["topics"]) >= 30
    ict_ids = {t["id"] for t in load_kb("ict")["topics"]}
    assert not ict_ids & {t["id"] for t in general["topics"]}
    # The general base must not teach ICT: none of its entity labels is a 5G network function.
    assert not {"AMF", "SMF", "gNB", "UPF"} & {e["en"] for e in general["entities"].values()}


@pytest.mark.parametrize("domain", ["ict", "general"])
def test_every_topic_has_english_and_chinese_titles_and_entities(domain):
    for t in load_kb(domain)["topics"]:
        assert t["title_en"] and HAN.search(t["title_zh"]), t["id"]
        assert t["entities"], t["id"]
        for e in t["entities"]:
            assert e["en"] and e["zh"] and e["kind"], (t["id"], e)
        for s in t["steps"]:
            assert HAN.search(s["zh"]), (t["id"], s)
        for tr in t["transitions"]:
            assert HAN.search(tr["zh"]), (t["id"], tr)


def test_real_protocol_content_is_there():
    by_id = {t["id"]: t for t in load_kb("ict")["topics"]}
    reg = [m["name"] for m in by_id["5g_registration"]["messages"]]
    assert reg.index("RegistrationRequest") < reg.index("AuthenticationRequest")
    assert reg.index("AuthenticationRequest") < reg.index("SecurityModeCommand") < reg.index("RegistrationAccept")
    ospf = [m["name"] for m in by_id["ospf_adjacency"]["messages"]]
    assert ospf[:2] == ["Hello", "Hello"] and {"DBD", "LSR", "LSU", "LSAck"} <= set(ospf)
    bgp_states = set(by_id["bgp_fsm"]["states"])
    assert {"Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established"} <= bgp_states
    tcp_bits = sum(h["bits"] for h in by_id["tcp_header"]["header"])
    assert tcp_bits == 160  # the fixed 20-byte TCP header


def test_lexicon_holds_labels_of_both_languages():
    lex = lexicon()
    assert {"AMF", "接入和移动性管理功能", "RegistrationAccept", "BGP有限状态机", "Checksum"} <= lex
    assert "Ordering at a restaurant" in lexicon("general")


def _files(topic: dict, entities: dict | None = None) -> list[tuple[str, dict]]:
    ents = entities or {"UE": ["UE", "=", "device"], "AMF": ["AMF", "=", "nf"]}
    return [("ict_test.yaml", {"area": {"id": "test", "title": "Test | 测试"}, "entities": ents,
                               "topics": [topic]})]


def test_valid_entry_builds():
    kb = build_kb(_files({"id": "ok_topic", "title": "Fine | 好", "entities": ["UE", "AMF"],
                          "messages": ["UE -> AMF: RegistrationRequest"]}))
    assert kb["topics"][0]["messages"][0] == {"src": "UE", "dst": "AMF", "name": "RegistrationRequest",
                                              "kind": "sync"}


@pytest.mark.parametrize("topic, match", [
    ({"id": "bad_msg", "title": "A | 甲", "entities": ["UE"], "messages": ["UE -> HSS: Attach"]},
     r"ict_test\.yaml, topic 'bad_msg', messages\[0\]"),
    ({"id": "no_zh", "title": "Only English", "entities": ["UE"]}, r"topic 'no_zh', title"),
    ({"id": "ghost", "title": "A | 甲", "entities": ["Nobody"]}, r"topic 'ghost'.*Nobody"),
    ({"id": "bad_kpi", "title": "A | 甲", "entities": ["UE"], "kpis": ["Rate | 速率 | % | 9-1"]},
     r"topic 'bad_kpi', kpis\[0\]"),
    ({"id": "bad_field", "title": "A | 甲", "entities": ["UE"], "model": {"X": ["not a field at all"]}},
     r"topic 'bad_field', model\.X"),
    ({"id": "typo", "title": "A | 甲", "entities": ["UE"], "mesages": []}, r"topic 'typo'.*mesages"),
])
def test_validator_names_file_topic_and_field(topic, match):
    with pytest.raises(KnowledgeError, match=match):
        build_kb(_files(topic))


def test_validator_rejects_unknown_entity_kind():
    with pytest.raises(KnowledgeError, match=r"entity 'UE' has unknown kind 'gadget'"):
        build_kb(_files({"id": "t", "title": "A | 甲", "entities": ["UE"]}, {"UE": ["UE", "=", "gadget"]}))
