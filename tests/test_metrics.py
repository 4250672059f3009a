"""Caption metrics agree with their reference libraries called directly, on fixed inputs."""

import json

import pytest
import sacrebleu
from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu
from nltk.translate.meteor_score import meteor_score
from pycocoevalcap.cider.cider import Cider
from rouge_score.rouge_scorer import RougeScorer

from dicrepro.evaluate import meteor, metrics
from dicrepro.evaluate.diagram_type import KNOWN_TYPES
from dicrepro.evaluate.metrics import (
    CAPTION_METRICS,
    RougeTokenizer,
    caption_scores,
    format_improvement,
    metrics_from_files,
    objective_scores,
    relative_improvement,
    score_table,
    tokenize,
)

REFS = [
    "The UE sends a Registration Request to the AMF, which selects an AUSF for authentication.",
    "After authentication the AMF forwards the PDU Session Establishment Request to the SMF.",
    "The SMF selects a UPF and sends an N4 Session Establishment Request.",
    "OSPF routers in area 0 exchange link state advertisements with their neighbours.",
]
PREDS = [
    "The UE sends a Registration Request to the AMF which then selects the AUSF.",
    "The AMF forwards a PDU Session Establishment Request to the SMF after authentication.",
    "The SMF chooses a UPF and sends an N4 session request.",
    "Routers running BGP exchange routes with their peers.",
]


def toks(texts):
    return [list(tokenize(t)) for t in texts]


def test_bleu_equals_nltk_corpus_bleu_and_sacrebleu_on_words():
    rt, pt = toks(REFS), toks(PREDS)
    smooth = SmoothingFunction().method1
    for n in (1, 2, 3, 4):
        want = corpus_bleu([[r] for r in rt], pt, weights=[1 / n] * n, smoothing_function=smooth)
        assert CAPTION_METRICS[f"bleu{n}"](REFS, PREDS)[0] == pytest.approx(want, abs=1e-12)
    # every n-gram order has matches here, so smoothing is inert and sacreBLEU (on our tokens) agrees
    sb = sacrebleu.corpus_bleu([" ".join(p) for p in pt], [[" ".join(r) for r in rt]], tokenize="none",
                               smooth_method="none")
    assert caption_scores(REFS, PREDS)["bleu4"] == pytest.approx(sb.score / 100, abs=1e-9)


def test_meteor_equals_nltk_with_debian_wordnet():
    wn = meteor.wordnet_reader()
    assert wn.synsets("router")  # WordNet really loaded, from /usr/share/wordnet
    want = [meteor_score([r], p, wordnet=wn) for r, p in zip(toks(REFS), toks(PREDS))]
    corpus, items = metrics.score_meteor(REFS, PREDS)
    assert items == pytest.approx(want, abs=1e-12)
    assert corpus == pytest.approx(sum(want) / len(want))
    # synonyms count: "quick" matches "fast" only through WordNet
    assert metrics.score_meteor(["the link is fast"], ["the link is quick"])[0] > \
        metrics.score_meteor(["the link is fast"], ["the link is xyzzy"])[0] + 0.2


def test_meteor_written_out_equals_nltk_on_many_pairs():
    """dicrepro.evaluate.meteor (memoised stems and synonyms) gives nltk's meteor_score on English and
    Chinese pairs with repeated words, stems ("routers"/"router"), synonyms ("fast"/"quick") and empty sides."""
    wn = meteor.wordnet_reader()
    refs, preds = many_pairs(200)
    rt, pt = toks(refs), toks(preds)
    rt += [["the", "link", "is", "fast", "and", "the", "routers", "send", "the", "request"], [], ["a"]]
    pt += [["the", "quick", "link", "routing", "the", "router", "sends", "requests", "the"], ["a"], []]
    want = [meteor_score([r], p, preprocess=str, wordnet=wn) for r, p in zip(rt, pt)]
    got = meteor.meteor_items(rt, pt)
    assert got == pytest.approx(want, abs=1e-12)
    assert got[-3] > 0.5 and any(0 < x < 1 for x in got[::5])  # synonyms and stems matched; zh scored


def test_rougeL_equals_rouge_score_rougescorer():
    scorer = RougeScorer(["rougeL"], tokenizer=RougeTokenizer())
    refs, preds = REFS + ["用户设备向AMF发送注册请求"], PREDS + ["用户设备发送注册请求给AMF"]
    want = [scorer.score(r, p)["rougeL"].fmeasure for r, p in zip(refs, preds)]
    corpus, items = metrics.score_rougeL(refs, preds)
    assert items == pytest.approx(want, abs=1e-12)
    assert items[-1] > 0.5  # Chinese is scored, not dropped as rouge-score's default tokenizer would


def test_cider_is_pycocoevalcap_cider_d_on_its_own_scale():
    gts = {i: [" ".join(t)] for i, t in enumerate(toks(REFS))}
    res = {i: [" ".join(t)] for i, t in enumerate(toks(PREDS))}
    want, want_items = Cider().compute_score(gts, res)
    corpus, items = metrics.score_cider(REFS, PREDS)
    assert corpus == pytest.approx(want, abs=1e-9)  # not divided by 10, not in percent
    assert items == pytest.approx(list(want_items), abs=1e-9)
    assert caption_scores(REFS, PREDS)["cider"] == pytest.approx(want, abs=1e-9)


def test_identical_texts_score_one_and_disjoint_texts_zero():
    same = caption_scores(REFS, REFS)
    for k in ("bleu1", "bleu2", "bleu3", "bleu4", "rougeL"):
        assert same[k] == pytest.approx(1.0), k
    assert same["meteor"] > 0.99 and same["cider"] == pytest.approx(10.0)  # CIDEr-D's top is 10
    disjoint = caption_scores(["alpha beta gamma delta", "epsilon zeta eta theta"],
                              ["one two three four", "five six seven eight"])
    assert all(v == pytest.approx(0.0, abs=1e-6) for v in disjoint.values()), disjoint
    assert set(same) == set(metrics.METRIC_NAMES) == {"bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rougeL", "cider"}
    assert all(0.0 <= v <= 1.0 for k, v in same.items() if k not in metrics.RAW_SCALE_KEYS)
    assert metrics.METRIC_NAMES["cider"] == "CIDEr-D"


def test_caption_scores_with_shared_counts_equal_each_metric_on_its_own():
    """caption_scores tokenises once and counts n-grams once for BLEU and CIDEr-D: the same numbers as
    the registry's functions, each of which counts on its own."""
    refs, preds = many_pairs(120)
    langs = ["zh" if i % 5 == 0 else "en" for i in range(len(refs))]
    got = caption_scores(refs, preds, langs)
    for name, fn in CAPTION_METRICS.items():
        assert got[name] == pytest.approx(fn(refs, preds, langs)[0], abs=1e-12), name


def test_chinese_is_scored_on_jieba_words():
    assert tokenize("用户设备向AMF发送注册请求。") == ("用户", "设备", "向", "amf", "发送", "注册", "请求")
    assert tokenize("用户设备", "en") == ("用", "户", "设", "备")  # "en" never segments: one char each
    ref, pred = ["用户设备向AMF发送注册请求"], ["用户设备向SMF发送注册请求"]
    want = corpus_bleu([[list(tokenize(ref[0]))]], [list(tokenize(pred[0]))], weights=(1.0,))
    assert metrics.score_bleu1(ref, pred, "zh")[0] == pytest.approx(want) == pytest.approx(6 / 7)


def test_ict_terms_stay_whole():
    assert tokenize("IEEE 802.1X, IPv6 and PDU-session (N2).") == \
        ("ieee", "802.1x", "ipv6", "and", "pdu-session", "n2")


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_metrics_from_files_matches_by_id_and_names_missing_ids(tmp_path):
    ref = write_jsonl(tmp_path / "ref.jsonl", [{"id": f"d{i}", "text": t, "language": "en"}
                                               for i, t in enumerate(REFS)])
    # predictions in another order: matching is by id
    pred = write_jsonl(tmp_path / "pred.jsonl", [{"id": f"d{i}", "text": t} for i, t in
                                                 reversed(list(enumerate(PREDS)))])
    assert metrics_from_files(pred, ref) == pytest.approx(caption_scores(REFS, PREDS))
    short = write_jsonl(tmp_path / "short.jsonl", [{"id": f"d{i}", "text": t} for i, t in enumerate(PREDS[:3])])
    with pytest.raises(ValueError, match=r"'d3'.*ref.jsonl|short.jsonl.*'d3'"):
        metrics_from_files(short, ref)
    extra = write_jsonl(tmp_path / "extra.jsonl", [{"id": f"d{i}", "text": "x"} for i in range(5)])
    with pytest.raises(ValueError, match="'d4'"):
        metrics_from_files(extra, ref)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "d0", "text": "ok"}\n{not json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        metrics_from_files(bad, ref)


@pytest.mark.parametrize("line, message", [
    ('42', r"x.jsonl:2: a line must be a JSON object"),
    ('["d1", "text"]', r"x.jsonl:2: a line must be a JSON object"),
    ('{"id": "d1", "text": {"en": "a dict"}}', r"x.jsonl:2: text: must be a string, got dict"),
    ('{"id": "d1", "text": 7}', r"x.jsonl:2: text: must be a string, got int"),
    ('{"id": "d1", "text": null}', r"x.jsonl:2: text: must be a string, got NoneType"),
    ('{"id": null, "text": "a"}', r"x.jsonl:2: id: must be a string or a whole number"),
    ('{"id": "d0", "text": "a"}', r"x.jsonl:2: id 'd0' appears twice \(first on line 1\)"),
    ('{"text": "no id"}', r"x.jsonl:2: no 'id' field"),
    ('[' * 50000, r"x.jsonl:2: not valid JSON"),
])
def test_metrics_inputs_name_the_file_and_line_of_a_bad_row(tmp_path, line, message):
    ref = write_jsonl(tmp_path / "ref.jsonl", [{"id": f"d{i}", "text": t} for i, t in enumerate(REFS[:2])])
    bad = tmp_path / "x.jsonl"
    bad.write_text('{"id": "d0", "text": "a caption"}\n' + line + "\n")
    with pytest.raises(ValueError, match=message):
        metrics_from_files(bad, ref)
    with pytest.raises(ValueError, match=message.replace("x.jsonl", "x.jsonl")):
        metrics_from_files(ref, bad)


def test_metrics_refuse_what_is_not_a_regular_utf8_file(tmp_path):
    import os

    ref = write_jsonl(tmp_path / "ref.jsonl", [{"id": "d0", "text": REFS[0]}])
    os.mkfifo(tmp_path / "fifo.jsonl")
    with pytest.raises(ValueError, match="fifo.jsonl: not a regular file"):
        metrics_from_files(tmp_path / "fifo.jsonl", ref)
    (tmp_path / "latin1.jsonl").write_bytes(b'{"id": "d0", "text": "caf\xe9"}\n')
    with pytest.raises(ValueError, match="latin1.jsonl:1: not UTF-8"):
        metrics_from_files(tmp_path / "latin1.jsonl", ref)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="empty.jsonl: no rows"):
        metrics_from_files(tmp_path / "empty.jsonl", ref)


def test_objective_scores_count_unparsed_and_chance():
    items = [
        {"id": "q1", "kind": "mc", "options": ["Router", "Switch", "Firewall", "Hub"], "answer_key": "B"},
        {"id": "q2", "kind": "tf", "options": [], "answer_key": "false"},
        {"id": "q3", "kind": "count", "options": [], "answer_key": "3"},
        {"id": "q4", "kind": "mc", "options": ["AMF", "SMF", "UPF", "UDM"], "answer_key": "D"},
    ]
    preds = {"q1": "Answer: B", "q2": "错误", "q3": "There are three nodes.", "q4": "I am not sure."}
    s = objective_scores(items, preds)
    assert s["accuracy"] == pytest.approx(0.75) and s["n"] == 4 and s["unparsed"] == 1
    assert s["chance"] == pytest.approx((0.25 + 0.5 + 0.0 + 0.25) / 4)
    with pytest.raises(ValueError, match="q4"):
        objective_scores(items, {k: v for k, v in preds.items() if k != "q4"})


def test_the_open_type_question_is_read_like_a_caption_and_its_chance_is_one_in_all_types():
    items = [{"id": f"t{i}", "kind": "type", "options": [], "answer_key": "pie"} for i in range(4)]
    preds = {"t0": "This is a pie chart.", "t1": "这是一张饼图。", "t2": "This is a Gantt chart.", "t3": "No idea."}
    s = objective_scores(items, preds)
    assert s["correct"] == 2 and s["unparsed"] == 1
    assert s["chance"] == pytest.approx(1 / len(KNOWN_TYPES)) and len(KNOWN_TYPES) >= 10


def test_score_table_breaks_down_by_group_and_relative_improvement():
    refs = [{"id": str(i), "text": t, "diagram_type": "flowchart" if i < 2 else "sequence", "language": "en"}
            for i, t in enumerate(REFS)]
    preds = [{"model": m, "id": str(i), "text": t if m == "stage3" else "the"}
             for m in ("base", "stage3") for i, t in enumerate(PREDS)]
    df = score_table(preds, refs, by=["diagram_type"])
    assert set(df.group_by) == {"overall", "diagram_type"} and len(df) == 2 * 3
    flow = df[(df.model == "stage3") & (df.group == "flowchart")].iloc[0]
    assert flow.n == 2 and flow.bleu4 == pytest.approx(caption_scores(REFS[:2], PREDS[:2])["bleu4"])
    assert relative_improvement(0.3136, 0.2) == pytest.approx(0.568)
    assert format_improvement(0.3136, 0.2) == "+56.8%"
    with pytest.raises(ValueError):
        relative_improvement(0.5, 0.0)


def test_missing_wordnet_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("DICREPRO_WORDNET", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="lexnames"):
        meteor.wordnet_dir()
    monkeypatch.delenv("DICREPRO_WORDNET")
    monkeypatch.setattr(meteor, "DEBIAN_WORDNET", tmp_path / "nowhere")
    monkeypatch.setattr(meteor.Path, "home", lambda: tmp_path)
    with pytest.raises(FileNotFoundError, match="make setup.*wordnet-base"):
        meteor.wordnet_dir()


def test_lexnames_is_the_standard_45_line_file():
    lines = meteor.lexnames_text().splitlines()
    assert len(lines) == 45
    assert lines[0] == "00\tadj.all\t3" and lines[3] == "03\tnoun.Tops\t1" and lines[44] == "44\tadj.ppl\t3"


def many_pairs(n=300):
    """n deterministic caption pairs, every fifth Chinese (written without spaces, segmented by jieba)."""
    import random

    rng = random.Random(7)
    en = "the ue sends registration request to amf smf upf session router ospf link state area".split()
    zh = "用户 设备 发送 注册 请求 会话 建立 切换 路由器 链路 状态 告警".split()
    refs, preds = [], []
    for i in range(n):
        vocab, sep = (zh, "") if i % 5 == 0 else (en, " ")
        words = [rng.choice(vocab) for _ in range(rng.randint(5, 40))]
        pred = [w if rng.random() < 0.7 else rng.choice(vocab) for w in words if rng.random() < 0.9]
        refs.append(sep.join(words))
        preds.append(sep.join(pred))
    return refs, preds


def test_sparse_cider_is_pycocoevalcap_cider():
    from dicrepro.evaluate.ngrams import cider_d

    refs, preds = many_pairs(300)
    rt, pt = toks(refs), toks(preds)
    rt[3], pt[4] = (), ()  # an empty reference and an empty prediction score as pycocoevalcap scores them
    want, want_items = Cider().compute_score({i: [" ".join(r)] for i, r in enumerate(rt)},
                                             {i: [" ".join(p)] for i, p in enumerate(pt)})
    corpus, items = cider_d(rt, pt)
    assert corpus == pytest.approx(want, abs=1e-9)
    assert items == pytest.approx(list(want_items), abs=1e-9)
    assert any(s > 0 for s in items[::5])  # the Chinese items really scored
    with pytest.raises(ValueError, match="2 references but 1"):
        cider_d([("a", "b"), ("c", "d")], [("a", "b")])


def test_sparse_corpus_bleu_is_nltk_corpus_bleu():
    from nltk.translate.bleu_score import SmoothingFunction
    from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu

    from dicrepro.evaluate.ngrams import corpus_bleu

    weights = [(1.0,), (0.5, 0.5), (1 / 3,) * 3, (0.25,) * 4]
    refs, preds = many_pairs(300)
    rt, pt = toks(refs), toks(preds)
    pt[7], pt[8] = pt[7][:2], ()  # shorter than 4-grams, and empty
    want = nltk_corpus_bleu([[r] for r in rt], pt, weights=weights, smoothing_function=SmoothingFunction().method1)
    assert corpus_bleu(rt, pt, weights) == pytest.approx(want, abs=1e-9)
    # no matching unigram at all: 0, as nltk; no matching 4-gram: method1's epsilon, as nltk
    assert corpus_bleu([("a", "b")], [("c", "d")], weights) == [0.0] * 4
    short = ([("a", "b", "c", "d")], [("a", "b", "c", "x")])
    assert corpus_bleu(*short, weights) == pytest.approx(
        nltk_corpus_bleu([[short[0][0]]], short[1], weights=weights, smoothing_function=SmoothingFunction().method1))
