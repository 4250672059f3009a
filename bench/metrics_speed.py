"""How long do all caption metrics take on 10,000 caption pairs? (a benchmark, not a test)

Builds N deterministic, caption-like pairs (ICT-flavoured English and Chinese sentences of 30-150 words;
each prediction is its reference with words dropped, replaced and swapped, as a model's output would be),
then times, in the same run:

- the anchor: ``sacrebleu.corpus_bleu`` alone on the same pairs (its 13a/zh tokenizer, BLEU-4 only);
- ``dicrepro.evaluate.metrics.caption_scores`` (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D), cold (first call in
  the process: WordNet and jieba load) and warm (resources loaded, tokens not cached), tokenisation alone,
  and each metric on its own with cached tokens;
- the reference libraries on the same tokens, for the equality check: nltk's ``corpus_bleu`` and
  pycocoevalcap's ``Cider().compute_score`` (dicrepro computes both on sparse n-gram counts,
  ``dicrepro.evaluate.ngrams``), with their time for comparison.

Target: warm ``caption_scores`` within 2x the anchor's time, every score equal to the reference's to 1e-6.

Usage: ``.venv/bin/python bench/metrics_speed.py [--n 10000] [--seed 0]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time

EN_TERMS = ("UE gNB AMF SMF UPF AUSF UDM PCF NRF router switch VLAN OSPF BGP IS-IS TCP QUIC TLS IPsec "
            "DNS DHCP SIP HTTP OTN WDM SDN controller firewall load-balancer N2 N3 N4 PDU session RRC "
            "handover paging alarm ticket 802.1X RADIUS LACP STP").split()
EN_WORDS = ("the a then sends receives forwards to from after before which and with request response "
            "message procedure establishment release setup complete accept reject node link state area "
            "diagram shows flow step phase between each when if else".split())
ZH_WORDS = ("用户 设备 发送 注册 请求 响应 消息 会话 建立 释放 切换 寻呼 告警 处理 流程 步骤 阶段 "
            "路由器 交换机 链路 状态 控制器 网关 然后 之后 向 从 并 如果 否则 完成 接受 拒绝".split())


def make_pairs(n: int, seed: int) -> tuple[list[str], list[str], list[str]]:
    """N (reference, prediction, language) triples; 20% Chinese."""
    rng = random.Random(seed)
    refs, preds, langs = [], [], []
    for _ in range(n):
        zh = rng.random() < 0.2
        vocab = (ZH_WORDS if zh else EN_WORDS) * 3 + list(EN_TERMS)
        words = [rng.choice(vocab) for _ in range(rng.randint(30, 150))]
        pred = []
        for w in words:
            r = rng.random()
            if r < 0.15:
                continue  # dropped
            pred.append(rng.choice(vocab) if r < 0.30 else w)  # replaced or kept
        for _ in range(len(pred) // 20):  # a few local swaps
            i = rng.randrange(max(1, len(pred) - 1))
            pred[i:i + 2] = pred[i:i + 2][::-1]
        sep = "" if zh else " "
        refs.append(sep.join(words) + ("。" if zh else "."))
        preds.append(sep.join(pred) + ("。" if zh else "."))
        langs.append("zh" if zh else "en")
    return refs, preds, langs


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    import sacrebleu
    from nltk.translate.bleu_score import SmoothingFunction
    from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu
    from pycocoevalcap.cider.cider import Cider

    from dicrepro.evaluate import metrics

    load_before = os.getloadavg()[0]
    refs, preds, langs = make_pairs(a.n, a.seed)
    zh = [lg == "zh" for lg in langs]
    # the anchor: sacreBLEU with its own tokenizers (zh for the Chinese part), BLEU-4 only
    t_sacre = 0.0
    for is_zh in (False, True):
        r = [x for x, z in zip(refs, zh) if z == is_zh]
        p = [x for x, z in zip(preds, zh) if z == is_zh]
        dt, _ = timed(sacrebleu.corpus_bleu, p, [r], "exp", None, False, False, "zh" if is_zh else "13a")
        t_sacre += dt
    t_cold, scores = timed(metrics.caption_scores, refs, preds, langs)
    metrics.tokenize.cache_clear()  # warm = resources loaded, tokens not cached
    t_warm, _ = timed(metrics.caption_scores, refs, preds, langs)
    metrics.tokenize.cache_clear()
    t_tok, (rt, pt) = timed(metrics._tokens, refs, preds, langs)
    per_metric = {"tokenize": round(t_tok, 2)}
    for name in ("meteor", "rougeL", "cider"):
        per_metric[name] = round(timed(metrics.CAPTION_METRICS[name], refs, preds, langs)[0], 2)
    per_metric["bleu1-4"] = round(timed(metrics.bleu_all, refs, preds, langs)[0], 2)
    # the reference libraries on the same tokens: equality, and their own time
    weights = [(1.0,), (0.5, 0.5), (1 / 3,) * 3, (0.25,) * 4]
    t_nltk, want_bleu = timed(nltk_corpus_bleu, [[r] for r in rt], pt, weights, SmoothingFunction().method1)
    gts = {i: [" ".join(r)] for i, r in enumerate(rt)}
    res = {i: [" ".join(p)] for i, p in enumerate(pt)}
    t_coco, (want_cider, _) = timed(Cider().compute_score, gts, res)
    diffs = [abs(scores[f"bleu{n}"] - w) for n, w in zip((1, 2, 3, 4), want_bleu)]
    diffs.append(abs(scores["cider"] - want_cider))  # both on pycocoevalcap's scale
    report = {
        "pairs": a.n, "machine": f"{platform.processor() or platform.machine()}, python {platform.python_version()}",
        # other jobs on the machine slow every number down: the 1-minute load average, before and after
        "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "sacrebleu_anchor_s": round(t_sacre, 2), "caption_scores_cold_s": round(t_cold, 2),
        "caption_scores_warm_s": round(t_warm, 2), "pairs_per_s_warm": round(a.n / t_warm),
        "ratio_warm_over_sacrebleu": round(t_warm / t_sacre, 2),
        "per_metric_s_tokens_cached": per_metric,
        "reference_libraries_s": {"nltk_corpus_bleu_1to4": round(t_nltk, 2), "pycocoevalcap_cider": round(t_coco, 2)},
        "max_abs_diff_vs_reference": float(f"{max(diffs):.3g}"),
        "equal_to_reference_1e-6": max(diffs) <= 1e-6,
        "scores": {k: round(v, 4) for k, v in scores.items()},
    }
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
