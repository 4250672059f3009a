"""What hand-written ICT diagrams have and plain samples lack, added to a sampled graph:
``enrich(rng, diagram, knobs)`` (knobs: :class:`dicrepro.params.RealismParams`).

Measured on docs (../shared/REALISM.md): sequences branch (``alt token valid`` / ``else``), repeat
(``loop every 30 s``), explain a step in a Note, show activations and self-messages; flowcharts nest
subgraphs, style nodes with classDef and break long labels over two lines; participants go by their full
names. Every added text comes from the topic's knowledge base entries (its steps and decisions, its
entities' full names) or from the small bilingual tables below, never from nowhere, so descriptions and
VQA keys stay grounded in the graph.

Graph conventions added (the same shapes :mod:`dicrepro.diagrams.parse` reads back from Mermaid):

- ``sequence``: ``meta["blocks"]``: ``[{"kind", "parent", "branches": [{"condition", "messages"}]}]`` in
  document order (a parent before its children), message indices as ints; ``meta["notes"]``: ``[{"text",
  "over" [ids], "position" ("right of"/"left of"/"over"), "after" (messages before it)}]``;
  ``meta["activations"]``: ``[[participant, from message, to message]]``. A block lies inside one phase.
- ``flowchart``: ``meta["group_parents"]`` {child group id: parent group id}, groups listed parents first,
  ids ``g<i>`` in list order; a nested group's nodes are members of the child only. ``meta["class_defs"]``
  styles decisions and remedial steps.
- ``meta["label_breaks"]``: long labels are written over two lines (``<br/>`` at a space); the drawn
  text, read back, is the same label.

All randomness comes from the ``rng`` passed in; with knobs at their defaults nothing is drawn at all.
"""

from __future__ import annotations

import random
import re

from dicrepro.diagrams.graph import Diagram, Edge, Group, Node
from dicrepro.diagrams.knowledge import common, load_kb

# Conditions real docs put on blocks, [en, zh]; alt conditions come from the topic's decisions first.
LOOP_CONDITIONS = [
    ["Every 30 s until the session is released", "每30秒一次，直到会话释放"], ["Retry up to 3 times", "最多重试3次"],
    ["Until the response arrives", "直到收到响应"], ["For each pending request", "对每个待处理请求"],
    ["Poll until the resource is ready", "轮询直至资源就绪"], ["While the timer is running", "定时器运行期间"],
    ["For each PDU session", "对每个PDU会话"], ["Periodic keep-alive", "周期性保活"],
]
OPT_CONDITIONS = [
    ["If the policy requires it", "如策略要求"], ["When the cached context is stale", "缓存上下文过期时"],
    ["If configured by the operator", "若运营商已配置"], ["On first attach only", "仅首次接入时"],
    ["If the peer supports it", "若对端支持"],
]
ALT_CONDITIONS = [
    ["Token valid", "令牌有效"], ["Request accepted", "请求被接受"], ["Resource available", "资源可用"],
    ["Authentication succeeds", "认证成功"], ["Context found", "找到上下文"],
]
ELSE_CONDITIONS = [["Otherwise", "否则"], ["Failure", "失败"], ["Timeout", "超时"], ["Rejected", "被拒绝"]]
ELSE_MESSAGES = ["Error response (cause)", "Reject (cause code)", "Failure indication", "401 Unauthorized",
                 "503 Service Unavailable (retry-after)"]
SELF_STEPS = [
    ["Validate the request", "校验请求"], ["Store the UE context", "保存UE上下文"], ["Start guard timer", "启动保护定时器"],
    ["Select the serving node", "选择服务节点"], ["Check local policy", "检查本地策略"],
    ["Allocate resources", "分配资源"], ["Update the session state", "更新会话状态"],
]
NOTE_TEXTS = [
    ["Timer started; expiry triggers a retry", "定时器启动，超时后重试"],
    ["Idempotent: a retry reuses the same key", "幂等：重试使用同一键值"],
    ["The context is kept until release", "上下文保留至释放"],
    ["All messages are integrity protected", "所有消息均受完整性保护"],
    ["Runs only when the cached entry has expired", "仅在缓存条目过期后执行"],
    ["Both sides keep the state until the release", "双方保持该状态直至释放"],
    ["Failure here rolls back the previous steps", "此处失败将回滚之前的步骤"],
    ["The response is cached for subsequent requests", "响应会被缓存以供后续请求使用"],
]
# What real labels add to a bare name: parameters, limits, scope (messages stay English, as in specs)
MESSAGE_QUALIFIERS = ["(transaction ID)", "(correlation ID, timestamp)", "(cause code)", "(session ID, QoS profile)",
                      "(idempotency key)", "(retry after 5 s)", "(subscriber ID, requested slice)", "(TLS, mutual auth)"]
STEP_QUALIFIERS = [["(timeout 30 s)", "（超时30秒）"], ["(per cell)", "（按小区）"], ["(retry up to 3 times)", "（最多重试3次）"],
                   ["(idempotent)", "（幂等）"], ["(see the runbook)", "（参见运维手册）"], ["(all sites)", "（所有站点）"],
                   ["(within the maintenance window)", "（在维护窗口内）"]]
SUBGRAPH_NAMES = [["Control plane", "控制面"], ["Validation", "校验"], ["Recovery path", "恢复路径"],
                  ["Core network", "核心网"], ["Edge site", "边缘站点"]]


def vocabulary() -> list[str]:
    """Every text these tables can put into a diagram (both languages): what the faithfulness gate looks
    for as an invention when a diagram does not hold it."""
    tables = [LOOP_CONDITIONS, OPT_CONDITIONS, ALT_CONDITIONS, ELSE_CONDITIONS, SELF_STEPS, NOTE_TEXTS,
              SUBGRAPH_NAMES, STEP_QUALIFIERS, COMPOSITE_NAMES]
    out = [x.strip("()（）") for x in [x for t in tables for pair in t for x in pair] + ELSE_MESSAGES
           + MESSAGE_QUALIFIERS]
    # only specific ones: two words like "In service" also occur in prose ("procedure in Service outage")
    return [x for x in out if len(x.split()) >= 3 or len(re.findall(r"[\u4e00-\u9fff]", x)) >= 4
            or any(c.isdigit() for c in x)]


def _pick(pair, lang: str) -> str:
    return pair[1] if lang == "zh" else pair[0]


def _topic(d: Diagram, domain: str) -> dict | None:
    first = d.topic.split("+")[0]
    return next((t for t in load_kb(domain)["topics"] if t["id"] == first), None)


def enrich(rng: random.Random, d: Diagram, knobs, domain: str = "ict") -> Diagram:
    """Add the realism constructs ``knobs`` asks for to ``d`` (in place; also returned)."""
    t = _topic(d, domain)
    if d.diagram_type == "sequence":
        _sequence(rng, d, knobs, t)
    elif d.diagram_type == "flowchart":
        if knobs.decision_p is not None and rng.random() >= knobs.decision_p:
            _steps_in_a_row(d)
        if t and rng.random() < knobs.long_label_p:
            _full_names(d, t)
            for n in d.nodes:
                if n.kind in ("process", "subroutine", "io") and rng.random() < 0.5:
                    n.label += ("" if d.language == "zh" else " ") + _pick(rng.choice(STEP_QUALIFIERS), d.language)
        _flowchart(rng, d, knobs, domain)
    elif d.diagram_type == "state":
        if knobs.state_start_p is not None and rng.random() >= knobs.state_start_p and \
                len([n for n in d.nodes if n.kind not in ("start", "end")]) >= 2:
            d.nodes = [n for n in d.nodes if n.kind != "start"]
            keep = {n.id for n in d.nodes}
            d.edges = [e for e in d.edges if e.src in keep and e.dst in keep]
        if rng.random() < knobs.composite_state_p:
            _composite_state(rng, d)
    if d.diagram_type in ("flowchart", "sequence") and rng.random() < knobs.line_break_p:
        d.meta["label_breaks"] = True
    return d


# --- sequence ------------------------------------------------------------------------------------------

def _steps(t: dict | None, lang: str, kind: str) -> list[dict]:
    return [s for s in (t or {}).get("steps", []) if (s["kind"] == "decision") == (kind == "decision")]


def _sequence(rng: random.Random, d: Diagram, knobs, t: dict | None) -> None:
    lang = d.language
    if rng.random() < knobs.long_label_p and t:
        ents = {e["key"]: e for e in t.get("entities", [])}
        for n in d.nodes:
            e = ents.get(n.id)
            if e and "full_en" in e:
                full = e["full_zh"] if lang == "zh" else e["full_en"]
                if rng.random() < 0.7:  # "AMF (Access and Mobility Management Function)"
                    # short name first: "... Function (AMF) responds" read as the KB's "AMF responds?"
                    full = f"{e['zh']}（{full}）" if lang == "zh" else f"{e['en']} ({full})"
                n.label = full
    msgs = d.ordered_edges()
    if t and rng.random() < knobs.long_label_p:  # interfaces from the topic's links, then parameters
        links = {frozenset((x["a"], x["b"])): x["label"] for x in t.get("links", [])}
        for e in msgs:
            iface = links.get(frozenset((e.src, e.dst)))
            if iface and rng.random() < 0.5:
                e.label = f"{e.label} over {iface}"
            if e.kind == "sync" and rng.random() < 0.75:
                e.label = f"{e.label} {rng.choice(MESSAGE_QUALIFIERS)}"
    phase_of = {int(m): gi for gi, g in enumerate(d.groups) for m in g.members}
    phase = [phase_of.get(i) for i in range(len(msgs))]
    # Self-messages: the receiver of a request does one of the topic's steps (or a generic one) itself.
    if msgs and rng.random() < knobs.self_message_p:
        steps = [_pick([s["en"], s["zh"]], lang) for s in _steps(t, lang, "process")] or \
            [_pick(s, lang) for s in SELF_STEPS]
        for _ in range(rng.choice([1, 2, 3])):
            cands = [i for i, e in enumerate(msgs) if e.kind == "sync" and e.src != e.dst]
            if not cands:
                break
            i = rng.choice(cands)
            who = msgs[i].dst
            msgs.insert(i + 1, Edge(who, who, rng.choice(steps), "sync"))
            phase.insert(i + 1, phase[i])
    blocks: list[dict] = []  # {"kind", "spans": [[lo, hi] per branch], "conditions": [...]} by index
    if len(msgs) >= 2 and rng.random() < knobs.block_p:
        for _ in range(rng.choice([1, 1, 1, 2])):
            _add_block(rng, d, msgs, phase, blocks, t, lang)
        if blocks and rng.random() < knobs.nested_block_p:
            inner = rng.choice(blocks)
            lo, hi = inner["spans"][0][0], inner["spans"][-1][1]
            if lo > 0 and phase[lo - 1] == phase[lo] and _free(blocks, lo - 1, lo - 1):
                lo -= 1  # the retried step starts one message earlier: "loop retry: request, alt ok / else"
            if not any(b is not inner and b["spans"][0][0] <= hi and lo <= b["spans"][-1][1] for b in blocks):
                blocks.append({"kind": "loop", "spans": [[lo, hi]], "outer": True,
                               "conditions": [_pick(rng.choice(LOOP_CONDITIONS[:3]), lang)]})
    # renumber and write back
    for k, e in enumerate(msgs):
        e.order = k
    d.edges = msgs
    for gi, g in enumerate(d.groups):
        g.members = [str(k) for k, p in enumerate(phase) if p == gi]
    if blocks:
        # document order: by first message, the enclosing (longer) block first
        blocks.sort(key=lambda b: (b["spans"][0][0], -(b["spans"][-1][1] - b["spans"][0][0]), not b.get("outer")))
        out = []
        for k, b in enumerate(blocks):
            lo, hi = b["spans"][0][0], b["spans"][-1][1]
            parent = None
            for j in range(k):  # the innermost earlier block that contains this one
                plo, phi = blocks[j]["spans"][0][0], blocks[j]["spans"][-1][1]
                if plo <= lo and hi <= phi:
                    parent = j
            out.append({"kind": b["kind"], "parent": parent, "branches": [
                {"condition": c, "messages": list(range(s[0], s[1] + 1))} for c, s in zip(b["conditions"], b["spans"])]})
        d.meta["blocks"] = out
    if msgs and rng.random() < knobs.note_p:
        _add_notes(rng, d, msgs, t, lang)
    if rng.random() < knobs.activation_p:
        acts = []
        busy: set[str] = set()
        for i, e in enumerate(msgs):
            if e.kind != "sync" or e.src == e.dst or e.dst in busy:
                continue
            j = next((j for j in range(i + 1, len(msgs)) if msgs[j].src == e.dst and msgs[j].dst == e.src
                      and msgs[j].kind == "reply"), None)
            if j is not None and not any(a[0] == e.dst and not (j < a[1] or i > a[2]) for a in acts):
                acts.append([e.dst, i, j])
                if len(acts) >= 2:
                    break
        if acts:
            d.meta["activations"] = acts
    if knobs.autonumber_p is not None:
        d.meta["autonumber"] = rng.random() < knobs.autonumber_p


def _free(blocks: list[dict], lo: int, hi: int) -> bool:
    return not any(b["spans"][0][0] <= hi and lo <= b["spans"][-1][1] for b in blocks)


def _add_block(rng, d: Diagram, msgs: list[Edge], phase: list, blocks: list[dict], t, lang: str) -> None:
    kind = rng.choices(["alt", "loop", "opt", "par"], weights=[4, 4, 1.5, 1])[0]
    size = rng.choice([1, 1, 2, 2, 3])
    if kind == "par":
        size = 2
    starts = [i for i in range(len(msgs) - size + 1)
              if len({phase[k] for k in range(i, i + size)}) == 1 and _free(blocks, i, i + size - 1)]
    if not starts:
        return
    lo = rng.choice(starts)
    hi = lo + size - 1
    if kind == "alt":
        decisions = _steps(t, lang, "decision")
        if decisions:
            s = rng.choice(decisions)
            cond = _pick([s["en"], s["zh"]], lang)
            other = s["else_en"].removeprefix("Send ").strip() or rng.choice(ELSE_MESSAGES)
        else:
            cond, other = _pick(rng.choice(ALT_CONDITIONS), lang), rng.choice(ELSE_MESSAGES)
        first = msgs[lo]
        a, b = (first.dst, first.src) if first.src != first.dst else (first.src, first.src)
        msgs.insert(hi + 1, Edge(a, b, other, "reply"))
        phase.insert(hi + 1, phase[hi])
        for bl in blocks:  # later blocks move one message down
            for sp in bl["spans"]:
                sp[0] += sp[0] > hi
                sp[1] += sp[1] > hi
        blocks.append({"kind": "alt", "spans": [[lo, hi], [hi + 1, hi + 1]],
                       "conditions": [cond, _pick(rng.choice(ELSE_CONDITIONS), lang)]})
    elif kind == "loop":
        blocks.append({"kind": "loop", "spans": [[lo, hi]], "conditions": [_pick(rng.choice(LOOP_CONDITIONS), lang)]})
    elif kind == "opt":
        blocks.append({"kind": "opt", "spans": [[lo, hi]], "conditions": [_pick(rng.choice(OPT_CONDITIONS), lang)]})
    else:
        conds = [d.node(msgs[k].dst).label for k in (lo, hi)]
        if conds[0] == conds[1]:
            return
        blocks.append({"kind": "par", "spans": [[lo, lo], [hi, hi]], "conditions": conds})


def _add_notes(rng, d: Diagram, msgs: list[Edge], t, lang: str) -> None:
    used = {e.label for e in msgs} | {g.label for g in d.groups}
    texts = [_pick([s["en"], s["zh"]], lang) for s in _steps(t, lang, "process")]
    texts = [x for x in texts if x not in used]
    if not texts or rng.random() < 0.5:  # an explanation rather than a step name, as docs write notes
        texts = [_pick(n, lang) for n in NOTE_TEXTS]
    notes = []
    for i in sorted(rng.sample(range(len(msgs)), min(len(msgs), rng.choice([1, 1, 2])))):
        e = msgs[i]
        pos = rng.choice(["right of", "left of", "over", "over"])
        over = [e.src] if pos != "over" or e.src == e.dst else [e.src, e.dst]
        if pos == "over" and len(over) == 2:  # mermaid orders a spanning note's ends by participant order
            order = [n.id for n in d.nodes]
            over.sort(key=order.index)
        notes.append({"text": texts.pop(rng.randrange(len(texts))) if texts else _pick(rng.choice(NOTE_TEXTS), lang),
                      "over": over, "position": pos, "after": i + 1})
    d.meta["notes"] = notes


# --- state ---------------------------------------------------------------------------------------------

COMPOSITE_NAMES = [["Active", "活动"], ["In service", "服务中"], ["Operational", "运行中"], ["Recovery", "恢复中"],
                   ["Connected mode", "连接态"]]


def _composite_state(rng: random.Random, d: Diagram) -> None:
    """Two or three consecutive states become the children of a composite state (a node and a group of
    the same id, as :mod:`dicrepro.diagrams.parse` reads ``state X { ... }``)."""
    states = [n for n in d.nodes if n.kind == "state"]
    used = {n.label for n in d.nodes}
    names = [_pick(x, d.language) for x in COMPOSITE_NAMES if _pick(x, d.language) not in used]
    if len(states) < 3 or not names:
        return
    k = rng.choice([2, 2, 3])
    i = rng.randrange(len(states) - k + 1)
    kids = [n.id for n in states[i:i + k]]
    label = rng.choice(names)
    d.nodes.insert(d.nodes.index(states[i]), Node("cs0", label, "composite"))
    d.groups.append(Group("cs0", label, kids))


# --- flowchart -----------------------------------------------------------------------------------------

def _steps_in_a_row(d: Diagram) -> None:
    """Drop each decision and its remedial branch: the steps before it lead straight to its "yes" side
    (many hand-written flowcharts are a plain pipeline without branch labels)."""
    for dec in [n for n in d.nodes if n.kind == "decision"]:
        outs = [e for e in d.edges if e.src == dec.id]
        labels = [e.label for e in outs]
        yes = [e.dst for e in outs if e.label and labels.count(e.label) == 1 and e is outs[-1]] or \
            [outs[-1].dst] if outs else []
        fixes = {e.dst for e in outs if e.dst not in yes}
        fixes = {f for f in fixes if d.node(f).kind not in ("start", "end", "decision")}
        gone = {dec.id} | fixes
        preds = [e.src for e in d.edges if e.dst == dec.id and e.src not in gone]
        d.edges = [e for e in d.edges if e.src not in gone and e.dst not in gone]
        for p in dict.fromkeys(preds):
            for y in yes:
                if y not in gone and not any(e.src == p and e.dst == y for e in d.edges):
                    d.edges.append(Edge(p, y))
        d.nodes = [n for n in d.nodes if n.id not in gone]
        for g in d.groups:
            g.members = [m for m in g.members if m not in gone]
    d.groups = [g for g in d.groups if g.members]


def _full_names(d: Diagram, t: dict) -> None:
    """Name the topic's entities in full inside step labels: "Select AUSF" -> "Select AUSF (Authentication
    Server Function)", as specifications and runbooks write them."""
    zh = d.language == "zh"
    for e in t.get("entities", []):
        if "full_en" not in e:
            continue
        short = e["zh" if zh else "en"]
        full = f"{short}（{e['full_zh']}）" if zh else f"{short} ({e['full_en']})"
        pat = re.compile(rf"(?<![\w-]){re.escape(short)}(?![\w-])")
        for n in d.nodes:
            if pat.search(n.label) and full not in n.label:
                n.label = pat.sub(full, n.label, count=1)

def _flowchart(rng: random.Random, d: Diagram, knobs, domain: str) -> None:
    lang = d.language
    body = [n.id for n in d.nodes if n.kind not in ("start", "end")]
    names = [_pick(x, lang) for x in common(domain)["gantt_sections"]] + [_pick(x, lang) for x in SUBGRAPH_NAMES]
    used = {n.label for n in d.nodes} | {g.label for g in d.groups}
    names = [x for x in names if x not in used]
    if not d.groups and len(body) >= 3 and rng.random() < knobs.subgraph_p:
        cut = rng.randint(1, len(body) - 1)
        d.groups = [Group("g0", names.pop(0), body[:cut]), Group("g1", names.pop(0), body[cut:])]
        if rng.random() < 0.3:
            d.groups = d.groups[rng.randint(0, 1):][:1]
            d.groups[0].id = "g0"
    if d.groups and rng.random() < knobs.nested_subgraph_p:
        pi = max(range(len(d.groups)), key=lambda k: len(d.groups[k].members))
        parent = d.groups[pi]
        if len(parent.members) >= 3:
            k = rng.randint(1, len(parent.members) - 1)
            child = Group("child", names.pop(0), parent.members[k:])
            parent.members = parent.members[:k]
            d.groups.insert(pi + 1, child)
            ids = {id(g): f"g{i}" for i, g in enumerate(d.groups)}
            for g in d.groups:
                g.id = ids[id(g)]
            d.meta["group_parents"] = {child.id: parent.id}
    if rng.random() < knobs.class_def_p:
        d.meta["class_defs"] = True


__all__ = ["enrich"]
