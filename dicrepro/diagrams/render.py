"""Mermaid -> PNG with the real mermaid.js in headless Debian Chromium, kept running.

One Chromium process serves a pool of pages (one per worker). Each page loads mermaid.js once from the
pinned npm package and then renders diagram after diagram: ``mermaid.render`` (SVG; on failure
``mermaid.parse`` for the readable syntax error), then a screenshot of the SVG on white. Every network
request is aborted, Mermaid runs with ``securityLevel: 'strict'`` and seeded ids and rough.js, so the same
input gives the same PNG bytes, and each diagram has a timeout; a page that times out or crashes is
replaced and the batch goes on.

    with MermaidRenderer(workers=2) as r:
        results = r.render_batch([("flowchart LR\\n  A --> B", {"theme": "forest"})])
    results[0].png  # PNG bytes, or None with results[0].error saying why
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from dicrepro.progress import tqdm

from dicrepro.atomic import write_bytes_atomic
from dicrepro.diagrams.mermaid_js import patched
from dicrepro.paths import node_modules

log = logging.getLogger(__name__)

CHROMIUM = "/usr/bin/chromium"
# Flags this sandbox needs (no user namespaces, no GPU) and that keep Chromium off the network. Playwright
# gives every launch a fresh temporary user-data-dir, so no profile state carries over between runs.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--disable-extensions", "--mute-audio",
                 # Glyphs at whole-pixel positions: with subpixel positioning, the raster of a large bold
                 # title (timeline diagrams) depended on what the page had drawn before, so the same
                 # diagram gave different PNG bytes in different batch orders (about 1 in 100 timelines).
                 "--disable-font-subpixel-positioning",
                 # Whether a layer may use LCD text is Chromium's per-paint decision, and it changes the
                 # text's gamma even where the glyphs stay grey (pie and gantt labels came out one level
                 # apart with and without it); off, that choice cannot follow what was drawn before.
                 "--disable-lcd-text"]
_PAD = 12  # CSS px of white around each picture (#out's padding in PAGE_HTML)
ORIGIN = "http://dicrepro.invalid"  # served by page.route from memory; .invalid never resolves anyway
# The render page. Mermaid's default fonts (Trebuchet, Verdana, Arial) are not on Debian; the stack below
# ends in Noto Sans CJK so Chinese labels have glyphs (fonts-noto-cjk), and DejaVu/Liberation for Latin.
FONT_STACK = ('"trebuchet ms", verdana, arial, "Liberation Sans", "DejaVu Sans", "Noto Sans CJK SC", '
              '"Noto Color Emoji", sans-serif')  # emoji: fonts-noto-color-emoji, else empty boxes
DETERMINISTIC_SEED = "dicrepro"
PAGE_HTML = """<!doctype html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="connect-src 'none'; frame-src 'none'; object-src 'none'">
<style>
html, body { margin: 0; padding: 0; background: #ffffff; font-family: FONTS; }
#out { position: absolute; left: 0; top: 0; display: inline-block; padding: 12px; background: #ffffff; }
#out svg { display: block; }
/* SVG <text> (timeline and frontmatter titles) drawn with hinting came out with different pixels
   depending on what the page had rasterized before (4 of the tiny profile's 300 pre-training diagrams
   across three orders, same SVG markup): unhinted outlines are the same whatever came before. */
#out text { text-rendering: geometricPrecision; }
</style>
<script src="/mermaid.min.js"></script>
<script>
(() => {
  const BASE = {startOnLoad: false, securityLevel: 'strict', deterministicIds: true,
                deterministicIDSeed: 'SEED', handDrawnSeed: 1, theme: 'default', fontFamily: FONTJS, logLevel: 'fatal'};
  const LOCKED = ['securityLevel', 'startOnLoad', 'deterministicIds', 'deterministicIDSeed', 'secure',
                  'maxTextSize', 'dompurifyConfig', 'handDrawnSeed'];
  const msg = (e) => String((e && (e.message || e.str)) || e).trim();
  function config(cfg) {
    // A fresh copy of BASE every time: mermaid.initialize() replaces the site config, so one diagram's
    // theme or themeVariables never leak into the next.
    const c = JSON.parse(JSON.stringify(BASE));
    for (const [k, v] of Object.entries(cfg || {})) {
      if (LOCKED.includes(k)) continue;
      c[k] = (v && typeof v === 'object' && !Array.isArray(v)) ? Object.assign({}, c[k] || {}, v) : v;
    }
    const tv = c.themeVariables = Object.assign({}, c.themeVariables || {});
    tv.fontFamily = (tv.fontFamily ? tv.fontFamily + ', ' : '') + FONTJS;
    c.fontFamily = tv.fontFamily;
    return c;
  }
  function cleanup() {
    document.querySelectorAll('body > [id^="ddicrepro"], body > svg[id^="dicrepro"]').forEach(e => e.remove());
  }
  async function render(src, cfg, opts) {
    const out = document.getElementById('out');
    out.innerHTML = '';
    const c = config(cfg);
    mermaid.initialize(c);
    // Over maxTextSize mermaid draws a "Maximum text size in diagram exceeded" picture instead of failing
    const maxText = mermaid.mermaidAPI.getConfig().maxTextSize || 50000;
    if (src.length > maxText)
      return {error: `too long: ${src.length} characters; mermaid draws at most ${maxText} (maxTextSize)`};
    let svg;
    try { svg = (await mermaid.render('dicrepro', src)).svg; }
    catch (e) {
      cleanup();
      // render() parses too; parse() alone tells a syntax error (readable, with line) from a layout one.
      try { await mermaid.parse(src); } catch (pe) { return {error: 'parse error: ' + msg(pe)}; }
      return {error: 'render error: ' + msg(e)};
    }
    cleanup();
    // White paper, except where the theme is dark (its light text would vanish on white).
    const tv = (mermaid.mermaidAPI.getConfig().themeVariables) || {};
    const dark = c.theme === 'dark' || (cfg && cfg.themeVariables && (cfg.themeVariables.darkMode ||
                 cfg.themeVariables.background));
    out.style.background = dark && tv.background ? tv.background : '#ffffff';
    out.innerHTML = svg;
    const el = out.querySelector('svg');
    if (!el) return {error: 'render error: mermaid returned no <svg>'};
    const vb = el.viewBox && el.viewBox.baseVal;
    let w = vb && vb.width, h = vb && vb.height;
    if (!w || !h) { const r = el.getBoundingClientRect(); w = r.width; h = r.height; }
    if (!w || !h) return {error: 'render error: the diagram has an empty drawing'};
    // A diagram with no nodes comes out as a blank box (40x40 for a flowchart), not as an error: count
    // what is drawn (labels with text, shapes with an area), leaving out arrowhead markers and defs.
    const drawn = [...el.querySelectorAll('text, foreignObject, rect, circle, ellipse, polygon, path, line, polyline')]
      .filter(n => !n.closest('defs, marker, style'))
      .filter(n => {
        if (n.tagName === 'text' || n.tagName === 'foreignObject') return n.textContent.trim() !== '';
        try { const b = n.getBBox(); return b.width * b.height > 0 || (n.tagName === 'line' && b.width + b.height > 0); }
        catch (e) { return false; }
      });
    if (!drawn.length) return {error: 'render error: the diagram draws nothing (no nodes or labels)'};
    // Shrink big diagrams to the page, never below minZoom of natural size (labels must stay legible).
    const z = Math.max(opts.minZoom, Math.min(1, opts.maxWidth / w, opts.maxHeight / h));
    el.style.maxWidth = 'none';
    el.setAttribute('width', String(Math.round(w * z)));
    el.setAttribute('height', String(Math.round(h * z)));
    const r = out.getBoundingClientRect();
    return {x: 0, y: 0, width: Math.ceil(r.width), height: Math.ceil(r.height)};
  }
  // --- parsing without drawing: mermaid's own parser, its diagram db read through named getters ----------
  // mermaid.render() encodes entity codes (#58; #quot;) before parsing; getDiagramFromText does not, so the
  // same step is done here (mermaid's encodeEntities, which is not exported): otherwise a ';' code would end
  // a sequence message. The caller decodes the markers back (dicrepro.diagrams.parse).
  function encodeEntities(t) {
    t = t.replace(/style.*:\\S*#.*;/g, s => s.substring(0, s.length - 1));
    t = t.replace(/classDef.*:\\S*#.*;/g, s => s.substring(0, s.length - 1));
    return t.replace(/#\\w+;/g, s => {
      const inner = s.substring(1, s.length - 1);
      return (/^\\+?\\d+$/.test(inner) ? '\\uFB02\\u00B0\\u00B0' : '\\uFB02\\u00B0') + inner + '\\u00B6\\u00DF';
    });
  }
  function plain(x, stack, budget) {  // a db value as JSON: Maps/Sets as objects/lists, Dates as ISO, no cycles
    // budget: values left to copy; a db whose objects share sub-objects (eventmodeling's state) would
    // otherwise be copied once per path, which never ends.
    if (x === undefined || typeof x === 'function' || --budget.left < 0) return null;
    if (x === null || typeof x !== 'object') return (typeof x === 'number' && !isFinite(x)) ? null : x;
    if (x instanceof Date) return isNaN(x) ? null : x.toISOString();
    if (stack.includes(x) || stack.length > 12) return null;
    stack.push(x);
    let out;
    if (x instanceof Map) out = Object.fromEntries([...x.entries()].map(([k, v]) => [String(k), plain(v, stack, budget)]));
    else if (x instanceof Set || Array.isArray(x)) out = [...x].map(v => plain(v, stack, budget));
    else { out = {}; for (const [k, v] of Object.entries(x)) if (k !== 'config' && typeof v !== 'function') out[k] = plain(v, stack, budget); }
    stack.pop();
    return out;
  }
  let registered = false;
  async function parse(src, getters) {
    mermaid.initialize(config({}));  // securityLevel strict, as for rendering; nothing is drawn here
    if (!registered) { await mermaid.parse('info', {suppressErrors: true}); registered = true; }
    let d;
    try { d = await mermaid.mermaidAPI.getDiagramFromText(encodeEntities(src)); }
    catch (e) { return {error: 'parse error: ' + msg(e)}; }
    const db = d.db, out = {type: d.type, db: {}};
    try {
      let names = (getters || {})[d.type];
      if (!names) {  // a type the caller does not map: every argument-free getter, for a labels-only fallback
        names = [];
        for (let o = db; o && o !== Object.prototype; o = Object.getPrototypeOf(o))
          for (const k of Object.getOwnPropertyNames(o))
            if (/^get[A-Z]/.test(k) && !/Config|Logger|Acc[A-Z]|Styles/.test(k) && typeof db[k] === 'function' && db[k].length === 0) names.push(k);
      }
      for (const k of new Set(names)) {
        if (typeof db[k] !== 'function') continue;
        try { out.db[k] = plain(db[k].call(db), [], {left: 100000}); } catch (e) { out.db[k] = {error: msg(e)}; }
      }
      if (db.LINETYPE) out.db.LINETYPE = plain(db.LINETYPE, [], {left: 1000});
      // The title statement: on the db itself, or (timeline) on the common db it shares.
      const common = typeof db.getCommonDb === 'function' ? db.getCommonDb() : db;
      const title = typeof db.getDiagramTitle === 'function' ? db.getDiagramTitle()
                  : (common && typeof common.getDiagramTitle === 'function' ? common.getDiagramTitle() : '');
      out.title = typeof title === 'string' ? title : '';
    } finally { if (typeof db.clear === 'function') db.clear(); }
    return out;
  }
  window.dicrepro = {render, parse, ready: typeof mermaid !== 'undefined', version: typeof mermaid !== 'undefined' ? mermaid.version : null};
})();
</script></head><body><div id="out"></div></body></html>
""".replace("FONTS", FONT_STACK).replace("FONTJS", json.dumps(FONT_STACK)).replace("SEED", DETERMINISTIC_SEED)


def png_size(png: bytes) -> tuple[int, int]:
    """``(width, height)`` of a PNG, read from its IHDR chunk without decoding it."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def one_colour(png: bytes) -> bool:
    """True when a PNG is a single colour everywhere (a blank picture). Cheap for real diagrams: a PNG of one
    colour compresses far better than 200:1, so only such tiny files are decoded and checked."""
    w, h = png_size(png)
    if len(png) > 256 + 3 * w * h // 200:
        return False
    from PIL import Image  # only for the rare near-empty file

    with Image.open(io.BytesIO(png)) as img:
        return all(lo == hi for lo, hi in img.convert("RGB").getextrema())


@dataclass(frozen=True)
class RenderResult:
    """One diagram's outcome: ``png`` bytes, or ``None`` and ``error`` saying why (parse error, timeout).

    ``width``/``height`` are the PNG's pixel size (0 on failure); ``seconds`` the wall time it took.
    """

    png: bytes | None
    error: str | None
    width: int
    height: int
    seconds: float

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.png)


def default_workers() -> int:
    """Cores this process may use (the container's share, not the host's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def mermaid_js_path() -> Path:
    """The pinned mermaid.min.js (npm package at the repo root), or ``$DICREPRO_MERMAID_JS``."""
    env = os.environ.get("DICREPRO_MERMAID_JS")
    path = Path(env) if env else node_modules() / "mermaid" / "dist" / "mermaid.min.js"
    if not path.is_file():
        raise FileNotFoundError(
            f"mermaid.js not found at {path}. Run `make setup` (it runs `npm ci` for the pinned mermaid "
            "in package-lock.json), or point DICREPRO_MERMAID_JS at a mermaid.min.js.")
    return path


def chromium_path() -> Path:
    """Debian's Chromium, or ``$DICREPRO_CHROMIUM``."""
    path = Path(os.environ.get("DICREPRO_CHROMIUM") or CHROMIUM)
    if not path.exists():
        raise FileNotFoundError(f"Chromium not found at {path}. Run `make setup` (installs Debian's chromium), "
                                "or set DICREPRO_CHROMIUM to a Chromium/Chrome executable.")
    return path


def _as_item(item: Any) -> tuple[str, dict | None]:
    if isinstance(item, str):
        return item, None
    try:
        src, cfg = item
    except (TypeError, ValueError):
        raise TypeError(f"expected a Mermaid string or a (source, config) pair, got {item!r:.80}") from None
    if not isinstance(src, str):
        raise TypeError(f"Mermaid source must be str, got {type(src).__name__}")
    if cfg is not None and not isinstance(cfg, dict):
        raise TypeError(f"per-diagram config must be a dict or None, got {type(cfg).__name__}")
    return src, cfg


class _Slot:
    """One page of the pool, with its DevTools session (screenshots go straight through CDP)."""

    def __init__(self, page, cdp):
        self.page, self.cdp, self.uses = page, cdp, 0


class MermaidRenderer:
    """A running Chromium with ``workers`` pages that render Mermaid with mermaid.js.

    Args:
        workers: pages rendering in parallel (default: the cores this process may use).
        timeout_s: seconds allowed per diagram (parse + render + screenshot); past it the diagram is
            recorded as timed out and its page replaced.
        width: the layout width in CSS px and the widest picture; wider diagrams are shrunk to fit, but
            never below ``min_zoom`` of their natural size, so a 40-node diagram stays legible.
        scale: device pixels per CSS px (the PNG is ``scale`` times the CSS size).
        max_height: tallest picture in CSS px before shrinking (default ``2 * width``).
        min_zoom: smallest shrink factor applied to fit ``width``/``max_height``.
        progress: show a tqdm bar in :meth:`render_batch` (can be overridden per call).
        recycle_every: replace a page after this many renders, which bounds its memory on long runs.
        fast_config: load mermaid.js with its configuration copies sped up (:mod:`dicrepro.diagrams.mermaid_js`,
            the same pictures); False loads it exactly as shipped.
    """

    def __init__(self, workers: int | None = None, timeout_s: float = 20.0, width: int = 800,
                 scale: float = 1.0, *, max_height: int | None = None, min_zoom: float = 0.5,
                 progress: bool = True, recycle_every: int = 500, fast_config: bool = True):
        self.workers = int(workers or default_workers())
        if self.workers < 1 or timeout_s <= 0 or width < 50 or scale <= 0 or not 0 < min_zoom <= 1:
            raise ValueError(f"bad renderer settings: workers={workers} timeout_s={timeout_s} width={width} "
                             f"scale={scale} min_zoom={min_zoom}")
        self.timeout_s, self.width, self.scale = float(timeout_s), int(width), float(scale)
        self.max_height = int(max_height or 2 * width)
        # A picture up to width x max_height fits in the viewport with its padding (only a bigger one, which
        # min_zoom kept from shrinking, is taken beyond it; _render_on): a screenshot beyond the viewport
        # can composite a stale paint of the page's top into the part below it (Chromium; an 882-px class
        # diagram came out with its top repeated from the 513th row, once in about 6,000 renders). The page's
        # body stays `width` wide, so layouts that follow the page's width (gantt) are not changed by this.
        self._viewport = {"width": self.width + 2 * _PAD + 16, "height": self.max_height + 2 * _PAD + 16}
        self.min_zoom, self.progress, self.recycle_every = float(min_zoom), progress, recycle_every
        self._mermaid_js = mermaid_js_path().read_bytes()
        if fast_config:
            self._mermaid_js = patched(self._mermaid_js)
        self._chromium = chromium_path()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pw = self._browser = self._context = None
        self._slots: asyncio.Queue | None = None
        self._relaunch_lock: asyncio.Lock | None = None
        self.blocked_requests = 0  # requests the pages tried to make and were refused

    # --- lifecycle (the async Playwright API runs on a private event-loop thread) -------------------

    def __enter__(self) -> "MermaidRenderer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> "MermaidRenderer":
        """Launch Chromium and open the pages (called by ``with``)."""
        if self._loop is not None:
            return self
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="dicrepro-render", daemon=True)
        self._thread.start()
        t0 = time.perf_counter()
        try:
            self._call(self._astart())
        except BaseException:
            self.close()
            raise
        log.info("renderer ready: %d pages in %s (%.1fs)", self.workers, self._chromium, time.perf_counter() - t0)
        return self

    def close(self) -> None:
        """Close Chromium and stop the loop thread; safe to call twice."""
        if self._loop is None:
            return
        try:
            self._call(self._aclose(), timeout=30)
        except Exception as e:  # closing must not mask the error that brought us here
            log.warning("closing the renderer: %s", e)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop = self._thread = None

    def _call(self, coro, timeout: float | None = None):
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout)
        except BaseException:
            fut.cancel()  # e.g. Ctrl-C in the caller: stop the batch instead of rendering on unseen
            raise

    async def _astart(self) -> None:
        from playwright.async_api import async_playwright

        self._pw = await async_playwright().start()
        self._relaunch_lock = asyncio.Lock()
        await self._launch()
        self._slots = asyncio.Queue()
        for slot in await asyncio.gather(*(self._new_slot() for _ in range(self.workers))):
            self._slots.put_nowait(slot)

    async def _launch(self) -> None:
        self._browser = await self._pw.chromium.launch(executable_path=str(self._chromium), args=CHROMIUM_ARGS,
                                                       headless=True)
        self._context = await self._browser.new_context(
            viewport=self._viewport, device_scale_factor=self.scale,
            java_script_enabled=True, offline=True, service_workers="block")

    async def _aclose(self) -> None:
        for obj in (self._context, self._browser):
            if obj is not None:
                try:
                    await asyncio.wait_for(obj.close(), 10)
                except Exception as e:
                    log.debug("close %s: %s", obj, e)
        if self._pw is not None:
            await self._pw.stop()

    async def _route(self, route) -> None:
        url = route.request.url
        if url == ORIGIN + "/":
            await route.fulfill(status=200, content_type="text/html; charset=utf-8", body=PAGE_HTML)
        elif url == ORIGIN + "/mermaid.min.js":
            await route.fulfill(status=200, content_type="text/javascript; charset=utf-8", body=self._mermaid_js)
        else:  # nothing else is ours: no fonts, images or scripts from the network
            self.blocked_requests += 1
            log.debug("blocked request from the render page: %s", url)
            await route.abort("blockedbyclient")

    async def _new_slot(self) -> _Slot:
        async with self._relaunch_lock:  # a crashed browser is relaunched once, not by every page
            if not self._browser.is_connected():
                log.warning("Chromium went away; relaunching it")
                await self._launch()
        page = await self._context.new_page()
        await page.route("**/*", self._route)
        await page.goto(ORIGIN + "/", wait_until="load", timeout=60_000)
        await page.wait_for_function("window.dicrepro && window.dicrepro.ready === true", timeout=60_000)
        await page.evaluate("w => { document.body.style.width = w + 'px'; }", self.width)
        return _Slot(page, await self._context.new_cdp_session(page))

    async def _replace(self, slot: _Slot, why: str) -> _Slot:
        log.info("replacing a render page (%s)", why)
        try:
            await asyncio.wait_for(slot.page.close(run_before_unload=False), 5)
        except Exception as e:  # a hung or crashed page may not close cleanly; Chromium reaps it
            log.debug("closing page: %s", e)
        return await self._new_slot()

    # --- rendering -----------------------------------------------------------------------------------

    async def _render_on(self, slot: _Slot, src: str, cfg: dict | None) -> RenderResult:
        t0 = time.perf_counter()
        opts = {"maxWidth": self.width, "maxHeight": self.max_height, "minZoom": self.min_zoom}
        box = await slot.page.evaluate("([s, c, o]) => window.dicrepro.render(s, c, o)", [src, cfg, opts])
        if box.get("error"):
            return RenderResult(None, box["error"], 0, 0, time.perf_counter() - t0)
        # Straight CDP screenshot of the SVG's box, inside the viewport (see __init__). Only a picture that
        # min_zoom keeps bigger than the viewport is taken beyond it: resizing the viewport for its shot
        # instead gave a 922-px-wide picture different bytes from one render to the next.
        beyond = box["width"] > self._viewport["width"] or box["height"] > self._viewport["height"]
        png = await self._screenshot(slot, box, beyond)
        if one_colour(png):
            # Once in CI, a diagram that draws a box came back as an all-white picture under a loaded CPU
            # (the shot taken before the frame with the drawing was painted, it seems). Wait for two frames
            # and shoot again; a picture still of one colour draws nothing visible, which is an error, not
            # a training image.
            await slot.page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            png = await self._screenshot(slot, box, beyond)
            if one_colour(png):
                return RenderResult(None, "render error: the picture is blank (one colour everywhere)", 0, 0,
                                    time.perf_counter() - t0)
        return RenderResult(png, None, *png_size(png), time.perf_counter() - t0)

    @staticmethod
    async def _screenshot(slot: _Slot, box: dict, beyond: bool) -> bytes:
        shot = await slot.cdp.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": beyond, "fromSurface": True,
            "clip": {"x": box["x"], "y": box["y"], "width": box["width"], "height": box["height"], "scale": 1}})
        return base64.b64decode(shot["data"])

    async def _render_one(self, src: str, cfg: dict | None) -> RenderResult:
        slot = await self._slots.get()
        t0 = time.perf_counter()
        try:
            res = await asyncio.wait_for(self._render_on(slot, src, cfg), self.timeout_s)
            slot.uses += 1
            if slot.uses >= self.recycle_every:
                slot = await self._replace(slot, f"recycled after {slot.uses} renders")
            return res
        except asyncio.TimeoutError:
            slot = await self._replace(slot, "timeout")
            return RenderResult(None, f"timeout: no image after {self.timeout_s:g}s", 0, 0,
                                time.perf_counter() - t0)
        except Exception as e:  # page crashed, target closed, protocol error: record, replace, go on
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            slot = await self._replace(slot, msg)
            return RenderResult(None, f"browser error: {msg}", 0, 0, time.perf_counter() - t0)
        finally:
            self._slots.put_nowait(slot)

    async def _abatch(self, items: list[tuple[str, dict | None]], bar, on_result=None) -> list[RenderResult]:
        async def one(i, src, cfg):
            res = await self._render_one(src, cfg)
            if on_result is not None:
                on_result(i, res)
            if bar is not None:
                bar.update(1)
            return res

        return list(await asyncio.gather(*(one(i, s, c) for i, (s, c) in enumerate(items))))

    def render_batch(self, items: Iterable[Any], progress: bool | None = None,
                     on_result: Callable[[int, RenderResult], None] | None = None) -> list[RenderResult]:
        """Render ``items`` (Mermaid strings or ``(source, config)`` pairs) -> results in input order.

        ``config`` may set ``theme`` and ``themeVariables`` (or any mermaid config key except the
        security-related ones); it applies to that diagram only. Failures come back as results with
        ``error`` set; the batch always completes. ``on_result(index, result)`` is called as each one
        finishes (e.g. to write it at once); it must not raise.
        """
        if self._loop is None:
            raise RuntimeError("MermaidRenderer is not started: use `with MermaidRenderer() as r:`")
        items = [_as_item(it) for it in items]
        show = self.progress if progress is None else progress
        with tqdm(total=len(items), desc="render", unit="diagram", disable=not show or not items) as bar:
            results = self._call(self._abatch(items, bar, on_result))
        failed = sum(not r.ok for r in results)
        if failed:
            log.info("rendered %d diagrams, %d failed", len(results) - failed, failed)
        return results

    async def _parse_one(self, src: str, getters: dict) -> dict:
        slot = await self._slots.get()
        try:
            out = await asyncio.wait_for(
                slot.page.evaluate("([s, g]) => window.dicrepro.parse(s, g)", [src, getters]), self.timeout_s)
            slot.uses += 1
            if slot.uses >= self.recycle_every:
                slot = await self._replace(slot, f"recycled after {slot.uses} uses")
            return out
        except asyncio.TimeoutError:
            slot = await self._replace(slot, "parse timeout")
            return {"error": f"timeout: not parsed after {self.timeout_s:g}s"}
        except Exception as e:  # page crashed or closed: record, replace, go on
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            slot = await self._replace(slot, msg)
            return {"error": f"browser error: {msg}"}
        finally:
            self._slots.put_nowait(slot)

    def parse_batch(self, sources: Iterable[str], getters: dict[str, list[str]] | None = None) -> list[dict]:
        """Parse Mermaid ``sources`` with mermaid.js's own parser, drawing nothing -> raw db snapshots.

        Each result is ``{"type": mermaid's diagram type, "db": {getter: JSON value}}`` or
        ``{"error": "parse error: ..."}``. ``getters`` maps a diagram type to the db getters to read; a type
        not in it gets every argument-free getter. Same pages, mermaid build and securityLevel as rendering.
        :func:`dicrepro.diagrams.parse.parse_mermaid` turns these into :class:`~dicrepro.diagrams.graph.Diagram`.
        """
        if self._loop is None:
            raise RuntimeError("MermaidRenderer is not started: use `with MermaidRenderer() as r:`")
        sources = list(sources)
        bad = [i for i, s in enumerate(sources) if not isinstance(s, str)]
        if bad:
            raise TypeError(f"Mermaid source must be str (item {bad[0]} is {type(sources[bad[0]]).__name__})")

        async def run():
            return list(await asyncio.gather(*(self._parse_one(s, getters or {}) for s in sources)))

        return self._call(run())

    def render(self, source: str, config: dict | None = None) -> RenderResult:
        """Render one diagram (see :meth:`render_batch`)."""
        return self.render_batch([(source, config)], progress=False)[0]


def render_mermaid(sources: Sequence[Any], **kw) -> list[RenderResult]:
    """One-shot: start a renderer (``kw`` as :class:`MermaidRenderer`), render ``sources``, close it."""
    progress = kw.pop("progress", None)
    with MermaidRenderer(**kw) as r:
        return r.render_batch(sources, progress=progress)


MAX_SOURCE_BYTES = 1 << 20  # mermaid itself refuses text over 50,000 characters (maxTextSize)


def _read_source(p: Path) -> str:
    """A Mermaid file's text; only regular files (a FIFO would block, /dev/zero never ends), size-capped."""
    import stat

    st = p.stat()
    if not stat.S_ISREG(st.st_mode):
        raise ValueError("not a regular file")
    if st.st_size > MAX_SOURCE_BYTES:
        raise ValueError(f"{st.st_size} bytes, more than the {MAX_SOURCE_BYTES} a Mermaid file may have")
    return p.read_text(encoding="utf-8")


def render_files(paths: Sequence[Path | str], out_dir: Path | str, **kw) -> dict:
    """Render Mermaid files to ``out_dir/<stem>.png`` (written atomically), for ``dicrepro render``.

    ``kw`` go to :class:`MermaidRenderer`. Returns ``{"summary": one line, "ok": [written pngs],
    "failures": [{"path", "error"}], "seconds"}``; unreadable files and two inputs with the same stem are
    failures too, and never stop the others.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    paths = [Path(p) for p in paths]
    failures: list[dict] = []
    todo: list[tuple[Path, str]] = []
    seen: dict[str, Path] = {}
    for p in paths:
        if p.stem in seen:
            failures.append({"path": str(p), "error": f"same output name {p.stem}.png as {seen[p.stem]}"})
            continue
        seen[p.stem] = p
        try:
            todo.append((p, _read_source(p)))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            failures.append({"path": str(p), "error": f"cannot read: {e}"})
    written: list[str] = []

    def save(i: int, res: RenderResult) -> None:  # as each diagram finishes: a long batch shows progress
        p = todo[i][0]
        if not res.ok:
            failures.append({"path": str(p), "error": res.error})
            return
        try:
            written.append(str(write_bytes_atomic(out_dir / f"{p.stem}.png", res.png)))
        except OSError as e:
            failures.append({"path": str(p), "error": f"cannot write {out_dir / f'{p.stem}.png'}: {e.strerror}"})

    if todo:
        out_dir.mkdir(parents=True, exist_ok=True)
        progress = kw.pop("progress", None)
        with MermaidRenderer(**kw) as r:
            r.render_batch([src for _, src in todo], progress=progress, on_result=save)
        written.sort()
        order = {str(p): i for i, p in reversed(list(enumerate(paths)))}
        failures.sort(key=lambda f: order.get(f["path"], 0))
    secs = time.perf_counter() - t0
    summary = (f"rendered {len(written)}/{len(paths)} Mermaid files to {out_dir} in {secs:.1f}s"
               + (f", {len(failures)} failed" if failures else ""))
    log.info(summary)
    return {"summary": summary, "ok": written, "failures": failures, "seconds": secs}


__all__ = ["MermaidRenderer", "RenderResult", "render_mermaid", "render_files", "mermaid_js_path",
           "chromium_path", "default_workers"]
