#!/usr/bin/env python
"""Rendering throughput: dicrepro's MermaidRenderer against mermaid-cli (mmdc), in the same run.

mmdc is run its usual way, one process per diagram (each starts its own Chromium via puppeteer), with as
many processes at once as the renderer has pages, so both sides use the same cores. Both render the same
Mermaid sources with the same width, scale and white background; the renderer is timed without its
one-off start-up (reported separately), and the projection for 7,000 diagrams includes it.

    .venv/bin/python bench/render_throughput.py              # 30 sources: mmdc once each, renderer x10
    .venv/bin/python bench/render_throughput.py --n 7000     # the paper-scale run
    .venv/bin/python bench/render_throughput.py --mmd-dir some/folder   # your own .mmd files
    .venv/bin/python bench/render_throughput.py --realistic 60          # paper-profile diagrams (blocks, notes...)
    .venv/bin/python bench/render_throughput.py --realistic 60 --as-shipped   # and mermaid.js as shipped

Parsing (mermaid.js's parser on the same pages, :mod:`dicrepro.diagrams.parse`) is timed on the same batch.
Both sides' CPU time per diagram is printed too (Linux ``/proc``: the renderer's processes by kind, mmdc's
children through ``getrusage``): on a shared machine it says what each diagram costs, whatever the load.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dicrepro.diagrams.render import MermaidRenderer, default_workers  # noqa: E402

MMDC = ROOT / "node_modules" / ".bin" / "mmdc"
PUPPETEER_CONFIG = ROOT / "bench" / "puppeteer-config.json"


def _flow(n: int, direction: str = "LR") -> str:
    lines = [f"flowchart {direction}"]
    for i in range(1, n):
        lines.append(f"  N{(i - 1) // 2}[Network element {(i - 1) // 2}] -->|msg {i}| N{i}[Network element {i}]")
    return "\n".join(lines)


def _seq(n: int) -> str:
    actors = ["UE", "gNB", "AMF", "SMF", "UPF", "AUSF", "UDM"]
    lines = ["sequenceDiagram", "  autonumber"]
    for i in range(n):
        a, b = actors[i % len(actors)], actors[(i * 3 + 1) % len(actors)]
        b = b if b != a else actors[(i + 1) % len(actors)]
        lines.append(f"  {a}{'->>' if i % 2 == 0 else '-->>'}{b}: Message {i} (procedure step)")
    return "\n".join(lines)


# A fixed, varied set: every diagram type, themes via front matter, sizes from 3 to 40 elements, CJK.
SOURCES = [
    "flowchart LR\n  A[UE] --> B[gNB] --> C[AMF]",
    "flowchart TD\n  A{Link up?} -->|yes| B[Check OSPF adjacency]\n  A -->|no| C[Check optics]\n  C --> D[Replace SFP]",
    "---\nconfig:\n  theme: forest\n---\nflowchart LR\n  A([DHCP Discover]) --> B([DHCP Offer]) --> C([Request]) --> D([Ack])",
    "flowchart LR\n  A[用户设备] -->|注册请求| B[接入和移动性管理功能]\n  B -->|鉴权请求| C[鉴权服务器功能]",
    _flow(12, "TD"),
    _flow(25, "LR"),
    _flow(40, "TD"),
    "sequenceDiagram\n  participant C as Client\n  participant S as Server\n  C->>S: ClientHello\n  S->>C: ServerHello, Certificate\n  C->>S: Finished",
    _seq(12),
    _seq(30),
    "---\nconfig:\n  theme: dark\n---\nsequenceDiagram\n  UE->>AMF: Registration Request\n  AMF-->>UE: Registration Accept",
    "sequenceDiagram\n  用户->>核心网: 附着请求\n  核心网-->>用户: 附着接受",
    "stateDiagram-v2\n  [*] --> Idle\n  Idle --> Connect: TCP SYN\n  Connect --> Established: OPEN\n  Established --> Idle: NOTIFICATION",
    "stateDiagram-v2\n  [*] --> IDLE\n  IDLE --> CONNECTED: RRC Setup\n  CONNECTED --> INACTIVE: Release(suspend)\n  INACTIVE --> CONNECTED: Resume\n  CONNECTED --> IDLE: Release",
    "classDiagram\n  class Interface {\n    +name: str\n    +mtu: int\n    +up() bool\n  }\n  class Vlan\n  Interface <|-- Vlan\n  Interface \"1\" o-- \"*\" Vlan",
    "erDiagram\n  CUSTOMER ||--o{ SUBSCRIPTION : has\n  SUBSCRIPTION }o--|| PLAN : uses\n  PLAN { string id PK\n  int quota }",
    "gantt\n  title Maintenance window\n  dateFormat YYYY-MM-DD\n  section Prepare\n  Backup :a1, 2024-03-01, 1d\n  section Change\n  Upgrade :after a1, 2d\n  Verify :1d",
    "pie title Traffic mix\n  \"Video\" : 62\n  \"Web\" : 20\n  \"VoLTE\" : 8\n  \"Other\" : 10",
    "---\nconfig:\n  theme: neutral\n---\npie title 告警分布\n  \"链路中断\" : 40\n  \"CPU过高\" : 35\n  \"光功率异常\" : 25",
    "mindmap\n  root((SDN))\n    Controller\n      OpenFlow\n      NETCONF\n    Data plane\n      Switches\n    Apps",
    "timeline\n  title OSPF adjacency\n  Down : Hello sent\n  Init : Hello received\n  2-Way : DR election\n  ExStart : DBD\n  Full : LSDB synced",
    "block-beta\n  columns 3\n  App Transport Network\n  App --> Transport\n  Transport --> Network",
    "xychart-beta\n  title \"Throughput\"\n  x-axis [Q1, Q2, Q3, Q4]\n  y-axis \"Gbps\" 0 --> 100\n  bar [20, 45, 70, 90]",
    "quadrantChart\n  title Vendors\n  x-axis Low cost --> High cost\n  y-axis Low quality --> High quality\n  A: [0.2, 0.8]\n  B: [0.7, 0.3]",
    "requirementDiagram\n  requirement avail {\n    id: 1\n    text: \"Five nines availability\"\n    risk: medium\n    verifymethod: analysis\n  }\n  element cluster {\n    type: system\n  }\n  cluster - satisfies -> avail",
    "packet-beta\n  0-3: \"Version\"\n  4-7: \"IHL\"\n  8-15: \"DSCP/ECN\"\n  16-31: \"Total Length\"\n  32-47: \"Identification\"\n  48-63: \"Flags/Offset\"",
    "architecture-beta\n  group core(cloud)[Core]\n  service amf(server)[AMF] in core\n  service smf(server)[SMF] in core\n  amf:R --> L:smf",
    "---\nconfig:\n  theme: base\n  themeVariables:\n    primaryColor: '#cde'\n---\nflowchart LR\n  A[(HSS)] --- B[/MME/] --- C[\\SGW\\]",
    "flowchart TB\n  subgraph RAN\n    gNB1 & gNB2\n  end\n  subgraph Core\n    AMF --> SMF --> UPF\n  end\n  gNB1 --> AMF\n  gNB2 --> AMF",
    "stateDiagram-v2\n  [*] --> 空闲\n  空闲 --> 连接: 建立\n  连接 --> 空闲: 释放",
]


def tree_cpu() -> dict[str, float]:
    """CPU seconds used so far by this process and its live descendants, by kind: python, the Playwright
    driver (node), and Chromium's processes by ``--type`` (browser, renderer, gpu-process...). Linux only."""
    tick = os.sysconf("SC_CLK_TCK")
    parent, used, kind = {}, {}, {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            rest = (d / "stat").read_text().rsplit(")", 1)[1].split()
            args = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        pid = int(d.name)
        parent[pid], used[pid] = int(rest[1]), (int(rest[11]) + int(rest[12])) / tick
        # Chromium's children rewrite their command line into one string: the --type is found in it
        typ = re.search(r"--type=(\S+)", args)
        kind[pid] = typ.group(1) if typ else Path(args.split(" ")[0]).name.replace("chromium", "browser")
    out: dict[str, float] = {}
    for pid in used:
        p = pid
        while p and p != os.getpid():
            p = parent.get(p, 0)
        if p:
            out[kind[pid]] = out.get(kind[pid], 0.0) + used[pid]
    return out


def run_mmdc(sources: list[str], workers: int, width: int, scale: float, out: Path) -> tuple[float, list[str]]:
    """One mmdc process per diagram, ``workers`` at a time. Returns (seconds, errors)."""
    env = dict(os.environ, PUPPETEER_SKIP_DOWNLOAD="1")

    def one(i: int) -> str | None:
        src, png = out / f"m{i}.mmd", out / f"m{i}.png"
        src.write_text(sources[i], encoding="utf-8")
        p = subprocess.run([str(MMDC), "-q", "-p", str(PUPPETEER_CONFIG), "-i", str(src), "-o", str(png),
                            "-w", str(width), "-s", str(scale), "-b", "white"],
                           capture_output=True, text=True, env=env, timeout=120)
        ok = p.returncode == 0 and png.exists() and png.stat().st_size > 0
        return None if ok else f"mmdc #{i}: rc={p.returncode} {p.stderr.strip()[-300:]}"

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        errors = [e for e in pool.map(one, range(len(sources))) if e]
    return time.perf_counter() - t0, errors


def compare_shipped(a, batch: list[str], pngs: list[bytes | None], res: dict) -> None:
    """The renderer with and without the fast config copy (mermaid.js as shipped) on the same batch, in
    alternating chunks (two browsers open, one working at a time) so that a changing load hits both alike."""
    kw = dict(workers=a.workers, width=a.width, scale=a.scale, timeout_s=30, progress=False)
    wall, cpu, out = {True: 0.0, False: 0.0}, {True: 0.0, False: 0.0}, {True: [], False: []}
    step = max(1, len(batch) // 8)
    with MermaidRenderer(**kw) as fast, MermaidRenderer(**kw, fast_config=False) as shipped:
        for lo in range(0, len(batch), step):
            for on, r in ((True, fast), (False, shipped)) if lo // step % 2 == 0 else ((False, shipped), (True, fast)):
                c0, t0 = sum(tree_cpu().values()), time.perf_counter()
                out[on] += [x.png for x in r.render_batch(batch[lo:lo + step])]
                wall[on] += time.perf_counter() - t0
                cpu[on] += sum(tree_cpu().values()) - c0
    n = len(batch)
    same = out[True] == out[False] == pngs
    res.update(fast_alt_per_s=round(n / wall[True], 2), shipped_alt_per_s=round(n / wall[False], 2),
               fast_alt_cpu_ms=round(cpu[True] / n * 1000, 1), shipped_alt_cpu_ms=round(cpu[False] / n * 1000, 1),
               shipped_same_bytes=same)
    print(f"fast config copy vs mermaid.js as shipped, alternating chunks of {step}: "
          f"{n / wall[True]:.2f} vs {n / wall[False]:.2f} diagrams/s ({wall[False] / wall[True]:.2f}x), "
          f"CPU {cpu[True] / n * 1000:.0f} vs {cpu[False] / n * 1000:.0f} ms per diagram; same PNG bytes: {same}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--n", type=int, default=None, help="diagrams for the renderer (default 10x the sources)")
    ap.add_argument("--mmdc-n", type=int, default=None, help="diagrams for mmdc (default: each source once)")
    ap.add_argument("--workers", type=int, default=default_workers(), help="pages / parallel mmdc processes")
    ap.add_argument("--width", type=int, default=800)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--mmd-dir", type=Path, help="read the sources from DIR/*.mmd instead of the fixed set")
    ap.add_argument("--skip-mmdc", action="store_true", help="only time the renderer")
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    ap.add_argument("--realistic", type=int, default=0, metavar="N",
                    help="use N diagrams of the paper profile's synthesis (params/paper.yaml: realism knobs on)")
    ap.add_argument("--as-shipped", action="store_true",
                    help="also time the renderer with mermaid.js as shipped (no fast config copy), same batch")
    a = ap.parse_args(argv)

    if a.realistic:
        from dicrepro.data.synth import plan_sample, stage1_spec
        from dicrepro.params import load_params

        spec = stage1_spec(load_params(ROOT / "params" / "paper.yaml", need_model=False))
        sources = [plan_sample(spec, i)["mermaid"] for i in range(a.realistic)]
    else:
        sources = ([p.read_text(encoding="utf-8") for p in sorted(a.mmd_dir.glob("*.mmd"))] if a.mmd_dir
                   else SOURCES)
    if not sources:
        ap.error(f"no .mmd files in {a.mmd_dir}")
    n = a.n or 10 * len(sources)
    batch = [sources[i % len(sources)] for i in range(n)]
    res: dict = {"sources": len(sources), "workers": a.workers, "cpus": default_workers(), "width": a.width,
                 "scale": a.scale}

    t0 = time.perf_counter()
    with MermaidRenderer(workers=a.workers, width=a.width, scale=a.scale, timeout_s=30) as r:
        res["renderer_startup_s"] = round(time.perf_counter() - t0, 2)
        cpu0, t1 = tree_cpu(), time.perf_counter()
        results = r.render_batch(batch)
        secs, cpu1 = time.perf_counter() - t1, tree_cpu()
        cpu = {k: (v - cpu0.get(k, 0.0)) / n * 1000 for k, v in cpu1.items() if v - cpu0.get(k, 0.0) > 0}
        from dicrepro.diagrams.parse import parse_mermaid

        t2 = time.perf_counter()
        parsed = parse_mermaid(batch, renderer=r)
        psecs = time.perf_counter() - t2
    res.update(parse_n=n, parse_s=round(psecs, 2), parse_per_s=round(n / psecs, 2),
               parse_failed=sum(not p.ok and not p.unsupported for p in parsed))
    failed = [f"#{i % len(sources)}: {x.error.splitlines()[0]}" for i, x in enumerate(results) if not x.ok]
    rate = n / secs
    res.update(renderer_n=n, renderer_s=round(secs, 2), renderer_per_s=round(rate, 2),
               renderer_failed=len(failed),
               projected_7000_min=round((res["renderer_startup_s"] + 7000 / rate) / 60, 2))
    print(f"dicrepro renderer: {n} diagrams in {secs:.1f}s = {rate:.2f} diagrams/s "
          f"(+{res['renderer_startup_s']}s start-up, {len(failed)} failed); "
          f"7,000 diagrams: {res['projected_7000_min']:.1f} min")
    for f in sorted(set(failed))[:10]:
        print("  failed", f)
    res["renderer_cpu_ms"] = {k: round(v, 1) for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])}
    print(f"  CPU per diagram: {sum(cpu.values()):.0f} ms (" + ", ".join(
        f"{k} {v:.0f}" for k, v in res["renderer_cpu_ms"].items() if v >= 0.5) + ")")
    print(f"dicrepro parser (same pages, same batch): {n} diagrams in {psecs:.1f}s = {n / psecs:.2f} diagrams/s "
          f"({res['parse_failed']} failed)")
    if a.as_shipped:
        compare_shipped(a, batch, [x.png for x in results], res)

    if not a.skip_mmdc:
        if not MMDC.exists():
            ap.error(f"{MMDC} missing: run `make setup` (npm ci installs @mermaid-js/mermaid-cli)")
        m = a.mmdc_n or len(sources)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with tempfile.TemporaryDirectory() as tmp:
            msecs, errors = run_mmdc([sources[i % len(sources)] for i in range(m)], a.workers, a.width, a.scale,
                                     Path(tmp))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        mcpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / m
        mrate = m / msecs
        res.update(mmdc_n=m, mmdc_s=round(msecs, 2), mmdc_per_s=round(mrate, 3), mmdc_failed=len(errors),
                   mmdc_cpu_s=round(mcpu, 2), ratio=round(rate / mrate, 1))
        print(f"mmdc (one process per diagram, {a.workers} at a time): {m} diagrams in {msecs:.1f}s = "
              f"{mrate:.3f} diagrams/s ({len(errors)} failed); CPU per diagram: {mcpu:.2f} s")
        for e in errors[:5]:
            print("  ", e)
        print(f"ratio: dicrepro renderer is {res['ratio']}x mmdc")
    if a.json:
        a.json.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
