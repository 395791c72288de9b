"""Player benchmark: ipybridge.Player vs ipympl vs matplotlib's to_jshtml.

One run, real JupyterLab 4 + headless Chromium (tests/e2e/harness.py):

* the reference animation (640x480 figure, xlim (0, 10), ylim (-2, 2), one
  line of 1000 points, ``y = cos(0.02*pi*i) * sin(x - 0.02*pi*i)``), its
  ``blit=True`` form, a 1280x960 (dpi 200) form and a 400x400 imshow of a
  changing field, each played by an ``ipybridge.Player``:
  - painted frames per second asked for 60 fps, and unthrottled (fps 0),
    counted in the page (every write of the canvas's ``data-frame``), over
    frames never seen before (10^5-frame animations, nothing cached);
  - the Python-only cost of draw + encode per frame, in the same kernel;
  - time to first frame painted after the output appears, for 100 and 10000 frames;
* the same reference and blit animations in ipympl (``%matplotlib widget``,
  FuncAnimation at interval 1000/60 ms and 1 ms), frames counted as the
  ``drawImage`` calls ipympl makes on its canvas;
* ``HTML(anim.to_jshtml())`` for 100 and 1000 frames: time from running the
  cell to the first frame visible;
* at devicePixelRatio 2 (a page whose frames are drawn at twice the dpi, as on
  a HiDPI laptop): the reference and blit animations @60 and unthrottled, and
  the Python-only rate at ratio 2;
* memory: the page's JS heap after a forced GC and the kernel's RSS at every
  quarter of 10000 frames played.

    .venv/bin/python benchmarks/bench_player.py [--window 2] [--windows 3] [--memory-frames 10000] [--comm]

Players use the direct transport where it opens (docs/protocol.md), as users get them; ``--comm``
measures them on the comm instead.

Prints a table with the ratios, writes benchmarks/results/player.json and
benchmarks/results/player.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.harness import Jupyter, NotebookPage, launched_chromium, start_server, stop_server  # noqa: E402

RESULTS = HERE / "results"
SCENARIOS = ("reference", "blit", "large", "imshow")

DEFINITIONS = textwrap.dedent(
    """
    import json, time
    import numpy as np
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    def reference(n, blit=False, dpi=100, interval=1000 / 60):
        fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=dpi)
        x = np.linspace(0, 10, 1000)
        ax.set_xlim(0, 10)
        ax.set_ylim(-2, 2)
        (line,) = ax.plot(x, np.sin(x))
        def update(i):
            line.set_ydata(np.cos(0.02 * np.pi * i) * np.sin(x - 0.02 * np.pi * i))
            return (line,)
        return FuncAnimation(fig, update, frames=n, interval=interval, blit=blit, cache_frame_data=False)

    def field(n, interval=1000 / 60):
        fig = plt.figure(figsize=(4, 4), dpi=100)
        ax = fig.add_axes([0, 0, 1, 1])
        ax.set_axis_off()
        yy, xx = np.mgrid[0:400, 0:400] / 40.0
        im = ax.imshow(np.sin(xx) * np.cos(yy), vmin=-1, vmax=1, cmap="viridis")
        def update(i):
            t = 0.05 * i
            im.set_data(np.sin(xx + t) * np.cos(yy - 0.7 * t))
            return (im,)
        return FuncAnimation(fig, update, frames=n, interval=interval, cache_frame_data=False)

    SCENARIOS = {
        "reference": lambda n: reference(n),
        "blit": lambda n: reference(n, blit=True),
        "large": lambda n: reference(n, dpi=200),
        "imshow": field,
    }

    def rss_mb():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS"):
                    return int(line.split()[1]) / 1024
        return float("nan")
    """
)

PLAYER_SETUP = DEFINITIONS + textwrap.dedent(
    """
    import ipybridge
    from ipybridge.player import codecs
    from ipybridge.player.sources import from_animation

    def python_rate(name, n=120, scale=1.0):
        source, _ = from_animation(SCENARIOS[name](100000))
        codecs.encode(source.render(0, scale), "auto")
        start = time.perf_counter()
        for i in range(1, n + 1):
            codecs.encode(source.render(i, scale), "auto")
        return n / (time.perf_counter() - start)
    print("ready")
    """
)

COUNT_JS = """([selector, nth, ms]) => new Promise((resolve) => {
  const canvas = document.querySelectorAll(selector)[nth];
  let n = 0;
  const obs = new MutationObserver((records) => { n += records.length; });
  obs.observe(canvas, {attributes: true, attributeFilter: ["data-frame"]});
  setTimeout(() => { obs.disconnect(); resolve(n * 1000 / ms); }, ms);
})"""

TTFF_JS = """(nth) => { window.__ttff = new Promise((resolve) => {
  const t0 = performance.now();
  let appeared = 0;
  const check = () => {
    const canvas = document.querySelectorAll(".ipybridge-player canvas")[nth];
    if (canvas && !appeared) appeared = performance.now();
    if (canvas && canvas.dataset.frame === "0") { obs.disconnect(); const now = performance.now();
      resolve({from_run_ms: now - t0, from_output_ms: now - appeared}); }
  };
  const obs = new MutationObserver(check);
  obs.observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ["data-frame"]});
}); }"""

IPYMPL_COUNT_JS = """() => {
  if (window.__ipymplDraws !== undefined) return;
  window.__ipymplDraws = 0;
  const orig = CanvasRenderingContext2D.prototype.drawImage;
  CanvasRenderingContext2D.prototype.drawImage = function (...args) {
    const c = this.canvas;
    // ipympl paints each received frame onto its image canvas once.
    if (c && c.closest && c.closest(".jupyter-matplotlib-figure") && c.classList.length === 0) window.__ipymplDraws++;
    return orig.apply(this, args);
  };
}"""


REFRESH_RATE_JS = """() => new Promise((resolve) => {
  let n = 0; const t0 = performance.now();
  const step = (now) => { n++; if (now - t0 < 2000) requestAnimationFrame(step); else resolve(n * 1000 / (now - t0)); };
  requestAnimationFrame(step);
})"""

SEED_VIEWER = textwrap.dedent(
    '''
    import io
    import anywidget
    from PIL import Image
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    class SeedViewer(anywidget.AnyWidget):
        """The seed-style viewer: an anywidget whose view asks the kernel for frame 0 as one PNG."""
        _esm = """
        export default { render({ model, el }) {
          const canvas = document.createElement("canvas");
          canvas.className = "seed-canvas";
          canvas.dataset.frame = "-1";
          el.append(canvas);
          const onFrame = async (msg, buffers) => {
            const bitmap = await createImageBitmap(new Blob([buffers[0]], { type: "image/png" }));
            canvas.width = bitmap.width; canvas.height = bitmap.height;
            canvas.getContext("2d").drawImage(bitmap, 0, 0);
            canvas.dataset.frame = String(msg.index);
          };
          model.on("msg:custom", onFrame);
          model.send({ index: 0 });
          return () => model.off("msg:custom", onFrame);
        } };
        """

        def __init__(self, anim):
            super().__init__()
            self._anim = anim
            self._fig = anim._fig
            plt.close(self._fig)
            self._canvas = FigureCanvasAgg(self._fig)
            self.on_msg(self._answer)

        def _answer(self, _widget, content, _buffers):
            i = content.get("index")
            if i != 0:
                return
            self._anim._func(i)
            self._canvas.draw()
            out = io.BytesIO()
            Image.fromarray(np.asarray(self._canvas.buffer_rgba())).save(out, format="png")
            self.send({"index": i}, [out.getvalue()])
    '''
)

#: Frames that reached the screen vs canvas writes, counted in the page: a requestAnimationFrame
#: callback that sees a new ``data-frame`` since the previous one counts one displayed frame.
SCREEN_COUNT_JS = """([selector, nth, ms]) => new Promise((resolve) => {
  const canvas = document.querySelectorAll(selector)[nth];
  let writes = 0, displayed = 0, last = canvas.dataset.frame, done = false;
  const obs = new MutationObserver((records) => { writes += records.length; });
  obs.observe(canvas, {attributes: true, attributeFilter: ["data-frame"]});
  const onRefresh = () => {
    if (done) return;
    if (canvas.dataset.frame !== last) { displayed++; last = canvas.dataset.frame; }
    requestAnimationFrame(onRefresh);
  };
  requestAnimationFrame(onRefresh);
  setTimeout(() => { done = true; obs.disconnect();
    const readout = canvas.closest(".ipybridge-player").querySelector(".ipb-fps").textContent;
    resolve({drawn_fps: writes * 1000 / ms, displayed_fps: displayed * 1000 / ms,
             readout: parseFloat(readout)}); }, ms);
})"""

#: Pause between first-frame samples (ms).
SETTLE_MS = 1500

#: From the Shift+Enter keydown that runs the cell (the user's Run; what the test driver does before
#: it, selecting the cell, is not counted) to the first frame painted on the canvas.
TTFF_ANY_JS = """([selector, nth]) => { window.__ttff = new Promise((resolve) => {
  let t0 = 0, appeared = 0;
  const onKey = (event) => { if (event.key === "Enter" && event.shiftKey && !t0) t0 = performance.now(); };
  window.addEventListener("keydown", onKey, true);
  const check = () => {
    const canvas = document.querySelectorAll(selector)[nth];
    if (canvas && !appeared) appeared = performance.now();
    if (canvas && canvas.dataset.frame === "0") { obs.disconnect(); window.removeEventListener("keydown", onKey, true);
      const now = performance.now(); resolve({from_run_ms: now - t0, from_output_ms: now - appeared}); }
  };
  const obs = new MutationObserver(check);
  obs.observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ["data-frame"]});
}); }"""


def startup_section(jupyter: Jupyter, args: argparse.Namespace) -> dict[str, Any]:
    """First frame after Run, Player vs the seed-style viewer alternated; displayed vs drawn fps."""
    cells = [SEED_VIEWER + PLAYER_SETUP]
    order: list[tuple[str, int]] = []
    for _ in range(args.repeats):
        for n in (100, 10000):
            order.append((f"player_{n}", len(cells)))
            cells.append(f"ipybridge.Player(reference({n}))")
            order.append((f"seed_{n}", len(cells)))
            cells.append(f"SeedViewer(reference({n}))")
    display_cells = {}
    for fps in (60, 0):
        display_cells[fps] = len(cells)
        cells.append(f"d_{fps} = ipybridge.Player(reference(100000), fps={fps}, cache_mb=64)\nd_{fps}")
        cells.append(f"d_{fps}.pause()")
        cells.append(f"print(json.dumps(d_{fps}.stats))")
    nb = jupyter.open("lab", cells, name="bench-startup")
    assert run_and_read(nb, 0) == "ready"
    # One warm-up of each (the ES modules load once per page, as for any later output).
    seen = {"player": 0, "seed": 0}
    times: dict[str, list[dict[str, float]]] = {}
    for key, cell in order:
        kind = key.split("_")[0]
        selector = ".ipybridge-player canvas" if kind == "player" else "canvas.seed-canvas"
        nb.page.evaluate(TTFF_ANY_JS, [selector, seen[kind]])
        nb.run_cell(cell)
        times.setdefault(key, []).append(nb.page.evaluate("window.__ttff"))
        seen[kind] += 1
        # Each sample starts settled, as a user's next Run does: what a viewer does after its first frame
        # (the Player asks for the frames around it and opens its direct connection) is not charged to the
        # next sample, which is the other viewer's. A measurement condition, not a synchronisation.
        nb.wait_cell_done(cell)
        nb.page.wait_for_timeout(SETTLE_MS)
    out: dict[str, Any] = {"first_frame": {}}
    for key, samples in times.items():
        # the first sample of each kind also loads its ES module: report it apart
        rest = samples[1:] if len(samples) > 1 else samples
        out["first_frame"][key] = {
            "from_run_ms": statistics.median(x["from_run_ms"] for x in rest),
            "from_output_ms": statistics.median(x["from_output_ms"] for x in rest),
            "best_from_run_ms": min(x["from_run_ms"] for x in rest),  # the least disturbed by a loaded machine
            "cold_from_run_ms": samples[0]["from_run_ms"],
            "samples": samples,
        }
        print(f"  {key}: {json.dumps(out['first_frame'][key]['from_run_ms'])} ms after Run", flush=True)
    out["display"] = {}
    for fps, cell in display_cells.items():
        nb.run_cell(cell)
        nb.wait_cell_done(cell)
        nth = seen["player"]
        seen["player"] += 1
        nb.output(cell).get_by_role("button", name="Play", exact=True).click()
        nb.page.wait_for_timeout(1000)  # warm-up before counting; the count windows are the measurement
        windows = [nb.page.evaluate(SCREEN_COUNT_JS, [".ipybridge-player canvas", nth, int(args.window * 1000)])
                   for _ in range(args.windows)]  # fmt: skip
        nb.run_cell(cell + 1)  # pause: the page stops and reports its stats of the last second
        nb.wait_cell_done(cell + 1)
        nb.output(cell).locator(".ipybridge-player:not(.ipb-playing)").wait_for()
        nb.page.wait_for_timeout(500)  # for that report to reach the kernel (a bound, not a measurement)
        stats = json.loads(run_and_read(nb, cell + 2))
        row = {k: statistics.median(w[k] for w in windows) for k in ("drawn_fps", "displayed_fps", "readout")}
        row.update({"stats_displayed_fps": stats["displayed_fps"], "stats_dropped": stats["dropped"],
                    "stats_drawn_fps": stats.get("page_drawn_fps")})  # fmt: skip
        out["display"][str(fps)] = row
        print(f"  fps={fps}: {json.dumps(row)}", flush=True)
    return out


def report_startup(results: dict[str, Any]) -> None:
    s = results["startup"]
    print("\nFirst frame after Run (median; ms): ipybridge.Player vs the seed-style viewer (one PNG on request)")
    for n in (100, 10000):
        p, v = s["first_frame"][f"player_{n}"], s["first_frame"][f"seed_{n}"]
        print(f"  {n:>5} frames: Player {p['from_run_ms']:6.0f} ({p['from_output_ms']:.0f} after the output appears)"
              f"   seed-style viewer {v['from_run_ms']:6.0f} ({v['from_output_ms']:.0f})"
              f"   ratio {p['from_run_ms'] / max(v['from_run_ms'], 1e-9):.2f}"
              f"   best: {p['best_from_run_ms']:.0f} vs {v['best_from_run_ms']:.0f}")  # fmt: skip
    print("\nReference animation, counted in the page over each window (median):")
    print(f"  {'asked':>6} {'drawn fps':>10} {'displayed fps':>14} {'readout':>8} "
          f"{'stats displayed_fps':>20} {'dropped':>8}")  # fmt: skip
    for fps, row in s["display"].items():
        print(f"  {fps:>6} {row['drawn_fps']:>10.1f} {row['displayed_fps']:>14.1f} {row['readout']:>8.1f} "
              f"{row['stats_displayed_fps']:>20.1f} {row['stats_dropped']:>8}")  # fmt: skip


def run_and_read(nb: NotebookPage, cell: int, timeout_s: float = 300) -> str:
    nb.run_cell(cell)
    nb.wait_cell_done(cell, timeout=int(timeout_s * 1000))
    return nb.output(cell).first.inner_text().strip()


def median_rate(nb: NotebookPage, selector: str, nth: int, window_s: float, windows: int) -> float:
    rates = [nb.page.evaluate(COUNT_JS, [selector, nth, int(window_s * 1000)]) for _ in range(windows)]
    return statistics.median(rates)


def player_section(jupyter: Jupyter, args: argparse.Namespace) -> dict[str, Any]:
    cells = [PLAYER_SETUP]
    index: dict[str, int] = {}
    for name in SCENARIOS:
        index[f"py:{name}"] = len(cells)
        cells.append(f'print(json.dumps({{"fps": python_rate("{name}")}}))')
        index[f"player:{name}"] = len(cells)
        cells.append(f'p_{name} = ipybridge.Player(SCENARIOS["{name}"](100000), fps=60, cache_mb=64)\np_{name}')
        index[f"stats:{name}"] = len(cells)
        cells.append(f"p_{name}.pause(); print(json.dumps(p_{name}.stats))")
    for n in (100, 10000):
        index[f"ttff:{n}"] = len(cells)
        cells.append(f"t_{n} = ipybridge.Player(reference({n}))\nt_{n}")
    index["mem:player"] = len(cells)
    cells.append(
        f"m = ipybridge.Player(reference({args.memory_frames}, blit=True), fps=0, loop='once', cache_mb=32)\nm"
    )
    index["mem:rss"] = len(cells)
    cells.append('print(json.dumps({"rss_mb": rss_mb(), "frame": m.frame, "stats": m.stats}))')
    for n in (100, 1000):
        index[f"jshtml:{n}"] = len(cells)
        cells.append(
            "from IPython.display import HTML\nmatplotlib.rcParams['animation.embed_limit'] = 1000\n"
            f"_a = reference({n}); _h = HTML(_a.to_jshtml()); plt.close(_a._fig); _h"
        )
    nb = jupyter.open("lab", cells, name="bench-player")
    assert run_and_read(nb, 0) == "ready"
    out: dict[str, Any] = {"scenarios": {}, "refresh_hz": nb.page.evaluate(REFRESH_RATE_JS)}
    print(f"  display refreshes (requestAnimationFrame) per second: {out['refresh_hz']:.1f}", flush=True)
    canvases = 0
    selector = ".ipybridge-player canvas"
    for name in SCENARIOS:
        row: dict[str, Any] = {}
        row["python_fps"] = json.loads(run_and_read(nb, index[f"py:{name}"]))["fps"]
        nb.page.evaluate(TTFF_JS, canvases)
        nb.run_cell(index[f"player:{name}"])
        row["first_frame"] = nb.page.evaluate("window.__ttff")
        output = nb.output(index[f"player:{name}"])
        output.get_by_role("button", name="Play", exact=True).click()
        nb.page.wait_for_timeout(1000)  # warm-up before counting; the count windows are the measurement
        row["painted_fps_at_60"] = median_rate(nb, selector, canvases, args.window, args.windows)
        output.get_by_label("Speed").select_option("0")
        nb.page.wait_for_timeout(1000)  # warm-up at the new speed
        row["painted_fps_unthrottled"] = median_rate(nb, selector, canvases, args.window, args.windows)
        stats = json.loads(run_and_read(nb, index[f"stats:{name}"]))
        row["kernel"] = {k: stats[k] for k in ("render_ms", "encode_ms", "bytes_per_frame", "frames_rendered")}
        # Unthrottled, the Player paints one frame per display refresh at most: the ceiling is the
        # slower of the kernel (Python-only draw+encode) and the display.
        row["ratio_unthrottled_to_python"] = row["painted_fps_unthrottled"] / min(row["python_fps"], out["refresh_hz"])
        out["scenarios"][name] = row
        canvases += 1
        print(f"  {name}: {json.dumps(row)}", flush=True)
    for n in (100, 10000):
        nb.page.evaluate(TTFF_JS, canvases)
        nb.run_cell(index[f"ttff:{n}"])
        out[f"first_frame_{n}"] = nb.page.evaluate("window.__ttff")
        canvases += 1
    # Memory over many frames played (blit form, unthrottled, cache bound 32 MB): the page's JS heap after
    # a forced garbage collection (CDP HeapProfiler.collectGarbage, then Runtime.getHeapUsage) and the
    # kernel's RSS, at the start and at every quarter of the run: bounded means flat, not just "not huge".
    cdp = nb.page.context.new_cdp_session(nb.page)

    def heap_after_gc_mb() -> float:
        cdp.send("HeapProfiler.collectGarbage")
        return float(cdp.send("Runtime.getHeapUsage")["usedSize"]) / 2**20

    heap_before = nb.page.evaluate("performance.memory.usedJSHeapSize") / 2**20
    nb.page.evaluate(TTFF_JS, canvases)
    nb.run_cell(index["mem:player"])
    nb.page.evaluate("window.__ttff")
    rss_before = json.loads(run_and_read(nb, index["mem:rss"]))["rss_mb"]
    checkpoints = [{"frame": 0.0, "js_heap_gc_mb": heap_after_gc_mb(), "kernel_rss_mb": rss_before}]
    start = time.monotonic()
    nb.output(index["mem:player"]).get_by_role("button", name="Play", exact=True).click()
    quarter = args.memory_frames // 4
    for k in range(1, 5):
        mark = min(k * quarter, args.memory_frames - 1)
        nb.page.wait_for_function(
            f"() => Number(document.querySelectorAll('{selector}')[{canvases}].dataset.frame) >= {mark}",
            timeout=int(args.memory_frames / 20 * 1000) + 60_000,
        )
        rss = json.loads(run_and_read(nb, index["mem:rss"]))["rss_mb"]
        checkpoints.append({"frame": float(mark), "js_heap_gc_mb": heap_after_gc_mb(), "kernel_rss_mb": rss})
        print(f"  memory at frame {mark}: {json.dumps(checkpoints[-1])}", flush=True)
    played_s = time.monotonic() - start
    heap_after = nb.page.evaluate("performance.memory.usedJSHeapSize") / 2**20
    after = json.loads(run_and_read(nb, index["mem:rss"]))
    out["memory"] = {
        "frames": args.memory_frames,
        "seconds": played_s,
        "js_heap_mb_before": heap_before,
        "js_heap_mb_after": heap_after,
        "checkpoints": checkpoints,
        "kernel_rss_mb_before": rss_before,
        "kernel_rss_mb_after": after["rss_mb"],
        "page_cache_mb": after["stats"].get("page_cache_bytes", 0) / 2**20,
        "cache_limit_mb": 32,
    }
    # to_jshtml: time from running the cell to its first frame on screen.
    for n in (100, 1000):
        cell = index[f"jshtml:{n}"]
        start = time.monotonic()
        nb.run_cell(cell)
        nb.page.wait_for_function(
            f"""() => {{ const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[{cell}];
                const img = cell && cell.querySelector('.jp-OutputArea-output img[id^="_anim_img"]');
                return img && img.complete && img.naturalWidth > 0; }}""",
            timeout=600_000,
        )
        out[f"to_jshtml_first_frame_{n}_s"] = time.monotonic() - start
        print(f"  to_jshtml {n}: {out[f'to_jshtml_first_frame_{n}_s']:.2f} s", flush=True)
    return out


def ipympl_section(jupyter: Jupyter, args: argparse.Namespace) -> dict[str, Any]:
    cells = [
        "%matplotlib widget\n" + DEFINITIONS + "\nprint('ready')",
        "a1 = reference(100000, interval=1000 / 60)\nplt.show()",
        "a1.event_source.stop(); plt.close('all')",
        "a2 = reference(100000, blit=True, interval=1)\nplt.show()",
        "a2.event_source.stop(); plt.close('all')",
    ]
    nb = jupyter.open("lab", cells, name="bench-ipympl")
    nb.page.evaluate(IPYMPL_COUNT_JS)
    assert run_and_read(nb, 0) == "ready"
    out: dict[str, Any] = {}
    for key, cell in (("reference_at_60", 1), ("blit_unthrottled", 3)):
        nb.run_cell(cell)
        nb.page.wait_for_function("() => window.__ipymplDraws > 2", timeout=60_000)
        nb.page.wait_for_timeout(1000)  # warm-up before counting
        rates = []
        for _ in range(args.windows):
            before = nb.page.evaluate("window.__ipymplDraws")
            nb.page.wait_for_timeout(int(args.window * 1000))  # the counting window itself
            rates.append((nb.page.evaluate("window.__ipymplDraws") - before) / args.window)
        out[key] = statistics.median(rates)
        nb.run_cell(cell + 1)  # stop it
        nb.wait_cell_done(cell + 1)
        print(f"  ipympl {key}: {out[key]:.1f} fps", flush=True)
    return out


def report(results: dict[str, Any]) -> None:
    s = results["player"]["scenarios"]
    print("\nPlayer (painted frames per second, counted in the page)")
    print(f"{'animation':<10} {'@60 fps':>8} {'unthrottled':>12} {'python d+e':>11} {'ratio':>6} {'render ms':>10} "
          f"{'encode ms':>10} {'kB/frame':>9} {'1st frame':>10}")  # fmt: skip
    for name, row in s.items():
        print(
            f"{name:<10} {row['painted_fps_at_60']:>8.1f} {row['painted_fps_unthrottled']:>12.1f} "
            f"{row['python_fps']:>11.1f} {row['ratio_unthrottled_to_python']:>6.2f} "
            f"{row['kernel']['render_ms']:>10.2f} "
            f"{row['kernel']['encode_ms']:>10.2f} {row['kernel']['bytes_per_frame'] / 1000:>9.1f} "
            f"{row['first_frame']['from_output_ms']:>8.0f} ms"
        )
    r2 = results["player"].get("ratio2", {})
    if r2:
        print("\nAt devicePixelRatio 2 (frames at twice the dpi: 4x the pixels)")
        for name, row in r2.items():
            print(
                f"{name:<10} {row['painted_fps_at_60']:>8.1f} {row['painted_fps_unthrottled']:>12.1f} "
                f"{row['python_fps']:>11.1f} {row['ratio_unthrottled_to_python']:>6.2f} "
                f"{row['kernel']['render_ms']:>10.2f} {row['kernel']['encode_ms']:>10.2f} "
                f"{row['kernel']['bytes_per_frame'] / 1000:>9.1f}   canvas {row['canvas']}"
            )
    p, m = results["player"], results["player"]["memory"]
    ipympl = results["ipympl"]
    ref, blit = s["reference"], s["blit"]
    print("\nSide by side")
    print(f"reference @60: Player {ref['painted_fps_at_60']:.1f} fps vs ipympl {ipympl['reference_at_60']:.1f} fps "
          f"(x{ref['painted_fps_at_60'] / max(ipympl['reference_at_60'], 1e-9):.1f})")  # fmt: skip
    speedup = blit["painted_fps_unthrottled"] / max(ipympl["blit_unthrottled"], 1e-9)
    print(f"blit unthrottled: Player {blit['painted_fps_unthrottled']:.1f} fps vs "
          f"ipympl {ipympl['blit_unthrottled']:.1f} fps (x{speedup:.1f})")  # fmt: skip
    for n in (100, 10000):
        print(f"first frame, {n} frames: Player {p[f'first_frame_{n}']['from_output_ms']:.0f} ms after the output "
              f"appears ({p[f'first_frame_{n}']['from_run_ms']:.0f} ms after Run)")  # fmt: skip
    for n in (100, 1000):
        jt = p[f"to_jshtml_first_frame_{n}_s"]
        print(f"first frame, {n} frames: to_jshtml {jt:.2f} s after Run "
              f"(x{jt * 1000 / max(p['first_frame_100']['from_run_ms'], 1e-9):.0f} the Player's)")  # fmt: skip
    heaps = " -> ".join(f"{c['js_heap_gc_mb']:.0f}" for c in m["checkpoints"])
    rss = " -> ".join(f"{c['kernel_rss_mb']:.0f}" for c in m["checkpoints"])
    print(f"memory over {m['frames']} frames ({m['seconds']:.0f} s), at every quarter: page JS heap after a forced GC "
          f"{heaps} MB (without: {m['js_heap_mb_before']:.0f} -> {m['js_heap_mb_after']:.0f} MB), "
          f"page cache {m['page_cache_mb']:.1f} MB (limit {m['cache_limit_mb']} MB), kernel RSS {rss} MB")  # fmt: skip
    checks = {
        "reference >= 55 fps at 60": ref["painted_fps_at_60"] >= 55,
        "unthrottled >= 0.8x min(python-only, display refresh) (reference)": ref["ratio_unthrottled_to_python"] >= 0.8,
        "blit unthrottled >= 0.9x the display's refresh rate": blit["painted_fps_unthrottled"] >= 0.9 * p["refresh_hz"],
        "first frame <= 300 ms (100 and 10000 frames)": max(
            p["first_frame_100"]["from_output_ms"], p["first_frame_10000"]["from_output_ms"]
        )
        <= 300,
        # After the first quarter (cache full), neither the page's heap nor the kernel may keep growing.
        "page heap after GC and kernel RSS flat over the last 3/4 (< 10 MB)": all(
            max(c[key] for c in m["checkpoints"][1:]) - m["checkpoints"][1][key] < 10
            for key in ("js_heap_gc_mb", "kernel_rss_mb")
        ),
        "page cache within its limit": m["page_cache_mb"] <= m["cache_limit_mb"],
    }
    if r2:
        checks["ratio 2: reference >= 55 fps at 60"] = r2["reference"]["painted_fps_at_60"] >= 55
        checks["ratio 2: unthrottled >= 0.8x python-only at ratio 2"] = (
            r2["reference"]["ratio_unthrottled_to_python"] >= 0.8
        )
        checks["ratio 2: blit >= 200 fps unthrottled"] = r2["blit"]["painted_fps_unthrottled"] >= 200
    print("\nTargets")
    for what, ok in checks.items():
        print(f"  [{'pass' if ok else 'FAIL'}] {what}")
    results["targets"] = checks


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt
    import numpy as np

    s = results["player"]["scenarios"]
    names = list(s)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 1.3]})
    xs = np.arange(len(names))
    series = [
        ("Player @60", [s[n]["painted_fps_at_60"] for n in names]),
        ("Player unthrottled", [s[n]["painted_fps_unthrottled"] for n in names]),
        ("Python draw+encode only", [s[n]["python_fps"] for n in names]),
        ("ipympl", [results["ipympl"]["reference_at_60"], results["ipympl"]["blit_unthrottled"], 0, 0]),
    ]
    width = 0.2
    for k, (label, values) in enumerate(series):
        bars = left.bar(xs + (k - 1.5) * width, values, width, label=label)
        left.bar_label(bars, fmt="%.0f", fontsize=7)
    left.set_xticks(xs, ["reference\n640x480", "blit", "1280x960", "imshow\n400x400"])
    left.set_ylabel("frames painted per second")
    left.set_title("Painted fps in the page (ipympl: reference @60, blit unthrottled)")
    left.legend(fontsize=8)
    p = results["player"]
    labels = ["Player\n100", "Player\n10000", "to_jshtml\n100", "to_jshtml\n1000"]
    values = [p["first_frame_100"]["from_run_ms"] / 1000, p["first_frame_10000"]["from_run_ms"] / 1000,
              p["to_jshtml_first_frame_100_s"], p["to_jshtml_first_frame_1000_s"]]  # fmt: skip
    bars = right.bar(labels, values, color=["C0", "C0", "C3", "C3"])
    right.bar_label(bars, fmt="%.2f s", fontsize=8)
    right.set_yscale("log")
    right.set_title("Run -> first frame (s, log)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


RATIO2_SCENARIOS = ("reference", "blit")


def ratio2_section(jupyter: Jupyter, args: argparse.Namespace, ratio: float = 2.0) -> dict[str, Any]:
    """The reference and blit animations in a page at devicePixelRatio ``ratio`` (frames drawn at ratio x the dpi)."""
    cells = [PLAYER_SETUP]
    index: dict[str, int] = {}
    for name in RATIO2_SCENARIOS:
        index[f"py:{name}"] = len(cells)
        cells.append(f'print(json.dumps({{"fps": python_rate("{name}", scale={ratio})}}))')
        index[f"player:{name}"] = len(cells)
        cells.append(f'p_{name} = ipybridge.Player(SCENARIOS["{name}"](100000), fps=60, cache_mb=64)\np_{name}')
        index[f"stats:{name}"] = len(cells)
        cells.append(f"p_{name}.pause(); print(json.dumps(p_{name}.stats))")
    nb = jupyter.open("lab", cells, name="bench-player-ratio", device_scale_factor=ratio)
    assert run_and_read(nb, 0) == "ready"
    out: dict[str, Any] = {}
    selector = ".ipybridge-player canvas"
    for nth, name in enumerate(RATIO2_SCENARIOS):
        row: dict[str, Any] = {"python_fps": json.loads(run_and_read(nb, index[f"py:{name}"]))["fps"]}
        nb.run_cell(index[f"player:{name}"])
        output = nb.output(index[f"player:{name}"])
        canvas = output.locator("canvas")
        nb.page.wait_for_function("c => c.dataset.frame === '0'", arg=canvas.element_handle())
        row["canvas"] = canvas.evaluate("c => [c.width, c.height, c.getBoundingClientRect().width]")
        output.get_by_role("button", name="Play", exact=True).click()
        nb.page.wait_for_timeout(1000)  # warm-up before counting; the count windows are the measurement
        row["painted_fps_at_60"] = median_rate(nb, selector, nth, args.window, args.windows)
        output.get_by_label("Speed").select_option("0")
        nb.page.wait_for_timeout(1000)  # warm-up at the new speed
        row["painted_fps_unthrottled"] = median_rate(nb, selector, nth, args.window, args.windows)
        stats = json.loads(run_and_read(nb, index[f"stats:{name}"]))
        row["kernel"] = {k: stats[k] for k in ("render_ms", "encode_ms", "bytes_per_frame", "frames_rendered")}
        row["ratio_unthrottled_to_python"] = row["painted_fps_unthrottled"] / row["python_fps"]
        out[name] = row
        print(f"  ratio {ratio:g}, {name}: {json.dumps(row)}", flush=True)
    return out


def ratios_only(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "jupyter")
        try:
            with launched_chromium() as browser:
                jupyter = Jupyter(server, browser, RESULTS / "artifacts")
                try:
                    rows = {}
                    for ratio in (1.0, 2.0):
                        rows[ratio] = ratio2_section(jupyter, args, ratio)
                        server.shutdown_kernels()
                finally:
                    jupyter.close(None)
        finally:
            stop_server(server)
    print("\nratio  animation  @60 fps  unthrottled  python d+e  ratio  render ms  encode ms  kB/frame  canvas")
    for ratio, r in rows.items():
        for name, row in r.items():
            print(
                f"{ratio:>5g}  {name:<9} {row['painted_fps_at_60']:>8.1f} {row['painted_fps_unthrottled']:>12.1f} "
                f"{row['python_fps']:>11.1f} {row['ratio_unthrottled_to_python']:>6.2f} "
                f"{row['kernel']['render_ms']:>10.2f} {row['kernel']['encode_ms']:>10.2f} "
                f"{row['kernel']['bytes_per_frame'] / 1000:>9.1f}  {row['canvas']}"
            )
    (RESULTS / "player_ratios.json").write_text(json.dumps({str(k): v for k, v in rows.items()}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window", type=float, default=2.0, help="seconds per counting window")
    parser.add_argument("--windows", type=int, default=3, help="counting windows (median)")
    parser.add_argument("--memory-frames", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=5, help="first-frame samples of each viewer")
    parser.add_argument("--only", choices=("all", "startup"), default="all",
                        help="startup: only first frame vs the seed-style viewer, displayed vs drawn fps")  # fmt: skip
    parser.add_argument(
        "--ratios-only", action="store_true", help="only reference and blit at devicePixelRatio 1 and 2"
    )
    parser.add_argument(
        "--comm", action="store_true", help="keep Players on the comm (IPYBRIDGE_DIRECT=0 in the kernels' environment)"
    )
    args = parser.parse_args()
    if args.comm:
        os.environ["IPYBRIDGE_DIRECT"] = "0"  # the server passes its environment to the kernels it starts
    if args.ratios_only:
        ratios_only(args)
        return
    RESULTS.mkdir(exist_ok=True)
    results: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "settings": vars(args),
    }
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "jupyter")
        try:
            with launched_chromium() as browser:
                jupyter = Jupyter(server, browser, RESULTS / "artifacts")
                try:
                    print("Startup and display ...", flush=True)
                    results["startup"] = startup_section(jupyter, args)
                    server.shutdown_kernels()
                    if args.only == "all":
                        print("Player ...", flush=True)
                        results["player"] = player_section(jupyter, args)
                        server.shutdown_kernels()
                        print("Player at devicePixelRatio 2 ...", flush=True)
                        results["player"]["ratio2"] = ratio2_section(jupyter, args)
                        server.shutdown_kernels()
                        print("ipympl ...", flush=True)
                        results["ipympl"] = ipympl_section(jupyter, args)
                finally:
                    jupyter.close(None)
        finally:
            stop_server(server)
    report_startup(results)
    if args.only == "startup":
        (RESULTS / "player_startup.json").write_text(json.dumps(results, indent=2))
        print(f"\nwrote {RESULTS / 'player_startup.json'}")
        return
    report(results)
    (RESULTS / "player.json").write_text(json.dumps(results, indent=2))
    chart(results, RESULTS / "player.png")
    print(f"\nwrote {RESULTS / 'player.json'} and {RESULTS / 'player.png'}")


if __name__ == "__main__":
    main()
