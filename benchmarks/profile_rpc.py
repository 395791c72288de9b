"""Kernel-side cost of a call on the direct path, without a browser or a Jupyter server.

A child process hosts ipybridge's direct endpoint and one Bridge core (a fake
comm stands in for the page's control channel); this process is the page: a
tornado websocket client that sends tiny ``echo`` calls sequentially and with
N in flight (batched per message, as the page batches per microtask), and
reports round-trip p50/p99 and calls/s. The client runs in its own process so
it does not share the kernel's GIL.

    .venv/bin/python benchmarks/profile_rpc.py [--seconds 2] [--inflight 1 8 64] [--py-spy out.svg]

``--py-spy`` records the server process with py-spy (pip install py-spy) while
the 64-in-flight loop runs, as a flame graph.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

SERVER = r"""
import json, sys, threading, time
import numpy as np
from ipybridge._core import BridgeCore
from ipybridge._direct import DirectEndpoint, DirectRoutes

sent = []
def comm_send(content, buffers):
    sent.append(content)

endpoint = DirectEndpoint()
core = BridgeCore(comm_send)
routes = DirectRoutes(core, endpoint, "w1", ["loopback"])
core.direct = routes
core.outbox.route = routes.split
core.receive({"ipb": 1, "msgs": [{"type": "hello", "view": "v1"}]}, [])
core.expose(lambda x: x, "echo")
core.expose(lambda a: int(a.size), "sink")
core.expose(lambda n: np.random.default_rng(0).random(n), "source")
core.message_limit = lambda: 256 << 20
import gc
gc_before = [g["collections"] for g in gc.get_stats()]
print(json.dumps({"port": endpoint.port, "secret": endpoint.secret}), flush=True)
sys.stdin.readline()
print(json.dumps([g["collections"] - b for g, b in zip(gc.get_stats(), gc_before)]), flush=True)
sys.stdin.read()
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far: a figure that load on the machine hardly skews."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def client(
    port: int, secret: str, seconds: float, inflight: list[int], mb: int, server_pid: int, isolated: int = 0
) -> dict[str, Any]:
    import tornado.websocket

    sys.path.insert(0, str(ROOT / "src"))
    from ipybridge._direct import pack, unpack

    ws = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{port}/ipybridge/direct", max_message_size=64 << 20)
    await ws.read_message()  # nonce
    await ws.write_message(json.dumps({"ipb": 1, "token": secret, "widget": "w1", "view": "v1"}))
    await ws.read_message()  # ready
    next_id = 1
    tiny = {"a": 1, "b": "x"}

    async def batch(k: int) -> None:
        nonlocal next_id
        msgs = []
        for _ in range(k):
            msgs.append({"type": "call", "view": "v1", "id": next_id, "name": "echo", "args": [tiny], "kwargs": {}})
            next_id += 1
        await ws.write_message(pack({"ipb": 1, "msgs": msgs}, []), binary=True)
        got = 0
        while got < k:
            content, _ = unpack(await ws.read_message())
            got += sum(1 for m in content["msgs"] if m.get("type") == "result")

    for _ in range(200):
        await batch(1)
    out: dict[str, Any] = {}
    times = []
    cpu = cpu_seconds(server_pid)
    for _ in range(500):
        t = time.perf_counter()
        await batch(1)
        times.append((time.perf_counter() - t) * 1000)
    out["p50_ms"] = percentile(times, 0.5)
    out["p99_ms"] = percentile(times, 0.99)
    out["kernel_cpu_us_per_call_1"] = (cpu_seconds(server_pid) - cpu) / 500 * 1e6
    if isolated:
        # One call after each 100 ms pause, as clicks make them (bench_rpc's "isolated" row, without a browser):
        # what the kernel's threads cost after sitting idle.
        times = []
        for _ in range(isolated):
            await asyncio.sleep(0.1)
            t = time.perf_counter()
            await batch(1)
            times.append((time.perf_counter() - t) * 1000)
        out["isolated_p50_ms"] = percentile(times, 0.5)
        out["isolated_p99_ms"] = percentile(times, 0.99)
    for k in inflight:
        # k calls in flight: each answer message lets the page send the calls it unblocked (one message).
        t0 = time.perf_counter()
        cpu = cpu_seconds(server_pid)
        done = 0
        while time.perf_counter() - t0 < seconds:
            await batch(k)
            done += k
        out[f"calls_per_s_{k}"] = done / (time.perf_counter() - t0)
        out[f"kernel_cpu_us_per_call_{k}"] = (cpu_seconds(server_pid) - cpu) / done * 1e6
    if mb:
        import numpy as np

        array = np.random.default_rng(0).random(mb * 1_000_000 // 8)
        for _ in range(3):
            t = time.perf_counter()
            await upload(ws, array, next_id)
            next_id += 2
            out.setdefault("up_mbps", []).append(round(mb / (time.perf_counter() - t), 1))
            t = time.perf_counter()
            msgs = [{"type": "call", "view": "v1", "id": next_id, "name": "source", "args": [array.size], "kwargs": {}}]
            next_id += 1
            await ws.write_message(pack({"ipb": 1, "msgs": msgs}, []), binary=True)
            content, _ = unpack(await ws.read_message())
            assert content["msgs"][0]["type"] == "result", content
            out.setdefault("down_mbps", []).append(round(mb / (time.perf_counter() - t), 1))
    ws.close()
    return out


async def upload(ws: Any, array: Any, ident: int) -> None:
    """A ``sink(array)`` call split into 8 MiB parts, as the page sends it (js/protocol.js, splitIntoParts)."""
    from ipybridge._direct import pack, unpack

    value = {"$ipb": "ndarray", "dtype": "float64", "shape": [array.size], "i": 0}
    msgs = [{"type": "call", "view": "v1", "id": ident, "name": "sink", "args": [value], "kwargs": {}}]
    head = json.dumps({"ipb": 1, "msgs": msgs}).encode()
    data = head + array.tobytes()
    part = 8 << 20
    count = -(-len(data) // part)
    for seq in range(count):
        item = {"type": "part", "view": "v1", "id": ident + 1, "seq": seq, "count": count}
        if seq == 0:
            item.update(sizes=[len(head), array.nbytes], ids=[ident])
        chunk = data[seq * part : (seq + 1) * part]
        await ws.write_message(pack({"ipb": 1, "msgs": [item]}, [chunk]), binary=True)
    content, _ = unpack(await ws.read_message())
    assert content["msgs"][0] == {"type": "result", "view": "v1", "id": ident, "value": array.size}, content


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--inflight", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--mb", type=int, default=0, help="also move an array of this many MB each way")
    parser.add_argument("--isolated", type=int, default=0, help="also N calls one every 100 ms (p50/p99)")
    parser.add_argument(
        "--py-spy",
        type=Path,
        help="record the server with py-spy into this file (.txt: collapsed stacks, else an SVG flame graph)",
    )
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        info = json.loads(server.stdout.readline())
        spy = None
        if args.py_spy:
            spy = subprocess.Popen(
                ["py-spy", "record", "-o", str(args.py_spy), "-p", str(server.pid), "-r", "500", "--threads",
                 "-d", str(int(args.seconds * len(args.inflight) + 4)),
                 "--format", "raw" if args.py_spy.suffix == ".txt" else "flamegraph"],
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1)
        result = asyncio.run(
            client(info["port"], info["secret"], args.seconds, args.inflight, args.mb, server.pid, args.isolated)
        )
        if spy is not None:
            spy.wait()
        # Collections the kernel's garbage collector made meanwhile, by generation: a full one (the last)
        # pauses the whole kernel for as long as it takes to walk every object in it.
        assert server.stdin is not None
        server.stdin.write("\n")
        server.stdin.flush()
        result["kernel_gc_collections"] = json.loads(server.stdout.readline())
    finally:
        server.kill()
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
