"""The knowledge bases behind the diagram samplers: ICT (the target domain) and GENERAL (everyday topics
used to pre-train the tiny base model, so it starts as a general model that lacks ICT knowledge).

Data lives in ``dicrepro/knowledge/*.yaml`` (package data): ``ict_*.yaml`` and ``general_*.yaml``, each
with an ``area`` block, optional ``entities`` and a list of ``topics``. Entries use a compact notation
so the files stay readable; :func:`parse_topic` turns them into plain dicts and names the file and topic
of anything malformed:

- entities: ``KEY: [label_en, label_zh, kind, full_en?, full_zh?]`` (``=`` as label_zh copies label_en,
  for names that Chinese documents keep in English, like AMF)
- messages: ``"A -> B: Name"`` (``->`` request, ``-->`` reply, ``~>`` asynchronous); names stay English
- transitions: ``"STATE_A -> STATE_B: event | 事件"``; optional states ``{KEY: "en | zh"}`` label states
  whose names are translated (standard names such as RRC_IDLE stay as written)
- chart: ``"chart title | 图表标题"`` for the pie/xychart of a topic
- steps: ``"text | 文本"`` or ``{if: "question? | 问题？", else: "action | 动作"}`` (a decision whose
  "no" branch runs the action)
- kpis: ``"name | 名称 | unit | low-high"``; categories: ``"en | zh"``; milestones: ``"period: en | zh"``
- model: ``{ENTITY: ["type name PK", ...]}``, relations ``"A ||--o{ B: verb | 动词"``, methods
- header: ``"Field name:bits"`` in wire order; links: ``"A - B: interface"``
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import Any

import yaml

DOMAINS = ("ict", "general")
ENTITY_KINDS = {"device", "ran", "nf", "server", "router", "switch", "database", "cloud", "internet", "role",
                "app", "controller", "storage", "optical", "security", "thing", "place", "system"}
_ARROW = re.compile(r"^\s*([^\s:]+)\s*(-->|->|~>)\s*([^\s:]+)\s*:\s*(.+?)\s*$")
_TRANS = re.compile(r"^\s*([^:]+?)\s*->\s*([^:]+?)\s*:\s*(.+?)\s*$")
_KPI = re.compile(r"^(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)$")
_REL = re.compile(r"^\s*(\w+)\s+([|}o]{2}(?:--|\.\.)[|{o]{2})\s+(\w+)\s*:\s*(.+?)\s*$")
_FIELD = re.compile(r"^([A-Za-z_][\w\-]*)\s+([A-Za-z_][\w\-]*)(?:\s+(PK|FK))?$")
_BAD_CHARS = re.compile(r'["<>\n]')


class KnowledgeError(ValueError):
    """A malformed knowledge-base entry; the message names file, topic and field."""


def _pair(text: Any, where: str) -> tuple[str, str]:
    """'english | 中文' -> (en, zh); both must be non-empty."""
    parts = [p.strip() for p in str(text).split("|")]
    if len(parts) != 2 or not all(parts):
        raise KnowledgeError(f"{where}: expected 'english | 中文', got {text!r}")
    for p in parts:
        if _BAD_CHARS.search(p):
            raise KnowledgeError(f"{where}: label {p!r} holds a quote, angle bracket or newline")
    return parts[0], parts[1]


def _one_line(item: Any) -> str:
    # YAML reads `- A -> B: Name` as a one-key mapping; accept both spellings.
    if isinstance(item, dict) and len(item) == 1:
        k, v = next(iter(item.items()))
        return f"{k}: {v}"
    return str(item)


def _entity(key: str, spec: Any, where: str) -> dict:
    if not isinstance(spec, list) or len(spec) not in (3, 5):
        raise KnowledgeError(f"{where}: entity {key!r} must be [label_en, label_zh, kind(, full_en, full_zh)]")
    en, zh, kind = (str(x).strip() for x in spec[:3])
    zh = en if zh == "=" else zh
    if kind not in ENTITY_KINDS:
        raise KnowledgeError(f"{where}: entity {key!r} has unknown kind {kind!r}; use one of "
                             f"{sorted(ENTITY_KINDS)}")
    ent = {"key": key, "en": en, "zh": zh, "kind": kind}
    if len(spec) == 5:
        ent["full_en"], ent["full_zh"] = str(spec[3]), str(spec[4])
    for v in ent.values():
        if not v or _BAD_CHARS.search(v):
            raise KnowledgeError(f"{where}: entity {key!r} has an empty or unsafe label {v!r}")
    return ent


def parse_topic(raw: dict, area: str, entities: dict[str, dict], where: str) -> dict:
    """Validate one raw topic entry and expand its compact notation (see module docstring)."""
    tid = raw.get("id") if isinstance(raw, dict) else None
    if not tid or not re.match(r"^[a-z0-9_]+$", str(tid)):
        raise KnowledgeError(f"{where}: topic without a valid snake_case id: {raw!r:.120}")
    at = f"{where}, topic {tid!r}"
    known = {"id", "title", "entities", "messages", "phases", "transitions", "states", "steps", "kpis",
             "categories", "chart",
             "milestones", "model", "relations", "methods", "header", "links"}
    extra = set(raw) - known
    if extra:
        raise KnowledgeError(f"{at}: unknown field(s) {sorted(extra)}")
    t: dict[str, Any] = {"id": tid, "area": area}
    t["title_en"], t["title_zh"] = _pair(raw.get("title", ""), f"{at}, title")
    keys = raw.get("entities") or []
    missing = [k for k in keys if k not in entities]
    if not keys or missing:
        raise KnowledgeError(f"{at}: entities {missing or '(none)'} not defined in the entities tables")
    t["entities"] = [entities[k] for k in keys]
    names = set(keys)

    def msg(item: Any, i: int) -> dict:
        m = _ARROW.match(_one_line(item))
        if not m or m.group(1) not in names or m.group(3) not in names:
            raise KnowledgeError(f"{at}, messages[{i}]: expected 'A -> B: Name' between the topic's "
                                 f"entities {sorted(names)}, got {item!r}")
        kind = {"->": "sync", "-->": "reply", "~>": "async"}[m.group(2)]
        return {"src": m.group(1), "dst": m.group(3), "name": m.group(4), "kind": kind}

    t["messages"] = [msg(x, i) for i, x in enumerate(raw.get("messages") or [])]
    t["phases"] = []
    for i, p in enumerate(raw.get("phases") or []):
        k, _, rest = _one_line(p).partition(":")
        if not k.strip().isdigit() or int(k) >= len(t["messages"]):
            raise KnowledgeError(f"{at}, phases[{i}]: expected 'message_index: en | zh', got {p!r}")
        t["phases"].append((int(k), *_pair(rest, f"{at}, phases[{i}]")))
    t["transitions"] = []
    for i, x in enumerate(raw.get("transitions") or []):
        m = _TRANS.match(_one_line(x))
        if not m:
            raise KnowledgeError(f"{at}, transitions[{i}]: expected 'A -> B: event | 事件', got {x!r}")
        en, zh = _pair(m.group(3), f"{at}, transitions[{i}]")
        t["transitions"].append({"src": m.group(1), "dst": m.group(2), "en": en, "zh": zh})
    t["states"] = {str(k): dict(zip(("en", "zh"), _pair(v, f"{at}, states.{k}")))
                   for k, v in (raw.get("states") or {}).items()}
    for tr in t["transitions"]:
        for s in (tr["src"], tr["dst"]):
            t["states"].setdefault(s, {"en": s, "zh": s})  # standard names (RRC_IDLE) stay as they are
    t["chart"] = dict(zip(("en", "zh"), _pair(raw["chart"], f"{at}, chart"))) if raw.get("chart") else None
    t["steps"] = []
    for i, s in enumerate(raw.get("steps") or []):
        if isinstance(s, dict) and set(s) == {"if", "else"}:
            q, a = _pair(s["if"], f"{at}, steps[{i}].if"), _pair(s["else"], f"{at}, steps[{i}].else")
            t["steps"].append({"kind": "decision", "en": q[0], "zh": q[1], "else_en": a[0], "else_zh": a[1]})
        else:
            en, zh = _pair(_one_line(s), f"{at}, steps[{i}]")
            t["steps"].append({"kind": "process", "en": en, "zh": zh})
    t["kpis"] = []
    for i, k in enumerate(raw.get("kpis") or []):
        parts = [p.strip() for p in _one_line(k).split("|")]
        rng = _KPI.match(parts[3]) if len(parts) == 4 else None
        if not rng or float(rng.group(1)) >= float(rng.group(2)):
            raise KnowledgeError(f"{at}, kpis[{i}]: expected 'name | 名称 | unit | low-high', got {k!r}")
        t["kpis"].append({"en": parts[0], "zh": parts[1], "unit": parts[2],
                          "low": float(rng.group(1)), "high": float(rng.group(2))})
    t["categories"] = [dict(zip(("en", "zh"), _pair(_one_line(c), f"{at}, categories[{i}]")))
                       for i, c in enumerate(raw.get("categories") or [])]
    t["milestones"] = []
    for i, m in enumerate(raw.get("milestones") or []):
        period, _, rest = _one_line(m).partition(":")
        if not period.strip():
            raise KnowledgeError(f"{at}, milestones[{i}]: expected 'period: en | zh', got {m!r}")
        en, zh = _pair(rest, f"{at}, milestones[{i}]")
        t["milestones"].append({"period": period.strip(), "en": en, "zh": zh})
    t["model"] = {}
    for name, fields in (raw.get("model") or {}).items():
        parsed = []
        for f in fields or []:
            m = _FIELD.match(str(f).strip())
            if not m:
                raise KnowledgeError(f"{at}, model.{name}: field {f!r} is not 'type name [PK|FK]'")
            parsed.append([m.group(1), m.group(2), m.group(3) or ""])
        t["model"][str(name)] = parsed
    t["methods"] = {str(k): [str(x) for x in v] for k, v in (raw.get("methods") or {}).items()}
    t["relations"] = []
    for i, r in enumerate(raw.get("relations") or []):
        m = _REL.match(_one_line(r))
        if not m or m.group(1) not in t["model"] or m.group(3) not in t["model"]:
            raise KnowledgeError(f"{at}, relations[{i}]: expected 'A ||--o{{ B: verb | 动词' between model "
                                 f"entities, got {r!r}")
        en, zh = _pair(m.group(4), f"{at}, relations[{i}]")
        t["relations"].append({"a": m.group(1), "card": m.group(2), "b": m.group(3), "en": en, "zh": zh})
    t["header"] = []
    for i, h in enumerate(raw.get("header") or []):
        name, _, bits = str(h).rpartition(":")
        if not name.strip() or not bits.strip().isdigit() or int(bits) < 1:
            raise KnowledgeError(f"{at}, header[{i}]: expected 'Field name:bits', got {h!r}")
        t["header"].append({"name": name.strip(), "bits": int(bits)})
    t["links"] = []
    for i, ln in enumerate(raw.get("links") or []):
        m = re.match(r"^\s*(\S+)\s+-\s+(\S+)\s*(?::\s*(.+?))?\s*$", _one_line(ln))
        if not m or m.group(1) not in names or m.group(2) not in names:
            raise KnowledgeError(f"{at}, links[{i}]: expected 'A - B: interface' between the topic's entities, "
                                 f"got {ln!r}")
        t["links"].append({"a": m.group(1), "b": m.group(2), "label": m.group(3) or ""})
    return t


def _files(domain: str) -> list[tuple[str, dict]]:
    root = resources.files("dicrepro.diagrams") / "kb"
    out = []
    for f in sorted(root.iterdir(), key=lambda p: p.name):
        if f.name.startswith(f"{domain}_") and f.name.endswith(".yaml"):
            try:
                out.append((f.name, yaml.safe_load(f.read_text(encoding="utf-8")) or {}))
            except yaml.YAMLError as e:
                raise KnowledgeError(f"knowledge/{f.name}: not valid YAML: {e}") from e
    if not out:
        raise KnowledgeError(f"no knowledge files for domain {domain!r} in dicrepro/knowledge/")
    return out


def build_kb(files: list[tuple[str, dict]]) -> dict:
    """Validate parsed YAML documents ``(file name, data)`` into a knowledge base dict."""
    entities: dict[str, dict] = {}
    seen_in: dict[str, str] = {}
    for name, data in files:
        for key, spec in (data.get("entities") or {}).items():
            if key in entities:
                raise KnowledgeError(f"knowledge/{name}: entity {key!r} already defined in {seen_in[key]}")
            entities[key], seen_in[key] = _entity(str(key), spec, f"knowledge/{name}"), name
    areas, topics, ids = {}, [], {}
    for name, data in files:
        if not data.get("topics"):
            continue
        area = data.get("area") or {}
        if not area.get("id"):
            raise KnowledgeError(f"knowledge/{name}: missing area.id")
        areas[area["id"]] = dict(zip(("en", "zh"), _pair(area.get("title", ""), f"knowledge/{name}, area")))
        for raw in data["topics"]:
            t = parse_topic(raw, area["id"], entities, f"knowledge/{name}")
            if t["id"] in ids:
                raise KnowledgeError(f"knowledge/{name}: topic {t['id']!r} already defined in {ids[t['id']]}")
            ids[t["id"]] = name
            topics.append(t)
    return {"areas": areas, "topics": topics, "entities": entities}


@functools.cache
def load_kb(domain: str = "ict") -> dict:
    """The validated knowledge base of ``domain`` ("ict" or "general"): ``{"areas", "topics", "entities"}``.

    Cached; callers must not mutate it.
    """
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
    return build_kb(_files(domain))


def topics(area: str | None = None, domain: str = "ict") -> list[dict]:
    """All topics of ``domain``, or those of one ``area``."""
    kb = load_kb(domain)
    if area is not None and area not in kb["areas"]:
        raise KeyError(f"unknown area {area!r}; known: {sorted(kb['areas'])}")
    return [t for t in kb["topics"] if area is None or t["area"] == area]


def areas(domain: str = "ict") -> dict[str, dict]:
    """Area id -> {"en": title, "zh": title}."""
    return dict(load_kb(domain)["areas"])


def topic(topic_id: str, domain: str = "ict") -> dict:
    """One topic by id (KeyError names it)."""
    for t in load_kb(domain)["topics"]:
        if t["id"] == topic_id:
            return t
    raise KeyError(f"no {domain} topic {topic_id!r}")


def common(domain: str = "ict") -> dict:
    """Shared vocabulary for samplers (generic words, axes, zones) from ``knowledge/common.yaml``."""
    return _common()[domain if domain in _common() else "ict"] | _common().get("shared", {})


@functools.cache
def _common() -> dict:
    f = resources.files("dicrepro.diagrams") / "kb" / "common.yaml"
    return yaml.safe_load(f.read_text(encoding="utf-8"))


@functools.cache
def lexicon(domain: str | None = None) -> frozenset[str]:
    """Every label the knowledge base(s) can put into a diagram (both languages)."""
    out: set[str] = set()
    for dom in ([domain] if domain else DOMAINS):
        kb = load_kb(dom)
        out |= {v for a in kb["areas"].values() for v in a.values()}
        for e in kb["entities"].values():
            out |= {e["en"], e["zh"], e.get("full_en", e["en"]), e.get("full_zh", e["zh"])}
        for t in kb["topics"]:
            out |= {t["title_en"], t["title_zh"]}
            out |= {m["name"] for m in t["messages"]} | {p for ph in t["phases"] for p in ph[1:]}
            for tr in t["transitions"]:
                out |= {tr["en"], tr["zh"]}
            out |= {v for st in t["states"].values() for v in st.values()}
            out |= set(t["chart"].values()) if t["chart"] else set()
            for s in t["steps"]:
                out |= {v for k, v in s.items() if k != "kind"}
            for k in t["kpis"]:
                out |= {k["en"], k["zh"], k["unit"]}
            out |= {c[x] for c in t["categories"] for x in ("en", "zh")}
            out |= {v for m in t["milestones"] for v in m.values()}
            for name, fields in t["model"].items():
                out |= {name} | {f[1] for f in fields}
            out |= {x for ms in t["methods"].values() for x in ms}
            out |= {v for r in t["relations"] for v in (r["en"], r["zh"])}
            out |= {h["name"] for h in t["header"]} | {ln["label"] for ln in t["links"] if ln["label"]}
    for block in _common().values():
        out |= set(_strings(block))
    return frozenset(x for x in out if x)


def _strings(obj: Any):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)
