"""``dicrepro harvest``: hand-written Mermaid from documentation, as a stage-1-shaped dataset.

Walks Markdown / MDX / reStructuredText / AsciiDoc / ``.mmd`` files (a git checkout or any folder), takes
every Mermaid block with its provenance, and keeps the ones mermaid.js itself parses and draws:

    report = harvest(["docs/"], "data/real", split="test")
    report.rows, [str(f) for f in report.failures]   # 41, ["docs/x.md:12: Parse error on line 3: ..."]

Per block: the file and 1-based line of its first source line, the repository's remote URL and commit
when the file is in a git checkout (credentials stripped from the URL), and the nearest license file above
it (``LICENSE*``/``COPYING*``, up to the checkout's root or the folder given). Sources are normalised
(newlines, tabs, trailing spaces, common indentation, outer blank lines) and deduplicated on that form;
the first occurrence in path order wins. Each block is parsed (:func:`dicrepro.diagrams.parse.parse_mermaid`)
and rendered (securityLevel strict, every request refused) in one renderer; a block that fails either is
a :class:`Failure` with file:line and mermaid's own message, and the harvest goes on.

Rows have the stage-1 columns of :data:`dicrepro.data.synth.FEATURES` (``source`` = ``harvested``, the
graph from the parser, the description from the offline verbalizer when the type is mapped, ``""`` for a
labels-only type) plus ``source_file``, ``source_line``, ``source_repo``, ``source_commit``,
``source_license`` and ``source_status`` (``parsed`` or ``unsupported: <type>``). ``split`` puts every row in
that split (``test``: a held-out real test set); the other split is saved empty.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import random
import re
import subprocess
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset, DatasetDict, Features, Value

from dicrepro.atomic import append_jsonl, save_dataset_atomic
from dicrepro.data.synth import FEATURES
from dicrepro.diagrams.graph import Diagram
from dicrepro.diagrams.parse import parse_mermaid
from dicrepro.outputs import claim_output
from dicrepro.progress import tqdm
from dicrepro.text.describe import caption_prompt, describe
from dicrepro.text.han import HAN_CHAR

log = logging.getLogger(__name__)

DOC_SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".mdx": "markdown", ".rst": "rst",
                ".adoc": "asciidoc", ".asciidoc": "asciidoc", ".asc": "asciidoc", ".mmd": "mermaid",
                ".mermaid": "mermaid"}
MAX_FILE_BYTES = 5 * 1024 * 1024  # docs pages are small; a larger "doc" is generated or data
SKIP_DIRS = {".git", "node_modules", ".venv", "venv", "__pycache__", ".tox", "site-packages", "_build"}
SOURCE_FEATURES = {"source_file": Value("string"), "source_line": Value("int64"), "source_repo": Value("string"),
                   "source_commit": Value("string"), "source_license": Value("string"),
                   "source_status": Value("string")}
HARVEST_FEATURES = Features({**FEATURES, **SOURCE_FEATURES})

# ```mermaid / ~~~mermaid fences (Markdown, MDX), indented up to 3 spaces (inside lists)
_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})[ \t]*\{?[ \t]*\.?mermaid\b[^\n]*\n(.*?)^ {0,3}\2[`~]*[ \t]*$",
                    re.M | re.S)
# .. mermaid:: (sphinxcontrib-mermaid) / .. code-block:: mermaid, body indented below
_RST = re.compile(r"^([ \t]*)\.\.[ \t]+(?:mermaid::[^\n]*|(?:code-block|code|sourcecode)::[ \t]+mermaid[ \t]*)\n")
# [mermaid] / [source,mermaid] then a ---- or .... delimited block
_ADOC = re.compile(r"^\[(?:source,\s*)?mermaid[^\]]*\][ \t]*\n(-{4,}|\.{4,})[ \t]*\n(.*?)^\1[ \t]*$", re.M | re.S)
_LATIN = re.compile(r"[A-Za-z]")


@dataclass
class Block:
    """One Mermaid block found in a document, before validation."""

    file: Path
    line: int
    source: str


@dataclass
class Failure:
    """A block that did not parse or render: file:line and mermaid's own message (one line)."""

    file: str
    line: int
    error: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.error}"


@dataclass
class HarvestReport:
    """What a harvest found and kept; ``failures`` name every dropped block that was not a duplicate."""

    files: int = 0
    blocks: int = 0
    duplicates: int = 0
    rows: int = 0
    unsupported: int = 0
    failures: list[Failure] = field(default_factory=list)
    types: dict[str, int] = field(default_factory=dict)
    languages: dict[str, int] = field(default_factory=dict)

    def text(self) -> str:
        types = ", ".join(f"{k} {v}" for k, v in sorted(self.types.items(), key=lambda kv: -kv[1]))
        lines = [f"{self.files} files, {self.blocks} Mermaid blocks: {self.rows} kept ({types or 'none'}), "
                 f"{self.duplicates} duplicates dropped, {len(self.failures)} failed, "
                 f"{self.unsupported} of an unmapped type kept with labels only"]
        lines += [f"  FAILED {f}" for f in self.failures]
        return "\n".join(lines)


# --- finding blocks -------------------------------------------------------------------------------------

def doc_files(paths: list[str | Path]) -> list[Path]:
    """Every document file under ``paths`` (files are taken as given), sorted, without repeats.

    Hidden folders, ``.git``, ``node_modules`` and virtualenvs are skipped; a missing path is an error
    naming it (a typo must not harvest nothing silently)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(2, "no such file or folder", str(p))
        if p.is_file():
            out.append(p)
            continue
        for f in sorted(p.rglob("*")):
            rel = f.relative_to(p).parts
            if any(part in SKIP_DIRS or part.startswith(".") for part in rel[:-1]):
                continue
            if f.suffix.lower() in DOC_SUFFIXES and f.is_file() and not f.is_symlink():
                out.append(f)
    return list(dict.fromkeys(q.resolve() for q in out))


def extract_blocks(text: str, suffix: str) -> list[tuple[int, str]]:
    """``(line, source)`` of each Mermaid block of a document's text; ``line`` is the first source line."""
    kind = DOC_SUFFIXES.get(suffix.lower(), "markdown")
    if kind == "mermaid":
        return [(1, text)] if text.strip() else []
    found: list[tuple[int, str]] = []
    if kind in ("markdown", "rst"):  # RST pages of MyST/recommonmark sites hold fences too
        for m in _FENCE.finditer(text):
            indent = len(m.group(1))
            body = "\n".join(ln[indent:] if ln[:indent].strip() == "" else ln for ln in m.group(3).split("\n"))
            found.append((text.count("\n", 0, m.start(3)) + 1, body))
    if kind == "rst":
        found += _rst_blocks(text)
    if kind == "asciidoc":
        found += [(text.count("\n", 0, m.start(2)) + 1, m.group(2)) for m in _ADOC.finditer(text)]
    return sorted(found)


def _rst_blocks(text: str) -> list[tuple[int, str]]:
    lines = text.split("\n")
    out = []
    for i, ln in enumerate(lines):
        m = _RST.match(ln + "\n")
        if not m:
            continue
        base = len(m.group(1).expandtabs())
        j = i + 1
        while j < len(lines) and lines[j].strip().startswith(":") and _indent(lines[j]) > base:
            j += 1  # directive options (:caption:, :align:)
        body_start, body = None, []
        while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > base):
            if lines[j].strip() and body_start is None:
                body_start = j
            if body_start is not None:
                body.append(lines[j])
            j += 1
        if body_start is not None:
            out.append((body_start + 1, textwrap.dedent("\n".join(body))))
    return out


def _indent(line: str) -> int:
    return len(line.expandtabs()) - len(line.expandtabs().lstrip())


def normalise(source: str) -> str:
    """The form blocks are compared and stored in: LF newlines, tabs as 4 spaces, no trailing spaces, the
    common indentation and outer blank lines removed. Mermaid reads both forms the same."""
    s = source.replace("\r\n", "\n").replace("\r", "\n").expandtabs(4)
    s = textwrap.dedent("\n".join(ln.rstrip() for ln in s.split("\n")))
    return s.strip("\n") + "\n"


def dedupe_key(source: str) -> str:
    """Blocks that differ only in indentation or blank lines are the same diagram."""
    core = "\n".join(ln.strip() for ln in normalise(source).split("\n") if ln.strip())
    return hashlib.sha256(core.encode("utf-8")).hexdigest()


def find_blocks(files: list[Path], failures: list[Failure]) -> list[Block]:
    """Every block of ``files``; unreadable files are failures (line 0) and the walk goes on."""
    blocks = []
    for f in files:
        try:
            if f.stat().st_size > MAX_FILE_BYTES:
                raise ValueError(f"larger than {MAX_FILE_BYTES // 2**20} MiB; not a documentation page")
            text = f.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as e:
            failures.append(Failure(str(f), 0, f"not UTF-8 text (byte {e.start})"))
            continue
        except (OSError, ValueError) as e:
            failures.append(Failure(str(f), 0, f"cannot read: {getattr(e, 'strerror', None) or e}"))
            continue
        blocks += [Block(f, line, src) for line, src in extract_blocks(text, f.suffix)]
    return blocks


# --- provenance -----------------------------------------------------------------------------------------

def _git(cwd: Path, *args: str) -> str:
    try:
        r = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return r.stdout.strip() if r.returncode == 0 else ""


@functools.lru_cache(maxsize=None)
def git_info(folder: Path) -> tuple[str, str, str]:
    """``(root, remote URL, commit)`` of the git checkout holding ``folder``; empty strings outside one.

    The remote is ``origin`` (else the first remote) with any ``user:password@`` removed."""
    root = _git(folder, "rev-parse", "--show-toplevel")
    if not root:
        return "", "", ""
    remotes = _git(folder, "remote").split()
    name = "origin" if "origin" in remotes else (remotes[0] if remotes else "")
    remote = _git(folder, "remote", "get-url", name) if name else ""
    remote = re.sub(r"^(\w+://)[^/@]*@", r"\1", remote)  # a token in the URL stays out of the dataset
    return root, remote, _git(folder, "rev-parse", "HEAD")


LICENSE_NAMES = re.compile(r"^(LICEN[CS]E|COPYING|COPYRIGHT)([.-].*)?$", re.I)


@functools.lru_cache(maxsize=None)
def nearest_license(folder: Path, stop: Path) -> Path | None:
    """The license file nearest above ``folder`` (``folder`` itself first), not above ``stop``."""
    for d in [folder, *folder.parents]:
        try:
            hits = sorted(p for p in d.iterdir() if p.is_file() and LICENSE_NAMES.match(p.name))
        except OSError:
            hits = []
        if hits:
            return hits[0]
        if d == stop or d == d.parent:
            return None
    return None


def language_of(diagram: Diagram | None, source: str) -> str:
    """``zh`` when Chinese characters are a fair share of the labels' letters, else ``en``."""
    text = " ".join([n.label for n in diagram.nodes] + [e.label for e in diagram.edges]) if diagram else source
    cjk, latin = len(HAN_CHAR.findall(text)), len(_LATIN.findall(text))
    return "zh" if cjk and cjk * 3 >= latin else "en"


# --- the harvest ----------------------------------------------------------------------------------------

def harvest(paths: list[str | Path], out_dir: str | Path, *, split: str = "test", renderer=None,
            overwrite: bool = False, progress: bool = True) -> HarvestReport:
    """Harvest Mermaid blocks under ``paths`` into a DatasetDict at ``out_dir`` (see the module doc).

    ``renderer``: a started :class:`~dicrepro.diagrams.render.MermaidRenderer` (one is started and closed
    otherwise). Failures are also written to ``<out_dir>_failures.jsonl`` beside the dataset.
    """
    if split not in ("train", "test"):
        raise ValueError(f"harvest: --split must be train or test, got {split!r}")
    out_dir = Path(out_dir)
    with claim_output(out_dir, "harvest", overwrite=overwrite, accept=("dataset",)):
        if renderer is None:
            from dicrepro.diagrams.render import MermaidRenderer

            with MermaidRenderer(workers=1, progress=False) as r:
                return _harvest(paths, out_dir, split, r, progress)
        return _harvest(paths, out_dir, split, renderer, progress)


def _harvest(paths, out_dir: Path, split: str, renderer, progress: bool) -> HarvestReport:
    report = HarvestReport()
    files = doc_files(paths)
    report.files = len(files)
    roots = [Path(p).resolve() for p in paths]
    blocks = find_blocks(files, report.failures)
    report.blocks = len(blocks)
    seen: set[str] = set()
    unique: list[Block] = []
    for b in blocks:
        b.source = normalise(b.source)
        key = dedupe_key(b.source)
        if key in seen:
            report.duplicates += 1
            continue
        seen.add(key)
        unique.append(b)
    rows = []
    bar = tqdm(total=len(unique), desc="harvest", unit="diagram", disable=not progress)
    for k in range(0, len(unique), 32):  # batches: a failure costs one diagram, progress stays live
        chunk = unique[k:k + 32]
        parsed = parse_mermaid([b.source for b in chunk], renderer=renderer)
        rendered = renderer.render_batch([b.source for b in chunk], progress=False)
        for b, res, img in zip(chunk, parsed, rendered):
            if res.diagram is None or not res.unsupported and res.error:
                # the render's copy of mermaid's message is whole (the parse result keeps its first line)
                msg = img.error if img.error and img.error.startswith("parse error") else res.error
                report.failures.append(Failure(str(b.file), b.line, _one_line(msg or "parse error")))
            elif not img.ok:
                report.failures.append(Failure(str(b.file), b.line, "render error: " + _one_line(img.error)))
            else:
                rows.append(_row(b, res, img.png, split, roots))
        bar.update(len(chunk))
    bar.close()
    for r in rows:
        report.types[r["diagram_type"]] = report.types.get(r["diagram_type"], 0) + 1
        report.languages[r["language"]] = report.languages.get(r["language"], 0) + 1
    report.unsupported = sum(r["source_status"] != "parsed" for r in rows)
    report.rows = len(rows)
    data = {k: [r[k] for r in rows] for k in HARVEST_FEATURES}
    full = Dataset.from_dict(data, features=HARVEST_FEATURES)
    empty = Dataset.from_dict({k: [] for k in HARVEST_FEATURES}, features=HARVEST_FEATURES)
    dd = DatasetDict({"train": full if split == "train" else empty, "test": full if split == "test" else empty})
    save_dataset_atomic(dd, out_dir, kind="harvest")
    fail_path = out_dir.with_name(f"{out_dir.name}_failures.jsonl")
    fail_path.unlink(missing_ok=True)
    for f in report.failures:
        append_jsonl(fail_path, {"file": f.file, "line": f.line, "error": f.error})
    log.info("harvest %s: %s", out_dir, report.text().splitlines()[0])
    return report


def _one_line(msg: str | None) -> str:
    """mermaid's message on one line, without the source excerpt and the ``---^`` pointer under it."""
    lines = [ln for ln in str(msg or "").splitlines()
             if not ln.startswith("...") and not re.fullmatch(r"-*\^", ln.strip())]
    return " ".join(" ".join(lines).split())[:500]


def _row(b: Block, res, png: bytes, split: str, roots: list[Path]) -> dict:
    d: Diagram = res.diagram
    root, remote, commit = git_info(b.file.parent)
    base = Path(root) if root else next((r for r in roots if r == b.file or r in b.file.parents), b.file.parent)
    lic = nearest_license(b.file.parent, base)
    rel = b.file.relative_to(base) if base in b.file.parents else Path(b.file.name)
    digest = hashlib.sha256(b.source.encode("utf-8")).hexdigest()
    seed = int(digest[:15], 16)
    rng = random.Random(seed)
    language = language_of(d, b.source)
    d.language = language
    views = {"global": "", "partial": "", "detail": "", "description": ""}
    if not res.unsupported:
        try:
            views = describe(d, rng)
        except (KeyError, ValueError, IndexError, TypeError) as e:  # a real graph outside our conventions
            log.warning("%s:%d: no description (%s: %s)", b.file, b.line, type(e).__name__, e)
    return {
        "id": f"h-{digest[:16]}", "image": {"bytes": png, "path": None}, "mermaid": b.source,
        "diagram_type": d.diagram_type, "topic": d.title, "area": "", "language": language,
        "graph": d.to_json(), "seed": seed, "source": "harvested", "description": views["description"],
        "view_global": views["global"], "view_partial": views["partial"], "view_detail": views["detail"],
        "split": split, "prompt": caption_prompt(language, rng), "target": views["description"],
        "source_file": str(rel), "source_line": b.line, "source_repo": remote, "source_commit": commit,
        "source_license": str(lic.relative_to(base)) if lic and base in lic.parents else (lic.name if lic else ""),
        "source_status": "parsed" if not res.unsupported else (res.error or "unsupported"),
    }


__all__ = ["harvest", "HarvestReport", "Failure", "Block", "doc_files", "extract_blocks", "normalise",
           "dedupe_key", "git_info", "nearest_license", "language_of", "HARVEST_FEATURES"]
