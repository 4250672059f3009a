"""Rendering Mermaid with mermaid.js in headless Chromium: every diagram type, CJK, errors, determinism."""

import io

import numpy as np
import pytest
from PIL import Image

from dicrepro.diagrams.render import MermaidRenderer, RenderResult, mermaid_js_path, one_colour, render_files

# One small ICT-flavoured example of every diagram type the synthesizer emits.
EXAMPLES = {
    "flowchart": """flowchart LR
  UE[UE] -->|RRC Setup Request| gNB[gNB]
  gNB --> AMF{{AMF}}
  AMF -->|Nausf_UEAuthentication| AUSF[(AUSF)]""",
    "sequence": """sequenceDiagram
  participant UE
  participant AMF
  UE->>AMF: Registration Request
  AMF->>UE: Authentication Request
  UE-->>AMF: Authentication Response
  AMF-->>UE: Registration Accept""",
    "state": """stateDiagram-v2
  [*] --> RRC_IDLE
  RRC_IDLE --> RRC_CONNECTED: RRC Setup
  RRC_CONNECTED --> RRC_INACTIVE: RRC Release with suspend
  RRC_INACTIVE --> RRC_CONNECTED: RRC Resume""",
    "class": """classDiagram
  class Router {
    +String hostname
    +route(packet) bool
  }
  class OSPFProcess
  Router "1" *-- "many" OSPFProcess : runs""",
    "er": """erDiagram
  SUBSCRIBER ||--o{ PDU_SESSION : opens
  PDU_SESSION }o--|| DNN : "attached to"
  SUBSCRIBER { string supi PK }""",
    "gantt": """gantt
  title Core network change window
  dateFormat YYYY-MM-DD
  section Prepare
  Backup config :a1, 2024-01-01, 2d
  section Execute
  Upgrade AMF :after a1, 3d""",
    "pie": """pie title Alarm share
  "Link down" : 42
  "High CPU" : 25
  "Optical power" : 33""",
    "mindmap": """mindmap
  root((5G Core))
    AMF
      Registration
    SMF
      PDU Session
    UPF""",
    "timeline": """timeline
  title Mobile generations
  1991 : GSM
  2001 : UMTS
  2009 : LTE
  2019 : 5G NR""",
    "block": """block-beta
  columns 3
  UE gNB Core
  UE --> gNB
  gNB --> Core""",
    "xychart": """xychart-beta
  title "PRB utilisation"
  x-axis [Mon, Tue, Wed, Thu, Fri]
  y-axis "Percent" 0 --> 100
  bar [35, 48, 61, 72, 55]
  line [30, 45, 60, 70, 50]""",
    "quadrant": """quadrantChart
  title Cells by load and quality
  x-axis Low load --> High load
  y-axis Poor quality --> Good quality
  quadrant-1 Watch
  quadrant-2 Healthy
  quadrant-3 Idle
  quadrant-4 Congested
  Cell A: [0.3, 0.6]
  Cell B: [0.8, 0.2]""",
    "requirement": """requirementDiagram
  requirement latency_req {
    id: 1
    text: "User-plane latency below 10 ms"
    risk: high
    verifymethod: test
  }
  element upf {
    type: network_function
  }
  upf - satisfies -> latency_req""",
    "packet": """packet-beta
  0-15: "Source Port"
  16-31: "Destination Port"
  32-63: "Sequence Number"
  64-95: "Acknowledgment Number\"""",
}


def ink(png: bytes) -> int:
    """Pixels that are not (near) the background colour of the top-left corner."""
    px = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.int16)
    return int((np.abs(px - px[0, 0]) > 40).sum())


@pytest.fixture(scope="module")
def renderer():
    with MermaidRenderer(workers=2, timeout_s=20, progress=False) as r:
        yield r


@pytest.fixture(scope="module")
def all_types(renderer):
    return dict(zip(EXAMPLES, renderer.render_batch(list(EXAMPLES.values()))))


@pytest.mark.parametrize("kind", list(EXAMPLES))
def test_every_diagram_type_renders_to_a_non_blank_png(all_types, kind):
    res = all_types[kind]
    assert res.error is None, res.error
    img = Image.open(io.BytesIO(res.png))
    assert img.format == "PNG" and img.size == (res.width, res.height)
    assert img.getpixel((0, 0))[:3] == (255, 255, 255)  # white paper
    assert ink(res.png) > 500, f"{kind} rendered (nearly) blank"


def test_chinese_labels_have_glyphs(renderer):
    zh_label = "\u7528\u6237\u8bbe\u5907\u53d1\u8d77\u6ce8\u518c\u8bf7\u6c42"  # 10 CJK characters
    # As many private-use characters, which no font has: Chromium draws empty "tofu" boxes for them,
    # which is also what Chinese would look like without fonts-noto-cjk.
    tofu_label = "".join(chr(0xF0000 + i) for i in range(10))
    zh, tofu = renderer.render_batch([f"flowchart LR\n  A[{zh_label}] --> B[{zh_label[:6]}]",
                                      f"flowchart LR\n  A[{tofu_label}] --> B[{tofu_label[:6]}]"])
    assert zh.ok and tofu.ok
    # Real glyphs put far more ink on the page than outlines of missing-glyph boxes.
    assert ink(zh.png) > 1.8 * ink(tofu.png)


def test_malformed_mermaid_gives_a_readable_error_and_the_batch_goes_on(renderer):
    good = EXAMPLES["pie"]
    res = renderer.render_batch([good, "flowchart TD\n  A --> B -->", "notADiagram\n  x", good])
    assert res[0].ok and res[3].ok
    assert res[1].png is None and res[1].error.startswith("parse error: Parse error on line") and "Expecting" in res[1].error
    assert "No diagram type detected" in res[2].error or "UnknownDiagram" in res[2].error, res[2].error


def test_same_input_gives_identical_bytes_on_any_page(renderer):
    # Class boxes and rounded shapes are drawn with rough.js, which is random unless seeded.
    srcs = [EXAMPLES["class"], "flowchart LR\n  A([DHCP Discover]) --> B([DHCP Offer])", EXAMPLES["sequence"]]
    # Each source twice, on both pages, with other diagrams rendered in between.
    first = renderer.render_batch(srcs + [EXAMPLES["gantt"]])[:3]
    again = renderer.render_batch([EXAMPLES["pie"]] + srcs[::-1])[1:][::-1]
    assert [r.png for r in first] == [r.png for r in again]


@pytest.mark.slow
def test_a_diagram_renders_the_same_whatever_was_drawn_before():
    """Big bold titles (timeline diagrams, frontmatter titles) used to come out with slightly different
    pixels depending on what the page had drawn before: first from subpixel glyph positioning (2 to 6 of
    200 pre-training diagrams), then, with that off, from hinted SVG text (4 of 300, the same SVG markup
    each time), then once in CI from an ER diagram's frontmatter title (1 of 3,600 renders, not seen again
    in 12,600 here; LCD text is off since). Every diagram must give the same PNG in every order."""
    import random
    from pathlib import Path

    from dicrepro.data.synth import plan_sample, pretrain_spec
    from dicrepro.params import load_params

    spec = pretrain_spec(load_params(Path(__file__).resolve().parents[1] / "params" / "tiny.yaml"))
    plans = [plan_sample(spec, i) for i in range(spec.n)]
    batch = [(p["mermaid"], None) for p in plans]  # the default theme: where the drift was seen most
    results = []
    with MermaidRenderer(workers=1, progress=False) as r:
        for seed in range(2):  # 2,400 renders: a third order cost the suite 90 s more on a slow 2-core VM
            order = list(range(len(batch)))
            random.Random(seed).shuffle(order)
            pngs = dict(zip(order, (x.png for x in r.render_batch([batch[i] for i in order]))))
            results.append([pngs[i] for i in range(len(batch))])
    differ = {plans[i]["id"]: _how_they_differ({run[i] for run in results})
              for i in range(len(batch)) if len({run[i] for run in results}) > 1}
    assert not differ, f"gave different bytes in different orders: {differ}"


def test_a_picture_taller_than_the_page_is_captured_whole_and_the_next_one_is_unchanged(renderer):
    """Screenshots are taken inside the viewport: beyond it, Chromium can paint a stale copy of the page's
    top into the part below (a class diagram of the tiny run came out with its top repeated from row 513,
    once in about 6,000 renders). Only a picture that min_zoom keeps bigger than the viewport is taken
    beyond it, whole, and the page is as before for the next diagram."""
    chain = "flowchart TB\n" + "\n".join(f"  n{i}[step {i}] --> n{i + 1}[step {i + 1}]" for i in range(40))
    before, tall, after = renderer.render_batch([EXAMPLES["gantt"], chain, EXAMPLES["gantt"]])
    assert tall.ok and tall.height > renderer.max_height + 100 and tall.width < 400
    px = np.asarray(Image.open(io.BytesIO(tall.png)).convert("L"), dtype=np.int16)
    rows = px.shape[0] // 8
    top, bottom = px[:rows], px[-rows:]
    assert (bottom < 200).sum() > 100  # the last steps are drawn, not blank
    assert not np.array_equal(top, bottom)
    # a box every ~70 px all the way down: no band without ink taller than two boxes
    inked = (px < 128).any(1)
    gaps = np.diff(np.flatnonzero(inked))
    assert gaps.max() < 150, f"a blank band of {gaps.max()} px"
    assert before.png == after.png


def _how_they_differ(pngs: set[bytes]) -> str:
    """Where two renderings of one diagram differ, in words: a drift this rare is seen only in CI's log."""
    import io

    import numpy as np
    from PIL import Image

    a, b = (np.asarray(Image.open(io.BytesIO(x)).convert("RGB")).astype(int) for x in list(pngs)[:2])
    if a.shape != b.shape:
        return f"sizes {a.shape[1]}x{a.shape[0]} and {b.shape[1]}x{b.shape[0]}"
    ys, xs = np.nonzero(np.abs(a - b).max(-1))
    return (f"{len(ys)} pixels in x {xs.min()}-{xs.max()}, y {ys.min()}-{ys.max()} of {a.shape[1]}x{a.shape[0]}, "
            f"up to {np.abs(a - b).max()} levels apart")


def test_the_fast_config_copy_changes_no_byte():
    """mermaid.js is served with a faster copy of its configuration (dicrepro.diagrams.mermaid_js); the
    same diagrams in every type, theme and the paper profile's realistic shapes (blocks, notes, activations,
    nested subgraphs, composite states) must give the same PNG bytes and the same config as mermaid as shipped."""
    from pathlib import Path

    from dicrepro.data.synth import plan_sample, stage1_spec
    from dicrepro.params import load_params

    spec = stage1_spec(load_params(Path(__file__).resolve().parents[1] / "params" / "paper.yaml", need_model=False))
    plans = [plan_sample(spec, i) for i in range(40)]
    items = [(s, None) for s in EXAMPLES.values()]
    items += [(s, {"theme": t}) for t, s in zip(["forest", "dark", "neutral", "base"] * 4, EXAMPLES.values())]
    items += [(p["mermaid"], p["render_config"]) for p in plans]
    configs = [{}, {"theme": "dark"}, {"theme": "base", "themeVariables": {"primaryColor": "#ff0000"}},
               {"flowchart": {"curve": "linear"}, "sequence": {"mirrorActors": False}}]
    got = {}
    for fast in (True, False):
        with MermaidRenderer(workers=2, progress=False, fast_config=fast) as r:
            pngs = [x.png for x in r.render_batch(items)]

            async def config_json():
                slot = await r._slots.get()
                try:
                    return [await slot.page.evaluate(
                        "(c) => { mermaid.initialize(c); return JSON.stringify(mermaid.mermaidAPI.getConfig()); }", c)
                        for c in configs]
                finally:
                    r._slots.put_nowait(slot)

            got[fast] = pngs, r._call(config_json()), r._mermaid_js
    assert got[True][2] != got[False][2]  # the patch was applied to the pinned mermaid build
    assert all(got[False][0]) and got[True][0] == got[False][0]
    assert got[True][1] == got[False][1]


def test_an_unknown_mermaid_build_is_served_unpatched(caplog):
    from dicrepro.diagrams.mermaid_js import patched

    js = b"var a=1;function assignWithDepth(e,t){return e}"
    assert patched(js) == js and "unpatched" in caplog.text
    real = mermaid_js_path().read_bytes()
    assert patched(real) != real and patched(real).startswith(real[:1000])


def test_theme_applies_to_one_diagram_only(renderer):
    src = EXAMPLES["flowchart"]
    plain, forest, after = renderer.render_batch([(src, None), (src, {"theme": "forest"}), (src, None)])
    assert forest.png != plain.png
    assert after.png == plain.png


def test_theme_variables_are_applied(renderer):
    src = EXAMPLES["flowchart"]
    red = renderer.render(src, {"theme": "base", "themeVariables": {"primaryColor": "#ff0000"}})
    px = np.asarray(Image.open(io.BytesIO(red.png)).convert("RGB"), dtype=np.int16)
    assert ((px[..., 0] > 240) & (px[..., 1] < 30) & (px[..., 2] < 30)).sum() > 100


def test_a_hung_page_times_out_and_is_replaced():
    with MermaidRenderer(workers=1, timeout_s=2, progress=False) as r:
        async def hang_the_page():  # as a pathological diagram could: mermaid never returns
            slot = await r._slots.get()
            await slot.page.evaluate("() => { window.dicrepro.render = () => { while (true) {} }; }")
            r._slots.put_nowait(slot)

        r._call(hang_the_page())
        hung, after = r.render_batch([EXAMPLES["pie"], EXAMPLES["pie"]])
        assert hung.png is None and hung.error == "timeout: no image after 2s"
        assert after.ok  # on a fresh page


def test_network_requests_are_blocked(renderer):
    before = renderer.blocked_requests
    res = renderer.render('flowchart LR\n  A["<img src=\'http://example.com/x.png\'/> logo"] --> B')
    assert res.ok
    assert renderer.blocked_requests > before


def test_render_files_writes_pngs_and_reports_failures(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "core.mmd").write_text(EXAMPLES["sequence"], encoding="utf-8")
    (src / "broken.mmd").write_text("sequenceDiagram\n  A->>: nothing", encoding="utf-8")
    out = tmp_path / "png"
    summary = render_files([src / "core.mmd", src / "broken.mmd", src / "missing.mmd"], out,
                           workers=1, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["core.png"]
    assert Image.open(out / "core.png").format == "PNG"
    assert {f["path"] for f in summary["failures"]} == {str(src / "broken.mmd"), str(src / "missing.mmd")}
    assert summary["summary"].startswith("rendered 1/3 Mermaid files") and "2 failed" in summary["summary"]


def test_missing_mermaid_js_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("DICREPRO_MERMAID_JS", str(tmp_path / "nope.js"))
    with pytest.raises(FileNotFoundError, match="make setup"):
        mermaid_js_path()


def test_result_is_a_small_dataclass():
    r = RenderResult(png=None, error="parse error: x", width=0, height=0, seconds=0.1)
    assert not r.ok


def colourful(png: bytes) -> int:
    """Pixels with clearly different R, G and B (colour emoji; text and boxes here are grey or pastel)."""
    px = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    return int(((px.max(axis=2) - px.min(axis=2)) > 90).sum())


@pytest.mark.parametrize("src, why", [
    ("flowchart TD", "draws nothing"),
    ("stateDiagram-v2", "draws nothing"),
    ("erDiagram", "draws nothing"),
    ("flowchart TD\n" + "  A-->B\n" * 7000, "too long: 56013 characters; mermaid draws at most 50000"),
    # white on white: the box has an area, but the picture shows nothing
    ('flowchart TD\n  A[" "]\n  style A fill:#fff,stroke:#fff', "the picture is blank"),
])
def test_a_placeholder_or_empty_drawing_is_a_failure_not_a_picture(renderer, src, why):
    res = renderer.render(src)
    assert res.png is None and why in res.error


def png_of(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_one_colour_tells_a_blank_picture_from_a_drawing():
    assert one_colour(png_of(Image.new("RGB", (180, 86), "white")))
    assert one_colour(png_of(Image.new("RGB", (900, 700), "#333333")))  # a dark theme's empty page
    dot = Image.new("RGB", (180, 86), "white")
    dot.putpixel((90, 40), (200, 200, 200))  # one grey pixel is a drawing, however small
    assert not one_colour(png_of(dot))
    noise = Image.effect_noise((300, 200), 60).convert("RGB")  # big file: not decoded at all
    assert not one_colour(png_of(noise))


def test_emoji_have_glyphs(renderer):
    rocket, tofu = renderer.render_batch(["flowchart LR\n  A[\U0001F680 launch \u2705] --> B[\U0001F4E1 done]",
                                          "flowchart LR\n  A[\U000F0001 launch \U000F0002] --> B[\U000F0003 done]"])
    assert rocket.ok and tofu.ok
    # about 300 against 4 (the pastel node fill's anti-aliased edge) with fonts-noto-color-emoji
    assert colourful(rocket.png) > 150 and colourful(tofu.png) < 30


def test_render_files_writes_each_png_as_it_is_done_readable_by_all_and_refuses_fifos(tmp_path):
    import os
    import stat

    (tmp_path / "a.mmd").write_text(EXAMPLES["pie"])
    os.mkfifo(tmp_path / "pipe.mmd")
    seen_at_callback = []
    real = MermaidRenderer.render_batch

    def spy(self, items, progress=None, on_result=None):
        def hook(i, res):
            on_result(i, res)
            seen_at_callback.append((tmp_path / "png" / "a.png").exists())
        return real(self, items, progress=progress, on_result=hook)

    MermaidRenderer.render_batch = spy
    try:
        summary = render_files([tmp_path / "a.mmd", tmp_path / "pipe.mmd"], tmp_path / "png", workers=1,
                               progress=False)
    finally:
        MermaidRenderer.render_batch = real
    assert seen_at_callback == [True]  # written inside the batch, not after it
    assert stat.S_IMODE((tmp_path / "png" / "a.png").stat().st_mode) == 0o644
    assert summary["failures"] == [{"path": str(tmp_path / "pipe.mmd"), "error": "cannot read: not a regular file"}]
