"""Every printed line reaches its owner, exactly once, in order: random schedules in a real kernel.

No browser: a real ipykernel (jupyter_client's KernelManager) runs cells sent
on its shell channel, while this test plays the page of a real
``ipybridge.Bridge``: it sends the widget's comm messages as JupyterLab does
(``comm_msg`` on a kernel subshell, or on the main shell, which ipybridge
routes to a subshell of its own) and reads the answers on IOPub.

Owners: each cell (sync or async, printing to stdout and stderr, display(),
logging, warnings, and a thread the cell starts and joins) and each exposed
call (``def`` on the worker, ``async def`` on the loop, several at once).
Every line carries ``@@owner/seq@@``. After a random schedule, each line must
have arrived exactly once, at its owner (the cell's IOPub messages, or the
call's ``output`` items), in the owner's order, and nowhere else.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client import BlockingKernelClient, KernelManager

SEEDS = [int(s) for s in os.environ.get("IPYBRIDGE_INTERLEAVE_SEEDS", "1,2").split(",")]
TAG = re.compile(r"@@([a-z0-9]+)/(\d+)@@")
VIEW = "test-view"

SETUP = r"""
import asyncio, logging, sys, threading, time, warnings
from IPython.display import display
import ipybridge

warnings.simplefilter("always")
log = logging.getLogger("interleave")
log.propagate = False
_handler = logging.StreamHandler(sys.stderr)
_handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
log.addHandler(_handler)

def line(owner, seq, kind):
    tag = f"@@{owner}/{seq}@@"
    if kind == "out":
        print("line", tag)
    elif kind == "err":
        print("line", tag, file=sys.stderr)
    elif kind == "display":
        display({"text/plain": tag}, raw=True)
    elif kind == "log":
        log.warning(tag)
    elif kind == "warn":
        warnings.warn(tag)

def run_ops(owner, ops):
    for seq, (kind, pause) in enumerate(ops):
        line(owner, seq, kind)
        time.sleep(pause)

async def run_ops_async(owner, ops):
    for seq, (kind, pause) in enumerate(ops):
        line(owner, seq, kind)
        await asyncio.sleep(pause)

b = ipybridge.Bridge()

@b.expose
def sync_printer(owner, ops):
    run_ops(owner, ops)
    return owner

@b.expose
async def async_printer(owner, ops):
    await run_ops_async(owner, ops)
    return owner
"""

KINDS = ["out", "out", "out", "err", "display", "log", "warn"]
CELL_CHANNEL = {"out": "stdout", "err": "stderr", "log": "stderr", "warn": "stderr", "display": "display"}
CALL_CHANNEL = {"out": "stdout", "err": "stderr", "log": "stderr", "warn": "stderr", "display": "stdout"}


class Page:
    """The test's side of one kernel: sends cells and comm messages, records all of IOPub."""

    def __init__(self, kc: BlockingKernelClient) -> None:
        self.kc = kc
        self.iopub: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        self.stopped = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.comm_id = ""
        self.subshell = ""
        self.next_id = 1
        self.since = 0  # this test's first IOPub message

    def _read(self) -> None:
        while not self.stopped:
            try:
                msg = self.kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                continue
            with self.cond:
                self.iopub.append(msg)
                self.cond.notify_all()

    def wait(self, predicate: Any, timeout: float, what: str) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: predicate(self.iopub), timeout):
                raise AssertionError(f"{what}: not within {timeout} s")

    def execute(self, code: str) -> str:
        return str(self.kc.execute(code, store_history=False))

    def wait_idle(self, msg_id: str, timeout: float = 30) -> None:
        def idle(msgs: list[dict[str, Any]]) -> bool:
            return any(
                m["msg_type"] == "status"
                and m["parent_header"].get("msg_id") == msg_id
                and m["content"]["execution_state"] == "idle"
                for m in msgs
            )

        self.wait(idle, timeout, f"cell {msg_id} finishing")
        errors = [
            m["content"] for m in self.iopub if m["msg_type"] == "error" and m["parent_header"].get("msg_id") == msg_id
        ]
        assert not errors, errors

    def send_items(self, items: list[dict[str, Any]], on_subshell: bool) -> None:
        content = {"comm_id": self.comm_id, "data": {"method": "custom", "content": {"ipb": 1, "msgs": items}}}
        msg = self.kc.session.msg("comm_msg", content)
        if on_subshell:
            msg["header"]["subshell_id"] = self.subshell
        self.kc.shell_channel.send(msg)

    def call(self, name: str, args: list[Any]) -> dict[str, Any]:
        item = {"type": "call", "view": VIEW, "id": self.next_id, "name": name, "args": args, "kwargs": {}}
        self.next_id += 1
        return item

    def page_items(self) -> list[dict[str, Any]]:
        """Everything the widget sent, in order."""
        with self.cond:
            msgs = self.iopub[self.since :]
        out = []
        for m in msgs:
            if m["msg_type"] == "comm_msg" and m["content"].get("comm_id") == self.comm_id:
                data = m["content"]["data"]
                if data.get("method") == "custom":
                    out.extend(data["content"]["msgs"])
        return out


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    with _open_page() as opened:
        yield opened


@contextlib.contextmanager
def _open_page() -> Iterator[Page]:
    """A real kernel running SETUP, its Bridge's comm found, a subshell created, the view welcomed."""
    km = KernelManager(kernel_name="python3")
    km.start_kernel(env={**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"})
    kc = km.blocking_client()
    kc.start_channels()
    try:
        # wait_for_ready reads IOPub itself: the page's reader thread starts after it (two threads receiving
        # on one zmq socket corrupt its messages: "Invalid Signature", "<IDS|MSG> is not in list").
        kc.wait_for_ready(timeout=60)
    except BaseException:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        raise
    page = Page(kc)
    try:
        msg_id = page.execute(SETUP)
        reply = kc.get_shell_msg(timeout=60)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kc.get_shell_msg(timeout=60)
        assert reply["content"]["status"] == "ok", reply["content"]
        page.wait_idle(msg_id)
        page.comm_id = _widget_comm_id(page)
        kc.control_channel.send(kc.session.msg("create_subshell_request", {}))
        page.subshell = kc.get_control_msg(timeout=10)["content"]["subshell_id"]
        page.send_items([{"type": "hello", "view": VIEW}], on_subshell=True)
        page.wait(lambda _m: any(i["type"] == "welcome" for i in page.page_items()), 10, "welcome")
        yield page
    finally:
        page.stopped = True
        page.reader.join(5)  # it polls every 0.2 s; then the channels can close under nobody
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _widget_comm_id(page: Page) -> str:
    for m in page.iopub:
        if m["msg_type"] == "comm_open":
            state = m["content"]["data"].get("state", {})
            if state.get("_esm") is not None or "bridge" in str(state.get("_model_name", "")).lower() or "js" in state:
                return str(m["content"]["comm_id"])
    raise AssertionError("the Bridge's comm_open was not seen")


def _ops(rng: random.Random, n: int, max_pause: float) -> list[list[Any]]:
    return [[rng.choice(KINDS), round(rng.uniform(0, max_pause), 3)] for _ in range(n)]


def _cell_code(owner: str, ops: list[list[Any]], thread_ops: list[list[Any]] | None, is_async: bool) -> str:
    """A cell as a user writes it: a loop that prints, maybe a thread of its own."""
    lines = []
    if thread_ops is not None:
        lines += [
            f"worker = threading.Thread(target=run_ops, args=({owner + 't'!r}, {thread_ops!r}))",
            "worker.start()",
        ]
    if is_async:
        lines.append(f"await run_ops_async({owner!r}, {ops!r})")
    else:
        lines.append(f"run_ops({owner!r}, {ops!r})")
    if thread_ops is not None:
        lines.append("worker.join()")
    return "\n".join(lines)


def _found(text: str) -> list[tuple[str, int]]:
    return [(m.group(1), int(m.group(2))) for m in TAG.finditer(text)]


@pytest.mark.parametrize("seed", SEEDS)
def test_random_schedules_lose_no_line(page: Page, seed: int) -> None:
    rng = random.Random(seed)
    expected: dict[tuple[str, int], tuple[str, str]] = {}  # (owner, seq) -> (where, channel)
    cells: dict[str, str] = {}  # msg_id -> owner
    calls: dict[int, str] = {}  # call id -> owner
    n_calls = 0
    with page.cond:
        page.since = len(page.iopub)
    for k in range(5):
        owner = f"c{seed}x{k}"
        ops = _ops(rng, rng.randint(8, 16), 0.06)
        thread_ops = _ops(rng, rng.randint(4, 10), 0.06) if rng.random() < 0.6 else None
        is_async = rng.random() < 0.5
        msg_id = page.execute(_cell_code(owner, ops, thread_ops, is_async))
        cells[msg_id] = owner
        for seq, (kind, _p) in enumerate(ops):
            expected[(owner, seq)] = (msg_id, CELL_CHANNEL[kind])
        for seq, (kind, _p) in enumerate(thread_ops or []):
            expected[(owner + "t", seq)] = (msg_id, CELL_CHANNEL[kind])
        # While the cell runs, the page calls: 1-3 calls per message, sync and async, on a subshell or not.
        for _ in range(rng.randint(2, 5)):
            batch = []
            for _ in range(rng.randint(1, 3)):
                n_calls += 1
                call_owner = f"k{seed}x{n_calls}"
                call_ops = _ops(rng, rng.randint(3, 10), 0.04)
                name = rng.choice(["sync_printer", "async_printer", "async_printer"])
                item = page.call(name, [call_owner, call_ops])
                calls[item["id"]] = call_owner
                for seq, (kind, _p) in enumerate(call_ops):
                    expected[(call_owner, seq)] = (f"call:{item['id']}", CALL_CHANNEL[kind])
                batch.append(item)
            page.send_items(batch, on_subshell=rng.random() < 0.7)
            time.sleep(rng.uniform(0.02, 0.25))  # the schedule itself, not a synchronisation
        page.wait_idle(msg_id)

    def all_answered(_msgs: list[dict[str, Any]]) -> bool:
        answered = {i["id"] for i in page.page_items() if i["type"] in ("result", "error") and i.get("view") == VIEW}
        return set(calls) <= answered

    page.wait(all_answered, 30, "every call answered")
    # The last output of a cell's thread, or of a call, is in IOPub before the cell's idle / the call's result.
    answers = {i["id"]: i for i in page.page_items() if i["type"] in ("result", "error")}
    failed = {ident: answers[ident] for ident in calls if answers[ident]["type"] == "error"}
    assert not failed, failed

    # Where each tagged line arrived, in arrival order per place.
    arrived: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
    with page.cond:
        msgs = page.iopub[page.since :]
    text_by_place: dict[tuple[str, str], str] = defaultdict(str)
    for m in msgs:
        parent = m["parent_header"].get("msg_id", "?")
        if m["msg_type"] == "stream":
            text_by_place[(parent, m["content"]["name"])] += m["content"]["text"]
        elif m["msg_type"] in ("display_data", "update_display_data"):
            text_by_place[(parent, "display")] += str(m["content"]["data"].get("text/plain", "")) + "\n"
        elif m["msg_type"] == "execute_result":
            text_by_place[(parent, "result")] += str(m["content"]["data"].get("text/plain", "")) + "\n"
    for item in page.page_items():
        if item["type"] == "output":
            text_by_place[(f"call:{item['id']}", item["stream"])] += item["text"]
    for place, text in text_by_place.items():
        arrived[place] = _found(text)

    seen: dict[tuple[str, int], list[tuple[str, str]]] = defaultdict(list)
    for place, tags in arrived.items():
        for tag in tags:
            seen[tag].append(place)
    lost = sorted(tag for tag in expected if tag not in seen)
    duplicated = sorted(tag for tag, places in seen.items() if len(places) > 1)
    misrouted = sorted((tag, seen[tag][0], expected.get(tag)) for tag in seen if seen[tag][0] != expected.get(tag))
    unknown = sorted(tag for tag in seen if tag not in expected)
    out_of_order = []
    for place, tags in arrived.items():
        last: dict[str, int] = {}
        for owner, seq in tags:
            if seq <= last.get(owner, -1):
                out_of_order.append((place, owner, seq))
            last[owner] = seq
    report = (
        f"seed {seed}: {len(expected)} lines, {len(cells)} cells, {len(calls)} calls; "
        f"lost {lost[:20]}, duplicated {duplicated[:20]}, misrouted {misrouted[:20]}, "
        f"unknown {unknown[:20]}, out of order {out_of_order[:20]}"
    )
    assert not any([lost, duplicated, misrouted, unknown, out_of_order]), report


def test_a_shutdown_request_tells_every_view_before_the_kernel_exits() -> None:
    # The frontend learns of a shutdown only when the Jupyter server has shut the kernel down (seconds on a busy
    # machine); the kernel says `closing` on receiving the shutdown_request, so the page closes its views at once.
    with _open_page() as page:
        page.kc.shutdown(restart=False)  # shutdown_request on the control channel, as jupyter_client sends it

        def closing(_msgs: list[dict[str, Any]]) -> bool:
            return any(i["type"] == "closing" for i in page.page_items())

        page.wait(closing, 10, "the closing item")
        (item,) = [i for i in page.page_items() if i["type"] == "closing"]
        assert item == {"type": "closing", "view": None, "restart": False}
