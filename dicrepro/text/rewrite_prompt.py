"""Prompt templates for LLM rewriting (``dicrepro/prompts/*.txt``) and the reply format.

A template file starts with ``version: NAME``, then ``=== system ===``, ``=== user ===`` and
``=== retry ===`` sections with ``$placeholders`` (``string.Template``); lines starting with ``#`` before
the first section are comments. The version is part of the reply-cache key, so a changed prompt is
never answered from an older prompt's cache.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from dicrepro.diagrams.graph import Diagram
from dicrepro.text import phrasings_en
from dicrepro.text.gate import ordered_labels

VIEW_KEYS = ("global", "partial", "detail", "description")
LANGUAGE_NAMES = {"en": "English", "zh": "Simplified Chinese (简体中文)"}
# Presentation-only meta keys: they change pixels, not content, so the LLM need not see them.
_PRESENTATION = {"theme", "look", "direction", "autonumber"}


@dataclass(frozen=True)
class Prompt:
    """A loaded template: ``version`` plus the three section texts."""

    version: str
    system: str
    user: str
    retry: str


def load_prompt(name_or_path: str | Path = "rewrite_v1") -> Prompt:
    """Read a template by name from the package (``rewrite_v1``) or from a file path."""
    p = Path(name_or_path)
    if p.suffix == ".txt" and p.exists():
        text, where = p.read_text(encoding="utf-8"), str(p)
    else:
        res = resources.files("dicrepro.text") / "prompts" / f"{name_or_path}.txt"
        if not res.is_file():
            raise FileNotFoundError(f"no prompt template {name_or_path!r} (looked for {res})")
        text, where = res.read_text(encoding="utf-8"), str(res)
    first = text.splitlines()[0] if text else ""
    m = re.fullmatch(r"version:\s*(\S+)\s*", first)
    if not m:
        raise ValueError(f"{where}: the first line must be 'version: NAME', got {first!r}")
    sections = dict.fromkeys(("system", "user", "retry"), None)
    current = None
    lines: dict[str, list[str]] = {}
    for line in text.splitlines()[1:]:
        head = re.fullmatch(r"=== (\w+) ===", line.strip())
        if head:
            current = head.group(1)
            if current not in sections:
                raise ValueError(f"{where}: unknown section {current!r}; expected system, user, retry")
            lines[current] = []
        elif current is not None:
            lines[current].append(line)
        elif line.strip() and not line.startswith("#"):
            raise ValueError(f"{where}: text before the first section: {line!r}")
    missing = [s for s in sections if s not in lines]
    if missing:
        raise ValueError(f"{where}: missing section(s) {missing}")
    return Prompt(m.group(1), *("\n".join(lines[s]).strip() for s in ("system", "user", "retry")))


def diagram_structure(d: Diagram) -> str:
    """The graph as a readable listing for the LLM: elements, relations in order, groups, attributes."""
    out = [f"type: {d.diagram_type}", f"title: {d.title}", f"topic: {d.topic} (area: {d.area})"]
    names = {n.id: (n.label or f"[{n.kind}]") for n in d.nodes}
    out.append("elements:")
    for n in d.nodes:
        attrs = f" {json.dumps(n.attrs, ensure_ascii=False)}" if n.attrs else ""
        out.append(f"- {names[n.id]} ({n.kind}){attrs}")
    if d.edges:
        out.append("relations, in order:")
        for i, e in enumerate(d.ordered_edges(), 1):
            label = f": {e.label}" if e.label else ""
            attrs = f" {json.dumps(e.attrs, ensure_ascii=False)}" if e.attrs else ""
            out.append(f"{i}. {names.get(e.src, e.src)} -> {names.get(e.dst, e.dst)}{label} [{e.kind}]{attrs}")
    if d.groups:
        out.append("groups:")
        for g in d.groups:
            members = []
            for m in g.members:
                if m in names:
                    members.append(names[m])
                elif d.diagram_type == "sequence" and str(m).isdigit() and int(m) < len(d.edges):
                    members.append(d.edges[int(m)].label)
                else:
                    members.append(str(m))
            out.append(f"- {g.label}: {', '.join(members)}")
    meta = {k: v for k, v in d.meta.items() if k not in _PRESENTATION}
    if meta:
        out.append(f"other: {json.dumps(meta, ensure_ascii=False)}")
    return "\n".join(out)


def _type_name(diagram_type: str) -> str:
    return phrasings_en.TYPES.get(diagram_type, phrasings_en.GENERIC_TYPE)[1]


def build_messages(d: Diagram, draft: dict[str, str], prompt: Prompt, required: list[str]) -> list[dict]:
    """The chat for one diagram: system rules, then the structure and the verbalizer's draft."""
    lang = "zh" if d.language.startswith("zh") else "en"
    order = ordered_labels(d)
    order_rule = (f"- Keep this order in \"detail\" and \"description\": {' -> '.join(order)}\n" if order else "")
    user = Template(prompt.user).substitute(
        type_name=_type_name(d.diagram_type), language_name=LANGUAGE_NAMES[lang],
        structure=diagram_structure(d), draft=draft["description"],
        labels="; ".join(f'"{x}"' for x in required), order_rule=order_rule)
    return [{"role": "system", "content": prompt.system}, {"role": "user", "content": user}]


def retry_messages(messages: list[dict], reply: str | None, reasons: list[str], prompt: Prompt) -> list[dict]:
    """The conversation extended with the rejected reply and the gate's reasons."""
    more = [{"role": "assistant", "content": reply}] if reply else []
    feedback = Template(prompt.retry).substitute(reasons="\n".join(f"- {r}" for r in reasons))
    return messages + more + [{"role": "user", "content": feedback}]


def parse_reply(text: str) -> dict[str, str]:
    """The four views from an LLM reply; ValueError says what is wrong (fed back to the LLM)."""
    # Reasoning models (Qwen3, DeepSeek-R1) may prepend their thinking; code fences are common too.
    t = re.sub(r"<think>.*?</think>", "", text or "", flags=re.S).strip()
    start, end = t.find("{"), t.rfind("}")
    if start < 0 or end < start:
        raise ValueError("the reply is not a JSON object")
    try:
        obj = json.loads(t[start:end + 1])
    except json.JSONDecodeError as e:
        raise ValueError(f"the reply is not valid JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise ValueError("the reply is not a JSON object")
    bad = [k for k in VIEW_KEYS if not isinstance(obj.get(k), str) or not obj[k].strip()]
    if bad:
        raise ValueError(f"the JSON object lacks non-empty string values for: {', '.join(bad)}")
    return {k: obj[k].strip() for k in VIEW_KEYS}
