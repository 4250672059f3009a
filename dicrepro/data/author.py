"""``dicrepro author``: an LLM writes Mermaid for ICT text passages (the paper's way of making stage-1 data).

Each passage (a ``.md``/``.txt`` file of RFC or specification text, split at blank lines into chunks of at
most ``author.max_chars``) goes to an OpenAI-compatible chat endpoint (:func:`dicrepro.text.llm.openai_backend`:
vLLM, Ollama, llama.cpp, a hosted API) with the prompt ``dicrepro/text/prompts/<author.prompt>.txt``. The
reply's Mermaid is

1. parsed by mermaid.js (:func:`dicrepro.diagrams.parse.parse_mermaid`) and rendered (securityLevel strict, no
   network), and
2. gated: every label of the parsed graph must come from the passage (:func:`passage_gate`).

A reply that fails is retried once, in the same chat, with the reason (mermaid's own parse message, the
render error, or the labels not found in the passage); a second failure is listed with file:line and the
reason, and the run goes on. Replies are cached (``<out>_replies.jsonl``): a rerun sends nothing already
answered.

    report = author(["rfc-excerpts/"], "data/authored", params.author)

Rows have the harvest schema (:data:`dicrepro.data.harvest.HARVEST_FEATURES`: stage-1 columns, ``source`` =
``authored``, ``source_file``/``source_line`` of the chunk, repo/commit/license when known) plus
``author_model``, ``author_prompt`` (the chat sent, JSON) and ``author_reply`` (the reply kept) and
``author_attempts``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset, DatasetDict, Features, Value

from dicrepro.atomic import append_jsonl, save_dataset_atomic
from dicrepro.data.harvest import HARVEST_FEATURES, Failure, git_info, language_of, nearest_license
from dicrepro.diagrams.graph import Diagram
from dicrepro.diagrams.parse import parse_mermaid
from dicrepro.outputs import claim_output
from dicrepro.text.describe import caption_prompt, describe, diagram_labels
from dicrepro.text.gate import normalize
from dicrepro.text.llm import ChatRequest, ReplyCache, openai_backend

log = logging.getLogger(__name__)

PASSAGE_SUFFIXES = {".md", ".markdown", ".txt", ".text", ".rst"}
AUTHOR_FEATURES = Features({**HARVEST_FEATURES, "author_model": Value("string"), "author_prompt": Value("string"),
                            "author_reply": Value("string"), "author_attempts": Value("int64")})
_BLOCK = re.compile(r"```+\s*(?:mermaid)?[^\n]*\n(.*?)```", re.S)
# Branch words a diagram may add without the passage saying them (decision outcomes)
GENERIC_LABELS = {"yes", "no", "true", "false", "ok", "nok", "fail", "success", "failure", "else", "otherwise",
                  "是", "否", "成功", "失败", "否则"}


@dataclass
class Passage:
    file: Path
    line: int
    text: str


@dataclass
class AuthorReport:
    passages: int = 0
    rows: int = 0
    retried: int = 0
    failures: list[Failure] = field(default_factory=list)
    stats: Counter = field(default_factory=Counter)

    def text(self) -> str:
        lines = [f"{self.passages} passages: {self.rows} diagrams kept ({self.retried} after one retry), "
                 f"{len(self.failures)} rejected"]
        lines += [f"  REJECTED {f}" for f in self.failures]
        return "\n".join(lines)


def passages(paths: list[str | Path], max_chars: int = 4000) -> list[Passage]:
    """Chunks of every passage file under ``paths``: paragraphs joined up to ``max_chars``, with the line
    each chunk starts on. A missing path is an error naming it."""
    files: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(2, "no such file or folder", str(p))
        files += [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.suffix.lower() in PASSAGE_SUFFIXES
                                                and f.is_file() and not any(x.startswith(".") for x in f.parts))
    out = []
    for f in dict.fromkeys(x.resolve() for x in files):
        text = f.read_bytes().decode("utf-8-sig", errors="strict").replace("\r\n", "\n")
        start, buf, line = 1, [], 1
        for para in re.split(r"(\n\s*\n)", text):
            if para.strip() and buf and sum(map(len, buf)) + len(para) > max_chars:
                out.append(Passage(f, start, "".join(buf).strip()))
                buf, start = [], line
            if para.strip() and not buf:
                start = line
            if para.strip() or buf:
                buf.append(para)
            line += para.count("\n")
        if "".join(buf).strip():
            out.append(Passage(f, start, "".join(buf).strip()))
    return out


def extract_mermaid(reply: str) -> str:
    """The Mermaid in a reply: the first fenced block, else the whole reply."""
    m = _BLOCK.search(reply or "")
    return (m.group(1) if m else reply or "").strip() + "\n"


def passage_gate(diagram: Diagram, passage: str) -> list[str]:
    """Labels of ``diagram`` that do not come from ``passage`` (compared normalised: case, spacing and
    punctuation); decision words like yes/no are allowed."""
    norm = normalize(passage)
    return [lab for lab in diagram_labels(diagram)
            if normalize(lab) and normalize(lab) not in norm and lab.strip().lower() not in GENERIC_LABELS]


def build_prompt(template: str, passage: Passage, types: list[str]) -> list[dict]:
    lang = "zh" if language_of(None, passage.text) == "zh" else "en"
    text = template.replace("{types}", ", ".join(types)).replace("{language}", lang).replace("{passage}", passage.text)
    return [{"role": "user", "content": text}]


def load_template(name: str) -> str:
    from importlib import resources

    p = Path(name)
    if p.suffix == ".txt" and p.is_file():
        return p.read_text(encoding="utf-8")
    res = resources.files("dicrepro.text") / "prompts" / f"{name}.txt"
    if not res.is_file():
        raise ValueError(f"author.prompt: no prompt {name!r} (dicrepro/text/prompts/{name}.txt)")
    return res.read_text(encoding="utf-8")


def author(paths: list[str | Path], out_dir: str | Path, params, *, split: str = "train", renderer=None,
           overwrite: bool = False, progress: bool = True) -> AuthorReport:
    """Author diagrams for the passages under ``paths`` into a DatasetDict at ``out_dir`` (module doc).

    ``params``: :class:`dicrepro.params.AuthorParams` (endpoint, model, prompt, diagram types)."""
    if split not in ("train", "test"):
        raise ValueError(f"author: split must be train or test, got {split!r}")
    if not params.base_url or not params.model:
        raise ValueError("author.base_url is required (the chat endpoint, e.g. http://localhost:8000/v1) and so is "
                         "author.model: set them in the params' author: section or pass --base-url and --model")
    out_dir = Path(out_dir)
    with claim_output(out_dir, "author", overwrite=overwrite, accept=("dataset",)):
        if renderer is None:
            from dicrepro.diagrams.render import MermaidRenderer

            with MermaidRenderer(workers=1, progress=False) as r:
                return _author(paths, out_dir, params, split, r, progress)
        return _author(paths, out_dir, params, split, renderer, progress)


def _check(reply: str, passage: Passage, renderer) -> tuple[str, object, bytes | None, str | None]:
    """(mermaid, parse result, png, why it fails or None)."""
    src = extract_mermaid(reply)
    res = parse_mermaid([src], renderer=renderer)[0]
    if not res.ok:
        img = renderer.render_batch([src], progress=False)[0]  # its copy of mermaid's message is whole
        msg = img.error if img.error and res.error and res.error.startswith("parse error") else res.error
        return src, res, None, " ".join(str(msg).split())[:400]
    img = renderer.render_batch([src], progress=False)[0]
    if not img.ok:
        return src, res, None, "render error: " + " ".join(str(img.error).split())[:400]
    foreign = passage_gate(res.diagram, passage.text)
    if foreign:
        return src, res, None, "labels not in the passage: " + "; ".join(foreign[:12])
    return src, res, img.png, None


def _author(paths, out_dir: Path, params, split: str, renderer, progress: bool) -> AuthorReport:
    report = AuthorReport()
    chunks = passages(paths, params.max_chars)
    report.passages = len(chunks)
    template = load_template(params.prompt)
    cache = ReplyCache(out_dir.with_name(f"{out_dir.name}_replies.jsonl"))
    complete = openai_backend(params, cache=cache, prompt_version=params.prompt, stats=report.stats, progress=progress)
    chats = [build_prompt(template, p, list(params.diagram_types)) for p in chunks]
    first = complete([ChatRequest(f"{p.file.name}:{p.line}", m) for p, m in zip(chunks, chats)])
    checked = []
    for p, reply in zip(chunks, first):
        checked.append(_check(reply, p, renderer) if isinstance(reply, str) else ("", None, None, str(reply)))
    # one retry, in the same chat, for every reply that failed: the reason is the next user turn
    again = [k for k, c in enumerate(checked) if c[3] is not None and isinstance(first[k], str)]
    followups = {k: chats[k] + [{"role": "assistant", "content": first[k]},
                                {"role": "user", "content": f"That diagram cannot be used: {checked[k][3]}\n"
                                 "Reply with the corrected diagram only, in one ```mermaid block."}] for k in again}
    second = complete([ChatRequest(f"{chunks[k].file.name}:{chunks[k].line}#retry", followups[k]) for k in again])
    replies = {k: (first[k], chats[k], 1) for k in range(len(chunks))}
    for k, reply in zip(again, second):
        checked[k] = _check(reply, chunks[k], renderer) if isinstance(reply, str) else ("", None, None, str(reply))
        replies[k] = (reply if isinstance(reply, str) else "", followups[k], 2)
    rows = []
    for k, (p, (src, res, png, why)) in enumerate(zip(chunks, checked)):
        if why is not None:
            report.failures.append(Failure(str(p.file), p.line, str(why)))
            continue
        report.retried += replies[k][2] == 2
        rows.append(_row(p, src, res.diagram, png, split, params, *replies[k]))
    report.rows = len(rows)
    full = Dataset.from_dict({c: [r[c] for r in rows] for c in AUTHOR_FEATURES}, features=AUTHOR_FEATURES)
    empty = Dataset.from_dict({c: [] for c in AUTHOR_FEATURES}, features=AUTHOR_FEATURES)
    save_dataset_atomic(DatasetDict({"train": full if split == "train" else empty,
                                     "test": full if split == "test" else empty}), out_dir, kind="author")
    fail_path = out_dir.with_name(f"{out_dir.name}_failures.jsonl")
    fail_path.unlink(missing_ok=True)
    for f in report.failures:
        append_jsonl(fail_path, {"file": f.file, "line": f.line, "error": f.error})
    log.info("author %s: %s", out_dir, report.text().splitlines()[0])
    return report


def _row(p: Passage, src: str, d: Diagram, png: bytes, split: str, params, reply: str, chat: list, attempts: int) -> dict:
    root, remote, commit = git_info(p.file.parent)
    base = Path(root) if root else p.file.parent
    lic = nearest_license(p.file.parent, base)
    digest = hashlib.sha256((p.text + "\0" + src).encode("utf-8")).hexdigest()
    seed = int(digest[:15], 16)
    rng = random.Random(seed)
    language = language_of(None, p.text)
    d.language, d.topic = language, p.file.stem
    try:
        views = describe(d, rng)
    except (KeyError, ValueError, IndexError, TypeError) as e:  # a graph outside our conventions
        log.warning("%s:%d: no description (%s: %s)", p.file, p.line, type(e).__name__, e)
        views = {"global": "", "partial": "", "detail": "", "description": ""}
    return {
        "id": f"a-{digest[:16]}", "image": {"bytes": png, "path": None}, "mermaid": src,
        "diagram_type": d.diagram_type, "topic": p.file.stem, "area": "", "language": language,
        "graph": d.to_json(), "seed": seed, "source": "authored", "description": views["description"],
        "view_global": views["global"], "view_partial": views["partial"], "view_detail": views["detail"],
        "split": split, "prompt": caption_prompt(language, rng), "target": views["description"],
        "source_file": str(p.file.relative_to(base)) if base in p.file.parents else p.file.name,
        "source_line": p.line, "source_repo": remote, "source_commit": commit,
        "source_license": str(lic.relative_to(base)) if lic and base in lic.parents else (lic.name if lic else ""),
        "source_status": "parsed", "author_model": str(params.model), "author_prompt": json.dumps(chat, ensure_ascii=False),
        "author_reply": reply, "author_attempts": attempts,
    }


__all__ = ["author", "AuthorReport", "passages", "extract_mermaid", "passage_gate", "AUTHOR_FEATURES"]
