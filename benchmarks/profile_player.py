"""Where a Player frame's CPU goes: kernel, Jupyter server, Chromium, per painted frame.

A diagnostic companion to bench_player.py (not a competitor comparison): it plays
one animation unthrottled (or at --fps) in a real JupyterLab + headless Chromium
and samples the CPU time of each process over a window, so an optimisation can
be judged by the CPU it saves per frame, which is what bounds the frame rate on
a 2-core machine, rather than by noisy absolute fps.

    .venv/bin/python benchmarks/profile_player.py [--scenario reference|blit] [--fps 0] [--window 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_player import COUNT_JS, DEFINITIONS, run_and_read  # noqa: E402
from tests.e2e.harness import Jupyter, launched_chromium, start_server, stop_server  # noqa: E402


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for proc in processes:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def print_profile(profile: dict[str, Any], frames: float, top: int = 25) -> None:
    """Self time per function (ms per painted frame) from a CDP CPU profile."""
    nodes = {n["id"]: n for n in profile["nodes"]}
    deltas = profile["timeDeltas"]
    self_us: dict[str, float] = {}
    for sample, delta in zip(profile["samples"], deltas, strict=False):
        frame = nodes[sample]["callFrame"]
        url = frame["url"].rsplit("/", 1)[-1][:40]
        key = f"{frame['functionName'] or '(anonymous)'} {url}:{frame['lineNumber']}"
        self_us[key] = self_us.get(key, 0.0) + delta
    total = sum(self_us.values())
    print(f"  renderer JS profile: {total / 1000 / max(frames, 1):.2f} ms/frame sampled")
    for key, value in sorted(self_us.items(), key=lambda kv: -kv[1])[:top]:
        print(f"    {value / 1000 / max(frames, 1):6.3f} ms/frame  {key}")


def print_stacks(raw: str, frames: float, top: int = 30) -> None:
    """py-spy raw output: samples per thread, then per leaf function, per frame painted."""
    threads: dict[str, int] = {}
    leaves: dict[str, int] = {}
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        parts = stack.split(";")
        threads[parts[0]] = threads.get(parts[0], 0) + count
        leaf = f"{parts[0][:24]} | {parts[-1]}"
        leaves[leaf] = leaves.get(leaf, 0) + count
    per = 5.0 / max(frames, 1)  # 200 samples/s: one sample = 5 ms
    print("  kernel threads holding the GIL (ms/frame):")
    for name, count in sorted(threads.items(), key=lambda kv: -kv[1]):
        print(f"    {count * per:7.2f}  {name}")
    print("  kernel leaf functions (ms/frame):")
    for name, count in sorted(leaves.items(), key=lambda kv: -kv[1])[:top]:
        print(f"    {count * per:7.2f}  {name}")


TRACE_CATEGORIES = ["devtools.timeline", "disabled-by-default-devtools.timeline", "blink", "cc", "gpu", "v8"]


def print_trace(trace: dict[str, Any], frames: float, top: int = 12) -> None:
    """Total duration of complete trace events by thread and name (nested events overlap)."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    totals: dict[str, dict[str, float]] = {}
    for e in events:
        if e.get("ph") == "X" and "dur" in e:
            thread = names.get((e["pid"], e["tid"]), str(e["tid"]))
            per = totals.setdefault(f"{e['pid']}:{thread}", {})
            per[e["name"]] = per.get(e["name"], 0.0) + e["dur"]
    for thread, per in sorted(totals.items(), key=lambda kv: -max(kv[1].values())):
        ranked = sorted(per.items(), key=lambda kv: -kv[1])[:top]
        if ranked[0][1] / 1000 / max(frames, 1) < 0.2:
            continue
        print(f"  trace {thread}: " + ", ".join(f"{n} {v / 1000 / max(frames, 1):.2f}" for n, v in ranked))


def chromium_kind(proc: psutil.Process) -> str:
    try:
        return next((a[7:] for a in proc.cmdline() if a.startswith("--type=")), "browser")
    except psutil.NoSuchProcess:
        return "gone"


class Window:
    """CPU seconds per process group and websocket messages over one counting window."""

    def __init__(self, groups: dict[str, list[psutil.Process]], chromium: list[psutil.Process]) -> None:
        self.groups = groups
        self.chromium = chromium

    def snapshot(self) -> dict[str, float]:
        out = {key: cpu_seconds(procs) for key, procs in self.groups.items()}
        for proc in self.chromium:
            kind = f"chromium {chromium_kind(proc)}"
            out[kind] = out.get(kind, 0.0) + cpu_seconds([proc])
        return out

    @staticmethod
    def per_frame(before: dict[str, float], after: dict[str, float], frames: float) -> dict[str, float]:
        return {key: 1000 * (after[key] - before.get(key, 0.0)) / max(frames, 1) for key in after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="reference")
    parser.add_argument("--fps", type=float, default=0)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--codec", default="auto")
    parser.add_argument("--js-profile", action="store_true", help="also print the renderer's top JS self times")
    parser.add_argument("--trace", action="store_true", help="also print Chromium trace event totals per thread")
    parser.add_argument("--py-spy", default="", help="path of a py-spy binary: also sample the kernel's Python stacks")
    parser.add_argument(
        "--ab", nargs="*", default=[], metavar="CODE",
        help="kernel code of each variant (e.g. 'widget.ENCODE_IN_PARALLEL = False'), measured in turn",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--array-frames", type=int, default=0,
        help="play a zarr stack of this many 512 x 512 float32 frames (bench_arrays' data) instead of a scenario",
    )  # fmt: skip
    args = parser.parse_args()
    setup = DEFINITIONS + textwrap.dedent(
        """
        import os, ipybridge
        from ipybridge.player import widget
        print(os.getpid())
        """
    )
    player = (
        f'p = ipybridge.Player(SCENARIOS["{args.scenario}"](100000), fps={args.fps}, codec="{args.codec}", '
        "cache_mb=64)\np"
    )
    if args.array_frames:
        player = (
            f'import zarr\np = ipybridge.Player(zarr.open(ARRAY, mode="r"), cmap="inferno", fps={args.fps}, '
            "cache_mb=64)\np"
        )
    variants = args.ab or ["pass"]
    cells = [setup, player, "p.pause(); print(json.dumps(p.stats))", *[f"{code}\nprint('ok')" for code in variants]]
    with tempfile.TemporaryDirectory() as tmp:
        if args.array_frames:
            from bench_arrays import write_stack

            write_stack(Path(tmp) / "stack.zarr", args.array_frames)
            cells[0] += f"\nARRAY = {str(Path(tmp) / 'stack.zarr')!r}\n"
        server = start_server(Path(tmp) / "jupyter")
        try:
            with launched_chromium() as browser:
                jupyter = Jupyter(server, browser, HERE / "results" / "artifacts")
                nb = jupyter.open("lab", cells, name="profile")
                kernel_pid = int(run_and_read(nb, 0))
                nb.run_cell(1)
                output = nb.output(1)
                output.locator(".ipybridge-player canvas[data-frame='0']").wait_for()
                chromium = [p for p in psutil.Process().children(recursive=True) if "chrom" in p.name().lower()]
                driver = [p for p in psutil.Process().children(recursive=True) if p.name().startswith("node")]
                groups = {
                    "kernel": [psutil.Process(kernel_pid)],
                    "server": [psutil.Process(server.process.pid)],
                    "chromium": chromium,
                    "playwright driver": driver,  # the harness's own cost (CDP events for every websocket frame)
                }
                window = Window(groups, chromium)
                ws_frames = {"received": 0, "sent": 0}
                net = nb.page.context.new_cdp_session(nb.page)

                def count(kind: str) -> None:
                    ws_frames[kind] += 1

                net.on("Network.webSocketFrameReceived", lambda _e: count("received"))
                net.on("Network.webSocketFrameSent", lambda _e: count("sent"))
                output.get_by_role("button", name="Play", exact=True).click()
                results: dict[str, list[dict[str, float]]] = {code: [] for code in variants}
                for repeat in range(args.repeats if args.ab else 1):
                    for k, code in enumerate(variants):
                        if args.ab:
                            assert run_and_read(nb, 3 + k) == "ok"
                        nb.page.wait_for_timeout(2000)  # warm-up before the measured window
                        extras = start_extras(args, nb, browser, kernel_pid, Path(tmp)) if repeat == 0 else None
                        ws_frames.update(received=0, sent=0)
                        net.send("Network.enable")
                        before = window.snapshot()
                        start = time.monotonic()
                        fps = nb.page.evaluate(COUNT_JS, [".ipybridge-player canvas", 0, int(args.window * 1000)])
                        elapsed = time.monotonic() - start
                        after = window.snapshot()
                        net.send("Network.disable")
                        frames = fps * elapsed
                        row = {"fps": fps, **Window.per_frame(before, after, frames)}
                        row["ws in"] = ws_frames["received"] / max(frames, 1)
                        row["ws out"] = ws_frames["sent"] / max(frames, 1)
                        results[code].append(row)
                        print(f"[{repeat}] {code!r}: " + ", ".join(f"{key} {value:.2f}" for key, value in row.items()))
                        if extras is not None:
                            stop_extras(extras, args, browser, frames)
                print(f"\n{args.scenario} fps={args.fps} codec={args.codec}: medians over {len(results[variants[0]])} "
                      "windows (fps painted; CPU ms and websocket messages per painted frame)")  # fmt: skip
                for code, rows in results.items():
                    medians = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
                    print(f"  {code!r}")
                    print("    " + ", ".join(f"{key} {value:.2f}" for key, value in medians.items()))
                stats = json.loads(run_and_read(nb, 2))
                print("  kernel stats:", json.dumps({k: round(v, 2) if isinstance(v, float) else v
                                                      for k, v in stats.items()}))  # fmt: skip
                jupyter.close(None)
        finally:
            stop_server(server)


def start_extras(args: argparse.Namespace, nb: Any, browser: Any, kernel_pid: int, tmp: Path) -> dict[str, Any]:
    """Start the optional profilers for the first window."""
    extras: dict[str, Any] = {}
    if args.js_profile:
        cdp = nb.page.context.new_cdp_session(nb.page)
        cdp.send("Profiler.enable")
        cdp.send("Profiler.setSamplingInterval", {"interval": 200})
        cdp.send("Profiler.start")
        extras["cdp"] = cdp
    if args.trace:
        browser.start_tracing(page=nb.page, categories=TRACE_CATEGORIES)
    if args.py_spy:
        extras["spy_out"] = tmp / "kernel.txt"
        extras["spy"] = subprocess.Popen(
            [args.py_spy, "record", "-p", str(kernel_pid), "-d", str(int(args.window)), "-r", "200",
             "--threads", "--gil", "--format", "raw", "-o", str(extras["spy_out"]), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    return extras


def stop_extras(extras: dict[str, Any], args: argparse.Namespace, browser: Any, frames: float) -> None:
    if "spy" in extras:
        extras["spy"].wait(60)
        print_stacks(extras["spy_out"].read_text(), frames)
    if args.trace:
        print_trace(json.loads(browser.stop_tracing()), frames)
    if "cdp" in extras:
        print_profile(extras["cdp"].send("Profiler.stop")["profile"], frames)


if __name__ == "__main__":
    main()
