"""How long do all caption metrics take on 10,000 caption pairs? (a benchmark, not a test)

Builds N deterministic, caption-like pairs (ICT-flavoured English and Chinese sentences of 30-150 words;
each prediction is its reference with words dropped, replaced and swapped, as a model's output would be),
then times, in the same run:

- the anchor: ``sacrebleu.corpus_bleu`` alone on the same pairs (its 13a/zh tokenizer, BLEU-4 only);
- ``dicrepro.evaluate.metrics.caption_scores`` (BLEU-1..4, METEOR, ROUGE-L, CIDEr), cold (first call in the
  process: WordNet and jieba load) and warm, and each metric on its own;
- CIDEr-D once more forced into one process (``cider_one_process``), as pycocoevalcap's ``Cider`` runs,
  to show what sharding its per-item scoring over the cores gains.

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


def cpu_seconds() -> dict[str, float]:
    """User + system CPU seconds of this process and of its (finished) child processes."""
    import resource

    own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return {"this_process": own.ru_utime + own.ru_stime, "worker_processes": kids.ru_utime + kids.ru_stime}


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

    from dicrepro.evaluate import cider, metrics

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
    per_metric = {}
    for name in ("meteor", "rougeL"):
        per_metric[name] = round(timed(metrics.CAPTION_METRICS[name], refs, preds, langs)[0], 2)
    # CPU seconds as well as wall time: on a shared machine the wall time says how busy the others were
    cpu0 = cpu_seconds()
    per_metric["cider"] = round(timed(metrics.score_cider, refs, preds, langs)[0], 2)
    cider_cpu = {k: round(v1 - v0, 2) for (k, v1), v0 in zip(cpu_seconds().items(), cpu0.values())}
    per_metric["bleu1-4"] = round(timed(metrics.bleu_all, refs, preds, langs)[0], 2)
    # CIDEr-D forced into this one process (as pycocoevalcap's Cider runs), for the speed-up of sharding
    rt, pt = metrics._tokens(refs, preds, langs)
    joined = ([" ".join(t) for t in rt], [" ".join(t) for t in pt])
    per_metric["cider_one_process"] = round(timed(cider.cider_d, *joined, 1)[0], 2)
    report = {
        "pairs": a.n, "machine": f"{platform.processor() or platform.machine()}, python {platform.python_version()}",
        "cores_usable": cider.usable_cores(),
        "cider_processes": cider.usable_cores() if a.n > cider.PARALLEL_MIN_PAIRS else 1,
        # other jobs on the machine slow every number down: the 1-minute load average, before and after
        "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "sacrebleu_anchor_s": round(t_sacre, 2), "caption_scores_cold_s": round(t_cold, 2),
        "caption_scores_warm_s": round(t_warm, 2), "pairs_per_s_warm": round(a.n / t_warm),
        "ratio_warm_over_sacrebleu": round(t_warm / t_sacre, 1),
        "per_metric_s_tokens_cached": per_metric, "cider_cpu_s": cider_cpu, "scores": {k: round(v, 4) for k, v in scores.items()},
    }
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
