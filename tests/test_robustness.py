"""Bad input, as a careless or hostile user types it: never a traceback, a hang, a silent wrong result or a
deleted file. Each case runs the real command (``dicrepro.cli.main`` in-process; kill -9 and Ctrl-C in a
subprocess) and asserts its exit status, a message without a traceback, and that nothing outside its
output changed. The hostile Mermaid cases share one renderer and a loopback server that counts any
request a diagram manages to send.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dicrepro.cli import main

REPO = Path(__file__).resolve().parents[1]
GOOD_TEXT = "The UE sends a RegistrationRequest to the AMF, which authenticates it via the AUSF."


# --- the harness --------------------------------------------------------------------------------------

def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root``: a folder marker or the file's hash (FIFOs and devices by type)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "special"
    return out


def changed(before: dict, after: dict) -> set[str]:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


@dataclass
class Case:
    """One command line against a workspace. ``{w}`` in args is the workspace folder."""

    id: str
    args: list[str]
    rc: int
    says: str = ""  # regex the output (stdout + stderr) must match
    setup: object = None  # callable(workspace) preparing the input files
    outputs: tuple[str, ...] = ()  # workspace paths the command may create or change (and their sidecars)
    extra: dict = field(default_factory=dict)


def run_case(case: Case, ws: Path, capsys) -> tuple[int, str]:
    if case.setup is not None:
        case.setup(ws)
    before = snapshot(ws)
    t0 = time.monotonic()
    try:
        rc = main([a.replace("{w}", str(ws)) for a in case.args])
    except SystemExit as e:  # argparse: usage + one line, status 2
        rc = e.code
    secs = time.monotonic() - t0
    out, err = capsys.readouterr()
    text = out + err
    assert "Traceback" not in text, text
    assert "internal error" not in text, text  # an exception nobody foresaw
    assert "cannot be imported (" not in text, text  # the stage-2 import's last-resort catch
    assert rc == case.rc, f"rc {rc}, expected {case.rc}:\n{text}"
    if case.says:
        assert re.search(case.says, text), f"{case.says!r} not in:\n{text}"
    if rc != 0 and case.rc == 2:
        errors = [ln for ln in err.splitlines() if ln.startswith("error:") or ": error:" in ln]
        assert errors, f"no error line:\n{err}"
    allowed = set()
    for o in case.outputs:
        name = Path(o).name
        allowed |= {o, str(Path(o).with_name(f".{name}.lock")), str(Path(o).with_name(f".{name}.tmp")),
                    str(Path(o).with_name(f".{name}.shards")), str(Path(o).with_name(f"{name}_errors.jsonl"))}
    touched = {p for p in changed(before, snapshot(ws))
               if not any(p == a or p.startswith(a + "/") for a in allowed)}
    assert not touched, f"changed outside the output: {sorted(touched)}"
    assert secs < 60, f"took {secs:.0f}s"
    return rc, text


@pytest.fixture
def ws(tmp_path):
    """A workspace with a user's own files that no command may touch."""
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "paper.tex").write_text("\\documentclass{article}\n")
    (tmp_path / "notes.txt").write_text("keep me\n")
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (8, 8), "red").save(tmp_path / "photos" / "diagram.png")
    return tmp_path


def png_bytes(seed: int, size=(96, 64)) -> bytes:
    img = Image.new("RGB", size, "white")
    for x in range(size[0]):
        img.putpixel((x, (x * (seed + 1)) % size[1]), (20, 20, 20))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def huge_png_header(width: int, height: int) -> bytes:
    """A small PNG whose header claims width x height."""
    data = bytearray(png_bytes(0, (1, 1)))
    ihdr = bytearray(data[12:29])
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


# --- params: `dicrepro check` -------------------------------------------------------------------------

def nest(dotted: str, value: str) -> str:
    *parents, leaf = dotted.split(".")
    lines = [f"{'  ' * i}{p}:" for i, p in enumerate(parents)]
    return "\n".join(lines + [f"{'  ' * len(parents)}{leaf}: {value}"]) + "\n"


BAD_VALUES = [  # (dotted key, YAML value, what the message says)
    ("seed", "abc", "valid integer"), ("seed", "1.5", "integer"), ("seed", "[1]", "integer"),
    ("seed", "true", "expected int"), ("name", "{a: 1}", "string"),
    ("stage1.n", "0", "greater than or equal to 1"), ("stage1.n", "-5", "greater than"),
    ("stage1.n", "true", "expected int"), ("stage1.n", ".inf", "finite|integer"), ("stage1.n", "''", "integer"),
    ("stage1.test_n", "-2", "greater than"), ("stage1.diagram_types", "[]", "at least 1"),
    ("stage1.diagram_types", "[flowchart, photo]", "flowchart"), ("stage1.diagram_types", "flowchart", "list"),
    ("stage1.languages", "{en: .nan}", "finite"), ("stage1.languages", "{en: -1, zh: 2}", "negative"),
    ("stage1.languages", "{en: 0}", "positive weight"), ("stage1.languages", "{fr: 1}", "unknown language"),
    ("stage1.languages", "{}", "positive weight"), ("stage1.min_elements", "1", "greater than"),
    ("render.scale", ".inf", "finite"), ("render.scale", "0", "greater than 0"),
    ("render.timeout_s", ".nan", "finite"), ("render.timeout_s", "-1", "greater than 0"),
    ("render.workers", "0", "greater than"), ("render.width", "10", "greater than"),
    ("model.kind", "huge", "'tiny' or 'local'"), ("model.kind", "local", "model.path is required"),
    ("model.min_pixels", "99999999", "larger than model.max_pixels"),
    ("model.tiny.hidden_size", "130", "divisible"), ("model.tiny.num_key_value_heads", "3", "divisible"),
    ("model.tiny.vision_heads", "3", "multiple of 4"), ("model.tiny.pretrain_lr", "-1", "greater than 0"),
    ("sft.lora.dropout", "1.5", "less than 1"), ("sft.replay", "2", "less than or equal to 1"),
    ("sft.replay", "false", "expected"), ("sft.backend", "tensorflow", "auto"),
    ("sft.batch_size", "0", "greater than"), ("sft.warmup_ratio", ".nan", "finite"),
    ("stage2.annotations", "/nonexistent/pairs.jsonl", "does not exist"),
    ("describe.backend", "gpt", "verbalizer"), ("describe.timeout_s", ".inf", "finite"),
    ("eval.max_new_tokens", "0", "greater than"), ("eval.baselines", "[{name: x, path: /nonexistent}]",
                                                   "does not exist"),
    ("run_dir", "''", "not empty"), ("figures_dir", "'  '", "not empty"), ("run_dir", "[a, b]", "path"),
    ("stage3.questions_per_diagram", "0", "greater than"), ("stage1.unknown_knob", "1", "unknown key"),
    ("model.path", "$DICREPRO_SURELY_UNSET_VAR", "environment variable"),
]

BAD_YAML = {  # whole files
    "duplicate-key": ("seed: 1\nseed: 2\n", "duplicate key 'seed'"),
    "duplicate-nested-key": ("stage1:\n  n: 3\n  n: 4\n", "duplicate key 'n'"),
    "recursive-alias": ("stage1: &a\n  x: *a\n", "recursive alias"),
    "recursive-alias-list": ("a: &a [*a]\n", "recursive alias"),
    "alias-bomb": ("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi")), "alias bomb"),
    "undefined-alias": ("seed: *nope\n", "undefined alias"),
    "python-tag": ("seed: !!python/object/apply:os.system ['true']\n", "constructor"),
    "tabs": ("stage1:\n\tn: 3\n", "not valid YAML"),
    "unclosed": ("stage1: {n: 3\n", "not valid YAML"),
    "top-level-list": ("- 1\n- 2\n", "mapping at the top level"),
    "top-level-scalar": ("just text\n", "mapping at the top level"),
    "deep-nesting": ("a: " + "[" * 5000 + "]" * 5000 + "\n", "not valid YAML"),
    "binary": ("\x00\x01\x02garbage", "not valid YAML"),
    "list-key": ("? [a, b]\n: 1\n", "not valid YAML|unhashable|unknown key|valid string"),
}


def _write(name: str, data: bytes | str):
    def setup(ws: Path):
        p = ws / name
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return setup


def params_cases() -> list[Case]:
    cases = [Case(f"check-{k}={v}"[:60], ["check", "{w}/p.yaml"], 2, "(?s)" + re.escape(k.split(".")[0]) + r".*" + says,
                  setup=_write("p.yaml", nest(k, v))) for k, v, says in BAD_VALUES]
    cases += [Case(f"check-{name}", ["check", "{w}/p.yaml"], 2, says, setup=_write("p.yaml", text))
              for name, (text, says) in BAD_YAML.items()]

    def fifo(ws):
        os.mkfifo(ws / "p.yaml")

    def big(ws):
        (ws / "p.yaml").write_text("# " + "x" * (2 << 20) + "\n")

    cases += [
        Case("check-folder", ["check", "{w}/thesis"], 2, "Is a directory"),
        Case("check-missing", ["check", "{w}/nope.yaml"], 2, "not found"),
        Case("check-fifo", ["check", "{w}/p.yaml"], 2, "not a regular file", setup=fifo),
        Case("check-dev-zero", ["check", "/dev/zero"], 2, "not a regular file"),
        Case("check-2MB", ["check", "{w}/p.yaml"], 2, "far smaller", setup=big),
        Case("check-latin1", ["check", "{w}/p.yaml"], 2, "not UTF-8", setup=_write("p.yaml", b"name: caf\xe9\n")),
        Case("check-utf16", ["check", "{w}/p.yaml"], 2, "not UTF-8",
             setup=_write("p.yaml", "name: x\n".encode("utf-16"))),
        Case("check-empty-is-defaults", ["check", "{w}/p.yaml"], 0, "valid", setup=_write("p.yaml", "")),
        Case("check-merge-keys-ok", ["check", "{w}/p.yaml"], 0, "valid",
             setup=_write("p.yaml", "stage2: &b {n: 5, test_n: 2}\nstage1:\n  <<: *b\n  n: 7\n")),
        Case("check-shipped-tiny", ["check", str(REPO / "params" / "tiny.yaml")], 0, "valid"),
    ]
    return cases


# --- model folders named by params (`dicrepro check`) --------------------------------------------------

def safetensors_bytes(header: dict, payload: bytes = b"") -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + payload


MODEL_FOLDERS = {  # name -> (files, what the message says); files: relative path -> bytes (None: folder)
    "empty": ({}, "no config.json"),
    "garbage-config": ({"config.json": b"{not json"}, "not valid JSON"),
    "config-list": ({"config.json": b"[1, 2]"}, "has no 'model_type'"),
    "config-latin1": ({"config.json": b'{"model_type": "caf\xe9"}'}, "not valid JSON"),
    "no-weights": ({"config.json": b'{"model_type": "qwen2_5_vl"}'}, "no weights"),
    "zero-byte-safetensors": ({"config.json": b'{"model_type": "qwen2_5_vl"}', "model.safetensors": b""},
                              "empty or truncated"),
    "garbage-safetensors": ({"config.json": b'{"model_type": "qwen2_5_vl"}',
                             "model.safetensors": b"\xff" * 64}, "not a safetensors file"),
    "truncated-safetensors": ({"config.json": b'{"model_type": "qwen2_5_vl"}', "model.safetensors":
                               safetensors_bytes({"w": {"dtype": "F32", "shape": [4],
                                                        "data_offsets": [0, 16]}}, b"\0" * 4)}, "truncated"),
    "no-tensors": ({"config.json": b'{"model_type": "qwen2_5_vl"}',
                    "model.safetensors": safetensors_bytes({"__metadata__": {}})}, "holds no tensors"),
    "header-not-object": ({"config.json": b'{"model_type": "qwen2_5_vl"}',
                           "model.safetensors": safetensors_bytes([1, 2])}, "not a safetensors file"),
    "pickle-bin": ({"config.json": b'{"model_type": "qwen2_5_vl"}', "pytorch_model.bin": b"\x80\x04K\x01."},
                   "pickle"),
    "pickle-pt": ({"config.json": b'{"model_type": "qwen2_5_vl"}', "weights.pt": b"\x80\x04K\x01."}, "pickle"),
    "index-missing-shard": ({"config.json": b'{"model_type": "qwen2_5_vl"}', "model.safetensors.index.json":
                             b'{"weight_map": {"w": "model-00001.safetensors"}}'}, "missing shard"),
    "index-garbage": ({"config.json": b'{"model_type": "qwen2_5_vl"}',
                       "model.safetensors.index.json": b"[]"}, "not a safetensors index"),
    "config-is-folder": ({"config.json": None}, "no config.json"),
    "no-processor": ({"config.json": b'{"model_type": "qwen2_5_vl"}', "model.safetensors":
                      safetensors_bytes({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4)},
                     "no tokenizer"),
}


def model_cases() -> list[Case]:
    cases = []
    for name, (files, says) in MODEL_FOLDERS.items():
        def setup(ws, files=files, name=name):
            folder = ws / "models" / name
            folder.mkdir(parents=True)
            for rel, data in files.items():
                (folder / rel).mkdir() if data is None else (folder / rel).write_bytes(data)
            (ws / "p.yaml").write_text(f"model:\n  kind: local\n  path: {folder}\n")
        cases.append(Case(f"model-{name}", ["check", "{w}/p.yaml"], 2, says, setup=setup))

    def baseline(ws, path):
        (ws / "p.yaml").write_text(f"eval:\n  baselines:\n    - name: b\n      path: {path}\n")

    cases += [
        Case("model-file-not-folder", ["check", "{w}/p.yaml"], 2, "is a file, not a folder",
             setup=lambda ws: (ws / "p.yaml").write_text(f"model:\n  kind: local\n  path: {ws / 'notes.txt'}\n")),
        Case("model-missing", ["check", "{w}/p.yaml"], 2, "does not exist",
             setup=lambda ws: (ws / "p.yaml").write_text(f"model:\n  kind: local\n  path: {ws / 'nope'}\n")),
        Case("baseline-empty-folder", ["check", "{w}/p.yaml"], 2, r"eval.baselines\[b\].*no config.json",
             setup=lambda ws: baseline(ws, ws / "thesis")),
        Case("baseline-missing", ["check", "{w}/p.yaml"], 2, "does not exist",
             setup=lambda ws: baseline(ws, ws / "nope")),
    ]
    return cases


# --- stage-2 import: `dicrepro expert` ---------------------------------------------------------------

def _images(ws: Path) -> None:
    for i in range(3):
        (ws / f"img{i}.png").write_bytes(png_bytes(i))


HOSTILE_ROWS = {  # name -> (JSONL line, field, reason); each file also has one good row first
    "number": ("42", r"\(row\)", "JSON object, not a number"),
    "string": ('"text"', r"\(row\)", "JSON object, not a string"),
    "list": ('["img1.png", "text"]', r"\(row\)", "JSON object, not a list"),
    "null": ("null", r"\(row\)", "JSON object, not null"),
    "bad-json": ("{not json", r"\(row\)", "not valid JSON"),
    "deep-json": ("[" * 100000, r"\(row\)", "nested too deeply"),
    "nul-path": (json.dumps({"image": "img1\0.png", "text": GOOD_TEXT + " 1"}), "image", "NUL"),
    "number-path": (json.dumps({"image": 5, "text": GOOD_TEXT + " 1"}), "image", "must be a path"),
    "dict-path": (json.dumps({"image": {"p": "img1.png"}, "text": GOOD_TEXT + " 1"}), "image", "must be a path"),
    "missing-image": (json.dumps({"image": "nope.png", "text": GOOD_TEXT + " 1"}), "image", "not found"),
    "no-image-key": (json.dumps({"text": GOOD_TEXT + " 1"}), "image", "missing image path"),
    "dict-text": (json.dumps({"image": "img1.png", "text": {"en": GOOD_TEXT}}), "text", "must be a string"),
    "number-text": (json.dumps({"image": "img1.png", "text": 1234567890123}), "text", "must be a string"),
    "list-text": (json.dumps({"image": "img1.png", "text": [GOOD_TEXT]}), "text", "must be a string"),
    "bool-text": (json.dumps({"image": "img1.png", "text": True}), "text", "must be a string"),
    "empty-text": (json.dumps({"image": "img1.png", "text": "   "}), "text", "empty or missing"),
    "short-text": (json.dumps({"image": "img1.png", "text": "ok"}), "text", "too short"),
    "long-text": (json.dumps({"image": "img1.png", "text": "x" * 9000}), "text", "too long"),
    "duplicate-id": (json.dumps({"id": "a", "image": "img1.png", "text": GOOD_TEXT + " 1"}), "id", "duplicate id"),
    "dict-id": (json.dumps({"id": {"x": 1}, "image": "img1.png", "text": GOOD_TEXT + " 1"}), "id", "string or"),
    "bool-id": (json.dumps({"id": False, "image": "img1.png", "text": GOOD_TEXT + " 1"}), "id", "string or"),
    "duplicate-text": (json.dumps({"image": "img1.png", "text": GOOD_TEXT}), "text", "duplicate of"),
    "same-image": (json.dumps({"image": "img0.png", "text": GOOD_TEXT + " 1"}), "image", "same image as"),
    "number-type": (json.dumps({"image": "img1.png", "text": GOOD_TEXT + " 1", "diagram_type": 3}),
                    "diagram_type", "must be a string"),
    "huge-png": (json.dumps({"image": "huge.png", "text": GOOD_TEXT + " 1"}), "image", "over the limit"),
    "big-png": (json.dumps({"image": "big.png", "text": GOOD_TEXT + " 1"}), "image", "9000x9000 pixels"),
    "dev-zero": (json.dumps({"image": "zero.png", "text": GOOD_TEXT + " 1"}), "image", "not a regular file"),
    "dev-zero-abs": (json.dumps({"image": "/dev/zero", "text": GOOD_TEXT + " 1"}), "image", "not a regular file"),
    "fifo": (json.dumps({"image": "fifo.png", "text": GOOD_TEXT + " 1"}), "image", "not a regular file"),
    "folder": (json.dumps({"image": "thesis", "text": GOOD_TEXT + " 1"}), "image", "not a regular file"),
    "corrupt-png": (json.dumps({"image": "corrupt.png", "text": GOOD_TEXT + " 1"}), "image", "corrupt"),
    "text-file-as-image": (json.dumps({"image": "notes.txt", "text": GOOD_TEXT + " 1"}), "image", "corrupt"),
    "truncated-png": (json.dumps({"image": "trunc.png", "text": GOOD_TEXT + " 1"}), "image", "corrupt"),
}


def _hostile_files(ws: Path) -> None:
    _images(ws)
    (ws / "huge.png").write_bytes(huge_png_header(30000, 30000))
    (ws / "big.png").write_bytes(huge_png_header(9000, 9000))
    (ws / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (ws / "trunc.png").write_bytes(png_bytes(5, (300, 200))[:200])
    os.symlink("/dev/zero", ws / "zero.png")
    os.mkfifo(ws / "fifo.png")


def expert_cases() -> list[Case]:
    good = json.dumps({"id": "a", "image": "img0.png", "text": GOOD_TEXT})
    cases = []
    for name, (line, fld, reason) in HOSTILE_ROWS.items():
        def setup(ws, line=line):
            _hostile_files(ws)
            (ws / "ann.jsonl").write_text(good + "\n" + line + "\n")
        cases.append(Case(f"expert-jsonl-{name}", ["expert", "{w}/ann.jsonl", "--out", "{w}/out"], 0,
                          rf"ann\.jsonl:2: {fld}: .*{reason}(.|\n)*1 valid rows, 1 problems",
                          setup=setup, outputs=("out",)))
    for name in ("number", "nul-path", "dict-text", "dev-zero", "huge-png"):  # nothing good: exit 2, no output
        def setup(ws, line=HOSTILE_ROWS[name][0]):
            _hostile_files(ws)
            (ws / "ann.jsonl").write_text(line + "\n")
        cases.append(Case(f"expert-only-bad-{name}", ["expert", "{w}/ann.jsonl", "--out", "{w}/out"], 2,
                          "no row could be imported", setup=setup))

    def csv_case(body: bytes | str):
        def setup(ws):
            _images(ws)
            (ws / "ann.csv").write_bytes(body if isinstance(body, bytes) else body.encode())
        return setup

    head = f'image,text\nimg0.png,"{GOOD_TEXT}"\n'
    cases += [
        Case("expert-csv-128k-field", ["expert", "{w}/ann.csv", "--out", "{w}/out"], 0,
             r"ann\.csv:\d+: \(row\): CSV: field larger", setup=csv_case(head + f'img1.png,"{"x" * 200_000}"\n'),
             outputs=("out",)),
        Case("expert-csv-extra-fields", ["expert", "{w}/ann.csv", "--out", "{w}/out"], 0, "more fields than",
             setup=csv_case(head + "img1.png,text,extra,more\n"), outputs=("out",)),
        Case("expert-csv-latin1-row", ["expert", "{w}/ann.csv", "--out", "{w}/out"], 0, r"ann\.csv:3: text: not UTF-8",
             setup=csv_case(head.encode() + b'img1.png,"caf\xe9 au lait with a long enough text"\n'),
             outputs=("out",)),
        Case("expert-csv-utf16", ["expert", "{w}/ann.csv", "--out", "{w}/out"], 0, "1 valid rows, 0 problems",
             setup=csv_case(head.encode("utf-16")), outputs=("out",)),
        Case("expert-csv-no-text-column", ["expert", "{w}/ann.csv", "--out", "{w}/out"], 2,
             "empty or missing text", setup=csv_case("image,caption_x\nimg0.png,hello there friend\n")),
        Case("expert-csv-empty", ["expert", "{w}/ann.csv", "--out", "{w}/out"], 2, "no row could be imported",
             setup=csv_case("")),
    ]

    def ls_case(tasks):
        def setup(ws):
            _images(ws)
            (ws / "export.json").write_text(json.dumps(tasks))
        return setup

    good_task = {"id": 1, "data": {"image": "/data/local-files/?d=img0.png"},
                 "annotations": [{"result": [{"value": {"text": [GOOD_TEXT]}}]}]}
    for name, bad in {"number-task": 5, "data-string": {"data": "img1.png"},
                      "result-string": {"annotations": [{"result": "text"}]},
                      "value-number": {"annotations": [{"result": [{"value": 3}]}]},
                      "annotation-string": {"annotations": ["x"]},
                      "annotations-dict": {"annotations": {"result": []}},
                      "text-dict": {"id": 2, "data": {"image": "img1.png"},
                                    "annotations": [{"result": [{"value": {"text": {"a": 1}}}]}]},
                      "image-number": {"id": 3, "data": {"image": 7},
                                       "annotations": [{"result": [{"value": {"text": GOOD_TEXT + " 2"}}]}]},
                      }.items():
        cases.append(Case(f"expert-labelstudio-{name}", ["expert", "{w}/export.json", "--out", "{w}/out"], 0,
                          r"export\.json:2: ", setup=ls_case([good_task, bad]), outputs=("out",)))
    cases += [
        Case("expert-labelstudio-not-list", ["expert", "{w}/export.json", "--out", "{w}/out"], 2,
             "JSON list of tasks", setup=ls_case({"tasks": []})),
    ]

    def folder_case(ws):
        d = ws / "ann"
        d.mkdir()
        (d / "a.png").write_bytes(png_bytes(0))
        (d / "a.txt").write_text(GOOD_TEXT)
        (d / "b.png").write_bytes(png_bytes(1))
        (d / "b.txt").write_bytes(b"caf\xe9 latin-1 description of a diagram")
        (d / "c.png").write_bytes(png_bytes(2))
        os.mkfifo(d / "c.txt")
        os.symlink("/dev/zero", d / "z.png")
        (d / "z.txt").write_text(GOOD_TEXT + " z")

    cases += [
        Case("expert-folder-hostile", ["expert", "{w}/ann", "--out", "{w}/out"], 0,
             r"b\.txt: text: not UTF-8(.|\n)*c\.txt: \(row\): cannot read c\.txt: not a regular file"
             r"(.|\n)*z\.txt: image: .*not a regular file(.|\n)*1 valid rows, 3 problems",
             setup=folder_case, outputs=("out",)),
        Case("expert-missing-source", ["expert", "{w}/nope.jsonl", "--out", "{w}/out"], 2, "does not exist"),
        Case("expert-unknown-format", ["expert", "{w}/notes.txt", "--out", "{w}/out"], 2, "unknown annotation format"),
        Case("expert-fifo-source", ["expert", "{w}/a.jsonl", "--out", "{w}/out"], 2, "not a regular file",
             setup=lambda ws: os.mkfifo(ws / "a.jsonl")),
        Case("expert-out-is-users-folder", ["expert", "{w}/ann.jsonl", "--out", "{w}/thesis"], 2,
             "not an output of dicrepro", setup=lambda ws: (_images(ws), (ws / "ann.jsonl").write_text(good + "\n"))),
        Case("expert-out-is-a-file", ["expert", "{w}/ann.jsonl", "--out", "{w}/notes.txt"], 2, "is a file",
             setup=lambda ws: (_images(ws), (ws / "ann.jsonl").write_text(good + "\n"))),
        Case("expert-test-n-negative", ["expert", "{w}/ann.jsonl", "--out", "{w}/out", "--test-n", "-1"], 2,
             "must be 0 or more"),
    ]
    return cases


# --- metrics ------------------------------------------------------------------------------------------

REF = [{"id": f"d{i}", "text": t} for i, t in enumerate(
    ["the ue sends a registration request to the amf", "the amf forwards the request to the ausf"])]


def metrics_cases() -> list[Case]:
    good = "".join(json.dumps(r) + "\n" for r in REF)
    bad_lines = {
        "number": ("42", "a line must be a JSON object"), "list": ('["d1", "x"]', "a line must be a JSON object"),
        "string": ('"d1"', "a line must be a JSON object"), "null": ("null", "a line must be a JSON object"),
        "dict-text": ('{"id": "d1", "text": {"a": 1}}', "text: must be a string"),
        "number-text": ('{"id": "d1", "text": 5}', "text: must be a string"),
        "null-text": ('{"id": "d1", "text": null}', "text: must be a string"),
        "list-text": ('{"id": "d1", "text": ["a"]}', "text: must be a string"),
        "null-id": ('{"id": null, "text": "a"}', "id: must be"), "list-id": ('{"id": [1], "text": "a"}', "id: must be"),
        "bool-id": ('{"id": true, "text": "a"}', "id: must be"),
        "no-id": ('{"text": "a"}', "no 'id' field"), "no-text": ('{"id": "d1"}', "no 'text' field"),
        "duplicate-id": ('{"id": "d0", "text": "a"}', "id 'd0' appears twice"),
        "number-language": ('{"id": "d1", "text": "a", "language": 5}', "language: must be a string"),
        "bad-json": ("{nope", "not valid JSON"), "deep-json": ("[" * 100000, "not valid JSON"),
        "extra-id": ('{"id": "zzz", "text": "a"}', "for id"),
    }
    cases = []
    for side in ("pred", "ref"):
        for name, (line, says) in bad_lines.items():
            body = json.dumps(REF[0]) + "\n" + line + "\n"
            other = "ref" if side == "pred" else "pred"

            def setup(ws, body=body, side=side, other=other):
                (ws / f"{side}.jsonl").write_text(body)
                (ws / f"{other}.jsonl").write_text(good)
            cases.append(Case(f"metrics-{side}-{name}", ["metrics", "--pred", "{w}/pred.jsonl", "--ref",
                                                         "{w}/ref.jsonl"], 2,
                              (rf"{side}\.jsonl:2: " if name != "extra-id" else "") + re.escape(says), setup=setup))

    def files(pred: bytes | None, ref: bytes | None):
        def setup(ws):
            if pred is not None:
                (ws / "pred.jsonl").write_bytes(pred)
            if ref is not None:
                (ws / "ref.jsonl").write_bytes(ref)
        return setup

    args = ["metrics", "--pred", "{w}/pred.jsonl", "--ref", "{w}/ref.jsonl"]
    cases += [
        Case("metrics-pred-folder", ["metrics", "--pred", "{w}/thesis", "--ref", "{w}/ref.jsonl"], 2, "thesis",
             setup=files(None, good.encode())),
        Case("metrics-pred-missing", args, 2, "No such file", setup=files(None, good.encode())),
        Case("metrics-pred-dev-zero", ["metrics", "--pred", "/dev/zero", "--ref", "{w}/ref.jsonl"], 2,
             "not a regular file", setup=files(None, good.encode())),
        Case("metrics-pred-latin1", args, 2, r"pred\.jsonl:1: not UTF-8",
             setup=files(b'{"id": "d0", "text": "caf\xe9"}\n', good.encode())),
        Case("metrics-pred-empty", args, 2, "no rows", setup=files(b"", good.encode())),
        Case("metrics-good", args, 0, '"bleu4"', setup=files(good.encode(), good.encode())),
        Case("metrics-good-bom", args, 0, '"bleu4"', setup=files(b"\xef\xbb\xbf" + good.encode(), good.encode())),
    ]
    return cases


# --- render: options and paths (no browser needed) ----------------------------------------------------

def render_cli_cases() -> list[Case]:
    mmd = _write("a.mmd", "flowchart TD\n  A --> B\n")
    cases = [Case(f"render-{opt}={val}", ["render", "{w}/a.mmd", "--out", "{w}/png", opt, val], 2, says,
                  setup=mmd)
             for opt, val, says in [("--workers", "0", "at least 1"), ("--workers", "-3", "at least 1"),
                                    ("--workers", "two", "not a whole number"), ("--timeout", "nan", "finite"),
                                    ("--timeout", "inf", "finite"), ("--timeout", "-1", "> 0"),
                                    ("--timeout", "0", "> 0"), ("--timeout", "soon", "not a number")]]

    def fifo(ws):
        os.mkfifo(ws / "pipe.mmd")

    def clash(ws):
        (ws / "diagram.mmd").write_text("flowchart TD\n  A --> B\n")

    cases += [
        Case("render-out-is-a-file", ["render", "{w}/a.mmd", "--out", "{w}/notes.txt"], 2, "is a file", setup=mmd),
        Case("render-out-under-a-file", ["render", "{w}/a.mmd", "--out", "{w}/notes.txt/png"], 2,
             "notes.txt is a file", setup=mmd),
        Case("render-would-replace-a-users-png", ["render", "{w}/diagram.mmd", "--out", "{w}/photos"], 2,
             "diagram.png exists and was not written by dicrepro render", setup=clash),
        Case("render-fifo-input", ["render", "{w}/pipe.mmd", "--out", "{w}/png"], 1, "not a regular file",
             setup=fifo, outputs=("png",)),
        Case("render-folder-input", ["render", "{w}/thesis", "--out", "{w}/png"], 1, "not a regular file",
             outputs=("png",)),
        Case("render-dev-zero-input", ["render", "/dev/zero", "--out", "{w}/png"], 1, "not a regular file",
             outputs=("png",)),
        Case("render-missing-input", ["render", "{w}/nope.mmd", "--out", "{w}/png"], 1, "No such file",
             outputs=("png",)),
        Case("render-2MB-input", ["render", "{w}/big.mmd", "--out", "{w}/png"], 1, "bytes, more than",
             setup=_write("big.mmd", "flowchart TD\n" + "%% x\n" * 400_000), outputs=("png",)),
        Case("render-latin1-input", ["render", "{w}/l.mmd", "--out", "{w}/png"], 1, "cannot read",
             setup=_write("l.mmd", b"flowchart TD\n  A[caf\xe9]\n"), outputs=("png",)),
    ]
    return cases


# --- synth and augment: arguments and outputs (fail before any rendering) -----------------------------

def _small_dataset(folder: Path) -> None:
    from datasets import Dataset, DatasetDict

    from dicrepro.atomic import save_dataset_atomic
    from dicrepro.data.synth import FEATURES

    def split(name, n):
        rows = []
        for i in range(n):
            row = {k: "" for k in FEATURES}
            row.update(id=f"{name}-{i}", image={"bytes": png_bytes(i), "path": None}, seed=i, split=name)
            rows.append(row)
        return Dataset.from_dict({k: [r[k] for r in rows] for k in FEATURES}, features=FEATURES)

    save_dataset_atomic(DatasetDict({"train": split("train", 2), "test": split("test", 1)}), folder, kind="synth")


def synth_cases() -> list[Case]:
    synth = ["synth", "--params", str(REPO / "params" / "tiny.yaml")]
    cases = [Case(f"synth-{'_'.join(a)}", synth + a + ["--out", "{w}/ds"], 2, says)
             for a, says in [(["--n", "0"], "at least 1"), (["--n", "-5"], "at least 1"),
                             (["--n", "abc"], "not a whole number"), (["--n", "1.5"], "not a whole number"),
                             (["--n", "3", "--test-n", "-2"], "0 or more"), (["--n", "3", "--seed", "x"], "invalid int"),
                             ([], "required: --n")]]
    cases += [
        Case("synth-out-users-folder", synth + ["--n", "3", "--out", "{w}/thesis"], 2, "not an output of dicrepro"),
        Case("synth-out-users-file", synth + ["--n", "3", "--out", "{w}/notes.txt"], 2, "is a file"),
        Case("synth-out-under-a-file", synth + ["--n", "3", "--out", "{w}/notes.txt/sub"], 2, "notes.txt is a file"),
        Case("synth-out-augment-output", synth + ["--n", "3", "--out", "{w}/aug"], 2, "a dicrepro augment output",
             setup=lambda ws: (ws / "aug").mkdir() or (ws / "aug" / ".dicrepro-output.json").write_text(
                 '{"kind": "augment", "written_by": "dicrepro"}')),
        Case("synth-params-folder", ["synth", "--n", "3", "--out", "{w}/ds", "--params", "{w}/thesis"], 2,
             "Is a directory"),
        Case("synth-params-missing", ["synth", "--n", "3", "--out", "{w}/ds", "--params", "{w}/nope.yaml"], 2,
             "not found"),
        Case("synth-params-invalid", ["synth", "--n", "3", "--out", "{w}/ds", "--params", "{w}/p.yaml"], 2,
             "duplicate key", setup=_write("p.yaml", "seed: 1\nseed: 2\n")),
    ]
    aug = ["augment", "{w}/src", "--out"]
    with_src = lambda ws: _small_dataset(ws / "src")
    cases += [
        Case("augment-out-users-folder", aug + ["{w}/thesis"], 2, "not an output of dicrepro", setup=with_src),
        Case("augment-out-users-file", aug + ["{w}/notes.txt"], 2, "is a file", setup=with_src),
        Case("augment-out-is-src", aug + ["{w}/src"], 2, "must differ from the source", setup=with_src),
        Case("augment-out-inside-src", aug + ["{w}/src/aug"], 2, "must not lie inside", setup=with_src),
        Case("augment-out-holds-src", aug + ["{w}", "--overwrite"], 2, "holds the source", setup=with_src),
        Case("augment-out-synth-output", aug + ["{w}/other"], 2, "a dicrepro synth output",
             setup=lambda ws: (with_src(ws), _small_dataset(ws / "other"))),
        Case("augment-src-missing", ["augment", "{w}/nope", "--out", "{w}/aug"], 2, "not a saved DatasetDict"),
        Case("augment-src-users-folder", ["augment", "{w}/thesis", "--out", "{w}/aug"], 2, "not a saved DatasetDict"),
        Case("augment-copies-negative", aug + ["{w}/aug", "--copies", "-1"], 2, "0 or more", setup=with_src),
        Case("augment-unknown-kind", aug + ["{w}/aug", "--kinds", "sepia"], 2, "unknown kind", setup=with_src),
        Case("augment-good", aug + ["{w}/aug", "--kinds", "jpeg"], 0, "augmented", setup=with_src,
             outputs=("aug",)),
        Case("augment-rerun-replaces-own-output", aug + ["{w}/aug", "--kinds", "jpeg"], 0, "augmented",
             setup=lambda ws: (with_src(ws), main(["augment", str(ws / "src"), "--out", str(ws / "aug")])),
             outputs=("aug",)),
    ]
    return cases


ALL_CASES = params_cases() + model_cases() + expert_cases() + metrics_cases() + render_cli_cases() + synth_cases()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", ALL_CASES, ids=[c.id for c in ALL_CASES])
def test_bad_input_through_the_cli(case, ws, capsys):
    run_case(case, ws, capsys)


def test_the_suite_would_see_a_traceback_a_wrong_status_and_a_touched_file(ws, capsys, monkeypatch):
    """The harness is not blind: -v shows the traceback it rejects, a wrong status fails a case, and so
    does a command that writes outside its output."""
    from dicrepro import cli

    (ws / "p.yaml").write_text("seed: 1\nseed: 2\n")
    with pytest.raises(AssertionError, match="Traceback"):
        run_case(Case("verbose", ["-v", "check", "{w}/p.yaml"], 2), ws, capsys)
    with pytest.raises(AssertionError, match="rc 2, expected 0"):
        run_case(Case("wrong-rc", ["check", "{w}/p.yaml"], 0), ws, capsys)

    def careless(a):
        (ws / "notes.txt").write_text("overwritten")
        return 0

    monkeypatch.setattr(cli, "_cmd_check", careless)
    with pytest.raises(AssertionError, match=r"changed outside the output: \['notes.txt'\]"):
        run_case(Case("touches", ["check", "{w}/p.yaml"], 0), ws, capsys)


def test_ctrl_c_is_one_line_and_status_130(ws, capsys, monkeypatch):
    from dicrepro.data import expert

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(expert, "import_annotations", interrupted)
    (ws / "a.jsonl").write_text("{}\n")
    assert main(["expert", str(ws / "a.jsonl"), "--out", str(ws / "out")]) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["interrupted (a rerun resumes where this one stopped)"]


# --- hostile Mermaid: one renderer, a loopback server that counts what gets out ------------------------

class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):
        _Counter.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"x")

    do_POST = do_GET

    def log_message(self, *a):
        pass


@pytest.fixture(scope="module")
def trap():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def hostile_mermaid(url: str) -> dict[str, tuple[str, str]]:
    """name -> (source, expectation): 'ok' (a real picture), 'fail' (an error), 'either'."""
    big_label = "X" * 5000
    return {
        "script-tag-label": (f'flowchart LR\n  A["<script>fetch(\'{url}/script\')</script>"] --> B', "either"),
        "img-onerror": (f'flowchart LR\n  A["<img src=x onerror=\\"fetch(\'{url}/onerror\')\\">"] --> B', "either"),
        "img-remote": (f'flowchart LR\n  A["<img src=\'{url}/img.png\'/> logo"] --> B', "either"),
        "iframe": (f'flowchart LR\n  A["<iframe src=\'{url}/iframe\'></iframe>"] --> B', "either"),
        "click-callback": (f"flowchart LR\n  A --> B\n  click A call fetch(\"{url}/click\")", "either"),
        "click-href": (f'flowchart LR\n  A --> B\n  click A "{url}/href" _blank', "either"),
        "javascript-href": ('flowchart LR\n  A --> B\n  click A "javascript:fetch(1)"', "either"),
        "init-loose": (f'%%{{init: {{"securityLevel": "loose"}}}}%%\nflowchart LR\n  A["<img src=\'{url}/loose\'>"]',
                       "either"),
        "init-maxtextsize": ('%%{init: {"maxTextSize": 99999999}}%%\nflowchart TD\n' + "  A-->B\n" * 7000, "fail"),
        "theme-css-import": (f'%%{{init: {{"themeCSS": "@import url({url}/css); .node {{fill: red}}"}}}}%%\n'
                             "flowchart LR\n  A --> B", "either"),
        "theme-css-bg": (f'%%{{init: {{"themeCSS": ".node rect {{fill: url({url}/bg)}}"}}}}%%\nflowchart LR\n  A-->B',
                         "either"),
        "fontawesome": ("flowchart LR\n  A[fa:fa-car Car] --> B", "either"),
        "style-url": (f"flowchart LR\n  A --> B\n  style A fill:url({url}/style)", "either"),
        "sequence-link": (f"sequenceDiagram\n  participant A\n  link A: Home @ {url}/link\n  A->>A: x", "either"),
        "class-link": (f'classDiagram\n  class A\n  link A "{url}/class" "t"', "either"),
        "markdown-img": (f'flowchart LR\n  A["`![x]({url}/md.png)`"] --> B', "either"),
        "unterminated": ("flowchart TD\n  A[unclosed --> B", "fail"),
        "dangling-arrow": ("flowchart TD\n  A --> B -->", "fail"),
        "unknown-type": ("notADiagram\n  x", "fail"),
        "empty": ("", "fail"),
        "whitespace": ("   \n\n  ", "fail"),
        "only-comment": ("%% nothing here", "fail"),
        "empty-flowchart": ("flowchart TD", "fail"),
        "empty-state": ("stateDiagram-v2", "fail"),
        "empty-er": ("erDiagram", "fail"),
        "empty-sequence": ("sequenceDiagram", "fail"),
        "empty-class": ("classDiagram", "fail"),
        "over-maxtextsize": ("flowchart TD\n" + "  A-->B\n" * 7000, "fail"),
        "huge-label": (f"flowchart TD\n  A[{big_label}] --> B", "either"),
        "1000-nodes": ("flowchart TD\n" + "".join(f"  N{i} --> N{i + 1}\n" for i in range(1000)), "either"),
        "dense-cycle": ("flowchart TD\n" + "".join(f"  N{i} --> N{j}\n" for i in range(12) for j in range(12)),
                        "either"),
        "deep-subgraphs": ("flowchart TD\n" + "".join(f"{'  ' * i}subgraph S{i}\n" for i in range(40)) + "A-->B\n"
                           + "".join("end\n" for _ in range(40)), "either"),
        "nul-byte": ("flowchart TD\n  A[a\0b] --> B", "either"),
        "control-chars": ("flowchart TD\n  A[a\x01\x02\x1b[31mred] --> B", "either"),
        "rtl-and-zero-width": ("flowchart TD\n  A[\u202eabc\u200bdef] --> B[\u05e9\u05dc\u05d5\u05dd]", "ok"),
        "emoji": ("flowchart TD\n  A[\U0001F680 launch] --> B[\u2705 done]", "ok"),
        "cjk": ("flowchart TD\n  A[\u7528\u6237\u8bbe\u5907] --> B[\u57fa\u7ad9]", "ok"),
        "lone-surrogate-escape": ("flowchart TD\n  A[#55357;] --> B", "either"),
        "entity-codes": ("flowchart TD\n  A[#quot;#lt;script#gt;] --> B", "either"),
        "html-entities": ("flowchart TD\n  A[&lt;b&gt;bold&lt;/b&gt;] --> B", "either"),
        "long-line": ("flowchart LR\n  " + " --> ".join(f"N{i}" for i in range(300)), "either"),
        "pie-negative": ('pie\n  "a" : -5\n  "b" : 10', "either"),
        "pie-nan": ('pie\n  "a" : NaN', "either"),
        "pie-huge": ('pie\n  "a" : 1e308\n  "b" : 1e308', "either"),
        "gantt-bad-date": ("gantt\n  dateFormat YYYY-MM-DD\n  section S\n  T :a1, 2024-99-99, 3d", "either"),
        "gantt-10000-days": ("gantt\n  dateFormat YYYY-MM-DD\n  section S\n  T :a1, 2024-01-01, 10000d", "either"),
        "xychart-empty": ("xychart-beta\n  bar []", "either"),
        "mindmap-deep": ("mindmap\n" + "".join(f"{'  ' * (i + 1)}n{i}\n" for i in range(60)), "either"),
        "timeline-empty": ("timeline", "either"),
        "recursive-class": ("classDiagram\n  A <|-- A\n  A *-- A", "either"),
        "directive-garbage": ("%%{init: {not json}}%%\nflowchart TD\n  A-->B", "either"),
        "directive-deep": ('%%{init: {"a": ' + "[" * 500 + "]" * 500 + "}}%%\nflowchart TD\n  A-->B", "either"),
        "wrapping-off": ('%%{init: {"flowchart": {"htmlLabels": false, "wrappingWidth": -1}}}%%\nflowchart TD\n  A-->B',
                         "either"),
        "state-fork-storm": ("stateDiagram-v2\n" + "".join(f"  state f{i} <<fork>>\n  [*] --> f{i}\n" for i in range(50)),
                             "either"),
        "er-many-attrs": ("erDiagram\n  A {\n" + "".join(f"    string a{i}\n" for i in range(100)) + "  }", "either"),
        "sequence-1k-msgs": ("sequenceDiagram\n" + "  A->>B: m\n" * 1000, "either"),
        "block-bad": ("block-beta\n  columns -1\n  a b", "either"),
        "architecture": ("architecture-beta\n  service a(server)[A]\n  service b(cloud)[B]\n  a:R --> L:b", "either"),
        "packet-overlap": ('packet-beta\n  0-15: "a"\n  8-31: "b"', "either"),
        "quadrant-out-of-range": ("quadrantChart\n  A: [5, -3]", "either"),
    }


@pytest.fixture(scope="module")
def hostile_results(trap):
    from dicrepro.diagrams.render import MermaidRenderer

    cases = hostile_mermaid(trap)
    t0 = time.monotonic()
    with MermaidRenderer(workers=2, timeout_s=20, progress=False) as r:
        results = r.render_batch(list(s for s, _ in cases.values()))
    return dict(zip(cases, zip(cases.values(), results))), time.monotonic() - t0


HOSTILE_NAMES = list(hostile_mermaid("http://127.0.0.1:1"))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_mermaid_is_a_real_picture_or_a_readable_error(hostile_results, name):
    results, _ = hostile_results
    (src, expect), res = results[name]
    if res.ok:
        assert expect != "fail", f"drew a picture for an input that must fail ({res.width}x{res.height})"
        img = Image.open(io.BytesIO(res.png))
        assert img.format == "PNG" and img.size == (res.width, res.height)
        assert (np.asarray(img.convert("L")) < 160).sum() > 30, "a blank picture"
    else:
        assert expect != "ok", res.error
        assert res.png is None and res.error.startswith(("parse error", "render error", "too long")), res.error
        assert "Traceback" not in res.error and "    at " not in res.error  # no JS stack either


def test_hostile_mermaid_never_reaches_the_network(hostile_results):
    results, secs = hostile_results
    assert _Counter.hits == [], f"requests got out: {_Counter.hits}"
    assert secs < 240


@pytest.mark.timeout(120)
def test_hostile_mermaid_runs_no_script_in_the_page():
    """Diagrams that try to run code leave no trace in the page they were drawn in."""
    from dicrepro.diagrams.render import MermaidRenderer

    attempts = [
        'flowchart LR\n  A["<script>window.__pwned = 1</script>x"] --> B',
        'flowchart LR\n  A["<img src=x onerror=\\"window.__pwned = 2\\">"] --> B',
        'flowchart LR\n  A["<svg onload=\\"window.__pwned = 3\\"></svg>"] --> B',
        "flowchart LR\n  A --> B\n  click A call eval(\"window.__pwned = 4\")",
        'flowchart LR\n  A --> B\n  click A "javascript:window.__pwned = 5"',
        '%%{init: {"securityLevel": "loose"}}%%\nflowchart LR\n  A["<img src=x onerror=\\"window.__pwned = 6\\">"]',
        '%%{init: {"themeCSS": "</style><script>window.__pwned = 7</script>"}}%%\nflowchart LR\n  A --> B',
    ]

    async def traces(r):
        slot = await r._slots.get()  # the only page (workers=1): every attempt was drawn in it
        try:
            return await slot.page.evaluate("[window.__pwned, document.querySelectorAll('script').length]")
        finally:
            r._slots.put_nowait(slot)

    with MermaidRenderer(workers=1, timeout_s=20, progress=False) as r:
        r.render_batch(attempts)
        pwned, scripts = r._call(traces(r))
    assert pwned is None
    assert scripts == 2  # the page's own: mermaid.min.js and the render script


# --- kill -9, Ctrl-C and two writers, as real processes ------------------------------------------------

def _synth_cmd(out: Path, n: int = 6) -> list[str]:
    return [sys.executable, "-m", "dicrepro", "synth", "--n", str(n), "--test-n", "2", "--out", str(out),
            "--params", str(REPO / "params" / "tiny.yaml")]


def _tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _wait_for(pred, timeout: float = 60) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def _user_lines(err: str) -> list[str]:
    """stderr without log records and progress bars (tqdm redraws with \\r)."""
    return [ln for ln in re.split(r"[\r\n]+", err) if ln.strip() and "%|" not in ln and " examples" not in ln
            and not re.match(r"^\d{4}-\d\d-\d\d [\d:,]+ (DEBUG|INFO|WARNING) ", ln)]


@pytest.mark.timeout(300)
def test_kill_9_mid_synth_then_rerun_gives_identical_bytes_and_a_second_writer_fails_at_once(tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "out"
    subprocess.run(_synth_cmd(ref), check=True, capture_output=True, timeout=120)
    proc = subprocess.Popen(_synth_cmd(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Mid-run (the lock held, rendering under way): frozen there while a second writer tries
        assert _wait_for(lambda: (tmp_path / ".out.shards" / "spec.json").exists())
        proc.send_signal(signal.SIGSTOP)
        second = subprocess.run(_synth_cmd(out), capture_output=True, text=True, timeout=60)
        assert second.returncode == 2, second.stderr
        assert _user_lines(second.stderr) == [
            f"error: {out} is being written by another dicrepro process (pid {proc.pid}, lock "
            f"{tmp_path / '.out.lock'}); wait for it to finish or stop it"]
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert (tmp_path / ".out.lock").exists()  # stale, left by the killed run
    rerun = subprocess.run(_synth_cmd(out), capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert _tree(ref) == _tree(out)
    assert not (tmp_path / ".out.lock").exists() and not (tmp_path / ".out.shards").exists()


@pytest.mark.timeout(120)
def test_ctrl_c_mid_synth_is_one_line_and_exit_130(tmp_path):
    out = tmp_path / "out"
    # Started as from a terminal: a background job of a shell without job control (some CI runners) passes
    # SIGINT on as ignored, and a Python started that way never turns Ctrl-C into KeyboardInterrupt.
    proc = subprocess.Popen(_synth_cmd(out, n=40), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert _wait_for(lambda: (tmp_path / ".out.shards" / "spec.json").exists())
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert _user_lines(err) == ["interrupted (a rerun resumes where this one stopped)"]
    assert not out.exists()


def test_run_exits_without_the_closed_event_loop_traceback_but_keeps_others():
    """`dicrepro run` used to end a successful run with ZMQ's 'Event loop is closed' traceback (a socket
    finalizer after papermill's loop closed); that one is quiet now, other unraisable errors still show."""
    code = ("import sys\nfrom dicrepro.cli import quiet_closed_loop\nsys.unraisablehook = quiet_closed_loop\n"
            "class Socket:\n    def __init__(self, msg): self.msg = msg\n"
            "    def __del__(self): raise RuntimeError(self.msg)\n"
            "s = Socket('Event loop is closed'); del s\nt = Socket('something else'); del t\n")
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stderr
    assert "Event loop is closed" not in err
    assert "RuntimeError: something else" in err
