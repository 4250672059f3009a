"""Small box-and-arrow diagrams drawn with PIL, with templated descriptions: a fast, dependency-free
image-text set for the training tests and for tuning the tiny model's sizes. Not a training set of the
pipeline (that comes from Mermaid, see synth.py); it only imitates its shape: a labelled diagram image,
a caption prompt and a 50-200 word description, in English or Chinese, ICT or general domain.
"""

from __future__ import annotations

import random

from datasets import Dataset, DatasetDict, Features, Image, Value
from PIL import Image as PILImage
from PIL import ImageDraw

from dicrepro.data.augment import load_font

_LABELS = {
    ("ict", "en"): ["UE", "gNB", "AMF", "SMF", "UPF", "AUSF", "UDM", "PCF", "Router", "Switch", "Firewall",
                    "DNS Server", "DHCP Server", "BGP Peer", "OSPF Area", "VLAN 10", "Core Network", "eNB"],
    ("ict", "zh"): ["终端", "基站", "接入管理", "会话管理", "用户面", "路由器", "交换机", "防火墙", "域名服务器",
                    "核心网", "认证服务", "策略控制"],
    ("general", "en"): ["Kitchen", "Chef", "Order", "Customer", "Cashier", "Warehouse", "Truck", "Store",
                        "Teacher", "Student", "Library", "Garden", "Farmer", "Market", "Baker", "Oven"],
    ("general", "zh"): ["厨房", "厨师", "订单", "顾客", "收银员", "仓库", "卡车", "商店", "老师", "学生",
                        "图书馆", "花园"],
}
_VERBS = {
    ("ict", "en"): ["sends Registration Request to", "forwards the PDU Session Request to", "authenticates with",
                    "routes packets to", "exchanges keys with", "reports the alarm to"],
    ("ict", "zh"): ["发送注册请求给", "转发会话请求给", "与之完成鉴权", "路由数据包到", "上报告警给"],
    ("general", "en"): ["passes the order to", "brings goods to", "talks to", "hands the list to", "helps"],
    ("general", "zh"): ["把订单交给", "把货物送到", "告诉", "帮助"],
}

FEATURES = Features({"id": Value("string"), "image": Image(), "prompt": Value("string"),
                     "target": Value("string"), "language": Value("string"), "diagram_type": Value("string"),
                     "split": Value("string")})


def draw_boxes(labels: list[str], size: tuple[int, int] = (320, 240)) -> PILImage.Image:
    """A left-to-right chain of labelled boxes joined by arrows, wrapping onto rows."""
    img = PILImage.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    font = load_font(14, cjk=True)
    cols = 3
    bw, bh = size[0] // cols - 20, 36
    for i, label in enumerate(labels):
        r, c = divmod(i, cols)
        x, y = 10 + c * (bw + 20), 15 + r * (bh + 30)
        d.rectangle([x, y, x + bw, y + bh], outline="black", width=2, fill="#dde8ff")
        d.text((x + 6, y + 10), label, fill="black", font=font)
        if i + 1 < len(labels):
            if c + 1 < cols:
                d.line([x + bw, y + bh // 2, x + bw + 20, y + bh // 2], fill="black", width=2)
            else:
                d.line([x + bw // 2, y + bh, 10 + bw // 2, y + bh + 30], fill="black", width=2)
    return img


def describe_chain(labels: list[str], verbs: list[str], language: str, domain: str) -> str:
    """A templated description of the chain: overview, then every step in order."""
    if language == "zh":
        kind = "通信网络" if domain == "ict" else "日常生活"
        parts = [f"这是一张{kind}流程图，共有{len(labels)}个节点，从{labels[0]}开始，到{labels[-1]}结束。"]
        parts += [f"第{i + 1}步，{a}{v}{b}。" for i, (a, v, b) in enumerate(zip(labels, verbs, labels[1:]))]
        parts.append(f"整个流程说明了{labels[0]}与{labels[-1]}之间的协作关系。")
        return "".join(parts)
    kind = "a telecommunication network procedure" if domain == "ict" else "an everyday process"
    parts = [f"This flowchart shows {kind} with {len(labels)} nodes, starting at {labels[0]} and ending at "
             f"{labels[-1]}."]
    parts += [f"In step {i + 1}, {a} {v} {b}." for i, (a, v, b) in enumerate(zip(labels, verbs, labels[1:]))]
    parts.append(f"Overall, the diagram explains how {labels[0]} and {labels[-1]} work together, one step "
                 f"after another, and every arrow points to the next element of the chain.")
    return " ".join(parts)


def box_rows(n: int, *, seed: int, domain: str = "ict", zh_share: float = 0.2, split: str = "train",
             id_prefix: str = "box", min_nodes: int = 3, max_nodes: int = 6) -> list[dict]:
    """``n`` rows with the training columns (id, image, prompt, target, language, ...)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        lang = "zh" if rng.random() < zh_share else "en"
        k = rng.randint(min_nodes, max_nodes)
        labels = rng.sample(_LABELS[(domain, lang)], k)
        verbs = [rng.choice(_VERBS[(domain, lang)]) for _ in range(k - 1)]
        prompt = "请描述这张图。" if lang == "zh" else "Describe this diagram."
        rows.append({"id": f"{id_prefix}-{split}-{i:04d}", "image": draw_boxes(labels), "prompt": prompt,
                     "target": describe_chain(labels, verbs, lang, domain), "language": lang,
                     "diagram_type": "flowchart", "split": split})
    return rows


def box_dataset(n_train: int, n_test: int, *, seed: int, domain: str = "ict", **kw) -> DatasetDict:
    """A DatasetDict (train/test) of box diagrams, in the pipeline's data contract."""
    def to_ds(rows):
        return Dataset.from_dict({k: [r[k] for r in rows] for k in FEATURES}, features=FEATURES)

    return DatasetDict({
        "train": to_ds(box_rows(n_train, seed=seed, domain=domain, split="train", **kw)),
        "test": to_ds(box_rows(n_test, seed=seed + 1, domain=domain, split="test", **kw)),
    })
