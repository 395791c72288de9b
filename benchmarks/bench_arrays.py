"""Science-data benchmark: Player(array) on a >= 2 GB zarr stack vs the tools users reach for today.

One run, real JupyterLab 4 + headless Chromium (tests/e2e/harness.py), same machine, same data:

* writes a zarr stack of 2,000 x 512 x 512 float32 frames, one chunk per frame (>= 2 GB on disk:
  a moving warm front over sensor noise, in kelvin), and a 200-frame one, in a temp dir
  (deleted at the end);
* ``ipybridge.Player(zarr_array, cmap="inferno")`` (limits from sampled frames):
  - first frame painted after Run, for 200 and 2,000 frames;
  - painted frames per second asked for 60 (frames never seen before), counted in the page;
  - kernel RSS growth while playing through all 2,000 frames (fps 0, once), at every quarter;
* competitors in the same notebook:
  - ``HTML(FuncAnimation(imshow).to_jshtml())`` of the 200-frame stack: time to its first frame
    on screen and the kernel's RSS growth (2,000 frames would embed ~1 GB of PNG in the page);
  - an ipywidgets ``Play`` driving ``interact`` that re-draws ``imshow`` with the inline backend
    (the usual slider idiom) at 60 fps: new images painted per second, counted in the page;
  - optional, skipped (with the line to install them) when not installed: ``stackview.slice`` of the
    200 frames (read into a numpy array, as stackview takes it; an ipycanvas image under an
    ``IntSlider``, no play button: the slider's handle is stepped with the arrow key as fast as it
    paints) and a HoloViews ``DynamicMap`` of ``hv.Image`` driven by a Panel ``Player`` widget at
    60 fps (its play button pressed; a callback into the kernel per tick): first frame painted after
    Run and distinct frames painted per second (the canvas's pixels sampled at every display refresh).
    ``pip install -r benchmarks/requirements-rivals.txt`` (not in any extra: they pull bokeh, ipycanvas,
    scikit-image).
* a frame function costing ~100 ms of CPU (``pure=True``): frames/s drawn in order with 16 requests
  out (as the page keeps them) and encoded as the page asks (on the workers): serially, on a
  ``ProcessPoolExecutor`` of 1 and 2 processes and on a dask ``LocalCluster`` of 2 worker processes,
  with and without dask's ``MALLOC_TRIM_THRESHOLD_`` in its workers (in this process, no browser).

    .venv/bin/python benchmarks/bench_arrays.py [--frames 2000] [--window 2] [--windows 3]
    .venv/bin/python benchmarks/bench_arrays.py --quick   # the Player vs its rivals in the page only:
        # 300-frame big stack, no frame-function section, no memory pass, no to_jshtml (~3 minutes)

Prints a table, writes benchmarks/results/arrays.json. Machine load (``uptime``) is printed first
and last: other jobs on the machine slow everything and bend the ratios less than the absolute figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from bench_player import COUNT_JS, run_and_read  # noqa: E402
from tests.e2e.harness import Jupyter, launched_chromium, start_server, stop_server  # noqa: E402

RESULTS = HERE / "results"

# Time from the user's Run (the Shift+Enter keydown) to frame 0 painted on the nth player's canvas
# (the first canvas made after this script: a re-run cell's old one does not count), and from the
# canvas appearing to that paint.
TTFF_JS = """(nth) => { window.__ttff = new Promise((resolve) => {
  let t0 = 0, appeared = 0;
  const before = new Set(document.querySelectorAll(".ipybridge-player canvas"));
  const onKey = (e) => { if (e.key === "Enter" && e.shiftKey) t0 = performance.now(); };
  window.addEventListener("keydown", onKey, true);
  const check = () => {
    const canvas = [...document.querySelectorAll(".ipybridge-player canvas")].filter((c) => !before.has(c))[0];
    if (canvas && !appeared) appeared = performance.now();
    if (canvas && canvas.dataset.frame === "0") {
      obs.disconnect(); window.removeEventListener("keydown", onKey, true);
      const now = performance.now();
      resolve({from_run_ms: now - t0, from_output_ms: now - appeared});
    }
  };
  const obs = new MutationObserver(check);
  obs.observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ["data-frame"]});
}); }"""
SIZE = 512


def write_stack(path: Path, frames: int) -> float:
    """A (frames, 512, 512) float32 zarr array, one chunk per frame; returns its size on disk in GB."""
    import numpy as np
    import zarr

    # Uncompressed (as many instruments write): 1 MB per frame on disk; float noise barely compresses anyway.
    z = zarr.create_array(
        str(path), shape=(frames, SIZE, SIZE), chunks=(1, SIZE, SIZE), dtype="f4", compressors=None, overwrite=True
    )
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    block = 50
    for start in range(0, frames, block):
        n = min(block, frames - start)
        t = np.arange(start, start + n, dtype=np.float32)[:, None, None]
        front = 280 + 12 * np.tanh((x - (t * 3) % (SIZE + 200) + 100) / 40) * np.cos(y / 60)
        z[start : start + n] = (front + rng.normal(0, 2, (n, SIZE, SIZE))).astype(np.float32)
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e9


def uptime() -> str:
    try:
        return Path("/proc/loadavg").read_text().split(" ")[:3].__repr__()
    except OSError:
        return "?"


SETUP = textwrap.dedent(
    """
    import json, os, time
    import numpy as np
    import zarr
    import matplotlib.cm  # imported by any imshow user already: its import is not the Player's first frame
    import ipybridge

    def rss_mb():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    big = zarr.open({big!r}, mode="r")
    small = zarr.open({small!r}, mode="r")
    rss0 = rss_mb()
    # A first, tiny player loads the page module (once per notebook, as for any widget): the players
    # timed below are not the notebook's first widget.
    def python_rate(array, first, n=120, window=16):
        # Encoded frames/s the kernel alone makes for the page (same source, same 16 requests out).
        from ipybridge.player.arrays import ArraySource
        source = ArraySource(array, cmap="inferno")
        n = min(n, array.shape[0] - first)
        start = time.perf_counter()
        for k in range(n):
            for ahead in range(k, min(n, k + window)):
                if ahead >= k + window - 1 or k == 0:
                    source.prefetch(first + ahead, ("png", 85))
            source.collect(first + k, ("png", 85))
        return n / (time.perf_counter() - start)

    warm = ipybridge.Player(np.zeros((2, 4, 4), np.uint8))
    print("ready")
    display(warm)
    """
)

INTERACT = textwrap.dedent(
    """
    %matplotlib inline
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    play = widgets.Play(min=0, max=small.shape[0] - 1, interval=1000 / 60)
    def show(i):
        fig, ax = plt.subplots(figsize=(5.12, 5.12), dpi=100)
        ax.imshow(small[i], cmap="inferno", vmin=265, vmax=295)
        plt.show()
    ui = widgets.interactive(show, i=play)
    ui
    """
)

JSHTML = textwrap.dedent(
    """
    import matplotlib, matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation
    from IPython.display import HTML
    matplotlib.rcParams["animation.embed_limit"] = 4000
    r_before = rss_mb()
    fig, ax = plt.subplots(figsize=(5.12, 5.12), dpi=100)
    im = ax.imshow(small[0], cmap="inferno", vmin=265, vmax=295)
    anim = FuncAnimation(fig, lambda i: im.set_data(small[i]), frames=small.shape[0], interval=1000 / 60)
    html = HTML(anim.to_jshtml()); plt.close(fig)
    jshtml_rss = rss_mb() - r_before
    html
    """
)

# Counts images the interact output paints: every new <img> in that cell's output.
IMG_COUNT_JS = """([cell, ms]) => new Promise((resolve) => {
  const out = document.querySelectorAll('.jp-Notebook .jp-Cell')[cell];
  let n = 0;
  const obs = new MutationObserver((records) => {
    for (const r of records) for (const node of r.addedNodes)
      if (node.nodeType === 1 && (node.tagName === 'IMG' || node.querySelector?.('img'))) n++;
  });
  obs.observe(out, {subtree: true, childList: true});
  setTimeout(() => { obs.disconnect(); resolve(n * 1000 / ms); }, ms);
})"""


# Optional rivals: present when importable in this environment, else skipped with the install line.
OPTIONAL = {"stackview": ("stackview",), "holoviews_panel": ("holoviews", "panel")}
INSTALL = "pip install -r benchmarks/requirements-rivals.txt"


def installed(name: str) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(module) is not None for module in OPTIONAL[name])


# Loaded before a rival's cell, as a user's notebook has them (the Player's module is loaded by the warm player).
STACKVIEW_SETUP = 'import stackview\nprint("ready")'
STACKVIEW = textwrap.dedent(
    """
    read_start = time.perf_counter()
    frames_np = small[:]  # stackview takes a numpy array: the 200 frames read into memory (200 MB)
    sv_read_s = time.perf_counter() - read_start
    sv = stackview.slice(frames_np, colormap="inferno", display_min=265, display_max=295)
    sv
    """
)
# inline: BokehJS and Panel's JS embedded in the notebook, not fetched from their CDNs (this machine is offline).
HOLOVIEWS_SETUP = 'import holoviews as hv, panel as pn\nhv.extension("bokeh", inline=True)\nprint("ready")'
HOLOVIEWS = textwrap.dedent(
    """
    player = pn.widgets.Player(start=0, end=small.shape[0] - 1, value=0, interval=round(1000 / 60), loop_policy="loop")
    def frame(t):
        return hv.Image(small[t], bounds=(0, 0, 512, 512)).opts(cmap="inferno", clim=(265, 295), width=512, height=512)
    dmap = hv.DynamicMap(pn.bind(frame, t=player))
    pn.Column(player, dmap)
    """
)

# Canvas helpers for rivals that paint a <canvas> (ipycanvas, bokeh inside shadow roots): the cell's largest
# canvas, sampled down to 16 x 16 pixels at every display refresh. A frame is painted when the sample changes.
CANVAS_JS = """() => { if (window.__bench) return;
  const scratch = document.createElement("canvas"); scratch.width = scratch.height = 16;
  const sctx = scratch.getContext("2d", {willReadFrequently: true});
  const canvases = (root) => { const out = []; const walk = (n) => { if (n.tagName === "CANVAS") out.push(n);
    if (n.shadowRoot) walk(n.shadowRoot); for (const c of n.children || []) walk(c); }; walk(root); return out; };
  const biggest = (cell) => canvases(cell.querySelector(".jp-OutputArea") || cell)
    .filter((c) => c.width * c.height > 0).sort((a, b) => b.width * b.height - a.width * a.height)[0];
  const sample = (canvas) => { sctx.clearRect(0, 0, 16, 16); sctx.drawImage(canvas, 0, 0, 16, 16);
    const d = sctx.getImageData(0, 0, 16, 16).data; let h = 0;
    for (let i = 0; i < d.length; i++) h = (h * 31 + d[i]) >>> 0;
    const c = sctx.getImageData(6, 6, 4, 4).data;  // the middle: the image, not axes or margins
    let shown = false;
    for (let i = 0; i < c.length; i += 4) if (c[i + 3] > 0 && Math.min(c[i], c[i + 1], c[i + 2]) <= 240) shown = true;
    return {h, shown}; };
  const cellAt = (n) => document.querySelectorAll(".jp-Notebook .jp-Cell")[n];
  window.__bench = {biggest, sample, cellAt};
}"""

# Time from the user's Run (Shift+Enter keydown) to the first refresh where the cell's largest canvas shows an image.
FIRST_PAINT_JS = """(cell) => { window.__firstPaint = new Promise((resolve, reject) => {
  let t0 = 0;
  const t00 = performance.now();
  const onKey = (e) => { if (e.key === "Enter" && e.shiftKey) t0 = performance.now(); };
  window.addEventListener("keydown", onKey, true);
  const tick = () => {
    const c = window.__bench.cellAt(cell);
    const canvas = t0 && c && window.__bench.biggest(c);
    if (canvas && window.__bench.sample(canvas).shown) {
      window.removeEventListener("keydown", onKey, true); resolve(performance.now() - t0); return; }
    if (performance.now() - t00 > 180000) { reject(new Error("no image painted in 180 s")); return; }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}); }"""

# Distinct images painted on the cell's largest canvas, counted at every display refresh until stopped.
PAINTS_JS = """(cell) => { const w = {n: 0, stop: false, last: null}; window.__paints = w;
  const tick = () => { if (w.stop) return;
    const canvas = window.__bench.biggest(window.__bench.cellAt(cell));
    if (canvas) { const s = window.__bench.sample(canvas); if (w.last !== null && s.h !== w.last) w.n++; w.last = s.h; }
    requestAnimationFrame(tick); };
  requestAnimationFrame(tick); }"""


def rival_first_paint(nb: Any, cell: int) -> float:
    nb.page.evaluate(CANVAS_JS)
    nb.page.evaluate(FIRST_PAINT_JS, cell)
    nb.run_cell(cell)
    ms = float(nb.page.evaluate("window.__firstPaint"))
    nb.wait_cell_done(cell)
    return ms


def painted_rate(nb: Any, cell: int, window_s: float, drive: Any = None) -> float:
    """Distinct frames painted per second on ``cell``'s canvas over ``window_s`` (``drive()`` called in a loop
    meanwhile, for a rival with no play button)."""
    nb.page.evaluate(PAINTS_JS, cell)
    start = time.monotonic()
    if drive is None:
        nb.page.wait_for_timeout(int(window_s * 1000))  # the count window is the measurement
    else:
        while time.monotonic() - start < window_s:
            drive()
    n = float(nb.page.evaluate("(() => { window.__paints.stop = true; return window.__paints.n; })()"))
    return n / (time.monotonic() - start)


def rivals_section(nb: Any, args: argparse.Namespace, base: int, out: dict[str, Any]) -> None:
    """stackview (cells base, base + 1, base + 4) and HoloViews + Panel (base + 2, base + 3), each only if
    installed."""
    if not installed("stackview"):
        out["stackview"] = {"skipped": f"not installed: {INSTALL}"}
        print(f"  stackview skipped: not installed ({INSTALL})", flush=True)
    else:
        try:
            assert run_and_read(nb, base) == "ready"
            first = rival_first_paint(nb, base + 1)
            handle = nb.cell(base + 1).locator(".noUi-handle").first
            handle.focus()
            steps = {"n": 0}

            def step() -> None:  # one arrow key press, then wait (bounded) for its image to be painted
                before = nb.page.evaluate("window.__paints.n")
                steps["n"] += 1
                nb.page.keyboard.press("Home" if steps["n"] % 90 == 0 else "ArrowRight")  # 200 frames, from 100
                nb.page.wait_for_function(f"window.__paints.n > {before}", timeout=30_000)

            rates = [painted_rate(nb, base + 1, args.window, step) for _ in range(args.windows)]
            read = json.loads(run_and_read(nb, base + 4))["sv_read_s"] * 1000
            out["stackview"] = {"read_ms": read, "first_frame_ms": first, "rates": rates, "keys": steps["n"],
                                "painted_fps_stepped": statistics.median(rates)}  # fmt: skip
            print(f"  stackview.slice: first frame {first:.0f} ms after Run, painted fps stepping the slider "
                  f"{rates}", flush=True)  # fmt: skip
        except Exception as exc:  # a rival that fails is reported, not a reason to lose the run
            out["stackview"] = {"error": repr(exc)[:300]}
            print(f"  stackview failed: {exc!r}"[:300], flush=True)
    if not installed("holoviews_panel"):
        out["holoviews_panel"] = {"skipped": f"not installed: {INSTALL}"}
        print(f"  HoloViews + Panel skipped: not installed ({INSTALL})", flush=True)
        return
    try:
        nb.run_cell(base + 2)
        nb.wait_cell_done(base + 2, timeout=120_000)
        assert "ready" in nb.cell(base + 2).inner_text(), nb.cell(base + 2).inner_text()[:300]
        first = rival_first_paint(nb, base + 3)
        nb.cell(base + 3).locator("button.play").first.click()
        nb.page.wait_for_timeout(1000)  # warm-up before counting; the count windows are the measurement
        rates = [painted_rate(nb, base + 3, args.window) for _ in range(args.windows)]
        nb.cell(base + 3).locator("button.pause").first.click()
        out["holoviews_panel"] = {
            "first_frame_ms": first,
            "painted_fps_at_60": statistics.median(rates),
            "rates": rates,
        }
        print(f"  HoloViews DynamicMap + Panel Player: first frame {first:.0f} ms after Run, painted fps at 60 "
              f"{rates}", flush=True)  # fmt: skip
    except Exception as exc:
        out["holoviews_panel"] = {"error": repr(exc)[:300]}
        print(f"  HoloViews + Panel failed: {exc!r}"[:300], flush=True)


def browser_section(jupyter: Jupyter, args: argparse.Namespace, big: Path, small: Path) -> dict[str, Any]:
    cells = [
        SETUP.format(big=str(big), small=str(small)),
        'ps = ipybridge.Player(small, cmap="inferno")\nps',
        # On the comm (as in VS Code, Colab, a remote kernel), on frames never read before.
        'ipybridge.Player.direct = False\npb = ipybridge.Player(big, cmap="inferno", fps=60)\n'
        "ipybridge.Player.direct = True\npb",
        'pb.pause(); print(json.dumps({"stats": pb.stats, "reads": pb.source.reads, '
        f'"python_fps": python_rate(big, {args.frames * 3 // 4})}}))',
        # The direct transport (the default where it opens), on frames neither player has read before.
        f'pdir = ipybridge.Player(big, cmap="inferno", fps=60)\npdir.frame = {args.frames // 2}\npdir',
        'pdir.pause(); print(json.dumps({"stats": pdir.stats, "transport": pdir.transport}))',
        'pm = ipybridge.Player(big, cmap="inferno", fps=0, loop="once", cache_mb=64)\npm',
        'print(json.dumps({"rss": rss_mb(), "frame": pm.frame, "reads": pm.source.reads}))',
        INTERACT,
        'play.playing = False; print("stopped")',
        JSHTML,
        'print(json.dumps({"jshtml_rss_mb": jshtml_rss, "html_mb": len(html.data) / 1e6}))',
        STACKVIEW_SETUP,
        STACKVIEW,
        HOLOVIEWS_SETUP,
        HOLOVIEWS,
        'print(json.dumps({"sv_read_s": sv_read_s}))',
    ]
    nb = jupyter.open("lab", cells, name="bench-arrays")
    assert run_and_read(nb, 0) == "ready"
    out: dict[str, Any] = {}
    selector = ".ipybridge-player canvas"
    for cell, key in ((1, "first_frame_200"), (2, "first_frame_2000")):
        runs = []
        for _ in range(args.first_frame_runs):  # the cell run again: a new player each time
            nb.page.evaluate(TTFF_JS, 0)
            nb.run_cell(cell)
            runs.append(nb.page.evaluate("window.__ttff"))
            nb.wait_cell_done(cell)
        out[key] = {
            "from_run_ms": statistics.median(r["from_run_ms"] for r in runs),
            "from_output_ms": statistics.median(r["from_output_ms"] for r in runs),
            "runs": runs,
        }
        print(f"  {key}: {[round(r['from_run_ms']) for r in runs]} ms after Run", flush=True)
    # Painted fps at 60 on frames never seen before.
    nb.output(2).get_by_role("button", name="Play", exact=True).click()
    nb.page.wait_for_timeout(1000)  # warm-up before counting; the count windows are the measurement
    rates = [nb.page.evaluate(COUNT_JS, [selector, 2, int(args.window * 1000)]) for _ in range(args.windows)]
    out["painted_fps_at_60"] = statistics.median(rates)
    stats = json.loads(run_and_read(nb, 3))
    out["kernel_at_60"] = {k: stats["stats"][k] for k in ("render_ms", "encode_ms", "bytes_per_frame")}
    out["python_only_fps"] = stats["python_fps"]
    print(f"  painted fps at 60: {rates} kernel {out['kernel_at_60']}", flush=True)
    # The same over the direct transport.
    nb.run_cell(4)
    nb.output(4).locator(f"{selector}[data-frame='{args.frames // 2}']").wait_for(timeout=60_000)
    nb.output(4).get_by_role("button", name="Play", exact=True).click()
    nb.page.wait_for_timeout(1000)
    rates = [nb.page.evaluate(COUNT_JS, [selector, 3, int(args.window * 1000)]) for _ in range(args.windows)]
    out["direct_painted_fps_at_60"] = statistics.median(rates)
    direct = json.loads(run_and_read(nb, 5))
    out["direct_transport"] = direct["transport"]
    print(f"  direct transport ({direct['transport']}): painted fps at 60: {rates}", flush=True)
    # The optional rivals (stackview, HoloViews + Panel) on the 200-frame stack.
    rivals_section(nb, args, 12, out)
    if not args.quick:
        out["memory"] = memory_pass(nb, args, selector)
    interact_and_jshtml(nb, args, out)
    return out


def memory_pass(nb: Any, args: argparse.Namespace, selector: str) -> dict[str, Any]:
    # Kernel RSS over all frames, unthrottled, once through.
    nb.page.evaluate(TTFF_JS, 4)
    nb.run_cell(6)
    nb.page.evaluate("window.__ttff")
    first = json.loads(run_and_read(nb, 7))
    checkpoints = [{"frame": 0, "rss_mb": first["rss"]}]
    start = time.monotonic()
    nb.output(6).get_by_role("button", name="Play", exact=True).click()
    quarter = args.frames // 4
    for k in range(1, 5):
        mark = min(k * quarter, args.frames - 1)
        nb.page.wait_for_function(
            f"() => Number(document.querySelectorAll('{selector}')[4].dataset.frame) >= {mark}",
            timeout=int(args.frames * 1000 / 5) + 60_000,
        )
        now = json.loads(run_and_read(nb, 7))
        checkpoints.append({"frame": mark, "rss_mb": now["rss"], "reads": now["reads"]})
        print(f"  memory at frame {mark}: {checkpoints[-1]}", flush=True)
    seconds = time.monotonic() - start
    return {
        "frames": args.frames,
        "seconds": seconds,
        "unthrottled_fps": args.frames / seconds,
        "checkpoints": checkpoints,
        "rss_growth_mb": max(c["rss_mb"] for c in checkpoints) - checkpoints[0]["rss_mb"],
    }


def interact_and_jshtml(nb: Any, args: argparse.Namespace, out: dict[str, Any]) -> None:
    # ipywidgets Play + interact(imshow), inline backend, asked for 60 fps.
    nb.run_cell(8)
    try:
        nb.cell(8).locator("img").first.wait_for(timeout=180_000)
        nb.cell(8).locator(".jp-OutputArea-output").first.get_by_role("button").first.click()  # Play's button
        nb.page.wait_for_timeout(1000)  # warm-up
        rates = [nb.page.evaluate(IMG_COUNT_JS, [8, int(args.window * 1000)]) for _ in range(args.windows)]
        out["interact_painted_fps_at_60"] = statistics.median(rates)
        print(f"  interact fps: {rates}", flush=True)
    except Exception as exc:  # a competitor that fails is reported, not a reason to lose the run
        out["interact_painted_fps_at_60"] = float("nan")
        out["interact_error"] = repr(exc)[:300]
        print(f"  interact failed: {exc!r}"[:300], flush=True)
    run_and_read(nb, 9)
    if args.quick:
        return
    # to_jshtml of the 200-frame stack.
    started = time.monotonic()
    nb.run_cell(10)
    nb.page.wait_for_function(
        """() => { const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[10];
            const img = cell && cell.querySelector('.jp-OutputArea-output img[id^="_anim_img"]');
            return img && img.complete && img.naturalWidth > 0; }""",
        timeout=900_000,
    )
    out["jshtml_first_frame_200_s"] = time.monotonic() - started
    out.update(json.loads(run_and_read(nb, 11)))
    print(f"  to_jshtml 200: {out['jshtml_first_frame_200_s']:.1f} s, {out['jshtml_rss_mb']:.0f} MB", flush=True)


# ------------------------------------------------------------------ frame function (~100 ms CPU)


def heavy_figure() -> tuple[Any, Any]:
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 4), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    im = ax.imshow(np.zeros((300, 300)), vmin=0, vmax=60, cmap="twilight")
    c = (np.linspace(-2, 1, 300)[None, :] + 1j * np.linspace(-1.5, 1.5, 300)[:, None]).astype(np.complex128)

    def mandelbrot(k):  # pure: frame k depends only on k; ~100 ms of numpy work
        z = np.zeros_like(c)
        count = np.zeros(c.shape)
        zoom = c * (0.98**k) + (-0.7436 + 0.1318j) * (1 - 0.98**k)
        for _ in range(int(os.environ.get("BENCH_ITERATIONS", "130"))):  # ~100 ms on this machine, quiet
            z = z * z + zoom
            inside = np.abs(z) < 2
            count += inside
            z[~inside] = 2
        for _ in range(int(os.environ.get("BENCH_EXTRA", "3"))):
            count = np.sqrt(count * count + 1e-9)
        im.set_data(count)

    return fig, mandelbrot


_plain: Any = None


def plain_frame(k: int) -> int:
    """The same frame drawn and encoded on a worker with no Player machinery (``executor.map``): what 1 vs 2
    processes can gain on this machine at this minute, the ceiling for the Player's ratio."""
    global _plain
    from ipybridge.player import codecs

    if _plain is None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        fig, func = heavy_figure()
        _plain = (FigureCanvasAgg(fig), func)
    canvas, func = _plain
    func(k)
    canvas.draw()
    return len(codecs.encode(np.asarray(canvas.buffer_rgba()), "auto").data)


def plain_rate(pool: Any, n: int, first: int) -> float:
    start = time.perf_counter()
    list(pool.map(plain_frame, range(first, first + n)))
    return n / (time.perf_counter() - start)


def sleepy_figure() -> tuple[Any, Any]:
    """A control: a frame function that waits 100 ms and computes nothing. Its frames/s show whether
    the machinery overlaps frames, whatever the CPU load (CPU-bound frames can only go as fast as the
    CPU share the machine leaves)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2), dpi=50)
    ax = fig.add_subplot()
    (line,) = ax.plot([0, 1], [0, 1])

    def wait(k):  # pure
        time.sleep(0.1)
        line.set_ydata([0, k % 7])

    return fig, wait


def frames_per_second(source: Any, n: int, inflight: int = 16, first: int = 0) -> float:
    """Frames encoded for the page (codec "auto"), in order, with ``inflight`` requests out, as the page
    keeps them: a parallel source draws and encodes on its workers, the serial one in this thread."""
    from ipybridge.player import codecs

    encoding = ("auto", 85)
    start = time.perf_counter()
    asked = first
    for k in range(first, first + n):
        if hasattr(source, "collect"):
            while asked < min(first + n, k + inflight):
                source.prefetch(asked, encoding)
                asked += 1
            source.collect(k, encoding)
        else:
            codecs.encode(source.render(k), *encoding)
    return n / (time.perf_counter() - start)


def function_section(n: int, rounds: int) -> dict[str, Any]:
    """Serial, 1 process, 2 processes and a 2-worker LocalCluster, in turn, ``rounds`` times (medians):
    on a shared machine the load changes from minute to minute, so the rivals share each minute."""
    from distributed import Client, LocalCluster

    from ipybridge.player.parallel import PureFigureSource
    from ipybridge.player.sources import FigureSource

    def source(executor: Any, make: Any = heavy_figure) -> Any:
        fig, func = make()
        made = FigureSource(fig, func, frames=10_000)
        return made if executor is None else PureFigureSource(made, executor)

    fig, func = heavy_figure()
    single = FigureSource(fig, func, frames=10_000)
    single.render(0)
    costs = []
    for k in range(1, 6):
        start = time.perf_counter()
        single.render(k)
        costs.append(1000 * (time.perf_counter() - start))
    rates: dict[str, list[float]] = {
        "serial": [], "pool_1": [], "pool_2": [], "dask_2": [], "dask_2_trim": [], "plain_1": [], "plain_2": [],
    }  # fmt: skip
    import dask

    def cluster(trim: bool) -> Any:
        # dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536 (its default pre-spawn-environ), which
        # turns off glibc's adaptive mmap threshold: every numpy temporary above 128 kB is a fresh mmap, so
        # this frame function page-faults ~34,000 times (~50 ms of system time) per frame. None unsets it.
        environ = {} if trim else {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
        with dask.config.set(environ):
            return LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)

    with (
        ProcessPoolExecutor(1) as pool_1,
        ProcessPoolExecutor(2) as pool_2,
        cluster(False) as local,
        Client(local) as client,
        cluster(True) as local_trim,
        Client(local_trim) as client_trim,
    ):
        sources = {
            "serial": source(None), "pool_1": source(pool_1), "pool_2": source(pool_2), "dask_2": source(client),
            "dask_2_trim": source(client_trim),
        }  # fmt: skip
        for made in sources.values():
            frames_per_second(made, 4)  # workers start and unpickle the figure
        plain_rate(pool_1, 2, 0)
        plain_rate(pool_2, 4, 0)
        start = 4
        for _ in range(rounds):
            for name, made in sources.items():
                rates[name].append(frames_per_second(made, n, first=start))  # frames never drawn before
            rates["plain_1"].append(plain_rate(pool_1, n, start))
            rates["plain_2"].append(plain_rate(pool_2, n, start))
            start += n
            print(f"  round: { {k: round(v[-1], 2) for k, v in rates.items()} }", flush=True)
        executors = {"serial": None, "pool_1": pool_1, "pool_2": pool_2, "dask_2": client}
        control = {}
        for name, executor in executors.items():
            made = source(executor, sleepy_figure)
            frames_per_second(made, 4)
            control[name] = frames_per_second(made, n)
        print(f"  control (100 ms sleep per frame): { {k: round(v, 2) for k, v in control.items()} }", flush=True)
    out: dict[str, Any] = {f"{k}_fps": statistics.median(v) for k, v in rates.items()}
    out["rounds"] = rates
    out["control_sleep_100ms_fps"] = control
    out["ms_per_frame"] = statistics.median(costs)
    out["speedup_2_vs_1"] = out["pool_2_fps"] / out["pool_1_fps"]
    out["plain_speedup_2_vs_1"] = out["plain_2_fps"] / out["plain_1_fps"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--function-frames", type=int, default=32)
    parser.add_argument("--first-frame-runs", type=int, default=3, help="runs of each first-frame cell (median)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--quick", action="store_true", help="the page only: Player vs rivals, 300 frames")
    args = parser.parse_args()
    if args.quick:
        args.frames = min(args.frames, 300)
    results: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_before": uptime()},
        "frames": args.frames,
    }
    print(f"load average before: {results['machine']['load_before']}", flush=True)
    if not args.quick:
        print("frame function (~100 ms CPU), pure, drawn in order with 16 requests out:", flush=True)
        results["function"] = function_section(args.function_frames, args.rounds)
        print(f"  {json.dumps(results['function'])}", flush=True)
    if not args.skip_browser:
        tmp = Path(tempfile.mkdtemp(prefix="bench-arrays-"))
        try:
            started = time.monotonic()
            big, small = tmp / "big.zarr", tmp / "small.zarr"
            results["stack_gb"] = write_stack(big, args.frames)
            write_stack(small, 200)
            print(f"wrote {args.frames} x {SIZE} x {SIZE} float32: {results['stack_gb']:.2f} GB on disk "
                  f"in {time.monotonic() - started:.0f} s", flush=True)  # fmt: skip
            server = start_server(tmp / "jupyter")
            try:
                with launched_chromium() as browser:
                    jupyter = Jupyter(server, browser, ROOT / "test-artifacts")
                    try:
                        results["browser"] = browser_section(jupyter, args, big, small)
                    finally:
                        jupyter.close(None)
            finally:
                stop_server(server)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    results["machine"]["load_after"] = uptime()
    report(results)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / ("arrays_quick.json" if args.quick else "arrays.json")).write_text(json.dumps(results, indent=2))


def report(results: dict[str, Any]) -> None:
    print(f"\nload average before {results['machine']['load_before']}, after {results['machine']['load_after']}")
    checks: dict[str, bool] = {}
    if "function" in results:
        checks.update(report_function(results["function"]))
    b = results.get("browser")
    if b:
        checks.update(report_browser(results, b))
    print("\nTargets")
    for what, ok in checks.items():
        print(f"  [{'pass' if ok else 'FAIL'}] {what}")
    results["targets"] = checks


def report_function(f: dict[str, Any]) -> dict[str, bool]:
    print(f"\nFrame function, {f['ms_per_frame']:.0f} ms per frame on one process")
    print(f"  serial (kernel)           {f['serial_fps']:6.2f} fps")
    print(f"  ProcessPoolExecutor(1)    {f['pool_1_fps']:6.2f} fps")
    print(f"  ProcessPoolExecutor(2)    {f['pool_2_fps']:6.2f} fps   x{f['speedup_2_vs_1']:.2f} vs 1 process")
    print(f"  dask LocalCluster(2)      {f['dask_2_fps']:6.2f} fps   x{f['dask_2_fps'] / f['pool_1_fps']:.2f}")
    print(f"    (dask's default MALLOC_TRIM_THRESHOLD_=65536 in its workers: {f['dask_2_trim_fps']:.2f} fps, "
          f"x{f['dask_2_trim_fps'] / f['pool_1_fps']:.2f})")  # fmt: skip
    print(f"  the same frames by executor.map, no Player: 1 process {f['plain_1_fps']:.2f}, 2 processes "
          f"{f['plain_2_fps']:.2f} fps (x{f['plain_speedup_2_vs_1']:.2f}: what a 2nd process gets now)")  # fmt: skip
    c = f["control_sleep_100ms_fps"]
    print(f"  control, 100 ms sleep per frame: serial {c['serial']:.2f}, 1 process {c['pool_1']:.2f}, "
          f"2 processes {c['pool_2']:.2f}, LocalCluster(2) {c['dask_2']:.2f} fps")  # fmt: skip
    return {"2 processes >= 1.6x 1 process": f["speedup_2_vs_1"] >= 1.6}


def report_browser(results: dict[str, Any], b: dict[str, Any]) -> dict[str, bool]:
    checks: dict[str, bool] = {}
    print(f"\nzarr stack {results['stack_gb']:.2f} GB on disk, 512 x 512 float32 frames, cmap inferno")
    for n in (200, 2000):
        t = b[f"first_frame_{n}"]
        runs = ", ".join(f"{r['from_run_ms']:.0f}" for r in t.get("runs", []))
        shown = 200 if n == 200 else results.get("frames", n)  # the big stack: --frames (300 with --quick)
        print(f"  Player first frame, {shown:>5} frames: {t['from_run_ms']:6.0f} ms after Run, median of [{runs}] "
              f"({t['from_output_ms']:.0f} ms after the output appears)")  # fmt: skip
    report_rivals(b)
    if "jshtml_first_frame_200_s" in b:
        print(f"  to_jshtml first frame, 200 frames: {b['jshtml_first_frame_200_s'] * 1000:6.0f} ms after Run "
          f"(x{b['jshtml_first_frame_200_s'] * 1000 / b['first_frame_200']['from_run_ms']:.0f}), "
          f"kernel +{b['jshtml_rss_mb']:.0f} MB, page +{b['html_mb']:.0f} MB of HTML")  # fmt: skip
    ratio = b["painted_fps_at_60"] / max(b["interact_painted_fps_at_60"], 1e-9)
    print(f"  painted fps asked for 60: Player on the comm {b['painted_fps_at_60']:.1f}, "
          f"ipywidgets Play + interact(imshow) "
          f"{b['interact_painted_fps_at_60']:.1f} (x{ratio:.1f}); the kernel alone makes "
          f"{b.get('python_only_fps', float('nan')):.1f} encoded frames/s in the same minute")  # fmt: skip
    print(f"  painted fps asked for 60 over the direct transport ({b.get('direct_transport')}): "
          f"{b.get('direct_painted_fps_at_60', float('nan')):.1f}")  # fmt: skip
    if "memory" not in b:  # --quick
        return checks
    m = b["memory"]
    rss = " -> ".join(f"{c['rss_mb']:.0f}" for c in m["checkpoints"])
    print(f"  all {m['frames']} frames once, unthrottled: {m['seconds']:.0f} s ({m['unthrottled_fps']:.1f} fps), "
          f"kernel RSS {rss} MB (growth {m['rss_growth_mb']:.0f} MB)")  # fmt: skip
    checks.update(
        {
            "stack >= 2 GB on disk": results["stack_gb"] >= 2.0,
            "first frame <= 300 ms after Run (200 and 2000 frames)": max(
                b["first_frame_200"]["from_run_ms"], b["first_frame_2000"]["from_run_ms"]
            )
            <= 300,
            "kernel RSS growth <= 200 MB over all frames": m["rss_growth_mb"] <= 200,
            "painted fps asked for 60 >= 50": b["painted_fps_at_60"] >= 50,
        }
    )
    return checks


def report_rivals(b: dict[str, Any]) -> None:
    """stackview and HoloViews + Panel rows: their figures and the Player's over theirs (same run, same data)."""
    player_first = b["first_frame_200"]["from_run_ms"]
    player_fps = b["painted_fps_at_60"]
    for key, label in (("stackview", "stackview.slice"), ("holoviews_panel", "HoloViews DynamicMap + Panel Player")):
        rival = b.get(key, {})
        if "skipped" in rival or "error" in rival:
            print(f"  {label}: {rival.get('skipped') or 'failed: ' + rival['error']}")
            continue
        fps = rival.get("painted_fps_at_60", rival.get("painted_fps_stepped", float("nan")))
        how = "at 60 (its play button)" if "painted_fps_at_60" in rival else "stepping its slider as fast as it paints"
        read = f", {rival['read_ms']:.0f} ms of it reading the 200 frames into numpy" if "read_ms" in rival else ""
        print(f"  {label}, 200 frames: first frame {rival['first_frame_ms']:.0f} ms after Run{read} "
              f"(rival / Player x{rival['first_frame_ms'] / player_first:.1f}); painted fps {how} {fps:.1f} "
              f"(Player at 60 / rival x{player_fps / max(fps, 1e-9):.1f})")  # fmt: skip


if __name__ == "__main__":
    main()
