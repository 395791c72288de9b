"""Soak: many Bridge calls and many Player frames in one page, with correctness and memory checked.

One run, real JupyterLab 4 + headless Chromium (tests/e2e/harness.py), one notebook, one kernel:

1. **Calls.** ``--calls`` (100,000) calls of an exposed ``check(token, i)`` with
   ``--in-flight`` (64) kept in flight. Every call sends a token unique to it and
   its index; Python answers ``{"token": token, "value": i*i + 7}``, and the page
   checks both, so an answer delivered to the wrong call is caught. Counted in the
   page: calls made, answered correctly, answered wrongly, rejected (by error
   name), never answered (lost: still pending when the run ends or stalls for
   ``--stall`` s); and by the page client's ``bridge.diagnostics.unmatchedAnswers``
   (answers for a call the page no longer waits for: a call answered twice). The
   kernel counts requests received and answers posted (``BridgeCore.debug_stats()``).
2. **Frames.** An ``ipybridge.Player`` of the reference animation (bench_player.py:
   640x480, one line of 1000 points), unthrottled (fps 0), ``loop="once"``, page
   cache bound ``--cache-mb``, plays ``--frames`` (10,000) frames; the page counts
   every write of the canvas's ``data-frame`` (in order, repeated, skipped).
3. **Memory.** Before, during (every ``--sample-every`` s of calls, every 1000
   frames) and after each phase, after a forced GC on both sides: the page's JS heap
   (CDP ``HeapProfiler.collectGarbage``, then ``Runtime.getHeapUsage``: used heap
   plus ArrayBuffer backing stores, where the frames live) and the kernel's RSS
   (``gc.collect()``, then ``VmRSS``), sampled through a second, idle Bridge so
   the soak Bridge's counters stay exact.

Bounds checked (PASS/FAIL), chosen so that a per-call or per-frame leak shows:

* calls: none wrong, none lost, none rejected, none answered twice; kernel answers == requests == calls;
* calls: page memory growth (after GC, after vs before) <= ``CALL_PAGE_MB`` (16 MB: over 100k calls a leak
  of >= 170 bytes per call fails) and kernel RSS growth <= ``CALL_RSS_MB`` (32 MB, >= 340 bytes per call;
  it includes jupyter_client's replay-protection set of the signatures of up to 65,536 received messages,
  about 9 MB when full, which the kernel keeps whoever sends the messages);
* frames: all painted, in order; from the sample at frame ~1000 (``FRAME_BASELINE``) to the last frame,
  the page's JS heap (objects, where per-frame bookkeeping would leak) grows <= ``FRAME_HEAP_MB`` (4 MB:
  >= 470 bytes per frame over 9000 frames fails), page memory with ArrayBuffers (the encoded frame cache
  and the decoded frames) grows <= the Player's page cache bound ``--cache-mb`` (the cache may still be
  filling at frame 1000, nothing else may grow), and kernel RSS grows <= ``FRAME_RSS_MB`` (32 MB).

The phases also print the batching figure, calls per page message, sampled over time.

    .venv/bin/python benchmarks/soak.py [--calls 100000] [--in-flight 64] [--frames 10000] [--cache-mb 32]

Prints a table, writes benchmarks/results/soak.json and benchmarks/results/soak.png.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.harness import Jupyter, NotebookPage, launched_chromium, start_server, stop_server  # noqa: E402

RESULTS = HERE / "results"
CALL_PAGE_MB = 16.0
CALL_RSS_MB = 32.0
FRAME_HEAP_MB = 4.0
FRAME_RSS_MB = 32.0
#: The frame whose sample is the baseline of the frame-memory bound: both page caches are full by then.
FRAME_BASELINE = 1000

SOAK_JS = r"""
el.querySelector("span").textContent = "soak: calls";
window.__soak = {
  state: null,
  // Start `total` calls with `inflight` kept in flight; returns at once, poll snapshot().
  start(total, inflight) {
    const run = Math.random().toString(36).slice(2, 10);
    const s = { total, inflight, made: 0, correct: 0, wrong: 0, rejected: 0, rejectedBy: {}, examples: [],
                t0: performance.now(), t1: null };
    let next = 0;
    const worker = async () => {
      while (next < total) {
        const i = next++;
        const token = `${run}-${i}`;
        s.made++;
        try {
          const r = await py.check(token, i);
          if (r && r.token === token && r.value === i * i + 7) s.correct++;
          else {
            s.wrong++;
            if (s.examples.length < 5) s.examples.push({ i, token, got: JSON.stringify(r).slice(0, 200) });
          }
        } catch (e) {
          s.rejected++;
          s.rejectedBy[e.name] = (s.rejectedBy[e.name] ?? 0) + 1;
          if (s.examples.length < 5) s.examples.push({ i, token, error: `${e.name}: ${e.message}`.slice(0, 200) });
        }
      }
    };
    Promise.all(Array.from({ length: inflight }, worker)).then(() => { s.t1 = performance.now(); });
    this.state = s;
  },
  snapshot() {
    const s = this.state;
    const now = s.t1 ?? performance.now();
    return { ...s, answered: s.correct + s.wrong + s.rejected, done: s.t1 !== null,
             seconds: (now - s.t0) / 1000, diagnostics: bridge.diagnostics };
  },
};
"""

PROBE_JS = r"""
el.querySelector("span").textContent = "soak: probe";
window.__soakProbe = () => py.sample();
"""

SETUP_CELL = (
    textwrap.dedent(
        """
    import gc
    import numpy as np
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation
    import ipybridge
    from IPython.display import display

    def reference(n):  # bench_player.py's reference animation
        fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
        x = np.linspace(0, 10, 1000)
        ax.set_xlim(0, 10)
        ax.set_ylim(-2, 2)
        (line,) = ax.plot(x, np.sin(x))
        def update(i):
            line.set_ydata(np.cos(0.02 * np.pi * i) * np.sin(x - 0.02 * np.pi * i))
            return (line,)
        return FuncAnimation(fig, update, frames=n, interval=1000 / 60, cache_frame_data=False)

    def check(token, i):
        return {"token": token, "value": i * i + 7}

    def rss_mb():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def sample():
        gc.collect()
        out = {"rss_mb": rss_mb(), "bridge": soak._core.debug_stats()}
        p = globals().get("player")
        if p is not None:
            out["player"] = {**p.stats, **p._core.debug_stats(), "frames_pending": len(p._core._pending)}
        return out

    soak = ipybridge.Bridge(html="<span></span>", js=SOAK_JS, expose={"check": check})
    probe = ipybridge.Bridge(html="<span></span>", js=PROBE_JS, expose={"sample": sample})
    display(soak, probe)
    """
    )
    .replace("SOAK_JS", repr(SOAK_JS))
    .replace("PROBE_JS", repr(PROBE_JS))
)


def player_cell(frames: int, cache_mb: float) -> str:
    return f'player = ipybridge.Player(reference({frames}), fps=0, loop="once", cache_mb={cache_mb})\nplayer'


CANVAS = ".ipybridge-player canvas"
# Counts every write of the player canvas's data-frame: in order (previous + 1), repeated, other jumps.
PAINT_COUNTER_JS = """() => {
  const canvas = document.querySelector("CANVAS");
  const c = { writes: 0, inOrder: 0, repeated: 0, jumps: 0, odd: [], last: Number(canvas.dataset.frame) };
  new MutationObserver((records) => {
    // A record holds the value before its write: the value it wrote is the next record's old value.
    records.forEach((record, k) => {
      const f = Number(k + 1 < records.length ? records[k + 1].oldValue : canvas.dataset.frame);
      c.writes++;
      if (f === c.last + 1) c.inOrder++;
      else {
        if (f === c.last) c.repeated++; else c.jumps++;
        if (c.odd.length < 20) c.odd.push([c.last, f, Math.round(performance.now())]);
      }
      c.last = f;
    });
  }).observe(canvas, { attributes: true, attributeOldValue: true, attributeFilter: ["data-frame"] });
  window.__paints = c;
}""".replace("CANVAS", CANVAS)


class Soak:
    """The soak notebook open in JupyterLab, with a CDP session on its page for heap figures."""

    def __init__(
        self, jupyter: Jupyter, frames: int, cache_mb: float, log: Callable[[str], None], ui: str = "lab"
    ) -> None:
        self.log = log
        self.nb: NotebookPage = jupyter.open(ui, [SETUP_CELL, player_cell(frames, cache_mb)], name="soak")
        self.page = self.nb.page
        self.cdp = self.page.context.new_cdp_session(self.page)
        self.t0 = time.monotonic()
        self.samples: list[dict[str, Any]] = []
        self.nb.run_cell(0)
        self.page.wait_for_function("() => window.__soak && window.__soakProbe", timeout=120_000)

    def sample(self, phase: str, label: str, **extra: Any) -> dict[str, Any]:
        """Forced GC on both sides, then page heap and kernel RSS."""
        self.cdp.send("HeapProfiler.collectGarbage")
        heap = self.cdp.send("Runtime.getHeapUsage")
        kernel = self.page.evaluate("() => window.__soakProbe()")
        row = {
            "t": time.monotonic() - self.t0,
            "phase": phase,
            "label": label,
            "heap_used_mb": heap["usedSize"] / 2**20,
            "heap_backing_mb": heap.get("backingStorageSize", 0) / 2**20,
            "kernel_rss_mb": kernel["rss_mb"],
            "kernel": kernel,
            **extra,
        }
        row["page_mb"] = row["heap_used_mb"] + row["heap_backing_mb"]
        self.samples.append(row)
        return row

    # ------------------------------------------------------------- calls
    def start_calls(self, calls: int, in_flight: int) -> None:
        self.page.evaluate("([n, k]) => window.__soak.start(n, k)", [calls, in_flight])

    def call_snapshot(self) -> dict[str, Any]:
        return dict(self.page.evaluate("() => window.__soak.snapshot()"))

    def run_calls(self, calls: int, in_flight: int, stall_s: float, sample_every_s: float) -> dict[str, Any]:
        self.sample("calls", "before", calls_answered=0)
        self.start_calls(calls, in_flight)
        last_answered, last_progress, last_sample = -1, time.monotonic(), time.monotonic()
        while True:
            snap = self.call_snapshot()
            now = time.monotonic()
            if snap["done"]:
                break
            if snap["answered"] != last_answered:
                last_answered, last_progress = snap["answered"], now
            elif now - last_progress > stall_s:
                self.log(f"calls: no answer for {stall_s:.0f} s, {snap['made'] - snap['answered']} pending: stopping")
                break
            if now - last_sample >= sample_every_s:
                self.sample("calls", "during", calls_answered=snap["answered"])
                last_sample = time.monotonic()
                self.log(f"calls: {snap['answered']}/{calls} answered, {snap['answered'] / snap['seconds']:.0f}/s")
            self.page.wait_for_timeout(200)  # polling interval; progress and the stall deadline decide
        self.sample("calls", "after", calls_answered=snap["answered"])
        return summarize_calls(snap, self.samples)

    # ------------------------------------------------------------ frames
    def show_player(self) -> None:
        """Run the Player's cell, wait for frame 0, start counting paints."""
        self.nb.run_cell(1)
        self.page.wait_for_function(f"() => document.querySelector('{CANVAS}')?.dataset.frame === '0'", timeout=120_000)
        self.page.evaluate(PAINT_COUNTER_JS)

    def play(self) -> None:
        self.nb.output(1).get_by_role("button", name="Play", exact=True).click()

    def paints(self) -> dict[str, Any]:
        return dict(self.page.evaluate("() => window.__paints"))

    def run_frames(self, frames: int, cache_mb: float, stall_s: float) -> dict[str, Any]:
        self.show_player()
        before = self.sample("frames", "before", frame=0)
        start = time.monotonic()
        self.play()
        thresholds = list(range(FRAME_BASELINE, frames, 1000))
        last_frame, last_progress = 0, time.monotonic()
        while True:
            frame = int(self.page.evaluate(f"() => Number(document.querySelector('{CANVAS}').dataset.frame)"))
            now = time.monotonic()
            if frame >= frames - 1:
                break
            if frame != last_frame:
                last_frame, last_progress = frame, now
            elif now - last_progress > stall_s:
                self.log(f"frames: stuck at frame {frame} for {stall_s:.0f} s: stopping")
                break
            if thresholds and frame >= thresholds[0]:
                while thresholds and frame >= thresholds[0]:
                    thresholds.pop(0)
                self.sample("frames", "during", frame=frame)
                self.log(f"frames: {frame}/{frames}, {frame / (now - start):.0f} fps")
            self.page.wait_for_timeout(200)  # polling interval; progress and the stall deadline decide
        seconds = time.monotonic() - start
        paints = self.paints()
        after = self.sample("frames", "after", frame=paints["last"])
        return summarize_frames(frames, cache_mb, seconds, paints, before, after, self.samples)


# ------------------------------------------------------------------ checks
def summarize_calls(snap: dict[str, Any], samples: list[dict[str, Any]]) -> dict[str, Any]:
    points = [s for s in samples if s["phase"] == "calls"]
    before, after = points[0], points[-1]
    kb, ka = before["kernel"]["bridge"], after["kernel"]["bridge"]
    timeline = []  # per sampling interval: calls/s and calls per page message (batching)
    for a, b in itertools.pairwise(points):
        messages = b["kernel"]["bridge"]["messages_received"] - a["kernel"]["bridge"]["messages_received"]
        requests = b["kernel"]["bridge"]["requests_received"] - a["kernel"]["bridge"]["requests_received"]
        timeline.append(
            {
                "t": b["t"],
                "calls_per_s": (b.get("calls_answered") or 0) - (a.get("calls_answered") or 0),
                "calls_per_message": requests / messages if messages else 0.0,
            }
        )
        timeline[-1]["calls_per_s"] /= b["t"] - a["t"]
    out = {
        "calls": snap["total"],
        "in_flight": snap["inflight"],
        "made": snap["made"],
        "correct": snap["correct"],
        "wrong": snap["wrong"],
        "rejected": snap["rejected"],
        "rejected_by": snap["rejectedBy"],
        "lost": snap["made"] - snap["answered"],
        "answered_twice": snap["diagnostics"]["unmatchedAnswers"],
        "page_pending_after": snap["diagnostics"]["pending"],
        "examples": snap["examples"],
        "seconds": snap["seconds"],
        "calls_per_s": snap["answered"] / snap["seconds"] if snap["seconds"] else 0.0,
        "kernel_requests": ka["requests_received"] - kb["requests_received"],
        "kernel_answers": ka["answers_posted"] - kb["answers_posted"],
        "kernel_running_after": ka["running"],
        "kernel_messages": ka["messages_received"] - kb["messages_received"],
        "timeline": timeline,
        "heap_mb_before": before["page_mb"],
        "heap_mb_after": after["page_mb"],
        "rss_mb_before": before["kernel_rss_mb"],
        "rss_mb_after": after["kernel_rss_mb"],
    }
    out["heap_growth_mb"] = out["heap_mb_after"] - out["heap_mb_before"]
    out["rss_growth_mb"] = out["rss_mb_after"] - out["rss_mb_before"]
    return out


def call_checks(c: dict[str, Any]) -> list[tuple[str, str, bool]]:
    n = c["calls"]
    return [
        (f"all {n} calls made and answered correctly", f"{c['correct']}/{c['made']}", c["correct"] == c["made"] == n),
        ("no answer wrong (token/value mismatch)", str(c["wrong"]), c["wrong"] == 0),
        ("no call rejected", f"{c['rejected']} {c['rejected_by'] or ''}".strip(), c["rejected"] == 0),
        ("no call lost (never answered)", str(c["lost"]), c["lost"] == 0),
        ("no call answered twice (page unmatched answers)", str(c["answered_twice"]), c["answered_twice"] == 0),
        (
            "kernel: requests received == answers posted == calls",
            f"{c['kernel_requests']} / {c['kernel_answers']}",
            c["kernel_requests"] == c["kernel_answers"] == c["made"],
        ),
        (
            f"page memory (JS heap + ArrayBuffers) growth after GC <= {CALL_PAGE_MB:.0f} MB",
            f"{c['heap_growth_mb']:+.1f} MB",
            c["heap_growth_mb"] <= CALL_PAGE_MB,
        ),
        (
            f"kernel RSS growth after GC <= {CALL_RSS_MB:.0f} MB",
            f"{c['rss_growth_mb']:+.1f} MB",
            c["rss_growth_mb"] <= CALL_RSS_MB,
        ),
    ]


def summarize_frames(
    frames: int,
    cache_mb: float,
    seconds: float,
    paints: dict[str, Any],
    before: dict[str, Any],
    after: dict[str, Any],
    samples: list[dict[str, Any]],
) -> dict[str, Any]:
    during = [s for s in samples if s["phase"] == "frames" and s["label"] == "during"]
    base = during[0] if during else before
    player = after["kernel"].get("player", {})
    out = {
        "frames": frames,
        "seconds": seconds,
        "fps": paints["last"] / seconds if seconds else 0.0,
        "painted": paints["writes"] + 1,  # + frame 0, painted before Play
        "in_order": paints["inOrder"],
        "repeated": paints["repeated"],
        "jumps": paints["jumps"],
        "irregular": paints["odd"],  # [previous, painted, page ms] of the first repeats/jumps
        "last_frame": paints["last"],
        "kernel_frames_rendered": player.get("frames_rendered"),
        "kernel_frames_requested": player.get("frames_requested"),
        "kernel_frames_pending_after": player.get("frames_pending"),
        "page_cache_mb": player.get("page_cache_bytes", 0) / 2**20,
        "baseline_frame": base.get("frame", 0),
        "cache_limit_mb": cache_mb,
        "heap_mb_before": before["page_mb"],
        "heap_mb_baseline": base["page_mb"],
        "heap_mb_after": after["page_mb"],
        "heap_mb_max": max(s["page_mb"] for s in [before, *during, after]),
        "js_heap_mb_baseline": base["heap_used_mb"],
        "js_heap_mb_after": after["heap_used_mb"],
        "rss_mb_before": before["kernel_rss_mb"],
        "rss_mb_baseline": base["kernel_rss_mb"],
        "rss_mb_after": after["kernel_rss_mb"],
    }
    out["heap_growth_mb"] = out["heap_mb_after"] - out["heap_mb_baseline"]
    out["js_heap_growth_mb"] = out["js_heap_mb_after"] - out["js_heap_mb_baseline"]
    out["rss_growth_mb"] = out["rss_mb_after"] - out["rss_mb_baseline"]
    return out


def frame_checks(f: dict[str, Any]) -> list[tuple[str, str, bool]]:
    n, span = f["frames"], f"frame {f['baseline_frame']} -> {f['last_frame']}"
    return [
        (
            f"all {n} frames painted, in order",
            f"{f['painted']} ({f['in_order']} in order)",
            f["painted"] == n and f["in_order"] == n - 1 and f["last_frame"] == n - 1,
        ),
        (
            f"page JS heap after GC, {span}: growth <= {FRAME_HEAP_MB:.0f} MB",
            f"{f['js_heap_growth_mb']:+.1f} MB",
            f["js_heap_growth_mb"] <= FRAME_HEAP_MB,
        ),
        (
            f"page heap + ArrayBuffers after GC, {span}: growth <= cache bound {f['cache_limit_mb']:.0f} MB",
            f"{f['heap_growth_mb']:+.1f} MB",
            f["heap_growth_mb"] <= f["cache_limit_mb"],
        ),
        (
            f"kernel RSS after GC, {span}: growth <= {FRAME_RSS_MB:.0f} MB",
            f"{f['rss_growth_mb']:+.1f} MB",
            f["rss_growth_mb"] <= FRAME_RSS_MB,
        ),
    ]


# --------------------------------------------------------------- reporting
def report(results: dict[str, Any]) -> bool:
    m = results["machine"]
    print(
        f"\nMachine: {m['cpu_count']} CPUs (shared), load {m['loadavg_start'][0]:.1f} -> {m['loadavg_end'][0]:.1f}, "
        f"Python {m['python']}, JupyterLab {m['jupyterlab']}, ipykernel {m['ipykernel']}, Chromium {m['chromium']}"
    )
    ok = True
    c = results.get("calls")
    if c:
        print(
            f"\n== {c['calls']} calls, {c['in_flight']} in flight: "
            f"{c['seconds']:.1f} s, {c['calls_per_s']:.0f} calls/s =="
        )
        print(
            f"{'made':>8} {'correct':>8} {'wrong':>6} {'rejected':>9} {'lost':>5} {'twice':>6} "
            f"{'k.recv':>8} {'k.answ':>8}"
        )
        print(
            f"{c['made']:>8} {c['correct']:>8} {c['wrong']:>6} {c['rejected']:>9} {c['lost']:>5} "
            f"{c['answered_twice']:>6} {c['kernel_requests']:>8} {c['kernel_answers']:>8}"
        )
        print(
            f"page memory (JS heap + ArrayBuffers, after GC) {c['heap_mb_before']:.1f} -> {c['heap_mb_after']:.1f} MB; "
            f"kernel RSS {c['rss_mb_before']:.1f} -> {c['rss_mb_after']:.1f} MB"
        )
        tl = c["timeline"]
        if tl:
            print(
                f"calls per page message (batching): {c['made'] / max(c['kernel_messages'], 1):.1f} overall; "
                f"per {results['config']['sample_every']:.0f} s interval: "
                + " ".join(f"{p['calls_per_message']:.0f}" for p in tl)
            )
            print("calls/s per interval: " + " ".join(f"{p['calls_per_s']:.0f}" for p in tl))
        if c["examples"]:
            print("first problems:", json.dumps(c["examples"]))
    f = results.get("frames")
    if f:
        print(f"\n== {f['frames']} Player frames, unthrottled: {f['seconds']:.1f} s, {f['fps']:.0f} fps painted ==")
        print(
            f"painted {f['painted']} (in order {f['in_order']}, repeated {f['repeated']}, jumps {f['jumps']}); "
            f"kernel rendered {f['kernel_frames_rendered']} of {f['kernel_frames_requested']} requested; "
            f"page cache {f['page_cache_mb']:.1f} MB (bound {results['config']['cache_mb']} MB)"
        )
        print(
            f"page memory after GC: {f['heap_mb_before']:.1f} (frame 0) -> {f['heap_mb_baseline']:.1f} "
            f"(frame {f['baseline_frame']}) -> {f['heap_mb_after']:.1f} MB (frame {f['last_frame']}); "
            f"kernel RSS {f['rss_mb_before']:.1f} -> {f['rss_mb_baseline']:.1f} -> {f['rss_mb_after']:.1f} MB"
        )
    print("\n== checks ==")
    for what, value, passed in results["checks"]:
        ok &= passed
        print(f"{'PASS' if passed else 'FAIL'}  {what:72} {value}")
    return ok


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = results["samples"]
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True, height_ratios=(3, 2))
    t = [s["t"] for s in samples]
    ax.plot(t, [s["page_mb"] for s in samples], "o-", ms=3, color="#0072b2", label="page: JS heap + ArrayBuffers")
    ax.plot(t, [s["heap_used_mb"] for s in samples], ".--", ms=3, color="#56b4e9", label="page: JS heap only")
    ax.plot(t, [s["kernel_rss_mb"] for s in samples], "s-", ms=3, color="#d55e00", label="kernel RSS")
    for phase, color in (("calls", "#eeeeee"), ("frames", "#e8f4e8")):
        ts = [s["t"] for s in samples if s["phase"] == phase]
        if not ts:
            continue
        for axis in (ax, bx):
            axis.axvspan(min(ts), max(ts), color=color, zorder=0)
        summary = results[phase]
        if phase == "calls":
            label = f"{summary['calls']:,} calls, {summary['in_flight']} in flight ({summary['calls_per_s']:.0f}/s)"
        else:
            label = f"{summary['frames']:,} Player frames ({summary['fps']:.0f} fps)"
            label += f", cache bound {summary['cache_limit_mb']:.0f} MB"
        ax.text((min(ts) + max(ts)) / 2, 0.03, label, transform=ax.get_xaxis_transform(), ha="center", fontsize=9)
    ax.set_ylabel("MB, sampled after forced GC")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", fontsize=9)
    m = results["machine"]
    verdict = "all checks PASS" if all(p for _, _, p in results["checks"]) else "some checks FAIL"
    ax.set_title(
        f"ipybridge soak ({verdict}): JupyterLab {m['jupyterlab']}, Chromium {m['chromium']}, "
        f"{m['cpu_count']} CPUs (shared, load {m['loadavg_start'][0]:.0f}-{m['loadavg_end'][0]:.0f})",
        fontsize=10,
    )
    timeline = results.get("calls", {}).get("timeline", [])
    if timeline:
        tt = [p["t"] for p in timeline]
        bx.plot(tt, [p["calls_per_s"] for p in timeline], "o-", ms=3, color="#009e73", label="calls/s")
        bx.set_ylabel("calls/s", color="#009e73")
        cx = bx.twinx()
        cx.plot(tt, [p["calls_per_message"] for p in timeline], "^-", ms=3, color="#cc79a7")
        cx.set_ylabel("calls per page message", color="#cc79a7")
        cx.set_ylim(bottom=0)
        bx.set_ylim(bottom=0)
    bx.set_xlabel("seconds since the notebook was up")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--cache-mb", type=float, default=32.0, help="the Player's page cache bound")
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between memory samples (calls)")
    parser.add_argument("--stall", type=float, default=60.0, help="seconds without progress before giving up")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--replot", action="store_true", help="only redraw soak.png from soak.json")
    args = parser.parse_args()
    if args.replot:
        saved = json.loads((args.out / "soak.json").read_text())
        chart(saved, args.out / "soak.png")
        return 0
    started = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {msg}", flush=True)

    results: dict[str, Any] = {"config": vars(args) | {"out": str(args.out)}}
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp, launched_chromium() as browser:
        results["machine"] = {
            "cpu_count": os.cpu_count(),
            "loadavg_start": os.getloadavg(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "chromium": browser.version,
            **{d: version(d) for d in ("jupyterlab", "ipykernel", "ipywidgets", "anywidget", "ipybridge")},
        }
        server = start_server(Path(tmp) / "root")
        jupyter = Jupyter(server, browser, Path(tmp) / "artifacts")
        try:
            soak = Soak(jupyter, args.frames, args.cache_mb, log)
            log("notebook up")
            if args.calls:
                results["calls"] = soak.run_calls(args.calls, args.in_flight, args.stall, args.sample_every)
                log(f"calls done: {json.dumps({k: v for k, v in results['calls'].items() if k != 'examples'})}")
            if args.frames:
                results["frames"] = soak.run_frames(args.frames, args.cache_mb, args.stall)
                log(f"frames done: {json.dumps(results['frames'])}")
            results["samples"] = soak.samples
        except Exception:
            with contextlib.suppress(Exception):
                print(server.log_text()[-4000:], file=sys.stderr)
            raise
        finally:
            with contextlib.suppress(Exception):
                jupyter.close(None)
            stop_server(server)
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["checks"] = (call_checks(results["calls"]) if "calls" in results else []) + (
        frame_checks(results["frames"]) if "frames" in results else []
    )
    results["elapsed_s"] = time.monotonic() - started
    ok = report(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(results, indent=2))
    chart(results, args.out / "soak.png")
    print(f"\nwrote {args.out / 'soak.json'} and {args.out / 'soak.png'} in {results['elapsed_s']:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
