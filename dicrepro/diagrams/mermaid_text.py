"""Mermaid text pieces every writer shares: entity-code escaping for the grammar a label lands in, generated
node ids, labels broken over two lines, the front-matter title (:mod:`dicrepro.diagrams.mermaid`).

Quoted labels get ``"`` as an entity code; bare labels (sequence messages, state transitions, gantt tasks,
timeline events...) get the characters that end a statement there (``:`` ``;`` ``#``) as Mermaid entity codes
(``#58;`` ...), which mermaid.js decodes back before drawing, so the text drawn is exactly the label stored in
the graph. Node ids are replaced by generated ones (``n0``, ``n1``...) so no graph id can collide with a
keyword (``end``, ``graph``) or an arrow head (``o``, ``x``).
"""

from __future__ import annotations

import json
import re

from dicrepro.diagrams.graph import Diagram

# Mermaid entity codes; '#' first so the codes themselves are not re-escaped (one regex pass anyway).
_CODES = {"#": "#35;", '"': "#quot;", ":": "#58;", ";": "#59;", "<": "#lt;", ">": "#gt;", "\n": " ",
          "{": "#123;", "}": "#125;", "[": "#91;", "]": "#93;", "|": "#124;", ",": "#44;", "%": "#37;",
          "(": "#40;", ")": "#41;", "-": "#45;"}


def esc(text: str, chars: str = '#"<>') -> str:
    """``text`` with each character of ``chars`` (and newlines) replaced by its Mermaid entity code."""
    chars = set(chars) | {"\n"}
    return "".join(_CODES[c] if c in chars else c for c in str(text))


def q(text: str) -> str:
    """A double-quoted Mermaid string holding ``text`` verbatim."""
    return f'"{esc(text)}"'


def bare(text: str) -> str:
    """``text`` for a bare, line-terminated label (messages, transitions, tasks, members)."""
    return esc(text, '#"<>:;').strip() or "#32;"


IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


def node_ids(d: Diagram) -> dict[str, str]:
    """Graph id -> generated Mermaid id (``n0``, ``n1``...), which no keyword or arrow head can be."""
    return {n.id: f"n{i}" for i, n in enumerate(d.nodes)}


def frontmatter(d: Diagram) -> str:
    """The YAML front-matter title block (empty when the title is hidden), for types without a title line."""
    if not d.meta.get("show_title", True) or not d.title:
        return ""
    return f"---\ntitle: {json.dumps(d.title, ensure_ascii=False)}\n---\n"


def two_lines(escaped: str, on: bool, min_len: int = 22) -> str:
    """An escaped label with ``<br/>`` at the space nearest its middle when ``on`` and it is long: drawn
    over two lines, read back (``parse.decode``) as the same one-line label."""
    if not on or len(escaped) < min_len or " " not in escaped:
        return escaped
    spaces = [i for i, c in enumerate(escaped) if c == " "]
    k = min(spaces, key=lambda i: abs(i - len(escaped) / 2))
    return escaped[:k] + "<br/>" + escaped[k + 1:]
