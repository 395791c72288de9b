"""RPC benchmark: ipybridge vs a plain widget echo (the floor) vs anywidget invoke.

One run, real JupyterLab 4 + headless Chromium, one notebook and one kernel
with all three contenders displayed in it:

* ``floor``: a plain anywidget; its JS sends a custom message, its Python
  ``on_msg`` answers with ``self.send(content, buffers)``: one comm message
  each way per call, the least any widget-based RPC can do.
* ``invoke``: anywidget's ``experimental.invoke`` (the ``experimental``
  argument anywidget 0.11 passes to ``render``) with ``@anywidget.experimental.command``
  methods on the Python side.
* ``ipybridge``: ``py.echo(x)`` etc. on an ``ipybridge.Bridge``.

Measured in the page with ``performance.now()``, driven by Playwright:
round-trip latency (p50/p99, sequential; and p50 of isolated calls, one every
100 ms, as clicks and slider moves make them), calls/s with 1, 8 and 64 calls in
flight, MB/s moving 8 MB and 64 MB float64 arrays page->kernel ("up") and
kernel->page ("down") as binary buffers and as base64 text in JSON.
Each figure is the median over ``--repeats`` repeats, contenders interleaved.

Then the same notebook on a second server that loads ipybridge's server extension ``ipybridge.server`` (TCP_NODELAY)
(TCP_NODELAY on kernel websockets): latency and calls/s again.

Both servers raise tornado's ``websocket_max_message_size`` (10 MiB by default)
to 256 MiB: a bigger page->kernel message would close the kernel websocket of the
floor and invoke (ipybridge sends parts of at most 8 MiB on its own; the notebook
raises its ``max_message_bytes`` to 256 MiB for the 81 MiB of base64 text).

    .venv/bin/python benchmarks/bench_rpc.py [--repeats 3] [--window 2] [--no-nodelay]

Prints a table, writes benchmarks/results/rpc.json and benchmarks/results/rpc.png.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import textwrap
import time
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.harness import Jupyter, launched_chromium, start_server, stop_server  # noqa: E402

RESULTS = HERE / "results"
#: Everything measured, in table order. ipybridge: the comm path (direct = False); ipybridge-direct: the
#: direct transport the default way (loopback: the benchmark's page is served from 127.0.0.1);
#: ipybridge-relay: the direct transport forced through ipybridge.server's relay; jchannel: jupyter-jchannel.
CONTENDERS = ("floor", "invoke", "jchannel", "ipybridge", "ipybridge-direct", "ipybridge-relay")
DIRECT = ("ipybridge-direct", "ipybridge-relay")
INFLIGHT = (1, 8, 64)
#: The "isolated call" row: one call after each pause of this long (ms).
ISOLATED_GAP_MS = 100
SIZES_MB = (8, 64)  # decimal MB: 1e6 and 8e6 float64 values
MAX_WS_MESSAGE = 256 << 20
TARGETS = {
    "latency_ratio_max": 1.3,
    "isolated_ratio_max": 1.1,  # issue 14: an isolated call matches the floor
    "calls_per_s_64_min": 2000,
    "binary_vs_floor_min": 0.8,
    "binary_vs_base64_min": 2.0,
}

FLOOR_ESM = r"""
function f64(view) {  // zero-copy when aligned, like ipybridge
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  if (bytes.byteOffset % 8 === 0) return new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8);
  return new Float64Array(bytes.slice().buffer);
}
export default {
  render({ model, el }) {
    el.textContent = "floor: plain widget custom-message echo";
    const pending = new Map();
    let next = 1;
    model.on("msg:custom", (msg, buffers) => {
      const resolve = pending.get(msg.id);
      if (resolve) { pending.delete(msg.id); resolve([msg, buffers]); }
    });
    const request = (content, buffers) => new Promise((resolve) => {
      const id = next++;
      pending.set(id, resolve);
      model.send({ ...content, id }, undefined, buffers);
    });
    (window.__ipbBench ??= {}).floor = {
      echo: (x) => request({ op: "echo", x }).then(([m]) => m.x),
      sink: (a) => request({ op: "sink" }, [a]).then(([m]) => m.n),
      source: (n) => request({ op: "source", n }).then(([, b]) => f64(b[0])),
      sinkB64: (s) => request({ op: "sink_b64", data: s }).then(([m]) => m.n),
      sourceB64: (n) => request({ op: "source_b64", n }).then(([m]) => m.data),
    };
  },
};
"""

INVOKE_ESM = r"""
function f64(view) {
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  if (bytes.byteOffset % 8 === 0) return new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8);
  return new Float64Array(bytes.slice().buffer);
}
export default {
  render({ model, el, experimental }) {
    el.textContent = "anywidget experimental.invoke";
    const invoke = experimental.invoke;
    // invoke's default signal is AbortSignal.timeout(3000): too short for 64 MB.
    const long = (buffers = []) => ({ buffers, signal: AbortSignal.timeout(600000) });
    (window.__ipbBench ??= {}).invoke = {
      echo: (x) => invoke("echo", x, long()).then(([r]) => r),
      sink: (a) => invoke("sink", {}, long([a])).then(([r]) => r.n),
      source: (n) => invoke("source", { n }, long()).then(([, b]) => f64(b[0])),
      sinkB64: (s) => invoke("sink_b64", { data: s }, long()).then(([r]) => r.n),
      sourceB64: (n) => invoke("source_b64", { n }, long()).then(([r]) => r.data),
    };
  },
};
"""

BRIDGE_JS = r"""
const key = el.querySelector("span").dataset.key;
el.querySelector("span").textContent = `ipybridge Bridge (${key})`;
(window.__ipbBridges ??= {})[key] = bridge;
(window.__ipbBench ??= {})[key] = {
  echo: (x) => py.echo(x),
  sink: (a) => py.sink(a),
  source: (n) => py.source(n).then((r) => r.data),
  sinkB64: (s) => py.sink_b64(s),
  sourceB64: (n) => py.source_b64(n),
};
"""

SETUP_CELL = (
    textwrap.dedent(
        """
        import base64
        import anywidget, ipybridge, numpy as np
        from anywidget.experimental import command
        from IPython.display import display

        _ARRAYS = {}

        def array(n):
            if n not in _ARRAYS:
                _ARRAYS[n] = np.random.default_rng(0).random(n)
            return _ARRAYS[n]

        def b64_to_array(text):
            return np.frombuffer(base64.b64decode(text), dtype="<f8")

        def array_to_b64(n):
            return base64.b64encode(array(n)).decode("ascii")

        class Floor(anywidget.AnyWidget):
            _esm = FLOOR_ESM

            def __init__(self):
                super().__init__()
                self.on_msg(self._answer)

            def _answer(self, _widget, content, buffers):
                op, ident = content.get("op"), content.get("id")
                if op == "echo":
                    self.send(content, buffers)
                elif op == "sink":
                    self.send({"id": ident, "n": int(np.frombuffer(buffers[0], dtype="<f8").size)})
                elif op == "source":
                    self.send({"id": ident}, [array(content["n"])])
                elif op == "sink_b64":
                    self.send({"id": ident, "n": int(b64_to_array(content["data"]).size)})
                elif op == "source_b64":
                    self.send({"id": ident, "data": array_to_b64(content["n"])})

        class Invoke(anywidget.AnyWidget):
            _esm = INVOKE_ESM

            @command
            def echo(self, msg, buffers):
                return msg, buffers

            @command
            def sink(self, msg, buffers):
                return {"n": int(np.frombuffer(buffers[0], dtype="<f8").size)}, []

            @command
            def source(self, msg, buffers):
                return {}, [array(msg["n"])]

            @command
            def sink_b64(self, msg, buffers):
                return {"n": int(b64_to_array(msg["data"]).size)}, []

            @command
            def source_b64(self, msg, buffers):
                return {"data": array_to_b64(msg["n"])}, []

        def make_bridge(key, direct):
            ipybridge.Bridge.direct = direct  # read when a Bridge is created
            bridge = ipybridge.Bridge(
                html=f'<span data-key="{key}"></span>',
                js=BRIDGE_JS,
                expose={
                    "echo": lambda x: x,
                    "sink": lambda a: int(a.size),
                    "source": array,
                    "sink_b64": lambda text: int(b64_to_array(text).size),
                    "source_b64": array_to_b64,
                },
            )
            ipybridge.Bridge.direct = True
            bridge.max_message_bytes = 256 * 2**20  # the 64 MB array as base64 text is 81 MiB (default 64 MiB)
            return bridge

        bridges = [make_bridge(key, direct) for key, direct in BRIDGES]
        display(Floor(), Invoke(), *bridges)
        """
    )
    .replace("FLOOR_ESM", repr(FLOOR_ESM))
    .replace("INVOKE_ESM", repr(INVOKE_ESM))
    .replace("BRIDGE_JS", repr(BRIDGE_JS))
)

# jupyter-jchannel: its aiohttp server in the kernel and its page script. The script normally comes from a
# CDN (unreachable offline); the benchmark builds it from a checkout of jupyter-jchannel-client (see
# --jchannel-client) and the Jupyter server serves it from the notebook's folder.
JCHANNEL_CELL = textwrap.dedent(
    """
    import os, socket
    os.environ["JCHANNEL_CLIENT_URL"] = JCHANNEL_URL
    import jchannel

    with socket.socket() as _s:
        _s.bind(("127.0.0.1", 0))
        _jport = _s.getsockname()[1]
    jserver = await jchannel.start(host="127.0.0.1", port=_jport)

    class JHandler:
        def echo(self, x):
            return x

    jch = await jserver.open(
        "(channel) => { (window.__ipbBench ??= {}).jchannel = {echo: (x) => channel.call('echo', x)}; }"
    )
    jch.handler = JHandler()
    """
)

# Timing loops, run in the page. Every contender offers the same five calls.
PAGE_BENCH = r"""
() => {
  const C = window.__ipbBench;
  const hasB64 = typeof Uint8Array.prototype.toBase64 === "function" && typeof Uint8Array.fromBase64 === "function";
  const toB64 = (u8) => {
    if (hasB64) return u8.toBase64();
    let s = "";
    for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
    return btoa(s);
  };
  const fromB64 = (s) => {
    if (hasB64) return Uint8Array.fromBase64(s);
    const bin = atob(s); const u8 = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
    return u8;
  };
  const arrays = new Map();
  const arrayOf = (n) => {
    if (!arrays.has(n)) {
      const a = new Float64Array(n);
      for (let i = 0; i < n; i++) a[i] = Math.random();
      arrays.set(n, a);
    }
    return arrays.get(n);
  };
  const tiny = { a: 1, b: "x" };
  const check = (ok, what) => { if (!ok) throw new Error(`wrong answer: ${what}`); };
  window.__bench = {
    hasB64,
    async latency(name, count, warm) {
      const c = C[name];
      for (let i = 0; i < warm; i++) await c.echo(tiny);
      const times = [];
      for (let i = 0; i < count; i++) {
        const t = performance.now();
        const r = await c.echo(tiny);
        times.push(performance.now() - t);
        check(r && r.a === 1, "echo");
      }
      return times;
    },
    async isolated(name, count, gapMs) {
      // One call at a time with a pause before each: what a click or a slider move costs.
      const c = C[name];
      const times = [];
      for (let i = 0; i < count; i++) {
        await new Promise((resolve) => setTimeout(resolve, gapMs));
        const t = performance.now();
        const r = await c.echo(tiny);
        times.push(performance.now() - t);
        check(r && r.a === 1, "echo");
      }
      return times;
    },
    async throughput(name, inflight, ms) {
      const c = C[name];
      let done = 0;
      const t0 = performance.now();
      const end = t0 + ms;
      const worker = async () => {
        while (performance.now() < end) { await c.echo(tiny); done++; }
      };
      await Promise.all(Array.from({ length: inflight }, worker));
      return { calls: done, seconds: (performance.now() - t0) / 1000 };
    },
    async transfer(name, dir, enc, n) {
      const c = C[name];
      const a = arrayOf(n);
      const t = performance.now();
      if (dir === "up" && enc === "binary") check((await c.sink(a)) === n, "sink");
      else if (dir === "up") check((await c.sinkB64(toB64(new Uint8Array(a.buffer)))) === n, "sink_b64");
      else if (enc === "binary") check((await c.source(n)).length === n, "source");
      else check(new Float64Array(fromB64(await c.sourceB64(n)).buffer).length === n, "source_b64");
      return performance.now() - t;
    },
  };
  return hasB64;
}
"""


TRANSFER = "([c, d, e, n]) => window.__bench.transfer(c, d, e, n)"

# Where a sequential call's time goes in the page, for contenders with a websocket of their own: from the call
# to the end of WebSocket.send, from there to the answer's message event (its timeStamp: the socket, the
# browser's network process and the kernel), from that to the resolved promise. Means over `n` calls.
# (Microtasks run between one message listener and the next, so the listener added here sees call i's
# message after call i+1 was sent: message i is the (i+1)-th recorded.)
PAGE_SHARE = r"""async ([c, n]) => {
  const P = WebSocket.prototype;
  const send = P.send;
  const sendEnd = [], msgAt = [], t0s = [], t3s = [];
  const sockets = new Set();
  let on = false;
  P.send = function (d) {
    if (!sockets.has(this)) {
      sockets.add(this);
      this.addEventListener("message", (e) => on && msgAt.push(e.timeStamp));
    }
    const r = send.call(this, d);
    if (on) sendEnd.push(performance.now());
    return r;
  };
  const contender = window.__ipbBench[c];
  const tiny = { a: 1, b: "x" };
  try {
    for (let i = 0; i < 50; i++) await contender.echo(tiny);
    on = true;
    for (let i = 0; i < n; i++) {
      t0s.push(performance.now());
      await contender.echo(tiny);
      t3s.push(performance.now());
    }
    on = false;
  } finally {
    P.send = send;
  }
  if (sendEnd.length !== n || msgAt.length !== n) return { bad: [sendEnd.length, msgAt.length] };
  const mean = (f) => {
    let s = 0;
    for (let i = 0; i < n - 1; i++) s += f(i);
    return s / (n - 1);
  };
  // The tail too: where the slowest calls (p99) spend their time.
  const p99 = (f) => {
    const v = Array.from({ length: n - 1 }, (_, i) => f(i)).sort((a, b) => a - b);
    return v[Math.ceil(0.99 * v.length) - 1];
  };
  const parts = {
    total: (i) => t3s[i] - t0s[i],
    call_to_send: (i) => sendEnd[i] - t0s[i],
    send_to_message: (i) => msgAt[i + 1] - sendEnd[i],
    message_to_resolved: (i) => t3s[i] - msgAt[i + 1],
  };
  const out = {};
  for (const [k, f] of Object.entries(parts)) out[k] = mean(f);
  for (const [k, f] of Object.entries(parts)) out[`${k}_p99`] = p99(f);
  return out;
}"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def open_bench_page(jupyter: Jupyter, contenders: list[str], jchannel_url: str | None) -> Any:
    bridges = [(c, {"ipybridge": False, "ipybridge-direct": True, "ipybridge-relay": "relay"}[c])
               for c in contenders if c.startswith("ipybridge")]  # fmt: skip
    cells = [f"BRIDGES = {bridges!r}\n" + SETUP_CELL]
    if jchannel_url:
        cells.append(f"JCHANNEL_URL = {jchannel_url!r}\n" + JCHANNEL_CELL)
    nb = jupyter.open("lab", cells, name="bench-rpc")
    nb.run_all()
    page = nb.page
    page.wait_for_function(
        "(keys) => window.__ipbBench && keys.every((k) => window.__ipbBench[k])", arg=contenders, timeout=120_000
    )
    direct = [c for c in contenders if c in DIRECT]
    page.wait_for_function(
        "(keys) => keys.every((k) => window.__ipbBridges[k].transport === 'direct')", arg=direct, timeout=30_000
    )
    page.evaluate(PAGE_BENCH)
    return page


def measure_calls(
    page: Any,
    contenders: list[str],
    repeats: int,
    window_s: float,
    latency_calls: int,
    log: Any,
    isolated_calls: int = 0,
) -> dict[str, Any]:
    """Latency and calls/s for every contender; contenders interleaved per repeat."""
    runs: dict[str, dict[str, list[float]]] = {c: {} for c in contenders}
    for c in contenders:  # warm-up: every path once
        page.evaluate("([c]) => window.__bench.latency(c, 0, 5)", [c])
    for rep in range(repeats):
        for c in contenders:
            # A p99 of 100 calls is their second slowest: for the contenders with a socket of their own (a call
            # well under 2 ms) the p99 is taken over 10x as many calls, which costs them a second or two.
            n = latency_calls * (10 if c in DIRECT or c == "jchannel" else 1)
            times = page.evaluate("([c, n]) => window.__bench.latency(c, n, 2)", [c, n])
            runs[c].setdefault("latency_p50_ms", []).append(percentile(times, 0.50))
            runs[c].setdefault("latency_p99_ms", []).append(percentile(times, 0.99))
            if isolated_calls:
                times = page.evaluate(
                    "([c, n, gap]) => window.__bench.isolated(c, n, gap)", [c, isolated_calls, ISOLATED_GAP_MS]
                )
                runs[c].setdefault("isolated_p50_ms", []).append(percentile(times, 0.50))
                # On a stock server isolated calls are bimodal (~15 or ~50 ms: Nagle's wait), so the p50
                # flips between the modes on a few calls; the mean moves with the share of slow calls.
                runs[c].setdefault("isolated_mean_ms", []).append(statistics.fmean(times))
            for k in INFLIGHT:
                r = page.evaluate("([c, k, ms]) => window.__bench.throughput(c, k, ms)", [c, k, window_s * 1000])
                runs[c].setdefault(f"calls_per_s_{k}", []).append(r["calls"] / r["seconds"])
            log(
                f"  repeat {rep + 1}/{repeats} {c}: p50 {runs[c]['latency_p50_ms'][-1]:.1f} ms, "
                + (f"isolated p50 {runs[c]['isolated_p50_ms'][-1]:.1f} ms, " if isolated_calls else "")
                + ", ".join(f"{k} in flight {runs[c][f'calls_per_s_{k}'][-1]:.0f}/s" for k in INFLIGHT)
            )
    return runs


def measure_transfers(
    page: Any, contenders: list[str], repeats: int, sizes: tuple[int, ...], log: Any
) -> dict[str, Any]:
    runs: dict[str, dict[str, list[float]]] = {c: {} for c in contenders}
    for c in contenders:  # warm-up: one 8 MB each way, both encodings
        for direction in ("up", "down"):
            for enc in ("binary", "base64"):
                page.evaluate(TRANSFER, [c, direction, enc, 1_000_000])
    for rep in range(repeats):
        for c in contenders:
            for mb in sizes:
                n = mb * 1_000_000 // 8
                for direction in ("up", "down"):
                    for enc in ("binary", "base64"):
                        ms = page.evaluate(TRANSFER, [c, direction, enc, n])
                        runs[c].setdefault(f"mbps_{mb}mb_{direction}_{enc}", []).append(mb / (ms / 1000))
            log(
                f"  repeat {rep + 1}/{repeats} {c}: "
                + ", ".join(f"{k.removeprefix('mbps_')} {v[-1]:.0f}" for k, v in runs[c].items())
                + " MB/s"
            )
    return runs


def kernel_pids(server_pid: int) -> list[int]:
    """The kernel processes the Jupyter server ``server_pid`` started (its children running ipykernel)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:")), -1)
        if ppid == server_pid and b"ipykernel" in cmdline:
            pids.append(int(entry.name))
    return pids


def process_cpu_s(pid: int) -> float:
    """CPU time (user + system, seconds) process ``pid`` has used so far, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_page_share(
    page: Any, contenders: list[str], repeats: int, log: Any, kernel_pid: int | None = None
) -> dict[str, Any]:
    """The page's own share of a sequential call (see PAGE_SHARE), for contenders with their own websocket.

    With ``kernel_pid``, also the kernel process's CPU time per call over those calls (``kernel_cpu``, in ms
    like the rest; clock ticks of 10 ms over 1,000 calls: 0.01 ms resolution).
    """
    runs: dict[str, dict[str, list[float]]] = {}
    for rep in range(repeats):
        for c in contenders:
            if c not in DIRECT and c != "jchannel":
                continue
            calls = 1000
            cpu_before = process_cpu_s(kernel_pid) if kernel_pid else 0.0
            r = page.evaluate(PAGE_SHARE, [c, calls])
            if kernel_pid:
                r["kernel_cpu"] = (process_cpu_s(kernel_pid) - cpu_before) * 1000 / calls
            if "bad" in r:
                raise RuntimeError(f"page share of {c}: one send and one message per call expected, got {r['bad']}")
            for k, v in r.items():
                runs.setdefault(c, {}).setdefault(f"share_{k}_ms", []).append(v)
            log(f"  page share {rep + 1}/{repeats} {c}: " + ", ".join(f"{k} {v:.3f} ms" for k, v in r.items()))
    return runs


#: Sampling interval of the page's CPU profile (microseconds).
PROFILE_INTERVAL_US = 100


def profile_summary(profile: dict[str, Any], calls: int, top: int = 12) -> dict[str, Any]:
    """The page's main thread during a throughput window, per call (microseconds), from a V8 CPU profile.

    ``busy_us``: everything but ``(idle)``; ``gc_us`` and ``program_us`` (native work outside JavaScript: the
    websocket's IPC, event dispatch) are part of it; ``functions``: the biggest self times, as
    ``function file:line``. A page whose ``idle_share`` is near 0 is the limit of the run.
    """
    nodes = {n["id"]: n for n in profile["nodes"]}
    deltas = profile.get("timeDeltas") or []
    self_us: dict[int, float] = {}
    # Each sample's time is the delta to the next one (the profile's own convention in DevTools).
    for i, node_id in enumerate(profile["samples"]):
        dt = deltas[i + 1] if i + 1 < len(deltas) else 0
        self_us[node_id] = self_us.get(node_id, 0.0) + dt
    by_name: dict[str, float] = {}
    for node_id, us in self_us.items():
        frame = nodes[node_id]["callFrame"]
        where = frame["url"].rsplit("/", 1)[-1].split("?")[0]
        name = frame["functionName"] or "(anonymous)"
        key = f"{name} {where}:{frame['lineNumber'] + 1}" if where else name
        by_name[key] = by_name.get(key, 0.0) + us
    total = sum(by_name.values()) or 1.0
    idle = by_name.get("(idle)", 0.0)
    per_call = max(calls, 1)
    ranked = sorted(((k, v) for k, v in by_name.items() if k != "(idle)"), key=lambda kv: -kv[1])
    return {
        "calls": calls,
        "wall_us": total / per_call,
        "busy_us": (total - idle) / per_call,
        "gc_us": by_name.get("(garbage collector)", 0.0) / per_call,
        "program_us": by_name.get("(program)", 0.0) / per_call,
        "idle_share": idle / total,
        "functions": [[k, v / per_call] for k, v in ranked[:top]],
    }


# A throughput window that also counts the websocket messages each way (all sockets of the page).
COUNTED_THROUGHPUT = r"""async ([c, k, ms]) => {
  const P = WebSocket.prototype;
  const send = P.send;
  const counted = new Set();
  let sent = 0, received = 0, on = true;
  P.send = function (d) {
    if (!counted.has(this)) {
      counted.add(this);
      this.addEventListener("message", () => on && received++);
    }
    sent++;
    return send.call(this, d);
  };
  try {
    const r = await window.__bench.throughput(c, k, ms);
    return { ...r, sent, received };
  } finally {
    on = false;
    P.send = send;
  }
}"""


def task_seconds(cdp: Any) -> float:
    """The page's main-thread task time so far (seconds; CPU time with Performance enabled in threadTicks)."""
    metrics = cdp.send("Performance.getMetrics")["metrics"]
    return float(next(m["value"] for m in metrics if m["name"] == "TaskDuration"))


def measure_page_profile(page: Any, contenders: list[str], window_s: float, log: Any, out_dir: Path) -> dict[str, Any]:
    """A CPU profile of the page's main thread while the throughput loop runs (1 and 64 in flight).

    Each profile is also written to ``out_dir/page-<contender>-<k>.cpuprofile`` (DevTools' Performance panel
    opens it).
    """
    cdp = page.context.new_cdp_session(page)
    out: dict[str, Any] = {}
    try:
        cdp.send("Profiler.enable")
        cdp.send("Profiler.setSamplingInterval", {"interval": PROFILE_INTERVAL_US})
        # Task durations in thread ticks: the main thread's CPU time, which a busy machine moves far less than
        # wall-clock time (the renderer's other threads and the browser's network process are not in it).
        cdp.send("Performance.enable", {"timeDomain": "threadTicks"})
        for c in contenders:
            if c not in DIRECT and c != "jchannel":
                continue
            for k in (1, 64):
                # First a window without the profiler: main-thread CPU per call and messages per call.
                before = task_seconds(cdp)
                r = page.evaluate(COUNTED_THROUGHPUT, [c, k, window_s * 1000])
                cpu_us = (task_seconds(cdp) - before) * 1e6 / max(r["calls"], 1)
                counts = {
                    "cpu_us": cpu_us,
                    "calls_per_s_unprofiled": r["calls"] / r["seconds"],
                    "calls_per_sent_message": r["calls"] / max(r["sent"], 1),
                    "calls_per_received_message": r["calls"] / max(r["received"], 1),
                }
                log(
                    f"  page {c}, {k} in flight: {counts['calls_per_s_unprofiled']:.0f} calls/s, main thread "
                    f"{cpu_us:.1f} us CPU per call, {counts['calls_per_sent_message']:.1f} calls per message "
                    f"sent, {counts['calls_per_received_message']:.1f} per message received"
                )
                cdp.send("Profiler.start")
                r = page.evaluate("([c, k, ms]) => window.__bench.throughput(c, k, ms)", [c, k, window_s * 1000])
                profile = cdp.send("Profiler.stop")["profile"]
                out_dir.mkdir(parents=True, exist_ok=True)
                (out_dir / f"page-{c}-{k}.cpuprofile").write_text(json.dumps(profile))
                summary = profile_summary(profile, r["calls"])
                summary["calls_per_s"] = r["calls"] / r["seconds"]
                summary.update(counts)
                out.setdefault(c, {})[f"profile_{k}"] = summary
                log(
                    f"  page profile {c}, {k} in flight ({summary['calls_per_s']:.0f} calls/s, profiled): "
                    f"busy {summary['busy_us']:.1f} us/call of {summary['wall_us']:.1f} "
                    f"(gc {summary['gc_us']:.1f}, native {summary['program_us']:.1f}), idle {summary['idle_share']:.0%}"
                )
                for name, us in summary["functions"]:
                    log(f"      {us:6.2f} us  {name}")
        cdp.send("Profiler.disable")
        cdp.send("Performance.disable")
    finally:
        cdp.detach()
    return out


def summarize(runs: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, Any]]:
    """Medians of the repeated figures; anything else (a profile summary) as it is."""
    return {
        c: {m: {"median": median(v), "runs": v} if isinstance(v, list) else v for m, v in metrics.items()}
        for c, metrics in runs.items()
    }


def build_jchannel_client(checkout: Path, out: Path) -> None:
    """Bundle jupyter-jchannel-client's ES modules into the global script its Python side loads (not committed)."""
    import subprocess

    esbuild = ROOT / "node_modules" / ".bin" / "esbuild"
    subprocess.run(
        [str(esbuild), str(checkout / "src" / "index.js"), "--bundle", "--format=iife", "--global-name=__jchannel",
         "--footer:js=var jchannel = __jchannel.default;", f"--outfile={out}", "--log-level=warning"],
        check=True,
    )  # fmt: skip


def run_server(variant: str, browser: Any, args: argparse.Namespace, log: Any) -> dict[str, Any]:
    extra = [f"--ServerApp.tornado_settings={json.dumps({'websocket_max_message_size': MAX_WS_MESSAGE})}"]
    # ipybridge installs its server extension (ipybridge.server, TCP_NODELAY) enabled: the
    # stock variant switches it off, the nodelay variant keeps it.
    if variant == "stock":
        extra.append("--ServerApp.jpserver_extensions=ipybridge.server=False")
    with tempfile.TemporaryDirectory(prefix=f"bench-rpc-{variant}-") as tmp:
        server = start_server(Path(tmp) / "root", extra_args=extra)
        jupyter = Jupyter(server, browser, Path(tmp) / "artifacts")
        try:
            t0 = time.monotonic()
            contenders = [c for c in CONTENDERS if c != "jchannel" or args.jchannel_client]
            if args.contenders:
                contenders = [c for c in contenders if c in args.contenders]
            if variant == "stock" and "ipybridge-relay" in contenders:
                contenders.remove("ipybridge-relay")  # no ipybridge.server, no relay
            jchannel_url = None
            if args.jchannel_client:
                build_jchannel_client(args.jchannel_client, server.root / "jchannel-client.js")
                jchannel_url = "/files/jchannel-client.js"
            page = open_bench_page(jupyter, contenders, jchannel_url)
            log(f"[{variant}] notebook up in {time.monotonic() - t0:.0f} s (server pid {server.process.pid})")
            loaded = "ipybridge.server: TCP_NODELAY" in server.log_text()
            if loaded != (variant == "nodelay"):
                tail = server.log_text()[-3000:]
                raise RuntimeError(f"ipybridge.server loaded={loaded} on the {variant} server:\n{tail}")
            result: dict[str, Any] = {"has_native_base64": page.evaluate("() => window.__bench.hasB64")}
            calls: dict[str, Any] = {c: {} for c in contenders}
            if not args.transfers_only:
                calls = measure_calls(
                    page, contenders, args.repeats, args.window, args.latency_calls, log, args.isolated_calls
                )
                if args.page_share:
                    kernels = kernel_pids(server.process.pid)
                    kernel_pid = kernels[0] if len(kernels) == 1 else None
                    shares = measure_page_share(page, contenders, args.repeats, log, kernel_pid)
                    for c, share in shares.items():
                        calls[c].update(share)
                if args.page_profile:
                    for c, prof in measure_page_profile(page, contenders, args.window, log, args.out).items():
                        calls[c].update(prof)
            movers = [c for c in contenders if c != "jchannel"]  # jchannel: calls only (JSON values)
            run_transfers = variant == "stock" and not args.calls_only
            transfers = measure_transfers(page, movers, args.repeats, args.sizes, log) if run_transfers else None
            merged = {c: {**calls[c], **(transfers[c] if transfers and c in transfers else {})} for c in contenders}
            result["contenders"] = summarize(merged)
            return result
        except Exception:
            with contextlib.suppress(Exception):
                jupyter.close("bench-rpc-failure")
                print(server.log_text()[-4000:], file=sys.stderr)
            raise
        finally:
            with contextlib.suppress(Exception):
                jupyter.close(None)
            stop_server(server)


# --------------------------------------------------------------- reporting
def metric_rows(sizes: tuple[int, ...]) -> list[tuple[str, str, bool]]:
    """(metric key, label, higher is better)."""
    rows = [("latency_p50_ms", "latency p50 (ms)", False), ("latency_p99_ms", "latency p99 (ms)", False)]
    rows.append(("isolated_p50_ms", f"isolated call p50, every {ISOLATED_GAP_MS} ms", False))
    rows.append(("isolated_mean_ms", f"isolated call mean, every {ISOLATED_GAP_MS} ms", False))
    rows += [(f"calls_per_s_{k}", f"calls/s, {k} in flight", True) for k in INFLIGHT]
    for mb in sizes:
        for direction, arrow in (("up", "page->kernel"), ("down", "kernel->page")):
            for enc in ("binary", "base64"):
                rows.append((f"mbps_{mb}mb_{direction}_{enc}", f"MB/s {mb} MB {arrow} {enc}", True))
    return rows


def present(variant: dict[str, Any]) -> list[str]:
    return [c for c in CONTENDERS if c in variant["contenders"]]


def table(variant: dict[str, Any], sizes: tuple[int, ...]) -> str:
    cs = variant["contenders"]
    names = present(variant)
    short = {"ipybridge": "ipyb-comm", "ipybridge-direct": "ipyb-direct", "ipybridge-relay": "ipyb-relay"}
    ratios = [(a, b) for a, b in (("ipybridge", "floor"), ("ipybridge-direct", "floor")) if a in cs and b in cs]
    if "jchannel" in cs and "ipybridge-direct" in cs:
        ratios.append(("ipybridge-direct", "jchannel"))
    head = f"{'metric':34}" + "".join(f" {short.get(c, c):>11}" for c in names)
    head += "".join(f" {short.get(a, a) + '/' + b:>22}" for a, b in ratios)
    lines = [head, "-" * len(head)]
    for key, label, _ in metric_rows(sizes):
        if not any(key in cs[c] for c in names):
            continue
        row = f"{label:34}"
        for c in names:
            row += f" {cs[c][key]['median']:11.1f}" if key in cs[c] else f" {'-':>11}"
        for a, b in ratios:
            ok = key in cs[a] and key in cs[b]
            row += f" {cs[a][key]['median'] / cs[b][key]['median']:22.2f}" if ok else f" {'-':>22}"
        lines.append(row)
    return "\n".join(lines)


def check_targets(results: dict[str, Any], sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    """The issue's targets for the direct path, and the comm path against the floor."""
    variants = results["variants"]
    stock = variants["stock"]["contenders"]
    out = []

    def add(target: str, value: float, fmt: str, passed: bool) -> None:
        out.append({"target": target, "value": fmt.format(value), "pass": bool(passed)})

    for name, variant in variants.items():
        cs = variant["contenders"]
        if not all("latency_p50_ms" in cs.get(c, {}) for c in ("ipybridge-direct", "ipybridge", "floor")):
            continue  # --transfers-only, or --contenders without these
        d = cs["ipybridge-direct"]
        tag = f"[{name}] direct"
        if "jchannel" in cs:
            j = cs["jchannel"]["latency_p50_ms"]["median"]
            p50 = d["latency_p50_ms"]["median"]
            add(f"{tag} p50 <= jchannel p50 ({j:.2f} ms)", p50, "{:.2f} ms", p50 <= j)
        add(f"{tag} p99 <= 3 ms", d["latency_p99_ms"]["median"], "{:.2f} ms", d["latency_p99_ms"]["median"] <= 3)
        add(f"{tag} >= 20000 calls/s, 64 in flight", d["calls_per_s_64"]["median"], "{:.0f}/s",
            d["calls_per_s_64"]["median"] >= 20000)  # fmt: skip
        add(f"{tag} >= 1000 calls/s sequential", d["calls_per_s_1"]["median"], "{:.0f}/s",
            d["calls_per_s_1"]["median"] >= 1000)  # fmt: skip
        ratio = cs["ipybridge"]["latency_p50_ms"]["median"] / cs["floor"]["latency_p50_ms"]["median"]
        add(f"[{name}] comm p50 <= {TARGETS['latency_ratio_max']}x floor", ratio, "{:.2f}x",
            ratio <= TARGETS["latency_ratio_max"])  # fmt: skip
        if "isolated_mean_ms" in cs["ipybridge"]:
            ratio = cs["ipybridge"]["isolated_mean_ms"]["median"] / cs["floor"]["isolated_mean_ms"]["median"]
            add(f"[{name}] comm isolated call mean <= {TARGETS['isolated_ratio_max']}x floor", ratio, "{:.2f}x",
                ratio <= TARGETS["isolated_ratio_max"])  # fmt: skip
    for mb in sizes:
        for direction in ("up", "down"):
            key = f"mbps_{mb}mb_{direction}_binary"
            if key not in stock.get("floor", {}):
                continue
            if key in stock.get("ipybridge-direct", {}):
                r = stock["ipybridge-direct"][key]["median"] / stock["floor"][key]["median"]
                add(f"[stock] direct {mb} MB {direction} >= 3x floor", r, "{:.2f}x", r >= 3)
            if key in stock.get("ipybridge", {}):
                r = stock["ipybridge"][key]["median"] / stock["floor"][key]["median"]
                lo = TARGETS["binary_vs_floor_min"]
                add(f"[stock] comm {mb} MB {direction} >= {lo}x floor", r, "{:.2f}x", r >= lo)
    return out


COLORS = {
    "floor": "#888888",
    "invoke": "#e69f00",
    "jchannel": "#cc79a7",
    "ipybridge": "#56b4e9",
    "ipybridge-direct": "#0072b2",
    "ipybridge-relay": "#009e73",
}


def chart(results: dict[str, Any], sizes: tuple[int, ...], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    variants = results["variants"]
    label = {"ipybridge": "ipybridge (comm)", "ipybridge-direct": "ipybridge direct", "ipybridge-relay":
             "ipybridge direct, relay"}  # fmt: skip
    keys = [(mb, d, e) for mb in sizes for d in ("up", "down") for e in ("binary", "base64")]
    transfers = any(
        f"mbps_{mb}mb_{d}_{e}" in measured for mb, d, e in keys for measured in variants["stock"]["contenders"].values()
    )  # a --calls-only run has none: no empty panel for them
    fig, axes = plt.subplots(1, 3 if transfers else 2, figsize=(19 if transfers else 13, 5.6))

    def bars(ax: Any, groups: list[Any], value: Any, names: list[str]) -> None:
        width = 0.8 / len(names)
        x = np.arange(len(groups))
        for j, c in enumerate(names):
            vals = [value(c, g) for g in groups]
            ax.bar(x + (j - (len(names) - 1) / 2) * width, vals, width, label=label.get(c, c), color=COLORS[c])

    names = [c for c in CONTENDERS if any(c in v["contenders"] for v in variants.values())]

    def med(v: str, c: str, key: str) -> float:
        m = variants[v]["contenders"].get(c, {}).get(key)
        return float(m["median"]) if m else 0.0

    ax = axes[0]
    groups = [(v, p) for v in variants for p in ("p50", "p99")]
    bars(ax, groups, lambda c, g: med(g[0], c, f"latency_{g[1]}_ms"), names)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(groups)), [f"{p}\n{v}" for v, p in groups])
    ax.set_ylabel("ms (log, lower is better)")
    ax.set_title("tiny call round trip, sequential")
    handles, labels = ax.get_legend_handles_labels()  # one legend for the figure, below it: none covers a bar

    ax = axes[1]
    groups2 = [(v, k) for v in variants for k in INFLIGHT]
    bars(ax, groups2, lambda c, g: med(g[0], c, f"calls_per_s_{g[1]}"), names)
    ax.set_yscale("log")
    ax.axhline(20000, color="red", lw=0.8, ls="--", label="direct target, 64 in flight")
    ax.set_xticks(np.arange(len(groups2)), [f"{k} in flight\n{v}" for v, k in groups2], fontsize=8)
    ax.set_ylabel("calls/s (log, higher is better)")
    ax.set_title("throughput of tiny calls")

    if transfers:
        ax = axes[2]
        movers = [c for c in names if c != "jchannel" and c in variants["stock"]["contenders"]]
        bars(ax, keys, lambda c, k: med("stock", c, f"mbps_{k[0]}mb_{k[1]}_{k[2]}"), movers)
        ax.set_xticks(np.arange(len(keys)), [f"{mb}MB\n{d}\n{'bin' if e == 'binary' else 'b64'}" for mb, d, e in keys],
                      fontsize=8)  # fmt: skip
        ax.set_ylabel("MB/s (higher is better)")
        ax.set_title("float64 array transfer (stock server)")

    m = results["machine"]
    load = ""
    if m.get("loadavg_start") and m.get("loadavg_end"):
        load = f", load average {m['loadavg_start'][0]:.1f} -> {m['loadavg_end'][0]:.1f}"
    fig.suptitle(
        f"ipybridge RPC benchmark: JupyterLab {m['jupyterlab']}, ipykernel {m['ipykernel']}, "
        f"anywidget {m['anywidget']}, Chromium {m['chromium']}, {m['cpu_count']} CPUs{load}",
        fontsize=10,
    )
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
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
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--window", type=float, default=2.0, help="seconds per calls/s window")
    parser.add_argument(
        "--latency-calls",
        type=int,
        default=100,
        help="sequential calls per latency repeat (10x that for the contenders with a websocket of their own)",
    )
    parser.add_argument(
        "--isolated-calls",
        type=int,
        default=20,
        help=f"calls per repeat for the isolated-call row (one every {ISOLATED_GAP_MS} ms; 0: skip it)",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES_MB), help="array sizes in MB")
    parser.add_argument("--no-nodelay", action="store_true", help="skip the TCP_NODELAY server")
    parser.add_argument("--calls-only", action="store_true", help="latency and calls/s only, no array transfers")
    parser.add_argument(
        "--page-share",
        action="store_true",
        help="also split a sequential direct/jchannel call into the page's work and the socket + kernel",
    )
    parser.add_argument(
        "--page-profile",
        action="store_true",
        help="also record a CPU profile of the page during one throughput window (1 and 64 in flight) of each "
        "direct/jchannel contender and log the page's busy time per call and its biggest functions",
    )
    parser.add_argument(
        "--transfers-only", action="store_true", help="array transfers only (stock server), no latency or calls/s"
    )
    parser.add_argument(
        "--contenders", nargs="+", choices=CONTENDERS, help="measure only these (default: all that apply)"
    )
    parser.add_argument(
        "--jchannel-client",
        type=Path,
        help="a checkout of jupyter-jchannel-client (the tag matching the installed jupyter-jchannel): "
        "adds jupyter-jchannel as a contender; its page script is built from it with esbuild, as its CDN is "
        "not used. jupyter-jchannel is pip-installed into this Python if missing",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--replot", action="store_true", help="only redraw rpc.png from rpc.json")
    args = parser.parse_args()
    args.sizes = tuple(args.sizes)
    if args.replot:
        saved = json.loads((args.out / "rpc.json").read_text())
        chart(saved, tuple(saved["config"]["sizes_mb"]), args.out / "rpc.png")
        return 0
    started = time.monotonic()
    if args.jchannel_client:
        import importlib.util
        import subprocess

        if importlib.util.find_spec("jchannel") is None:
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "jupyter-jchannel"], check=True)
        args.jchannel_client = args.jchannel_client.resolve()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {msg}", flush=True)

    results: dict[str, Any] = {"variants": {}}
    with launched_chromium() as browser:
        results["machine"] = {
            "cpu_count": os.cpu_count(),
            "loadavg_start": os.getloadavg(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "chromium": browser.version,
            **{
                d: version(d)
                for d in (
                    "jupyterlab",
                    "jupyter_server",
                    "ipykernel",
                    "ipywidgets",
                    "anywidget",
                    "ipybridge",
                    "tornado",
                    "numpy",
                )
            },
        }
        variants = ["stock"] if args.no_nodelay or args.transfers_only else ["stock", "nodelay"]
        for variant in variants:
            log(f"server: {variant}")
            results["variants"][variant] = run_server(variant, browser, args, log)
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["config"] = {
        "repeats": args.repeats,
        "window_s": args.window,
        "latency_calls": args.latency_calls,
        "sizes_mb": list(args.sizes),
        "max_ws_message_bytes": MAX_WS_MESSAGE,
        "mb": "1e6 bytes",
    }
    results["targets"] = check_targets(results, args.sizes)
    results["elapsed_s"] = time.monotonic() - started

    m = results["machine"]
    print()
    print(
        f"Machine: {m['cpu_count']} CPUs, load {m['loadavg_start'][0]:.1f} -> {m['loadavg_end'][0]:.1f}, "
        f"Python {m['python']}, JupyterLab {m['jupyterlab']}, ipykernel {m['ipykernel']}, "
        f"anywidget {m['anywidget']}, Chromium {m['chromium']}"
    )
    print(f"Medians of {args.repeats} repeats; MB = 1e6 bytes; ratios are ipybridge / other (latency: lower is better)")
    for name, variant in results["variants"].items():
        title = {"stock": "stock server", "nodelay": "server with ipybridge.server (TCP_NODELAY on kernel websockets)"}
        print(f"\n== {title[name]} ==")
        relay = ", ipyb-relay: through ipybridge.server" if name == "nodelay" else ""
        print(f"ipyb-direct: the loopback route{relay}")
        print(table(variant, args.sizes))
    if "nodelay" in results["variants"]:
        print("\n== TCP_NODELAY effect (stock / nodelay, p50 latency) ==")
        for c in present(results["variants"]["stock"]):
            s = results["variants"]["stock"]["contenders"][c]["latency_p50_ms"]["median"]
            n = results["variants"]["nodelay"]["contenders"][c]["latency_p50_ms"]["median"]
            print(f"{c:10} {s:7.1f} ms -> {n:6.1f} ms  ({s / n:.1f}x faster)")
    print("\n== targets ==")
    for t in results["targets"]:
        print(f"{'PASS' if t['pass'] else 'FAIL'}  {t['target']:40} {t['value']}")

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rpc.json").write_text(json.dumps(results, indent=2))
    chart(results, args.sizes, args.out / "rpc.png")
    print(f"\nwrote {args.out / 'rpc.json'} and {args.out / 'rpc.png'} in {results['elapsed_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
