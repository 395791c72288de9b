"""The page's own time per call in headless Chromium, without a kernel (``benchmarks/bench_page.mjs``).

Bundles bench_page.mjs (with js/protocol.js and js/direct.js, as they are in the working tree) with the
project's esbuild, runs it in a blank Chromium page and prints microseconds per call with 1 and 64 calls in
flight, and the page's main-thread CPU time per call (CDP Performance metrics in thread ticks: steadier than
wall-clock time on a busy machine). A fake WebSocket plays the kernel (its own small share is in the CPU
time), so the figures are the page's JavaScript (V8 and Blink's TextEncoder, JSON, promises, GC) without the
real socket's send and message event. Compare two trees by running each a few times, one after the other.

    .venv/bin/python benchmarks/bench_page.py [--calls 100000] [--runs 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.harness import launched_chromium  # noqa: E402


def bundle(out: Path) -> str:
    esbuild = ROOT / "node_modules" / ".bin" / "esbuild"
    subprocess.run(
        [str(esbuild), str(HERE / "bench_page.mjs"), "--bundle", "--format=iife", "--global-name=__benchPage",
         "--platform=browser", f"--outfile={out}", "--log-level=warning"],
        check=True,
    )  # fmt: skip
    return out.read_text()


def task_seconds(cdp: Any) -> float:
    """The page's main-thread task time so far (seconds; CPU time once Performance is enabled in threadTicks)."""
    metrics = cdp.send("Performance.getMetrics")["metrics"]
    return float(next(m["value"] for m in metrics if m["name"] == "TaskDuration"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (the median is shown)")
    parser.add_argument("--repeats", type=int, default=1, help="fresh pages, one after the other")
    parser.add_argument("--inflight", type=int, nargs="+", default=[1, 64])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        script = bundle(Path(tmp) / "bench_page.js")
    with launched_chromium() as browser:
        print(f"Chromium {browser.version}")
        for _ in range(args.repeats):
            page = browser.new_page()
            page.set_default_timeout(600_000)
            page.goto("about:blank")
            page.add_script_tag(content=script)
            cdp = page.context.new_cdp_session(page)
            # Task durations in thread ticks: the main thread's CPU time, which a busy machine moves far less
            # than the wall-clock time.
            cdp.send("Performance.enable", {"timeDomain": "threadTicks"})
            page.evaluate("() => __benchPage.prepare()")
            results = []
            for k in args.inflight:
                rows = []
                for _ in range(args.runs):
                    before = task_seconds(cdp)
                    row = page.evaluate("([k, n]) => __benchPage.runOnce(k, n)", [k, args.calls])
                    row["cpuUs"] = (task_seconds(cdp) - before) * 1e6 / args.calls
                    rows.append(row)
                results.append(page.evaluate("([k, rows]) => __benchPage.medians(k, rows)", [k, rows]))
            lines = page.evaluate(
                "([r, runs, calls]) => __benchPage.describe(r, runs, calls)", [results, args.runs, args.calls]
            )
            print("\n".join(lines))
            cdp.detach()
            page.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
