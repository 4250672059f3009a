"""Objective question generators for stage-3 VQA, one small function per question family.

Every generator reads a diagram's graph (conventions in dicrepro.diagrams.graph) and returns candidates whose
answer is computed from the graph. Letter-keyed kinds (mc, order, sender, transition) carry their options
and the index of the right one; true/false kinds (tf, path) come as (true, false) pairs so that the caller
can balance truth values; count carries the number. Labels in questions are always quoted ("x" / “x”).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from dicrepro.diagrams.graph import Diagram
from dicrepro.text.describe_types import quadrant_index
from dicrepro.text.phrasings_en import TYPES as TYPES_EN
from dicrepro.text.phrasings_zh import TYPES as TYPES_ZH

VERIFY_METHODS = ["Analysis", "Inspection", "Test", "Demonstration"]  # Mermaid's requirement methods
FLOW_TYPES = ("flowchart", "block", "architecture")
GRAPH_TYPES = ("flowchart", "block", "architecture", "state", "mindmap")


@dataclass
class Cand:
    """One objective question before letters are assigned."""

    kind: str  # mc/order/sender/transition/tf/path/count/type
    qtype: str  # the family, e.g. "count.participants" (for breakdowns and tests)
    dimension: str  # global/partial/detail
    question: str
    options: list[str] = field(default_factory=list)
    correct: int = -1  # index into options for letter kinds
    key: str = ""  # "true"/"false", the number or the diagram type, for tf/path/count/type


class Ctx:
    """A diagram plus the language, rng and distractor pool its questions are written with."""

    def __init__(self, d: Diagram, rng: random.Random, pool: list[str] | None):
        self.d, self.rng = d, rng
        self.zh = d.language.startswith("zh")
        labels = {n.label for n in d.nodes} | {e.label for e in d.edges} | {g.label for g in d.groups}
        self.pool = [p for p in dict.fromkeys(pool or []) if p and p not in labels]

    def q(self, label: str) -> str:
        return f"“{label}”" if self.zh else f'"{label}"'

    def t(self, en: str, zh: str, **kw) -> str:
        kw = {k: (self.q(v) if isinstance(v, str) and not k.startswith("_") else v) for k, v in kw.items()}
        return (zh if self.zh else en).format(**kw)

    def lab(self, node_id: str) -> str:
        return self.d.label_of(node_id)

    def mc(self, kind, qtype, dim, question, correct: str, same: list[str], *, use_pool=True) -> list[Cand]:
        """Options = the answer + 3 distractors from the same diagram first, then the domain pool."""
        others = [x for x in dict.fromkeys(same) if x and x != correct]
        self.rng.shuffle(others)
        if use_pool and len(others) < 3:
            extra = [p for p in self.pool if p != correct and p not in others]
            self.rng.shuffle(extra)
            others += extra
        if len(others) < 3:
            return []
        options = [correct] + others[:3]
        self.rng.shuffle(options)
        return [Cand(kind, qtype, dim, question, options, options.index(correct))]


def _unique(values: list[str]) -> set[str]:
    c = Counter(values)
    return {v for v, k in c.items() if k == 1}


def _count(kind_q: str, dim: str, question: str, n: int) -> Cand:
    return Cand("count", kind_q, dim, question, key=str(n))


def _tf(c: Ctx, kind: str, qtype: str, dim: str, true_stmt: str | None, false_stmt: str | None):
    pre_en, pre_zh = "True or false: ", "判断正误："
    pre = pre_zh if c.zh else pre_en
    return [(Cand(kind, qtype, dim, pre + true_stmt, key="true") if true_stmt else None,
             Cand(kind, qtype, dim, pre + false_stmt, key="false") if false_stmt else None)]


def reachable(d: Diagram, src: str) -> set[str]:
    """Node ids reachable from ``src`` along directed edges (excluding src unless on a cycle)."""
    out: dict[str, list[str]] = {}
    for e in d.edges:
        out.setdefault(e.src, []).append(e.dst)
    seen, stack = set(), list(out.get(src, []))
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack += out.get(n, [])
    return seen


# ---- per-type families --------------------------------------------------------------------------------
def sequence(c: Ctx) -> list:
    d, msgs = c.d, c.d.ordered_edges()
    parts = [c.lab(n.id) for n in d.nodes]
    uniq = _unique([m.label for m in msgs])
    out: list = [
        _count("count.participants", "global", c.t("How many participants take part in the sequence diagram?",
                                                     "这张时序图中有多少个参与方？"), len(d.nodes)),
        _count("count.messages", "global", c.t("How many messages are exchanged in total?",
                                                 "图中一共交换了多少条消息？"), len(msgs)),
    ]
    for i, m in enumerate(msgs):
        if m.label not in uniq:
            continue
        out += c.mc("sender", "sender", "detail", c.t("Who sends the message {m}?", "消息{m}是由谁发送的？",
                                                       m=m.label), c.lab(m.src), parts)
        out += c.mc("mc", "mc.receiver", "detail", c.t("Who receives the message {m}?", "谁接收消息{m}？",
                                                         m=m.label), c.lab(m.dst), parts)
        if i + 1 < len(msgs) and msgs[i + 1].label != m.label:
            out += c.mc("order", "order.message", "detail",
                        c.t("Which message comes right after {m}?", "紧接在{m}之后的是哪条消息？", m=m.label),
                        msgs[i + 1].label, [x.label for x in msgs if x.label != m.label])
        wrong = [p for p in d.nodes if p.id != m.src and
                 not any(x.src == p.id and x.dst == m.dst and x.label == m.label for x in msgs)]
        w = c.rng.choice(wrong).id if wrong else None
        fmt = ("{a} sends {m} to {b}.", "{a}向{b}发送{m}。")
        out += _tf(c, "tf", "tf.message", "detail",
                   c.t(*fmt, a=c.lab(m.src), m=m.label, b=c.lab(m.dst)),
                   c.t(*fmt, a=c.lab(w), m=m.label, b=c.lab(m.dst)) if w and w != m.dst else None)
    return out


def flow(c: Ctx) -> list:
    d = c.d
    labels = [n.label for n in d.nodes]
    uniq = _unique(labels)
    noun = {"flowchart": ("nodes", "节点"), "block": ("blocks", "模块")}.get(d.diagram_type, ("components", "组件"))
    out: list = [_count("count.nodes", "global", c.t(f"How many {noun[0]} does the diagram contain?",
                                                      f"图中共有多少个{noun[1]}？"), len(d.nodes))]
    if d.diagram_type == "flowchart":
        out.append(_count("count.decisions", "global", c.t("How many decision points does the flowchart have?",
                                                            "流程图中有多少个判断节点？"),
                          sum(n.kind == "decision" for n in d.nodes)))
    else:
        out.append(_count("count.links", "global", c.t("How many connections are drawn?", "图中画了多少条连接？"),
                          len(d.edges)))
    for n in d.nodes:
        if n.label not in uniq:
            continue
        outs = [e for e in d.edges if e.src == n.id]
        succ = {e.dst for e in outs}
        if len(outs) == 1 and c.lab(outs[0].dst) in uniq:
            out += c.mc("order", "order.next", "detail",
                        c.t("What comes right after {a}?", "{a}之后紧接着的是什么？", a=n.label),
                        c.lab(outs[0].dst), [x.label for x in d.nodes if x.id not in succ | {n.id}])
        for e in outs:
            if e.label and sum(x.label == e.label for x in outs) == 1 and c.lab(e.dst) in uniq:
                out += c.mc("mc", "mc.branch", "detail",
                            c.t("Where does {a} lead when the result is {l}?", "当{a}的结果为{l}时，流程走向哪里？",
                                a=n.label, l=e.label),
                            c.lab(e.dst), [x.label for x in d.nodes if x.id not in {e.dst, n.id}])
    out += _edge_tf_and_paths(c)
    return out


def _edge_tf_and_paths(c: Ctx, edge_tf: bool = True, paths: bool = True) -> list:
    d = c.d
    named = [n for n in d.nodes if n.label.strip()]
    uniq = _unique([n.label for n in named])
    named = [n for n in named if n.label in uniq]
    pairs = {(e.src, e.dst) for e in d.edges}
    out: list = []
    fmt = ("There is a direct arrow from {a} to {b}.", "从{a}到{b}有一条直接的箭头。")
    if edge_tf and d.edges and len(named) > 2:
        e = c.rng.choice([e for e in d.edges if e.src != e.dst] or d.edges)
        non = [(a, b) for a in named for b in named if a.id != b.id and (a.id, b.id) not in pairs]
        f = c.rng.choice(non) if non else None
        if d.node(e.src).label in uniq and d.node(e.dst).label in uniq:
            out += _tf(c, "tf", "tf.edge", "detail", c.t(*fmt, a=c.lab(e.src), b=c.lab(e.dst)),
                       c.t(*fmt, a=f[0].label, b=f[1].label) if f else None)
    reach = {n.id: reachable(d, n.id) for n in named}
    yes = [(a, b) for a in named for b in named if a.id != b.id and b.id in reach[a.id]]
    no = [(a, b) for a in named for b in named if a.id != b.id and b.id not in reach[a.id]]
    fmt = ("Following the arrows, {b} can be reached from {a}.", "沿着箭头方向，从{a}可以到达{b}。")
    if paths and (yes or no):
        y, n_ = (c.rng.choice(yes) if yes else None), (c.rng.choice(no) if no else None)
        out += _tf(c, "path", "path.reach", "partial",
                   c.t(*fmt, a=y[0].label, b=y[1].label) if y else None,
                   c.t(*fmt, a=n_[0].label, b=n_[1].label) if n_ else None)
    return out


def state(c: Ctx) -> list:
    d = c.d
    states = [n for n in d.nodes if n.kind not in ("start", "end")]
    names = [n.label for n in states if n.label]
    out: list = [_count("count.states", "global", c.t("How many states does the machine have (not counting start "
                                                       "and end points)?", "该状态机有多少个状态（不计起点和终点）？"),
                        len(states))]
    firsts = [e.dst for e in d.edges if d.node(e.src).kind == "start" and d.node(e.dst).label]
    if len(firsts) == 1:
        out += c.mc("mc", "mc.initial", "global", c.t("Which state does the machine enter first?",
                                                      "状态机首先进入哪个状态？"), c.lab(firsts[0]), names)
    keyed = Counter((e.src, e.label) for e in d.edges)
    for e in d.edges:
        s, t = d.node(e.src), d.node(e.dst)
        if not e.label or keyed[(e.src, e.label)] > 1 or not s.label or not t.label:
            continue
        out += c.mc("transition", "transition", "detail",
                    c.t("In state {s}, which state follows on the event {e}?", "在状态{s}下发生事件{e}后，进入哪个状态？",
                        s=s.label, e=e.label), t.label, names)
        wrong = [x for x in states if x.label and x.id != t.id]
        w = c.rng.choice(wrong) if wrong else None
        fmt = ("On the event {e}, {s} moves to {t}.", "发生事件{e}时，{s}转换为{t}。")
        out += _tf(c, "tf", "tf.transition", "detail", c.t(*fmt, e=e.label, s=s.label, t=t.label),
                   c.t(*fmt, e=e.label, s=s.label, t=w.label) if w else None)
    return out + _edge_tf_and_paths(c, edge_tf=False)


def members(c: Ctx, what: str) -> list:
    """class (fields+methods) and er (field names): counts, membership tf, relation mc."""
    d = c.d
    mem = {n.id: ([str(x) for x in n.attrs.get("fields", [])] + [str(x) for x in n.attrs.get("methods", [])]
                  if d.diagram_type == "class" else [str(f[1]) for f in n.attrs.get("fields", []) if len(f) > 1])
           for n in d.nodes}
    names = [n.label for n in d.nodes]
    noun = ("classes", "类") if d.diagram_type == "class" else ("entities", "实体")
    out: list = [_count(f"count.{what}", "global", c.t(f"How many {noun[0]} are shown?", f"图中有多少个{noun[1]}？"),
                        len(d.nodes))]
    for n in d.nodes:
        if mem[n.id]:
            m_en = "members (attributes and methods)" if d.diagram_type == "class" else "fields"
            out.append(_count("count.members", "detail", c.t(f"How many {m_en} does {{a}} list?",
                                                             "{a}列出了多少个" + ("成员？" if d.diagram_type ==
                                                                                  "class" else "字段？"), a=n.label),
                              len(mem[n.id])))
            x = c.rng.choice(mem[n.id])
            foreign = [m for o in d.nodes if o.id != n.id for m in mem[o.id] if m not in mem[n.id]]
            fmt = ("{a} has the member {m}.", "{a}包含成员{m}。")
            out += _tf(c, "tf", "tf.member", "detail", c.t(*fmt, a=n.label, m=x),
                       c.t(*fmt, a=n.label, m=c.rng.choice(foreign)) if foreign else None)
    keyed = Counter((e.src, e.kind, e.label) for e in d.edges)
    for e in d.edges:
        if keyed[(e.src, e.kind, e.label)] > 1:
            continue
        if d.diagram_type == "class" and e.kind == "inheritance":
            q = c.t("Which class does {a} inherit from?", "{a}继承自哪个类？", a=c.lab(e.src))
        elif e.label:
            q = c.t("Which one is linked to {a} through {l}?", "通过{l}与{a}相关联的是哪一个？", a=c.lab(e.src), l=e.label)
        else:
            continue
        out += c.mc("mc", "mc.relation", "detail", q, c.lab(e.dst), [x for x in names if x != c.lab(e.src)])
    return out


def gantt(c: Ctx) -> list:
    d = c.d
    names = [n.label for n in d.nodes]
    out: list = [_count("count.tasks", "global", c.t("How many tasks does the Gantt chart contain?",
                                                      "甘特图中有多少项任务？"), len(d.nodes))]
    for g in d.groups:
        out.append(_count("count.section", "partial", c.t("How many tasks are in the section {g}?",
                                                           "分区{g}中有多少项任务？", g=g.label), len(g.members)))
    starts = [str(n.attrs.get("start", "")) for n in d.nodes]
    if starts and starts.count(min(starts)) == 1:
        out += c.mc("mc", "mc.first", "global", c.t("Which task starts first?", "哪项任务最先开始？"),
                    d.nodes[starts.index(min(starts))].label, names)
    for n in d.nodes:
        deps = [e.dst for e in d.edges if e.src == n.id]
        if len(deps) == 1:
            out += c.mc("order", "order.after", "detail", c.t("Which task can only start once {a} is finished?",
                                                              "哪项任务必须等{a}完成后才能开始？", a=n.label),
                        c.lab(deps[0]), [x for x in names if x not in (n.label,)])
        days = n.attrs.get("days")
        if isinstance(days, int):
            fmt = ("{a} lasts {_n} days.", "{a}持续{_n}天。")
            out += _tf(c, "tf", "tf.days", "detail", c.t(*fmt, a=n.label, _n=days),
                       c.t(*fmt, a=n.label, _n=days + c.rng.choice([1, 2, 3])))
    return out


def valued(c: Ctx) -> list:
    """pie and xychart: count, largest, comparisons."""
    d = c.d
    vals = {n.label: float(n.attrs.get("value", 0)) for n in d.nodes}
    noun = ("slices", "扇区") if d.diagram_type == "pie" else ("categories", "类别")
    out: list = [_count("count.items", "global", c.t(f"How many {noun[0]} are shown?", f"图中有多少个{noun[1]}？"),
                        len(d.nodes))]
    top = max(vals.values(), default=0)
    if list(vals.values()).count(top) == 1:
        winner = next(k for k, v in vals.items() if v == top)
        out += c.mc("mc", "mc.largest", "global", c.t("Which one has the largest value?", "哪一项的数值最大？"),
                    winner, list(vals))
    pairs = [(a, b) for a in vals for b in vals if vals[a] > vals[b]]
    if pairs:
        a, b = c.rng.choice(pairs)
        fmt = ("{a} has a larger value than {b}.", "{a}的数值大于{b}。")
        out += _tf(c, "tf", "tf.compare", "detail", c.t(*fmt, a=a, b=b), c.t(*fmt, a=b, b=a))
    return out


def mindmap(c: Ctx) -> list:
    d = c.d
    if not d.nodes:
        return []
    root = d.nodes[0]
    kids = [e.dst for e in d.edges if e.src == root.id]
    out: list = [_count("count.branches", "global", c.t("How many ideas branch directly from the central topic?",
                                                         "有多少个节点直接从中心主题分出？"), len(kids))]
    out += c.mc("mc", "mc.root", "global", c.t("What is the central topic of the mind map?", "思维导图的中心主题是什么？"),
                root.label, [n.label for n in d.nodes[1:]])
    child = {(e.src, e.dst) for e in d.edges}
    if d.edges:
        e = c.rng.choice(d.edges)
        non = [(a, b) for a in d.nodes for b in d.nodes if a.id != b.id and (b.id, a.id) not in child]
        f = c.rng.choice(non) if non else None
        fmt = ("{a} is a direct child of {b}.", "{a}是{b}的直接子节点。")
        out += _tf(c, "tf", "tf.child", "detail", c.t(*fmt, a=c.lab(e.dst), b=c.lab(e.src)),
                   c.t(*fmt, a=f[0].label, b=f[1].label) if f else None)
    return out + _edge_tf_and_paths(c, edge_tf=False)


def timeline(c: Ctx) -> list:
    d = c.d
    periods = [g.label for g in d.groups]
    out: list = [_count("count.periods", "global", c.t("How many periods does the timeline show?",
                                                        "时间线上有多少个时期？"), len(d.groups))]
    period_of = {m: g.label for g in d.groups for m in g.members}
    for g in d.groups:
        out.append(_count("count.events", "partial", c.t("How many events are listed for {p}?", "{p}列出了多少个事件？",
                                                          p=g.label), len(g.members)))
    for i, g in enumerate(d.groups[:-1]):
        out += c.mc("order", "order.period", "partial", c.t("Which period comes right after {p}?",
                                                            "紧接在{p}之后的是哪个时期？", p=g.label),
                    d.groups[i + 1].label, [p for p in periods if p != g.label], use_pool=False)
    for n in d.nodes:
        if n.id in period_of:
            others = [p for p in periods if p != period_of[n.id]]
            fmt = ("{e} belongs to {p}.", "{e}属于{p}。")
            out += _tf(c, "tf", "tf.period", "detail", c.t(*fmt, e=n.label, p=period_of[n.id]),
                       c.t(*fmt, e=n.label, p=c.rng.choice(others)) if others else None)
    return out


def quadrant(c: Ctx) -> list:
    d = c.d
    names = list(d.meta.get("quadrants", []))
    if len(names) != 4:
        return []
    quad = {n.label: quadrant_index(float(n.attrs.get("x", 0)), float(n.attrs.get("y", 0))) for n in d.nodes}
    out: list = [_count("count.points", "global", c.t("How many points are plotted?", "图中标出了多少个点？"),
                        len(d.nodes))]
    for q in range(4):
        inside = [p for p, k in quad.items() if k == q]
        out.append(_count("count.quadrant", "partial", c.t("How many points lie in {q}?", "{q}中有多少个点？",
                                                            q=names[q]), len(inside)))
        if inside:
            out += c.mc("mc", "mc.quadrant", "partial", c.t("Which point lies in {q}?", "哪个点位于{q}？", q=names[q]),
                        c.rng.choice(inside), [p for p, k in quad.items() if k != q])
    if quad:
        p = c.rng.choice(sorted(quad))
        fmt = ("{p} lies in {q}.", "{p}位于{q}。")
        out += _tf(c, "tf", "tf.quadrant", "detail", c.t(*fmt, p=p, q=names[quad[p]]),
                   c.t(*fmt, p=p, q=names[(quad[p] + c.rng.randint(1, 3)) % 4]))
    return out


def requirement(c: Ctx) -> list:
    d = c.d
    reqs = [n for n in d.nodes if n.kind == "requirement"]
    out: list = [_count("count.requirements", "global", c.t("How many requirements are shown?",
                                                             "图中有多少项需求？"), len(reqs))]
    canon = {m.lower(): m for m in VERIFY_METHODS}
    for r in reqs:
        vm = str(r.attrs.get("verify_method", "")).lower()
        if vm in canon:
            out += c.mc("mc", "mc.verify", "detail", c.t("How is {r} verified?", "{r}采用哪种验证方法？", r=r.label),
                        canon[vm], VERIFY_METHODS, use_pool=False)
        sat = [e.src for e in d.edges if e.dst == r.id and e.kind == "satisfies"]
        if len(sat) == 1:
            out += c.mc("mc", "mc.satisfies", "detail", c.t("Which element satisfies {r}?", "哪个元素满足{r}？",
                                                            r=r.label),
                        c.lab(sat[0]), [n.label for n in d.nodes if n.id != r.id])
    return out + _edge_tf_and_paths(c, paths=False)


def packet(c: Ctx) -> list:
    d = c.d
    out: list = [_count("count.fields", "global", c.t("How many header fields are shown?", "图中有多少个报文头字段？"),
                        len(d.nodes))]
    for n in d.nodes:
        s, e = int(n.attrs.get("start", 0)), int(n.attrs.get("end", 0))
        out += c.mc("mc", "mc.bits", "detail", c.t("Which field occupies bits {_s}-{_e}?", "哪个字段占用第{_s}-{_e}位？",
                                                    _s=s, _e=e), n.label, [x.label for x in d.nodes])
        fmt = ("{f} starts at bit {_s}.", "{f}从第{_s}位开始。")
        other = [int(x.attrs.get("start", 0)) for x in d.nodes if int(x.attrs.get("start", 0)) != s]
        out += _tf(c, "tf", "tf.bits", "detail", c.t(*fmt, f=n.label, _s=s),
                   c.t(*fmt, f=n.label, _s=c.rng.choice(other)) if other else None)
    return out


def present(c: Ctx) -> list:
    """Any type: which option appears in the diagram (distractors from the domain pool only)."""
    named = [n.label for n in c.d.nodes if n.label.strip()]
    if not named or len(c.pool) < 3:
        return []
    return c.mc("mc", "mc.present", "global", c.t("Which of the following appears in the diagram?",
                                                  "以下哪一项出现在图中？"), c.rng.choice(named), [])


def group_members(c: Ctx) -> list:
    d = c.d
    if d.diagram_type in ("sequence", "timeline", "gantt"):
        return []
    ids = {n.id: n.label for n in d.nodes}
    out = []
    for g in d.groups:
        inside = [ids[m] for m in g.members if m in ids and ids[m]]
        if inside:
            out += c.mc("mc", "mc.group", "partial", c.t("Which element belongs to {g}?", "哪个元素属于{g}？",
                                                         g=g.label),
                        c.rng.choice(inside), [lab for i, lab in ids.items() if i not in g.members])
    return out


TYPE_QUESTION = {"en": "What kind of diagram is this?", "zh": "这是哪一种图？"}


def type_answer(diagram_type: str, zh: bool) -> str:
    """The answer to :data:`TYPE_QUESTION` in the verbalizer's words: "This is a pie chart." /
    "这是一张饼图。"."""
    name = (TYPES_ZH if zh else TYPES_EN)[diagram_type][0]
    return f"这是{name}。" if zh else f"This is {name}."


def diagram_kind(c: Ctx) -> list[Cand]:
    """Any type: "What kind of diagram is this?", asked without options (kind ``type``, key: the type,
    ``"pie"``) and answered in words ("This is a pie chart.").

    The one question a model cannot answer from the question's text. It is open, not multiple choice: the
    reply is read by the same type reader as captions (dicrepro.evaluate.diagram_type: en/zh names and
    synonyms, first mention), so a blind guess is right about once in 15 types (not once in 4), and
    reading the type is not mixed up with pointing at the letter of the option that names it (the tiny
    stand-in named the right type after the wrong letter; README)."""
    d = c.d
    if d.diagram_type not in (TYPES_ZH if c.zh else TYPES_EN):
        return []
    return [Cand("type", "type.diagram", "global", TYPE_QUESTION["zh" if c.zh else "en"], key=d.diagram_type)]


def blocks_notes(c: Ctx) -> list:
    """Sequence blocks and notes (dicrepro.diagrams.sample_realism / parse): under which condition a message
    is sent, what a loop repeats, what a note says. Keys from ``meta["blocks"]`` / ``meta["notes"]``."""
    d = c.d
    blocks, notes = d.meta.get("blocks") or [], d.meta.get("notes") or []
    if d.diagram_type != "sequence" or not (blocks or notes):
        return []
    from dicrepro.diagrams.sample_realism import ALT_CONDITIONS, LOOP_CONDITIONS, NOTE_TEXTS, OPT_CONDITIONS

    msgs = d.ordered_edges()
    uniq = _unique([m.label for m in msgs])
    lang = 1 if c.zh else 0
    conds = [br["condition"] for b in blocks for br in b["branches"] if br["condition"]]
    spare = [x[lang] for x in ALT_CONDITIONS + OPT_CONDITIONS + LOOP_CONDITIONS]
    out: list = []
    inside: set[int] = set()
    for b in blocks:
        for br in b["branches"]:
            inside |= {int(m) for m in br["messages"]}
            labels = [msgs[int(m)].label for m in br["messages"] if 0 <= int(m) < len(msgs)]
            labels = [x for x in labels if x in uniq]
            if not labels or not br["condition"]:
                continue
            m = c.rng.choice(labels)
            if b["kind"] in ("alt", "opt"):
                out += c.mc("mc", "mc.condition", "partial",
                            c.t("Under which condition is {m} sent?", "在什么条件下发送{m}？", m=m),
                            br["condition"], [x for x in conds if x != br["condition"]] + spare, use_pool=False)
            elif b["kind"] == "loop":
                outside = [x.label for k, x in enumerate(msgs) if x.label in uniq
                           and k not in {int(y) for y in br["messages"]}]
                out += c.mc("mc", "mc.loop", "partial",
                            c.t("Which message is repeated in the loop {c}?", "循环{c}中重复的是哪条消息？",
                                c=br["condition"]), m, outside)
    plain = [x.label for k, x in enumerate(msgs) if k not in inside and x.label in uniq]
    alt_msgs = [(msgs[int(m)].label, br["condition"]) for b in blocks if b["kind"] in ("alt", "opt")
                for br in b["branches"] for m in br["messages"] if br["condition"] and msgs[int(m)].label in uniq]
    if alt_msgs:
        m, cond = c.rng.choice(alt_msgs)
        fmt = ("{m} is sent only when {c}.", "仅当{c}时才发送{m}。")
        out += _tf(c, "tf", "tf.condition", "partial", c.t(*fmt, m=m, c=cond),
                   c.t(*fmt, m=c.rng.choice(plain), c=cond) if plain else None)
    texts = [nt["text"] for nt in notes if nt.get("text")]
    for nt in notes:
        names = [c.lab(x) for x in nt.get("over", []) if any(n.id == x for n in d.nodes)]
        if not names or not nt.get("text") or texts.count(nt["text"]) > 1:
            continue
        where = " / ".join(names)
        out += c.mc("mc", "mc.note", "detail", c.t("What does the note at {a} say?", "{a}处的注释写的是什么？",
                                                    a=where),
                    nt["text"], [x for x in texts if x != nt["text"]] + [x[lang] for x in NOTE_TEXTS], use_pool=False)
    return out


def activations(c: Ctx) -> list:
    """Sequence activations (``meta["activations"]``: ``[participant, from, to]``, active over messages
    from..to as drawn): who is active while a message is exchanged (asked only where exactly one
    participant is), and true/false on a participant being active at a message inside or outside its bars."""
    d = c.d
    msgs, ids = d.ordered_edges(), {n.id for n in d.nodes}
    spans = [(a[0], max(int(a[1]), 0), int(a[2])) for a in d.meta.get("activations") or []
             if a[0] in ids and max(int(a[1]), 0) <= int(a[2]) < len(msgs)]
    if d.diagram_type != "sequence" or not spans:
        return []
    uniq = _unique([m.label for m in msgs])

    def active_at(k: int) -> set[str]:
        return {who for who, lo, hi in spans if lo <= k <= hi}

    parts = [c.lab(n.id) for n in d.nodes]
    out: list = []
    fmt = ("{p} is active while {m} is exchanged.", "交换{m}时，{p}处于激活状态。")
    for who, lo, hi in spans:
        # after the activating request where the bar holds more: that is where the bar is plainly drawn
        inside = [k for k in range(lo + 1 if hi > lo else lo, hi + 1) if msgs[k].label in uniq and active_at(k) == {who}]
        outside = [k for k in range(len(msgs)) if msgs[k].label in uniq and who not in active_at(k)]
        if not inside:
            continue
        k = c.rng.choice(inside)
        out += c.mc("mc", "mc.active", "detail", c.t("Which participant is active while {m} is exchanged?",
                                                     "交换{m}时，哪个参与方处于激活状态？", m=msgs[k].label),
                    c.lab(who), [p for p in parts if p != c.lab(who)])
        far = c.rng.choice(outside) if outside else None
        out += _tf(c, "tf", "tf.active", "detail", c.t(*fmt, p=c.lab(who), m=msgs[k].label),
                   c.t(*fmt, p=c.lab(who), m=msgs[far].label) if far is not None else None)
    return out


FAMILIES = {
    "sequence": [sequence, blocks_notes, activations], "flowchart": [flow], "block": [flow], "architecture": [flow], "state": [state],
    "class": [lambda c: members(c, "classes")], "er": [lambda c: members(c, "entities")], "gantt": [gantt],
    "pie": [valued], "xychart": [valued], "mindmap": [mindmap], "timeline": [timeline], "quadrant": [quadrant],
    "requirement": [requirement], "packet": [packet],
}


def objective_candidates(d: Diagram, rng: random.Random, pool: list[str] | None = None) -> list:
    """Every objective candidate for ``d``: Cand objects and (true, false) pairs for tf/path."""
    c = Ctx(d, rng, pool)
    out: list = []
    for fam in FAMILIES.get(d.diagram_type, [flow]) + [group_members, present]:
        out += fam(c)
    return out
