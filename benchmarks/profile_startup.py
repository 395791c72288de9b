"""Where the time from Run to a Player's first frame goes: a timeline, kernel and page on one clock.

A diagnostic companion to ``bench_player.py --only startup`` (not a competitor comparison). It runs
``ipybridge.Player(reference(n))`` cells in a real JupyterLab + headless Chromium (as the benchmark
does, Shift+Enter on the cell) and records, in epoch ms:

* in the page: the Shift+Enter keydown, every kernel websocket message sent and received (with the
  kernel's own send time from the message header's ``date``), the direct websocket's messages, the
  output appearing, the Player's element appearing (its ``render()``), and the first frame painted
  (the canvas's ``data-frame``);
* in the kernel (wrappers installed by the setup cell): the cell starting, the animation made, the
  Player's construction (the frame source, the comm opened), the poster drawn and encoded, the
  output's bundle made.

    .venv/bin/python benchmarks/profile_startup.py [--repeats 4] [--frames 100 10000] [--comm]

Prints one timeline per sample (ms after the keydown) and the median of each step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_player import DEFINITIONS, run_and_read  # noqa: E402
from tests.e2e.harness import WAIT_MS, NotebookPage, launched_chromium, start_server, stop_server, write_notebook  # noqa: E402

#: Installed before the page's own scripts: records kernel websocket traffic with the kernel's send times.
PAGE_HOOKS = (HERE / "profile_startup_hooks.js").read_text()

WATCH_JS = """(nth) => {
  const now = () => performance.timeOrigin + performance.now();
  const log = window.__tl;
  log.length = 0;
  let player = false, output = false;
  const check = () => {
    const cells = document.querySelectorAll(".jp-Notebook .jp-Cell");
    const players = document.querySelectorAll(".ipybridge-player");
    if (!player && players.length > nth) { player = true; log.push({ t: now(), ev: "player_element" }); }
    const canvas = document.querySelectorAll(".ipybridge-player canvas")[nth];
    if (canvas && canvas.dataset.frame === "0") {
      log.push({ t: now(), ev: "painted" });
      obs.disconnect();
      requestAnimationFrame(() => log.push({ t: now(), ev: "next_refresh" }));
    }
  };
  const obs = new MutationObserver(check);
  obs.observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-frame"] });
}"""

KERNEL_HOOKS = textwrap.dedent(
    """
    import time as _time, functools as _ft
    from IPython import get_ipython as _gi
    import ipywidgets as _ipw
    import ipybridge.player.widget as _pw, ipybridge.player.sources as _ps, ipybridge.player.codecs as _pc
    _TL = []
    def _mark(ev):
        _TL.append((_time.time() * 1000, ev))
    def _wrap(owner, name, label):
        orig = getattr(owner, name)
        @_ft.wraps(orig)
        def wrapped(*a, **k):
            _mark(label + " start")
            try:
                return orig(*a, **k)
            finally:
                _mark(label + " end")
        setattr(owner, name, wrapped)
    _wrap(_pw.Player, "__init__", "Player()")
    _wrap(_pw.Player, "_repr_mimebundle_", "bundle")
    _wrap(_ps.AnimationSource, "__init__", "source")
    _wrap(_ps.AnimationSource, "render", "render")
    _wrap(_pc, "encode", "encode")
    _wrap(_pc, "fast_png", "png")
    _wrap(_ipw.Widget, "open", "comm_open")
    _wrap(_pw, "FigureSource", "FigureSource")
    def _pre(info):
        if "Player(" in info.raw_cell:
            _TL.clear(); _mark("cell start")
    _gi().events.register("pre_run_cell", _pre)
    _gi().events.register("post_run_cell", lambda r: "Player(" in r.info.raw_cell and _mark("cell end"))
    """
)


TRACE_CATEGORIES = [
    "devtools.timeline", "v8", "v8.execute", "blink", "loading", "toplevel", "disabled-by-default-devtools.timeline"
]  # fmt: skip


def iso_ms(date: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(date.replace("Z", "+00:00")).timestamp() * 1000


def timeline(page_log: list[dict[str, Any]], kernel_log: list[list[Any]]) -> list[tuple[float, str, str]]:
    """Events (ms after the keydown, where, what), in time order."""
    rows: list[tuple[float, str, str]] = []
    for e in page_log:
        ev = e["ev"]
        if ev in ("ws_in", "ws_out"):
            what = f"{e.get('type')} {e.get('comm') or ''} ({e.get('bytes')} B)".strip()
            if ev == "ws_in" and e.get("date"):
                rows.append((iso_ms(e["date"]), "kernel", f"sent {what}"))
            if e.get("type") in ("status", "execute_input") and ev == "ws_in":
                what = f"{e.get('type')}"
            rows.append((e["t"], "page", f"{'got' if ev == 'ws_in' else 'sent'} {what}"))
        else:
            rows.append((e["t"], "page", f"{ev} {e.get('bytes', '')}".strip()))
    rows += [(t, "kernel", ev) for t, ev in kernel_log]
    rows.sort()
    start = next(t for t, _, ev in rows if ev == "keydown")
    return [(t - start, where, ev) for t, where, ev in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 10000])
    parser.add_argument("--comm", action="store_true", help="IPYBRIDGE_DIRECT=0 in the kernel")
    parser.add_argument("--quiet", action="store_true", help="only the medians")
    parser.add_argument("--trace", type=Path, help="write a Chromium trace of the last sample here")
    args = parser.parse_args()
    if args.comm:
        os.environ["IPYBRIDGE_DIRECT"] = "0"
    cells = [DEFINITIONS + "import ipybridge\n" + KERNEL_HOOKS + "print('ready')"]
    order = []
    for _ in range(args.repeats + 1):
        for n in args.frames:
            order.append((n, len(cells)))
            cells.append(f"ipybridge.Player(reference({n}))")
    cells.append("print(json.dumps(_TL))")
    steps: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "jupyter")
        try:
            with launched_chromium() as browser:
                path = server.root / f"profile-startup-{uuid.uuid4().hex[:8]}.ipynb"
                write_notebook(path, cells)
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                context.add_init_script(PAGE_HOOKS)
                page = context.new_page()
                page.set_default_timeout(WAIT_MS)
                nb = NotebookPage(page, server, "lab", path).open()
                assert run_and_read(nb, 0) == "ready"
                for k, (n, cell) in enumerate(order):
                    page.evaluate(WATCH_JS, k)
                    tracing = args.trace is not None and k == len(order) - 1
                    if tracing:
                        browser.start_tracing(page=page, categories=TRACE_CATEGORIES)
                    nb.run_cell(cell)
                    page.wait_for_function("() => window.__tl.some((e) => e.ev === 'next_refresh')")
                    if tracing:
                        args.trace.write_bytes(browser.stop_tracing())
                    nb.wait_cell_done(cell)
                    page_log = page.evaluate("window.__tl.slice()")
                    kernel_log = json.loads(run_and_read(nb, len(cells) - 1))
                    page.wait_for_timeout(1500)  # the next sample starts settled (the Player's neighbour frames drawn)
                    rows = timeline(page_log, kernel_log)
                    warm = k >= len(args.frames)
                    if not args.quiet:
                        print(f"\n--- {n} frames{'' if warm else ' (cold: loads the ES module)'}")
                        for t, where, ev in rows:
                            if "status" in ev and where == "kernel":
                                continue
                            print(f"  {t:8.1f}  {where:6}  {ev}")
                    if warm:
                        for t, _, ev in rows:
                            steps.setdefault(f"{n} {ev}", []).append(t)
                context.close()
        finally:
            stop_server(server)
    print("\nmedian ms after the keydown (warm samples):")
    for key, values in sorted(steps.items(), key=lambda kv: (int(kv[0].split()[0]), statistics.median(kv[1]))):
        if len(values) == args.repeats:
            print(f"  {statistics.median(values):8.1f}  {key}")


if __name__ == "__main__":
    main()
