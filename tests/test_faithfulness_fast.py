"""The fast paths of caption faithfulness and of the gate give exactly what the straightforward computations
give: each shortcut against its plain form (written out here), and the whole score with every memo against
the score computed from nothing, on the verbalizer's captions of every diagram type in English and Chinese,
their corruptions, captions of other diagrams, and awkward text."""

from __future__ import annotations

import random
import re
import unicodedata

import pytest
from test_faithfulness import CORRUPTIONS, RICH, caption_of

from dicrepro.diagrams.graph import Diagram, Edge, Node
from dicrepro.diagrams.sample import BUILDERS, sample_diagram
from dicrepro.diagrams.sample_realism import enrich
from dicrepro.evaluate import caption_reading as R
from dicrepro.evaluate import faithfulness as F
from dicrepro.text import gate

AWKWARD = [
    "", " ", "...", "1. The UE sends. 2. The AMF answers.\n3) Done", "AMF。SMF。 UPF。\u3000下一步",
    "ＡＭＦ（全角）ｓｅｎｄｓ ＲＲＣ＿ＩＤＬＥ", "e\u0301tat, café, Ωmega, straße, ΣΑΣ",
    "N4-session 802.1X ipv6 PDU_Session",
    "用户设备UE向AMF发送Registration Request，然后SMF选择UPF。", "\u2460 \u00b4 \u00a8 emoji 📡 tab\there",
    'Quoted "Policy Update" and “会话管理” and 「切换」 names.', "AMFs, UPFs; SMF's N3 N9 and gNBs.",
    "Le café é crème: 5G, N3 and amf-N3 (RRC_IDLE).",
]


def plain_normalize(text: str) -> str:
    """gate.normalize before it used a translate table and skipped the Chinese spacing pass for Latin text."""
    s = unicodedata.normalize("NFKC", text).casefold()
    s = "".join(" " if unicodedata.category(c)[0] in "PSZC" else c for c in s)
    s = " ".join(s.split())
    return gate._SPACE_NEAR_HAN.sub("", s)


def plain_spans(norm_label: str, norm_text: str) -> list[tuple[int, int]]:
    return [m.span() for m in gate._pattern(norm_label).finditer(norm_text)] if norm_label else []


def plain_invented(norm_text: str, allowed: list[str], entries: tuple) -> list[str]:
    """check_faithful's invention loop as it was: every lexicon entry tried against the text."""
    invented = [e for e, ne in gate._normalized(entries)
                if ne in norm_text and not any(plain_spans(ne, a) for a in allowed) and plain_spans(ne, norm_text)]
    n = plain_normalize
    invented = [x for x in invented if not any(n(y) != n(x) and plain_spans(n(x), n(y)) for y in invented)]
    return list({n(x): x for x in reversed(invented)}.values())[::-1]


def plain_acronyms(caption: str) -> list[str]:
    words = re.findall(r"(?<![A-Za-z0-9_])[A-Za-z0-9_]*[A-Za-z][A-Za-z0-9_]*", caption)
    return [w for w in words if sum(c.isupper() for c in w) >= 2
            or (sum(c.isupper() for c in w) and any(c.isdigit() for c in w))]


def cases() -> list[tuple[Diagram, str]]:
    """(diagram, caption): faithful captions of every type and language, plain and rich, their corruptions,
    another diagram's caption, and awkward text."""
    out = []
    for language in ("en", "zh"):
        for k, dtype in enumerate(sorted(BUILDERS)):
            for seed in range(3):
                d = sample_diagram(random.Random(seed), dtype, language=language, min_elements=3, max_elements=12)
                if dtype in ("sequence", "flowchart", "state") and seed:
                    d = enrich(random.Random(seed), d, RICH)
                cap = caption_of(d, seed)
                out.append((d, cap))
                out += [(d, bad) for corrupt in CORRUPTIONS.values() if (bad := corrupt(d, cap))]
    out += [(out[i][0], out[(i * 7 + 3) % len(out)][1]) for i in range(0, len(out), 5)]  # blind-like
    out += [(out[i][0], text) for i, text in enumerate(AWKWARD) if text.strip()]
    return out


CASES = cases()


def test_normalize_and_spans_equal_their_plain_forms():
    texts = [c for _, c in CASES[::3]] + AWKWARD
    for t in texts:
        assert gate.normalize(t) == plain_normalize(t), t
    labels = ["amf", "n4", "802 1x", "ue", "会话", "e", "rrc idle", "pdu session", "a", "é", "ωmega"]
    for t in map(gate.normalize, texts):
        for lab in labels + t.split()[:30]:
            assert gate._spans(lab, t) == plain_spans(lab, t), (lab, t)


def test_lexicon_hits_and_inventions_equal_trying_every_entry():
    lexicon = gate.default_lexicon()
    small = ("AMF", "Registration Request", "N3", "会话管理功能", "用户面", "5G", "é", "café", "RRC_IDLE", "Σ",
             "amf N3", "N3 and", "5G 用户面")
    for d, caption in CASES[::2]:
        norm = gate.normalize(caption)
        allowed = [s for s in dict.fromkeys(map(gate.normalize, gate.diagram_strings(d))) if s]
        for entries in (lexicon, small):
            want = [(e, n) for e, n in gate._normalized(entries) if plain_spans(n, norm)]
            assert gate.lexicon_hits(norm, entries) == want, caption
            assert gate.invented_labels(norm, allowed, entries, {}) == plain_invented(norm, allowed, entries)
    assert gate.invented_labels(gate.normalize("The PCF and the NRF."), [], lexicon)  # something is found


def test_sentence_and_template_shortcuts_equal_their_plain_forms():
    for _, caption in CASES + [(None, t) for t in AWKWARD]:
        if "。" not in caption:  # the simpler pattern splits where the full one does
            assert R._SENTENCE_END_NO_ZH.split(caption) == R._SENTENCE_END.split(caption)
        keys = [R.key(s) for s in R.split_sentences(caption)]
        assert R.caption_key(keys) == R.key(caption), caption  # the caption's key from its sentences'
        assert [m.group() for m in F._ACRONYM.finditer(caption)] == plain_acronyms(caption)
        assert len(caption) - len(caption.translate(F._NO_LATIN_LETTERS)) == len(re.findall("[A-Za-z]", caption))
        for sk in keys:
            for relational in (True, False):
                want = tuple(t for t in R.templates(relational) if not t[1] or f" {t[1]} " in sk)
                assert R.templates_in(sk, relational) == want, sk


def test_scores_with_memos_equal_scores_computed_from_nothing():
    warm = [F.faithfulness(d, c) for d, c in CASES]  # the same diagram over and over: its index is reused
    for (d, c), got in zip(CASES, warm):
        F.clear_caches()
        assert F.faithfulness(d, c) == got, c
    assert len({round(w["faithfulness"], 6) for w in warm}) > 10  # the cases really differ


def test_a_diagram_changed_in_place_is_indexed_anew():
    d = Diagram("flowchart", "t", "t", "a", "en", [Node("a", "Source gNB"), Node("b", "Target gNB")],
                [Edge("a", "b", "Handover Request")])
    caption = "The Source gNB sends Handover Request to the Target gNB."
    assert F.faithfulness(d, caption)["label_recall"] == 1.0
    d.nodes[1].label = "AMF"  # same object, new content
    got = F.faithfulness(d, caption)
    F.clear_caches()
    assert got == F.faithfulness(d, caption) and got["label_recall"] < 1.0


@pytest.mark.parametrize("lexicon", [None, ["PCF", "Policy Update"]])
def test_an_explicit_lexicon_is_honoured_on_the_fast_path(lexicon):
    d, caption = CASES[0]
    text = caption + " The PCF sends Policy Update."
    got = F.faithfulness(d, text, lexicon=lexicon)
    F.clear_caches()
    assert got == F.faithfulness(d, text, lexicon=lexicon) and "PCF" in got["hallucinated"]
