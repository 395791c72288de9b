"""Nested calls in both directions never deadlock: JS -> Python -> JS -> Python ..., sync and async.

A scripted page stands in for the browser: the kernel's messages arrive on one
receiving thread (as a kernel subshell delivers them), and each ``call`` from
Python runs its JavaScript handler on a thread of its own (as the browser's
event loop interleaves async handlers); a handler may call Python and wait.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ipybridge._core import BridgeCore

from .fakepage import FakePage, envelope

WAIT = 10  # seconds: a bound on every wait, never reached unless something deadlocks


class ScriptedPage(FakePage):
    """A page with JavaScript handlers that may call back into Python."""

    def __init__(self, view: str) -> None:
        super().__init__()
        self.view = view
        self.core: BridgeCore | None = None
        self.handlers: dict[str, Callable[..., Any]] = {}
        self._ids = itertools.count(1000)
        self._inbox: queue.SimpleQueue[tuple[dict[str, Any], list[bytes]] | None] = queue.SimpleQueue()
        self._receiver = threading.Thread(target=self._receive_loop, name=f"subshell-{view}", daemon=True)
        self._receiver.start()

    def attach(self, core: BridgeCore) -> None:
        self.core = core
        self.post({"type": "hello"})

    def post(self, *items: dict[str, Any]) -> None:
        self._inbox.put(envelope(*items, view=self.view))

    def _receive_loop(self) -> None:
        while (message := self._inbox.get()) is not None:
            assert self.core is not None
            self.core.receive(*message)

    def stop(self) -> None:
        self._inbox.put(None)

    def send(self, content: dict[str, Any], buffers: list[memoryview]) -> None:
        super().send(content, buffers)
        for item in content["msgs"]:
            if item["type"] == "call":
                threading.Thread(target=self._run_handler, args=(item,), daemon=True).start()

    def _run_handler(self, item: dict[str, Any]) -> None:
        handler = self.handlers.get(item["name"])
        if handler is None:
            reply = {"ok": False, "missing": True, "error": {"name": "ReferenceError", "message": "none"}}
        else:
            try:
                reply = {"ok": True, "value": handler(*item["args"])}
            except Exception as exc:  # a throwing handler is a failed reply
                reply = {"ok": False, "error": {"name": type(exc).__name__, "message": str(exc)}}
        self.post({"type": "reply", "id": item["id"], **reply})

    def py(self, name: str, *args: Any) -> Any:
        """``await py.name(...args)`` in the page: call Python and wait for the answer."""
        ident = next(self._ids)
        self.post({"type": "call", "id": ident, "name": name, "args": list(args), "kwargs": {}})
        answer = self.wait_for(
            lambda i: i.get("view") == self.view and i.get("id") == ident and i["type"] in ("result", "error"), WAIT
        )
        if answer["type"] == "error":
            raise RuntimeError(f"{answer['error']['ename']}: {answer['error']['evalue']}")
        return self.value_of(answer)


@pytest.fixture
def pages() -> Iterator[Callable[[], tuple[BridgeCore, ScriptedPage]]]:
    made: list[tuple[BridgeCore, ScriptedPage]] = []

    def make() -> tuple[BridgeCore, ScriptedPage]:
        page = ScriptedPage(f"view{len(made) + 1}")
        core = BridgeCore(page.send, name=f"bridge{len(made) + 1}")
        page.attach(core)
        made.append((core, page))
        return core, page

    yield make
    for core, page in made:
        page.stop()
        core.close()


@pytest.mark.parametrize("kinds", ["sync", "async", "mixed"])
def test_chains_js_python_js_several_levels_deep_resolve(
    pages: Callable[[], tuple[BridgeCore, ScriptedPage]], kinds: str
) -> None:
    core, page = pages()

    def down_sync(n: int) -> int:
        if n == 0:
            return 0
        return int(core.call_js("down", [n - 1], None).result(timeout=WAIT)) + 1

    async def down_async(n: int) -> int:
        if n == 0:
            return 0
        return int(await core.call_js("down", [n - 1], None)) + 1

    if kinds == "sync":
        core.expose(down_sync, "down")
        page.handlers["down"] = lambda n: page.py("down", n)
    elif kinds == "async":
        core.expose(down_async, "down")
        page.handlers["down"] = lambda n: page.py("down", n)
    else:  # sync and async levels alternate
        core.expose(down_sync, "down_sync")
        core.expose(down_async, "down_async")
        page.handlers["down"] = lambda n: page.py("down_sync" if n % 2 else "down_async", n)
    start = "down" if kinds != "mixed" else "down_sync"
    assert page.py(start, 6) == 6


def test_two_bridges_calling_each_other_resolve(pages: Callable[[], tuple[BridgeCore, ScriptedPage]]) -> None:
    one, page_one = pages()
    two, page_two = pages()

    def ping(n: int) -> int:  # sync, on bridge one's worker; asks bridge two's page
        return n if n == 0 else int(two.call_js("relay", [n - 1], None).result(timeout=WAIT)) + 1

    def pong(n: int) -> int:  # sync, on bridge two's worker; asks bridge one's page
        return n if n == 0 else int(one.call_js("relay", [n - 1], None).result(timeout=WAIT)) + 1

    one.expose(ping)
    two.expose(pong)
    page_two.handlers["relay"] = lambda n: page_two.py("pong", n)
    page_one.handlers["relay"] = lambda n: page_one.py("ping", n)
    assert page_one.py("ping", 5) == 5


def test_a_sync_call_waiting_for_the_page_does_not_hold_other_calls(
    pages: Callable[[], tuple[BridgeCore, ScriptedPage]],
) -> None:
    core, page = pages()
    release = threading.Event()
    core.expose(lambda: core.call_js("later", [], None).result(timeout=WAIT), "waits")
    core.expose(lambda x: x * 2, "double")
    page.handlers["later"] = lambda: release.wait(WAIT) and "released"
    results: list[Any] = []
    waiting = threading.Thread(target=lambda: results.append(page.py("waits")))
    waiting.start()
    assert page.py("double", 21) == 42  # served while "waits" holds the worker
    release.set()
    waiting.join(WAIT)
    assert results == ["released"]


def test_blocking_on_ipybridges_event_loop_is_refused_with_the_way_out(
    pages: Callable[[], tuple[BridgeCore, ScriptedPage]],
) -> None:
    core, page = pages()

    async def blocks() -> Any:
        return core.call_js("size", [], None).result(timeout=1)

    core.expose(blocks)
    with pytest.raises(RuntimeError, match=r"call_js\('size'\).result\(\) would block ipybridge's event loop.*await"):
        page.py("blocks")


def test_a_blocking_timeout_names_the_handler(pages: Callable[[], tuple[BridgeCore, ScriptedPage]]) -> None:
    core, page = pages()
    release = threading.Event()
    page.handlers["size"] = lambda: release.wait(WAIT)  # a handler that is slow to answer
    try:
        with pytest.raises(TimeoutError, match=r"^JavaScript handler 'size' did not answer within 0.2 s$"):
            core.call_js("size", [], None).result(timeout=0.2)
    finally:
        release.set()


def test_a_busy_event_loop_does_not_stop_the_page_being_heard(
    pages: Callable[[], tuple[BridgeCore, ScriptedPage]],
) -> None:
    core, page = pages()
    started = threading.Event()
    release = threading.Event()

    async def hog() -> str:
        started.set()
        release.wait(WAIT)  # blocks the loop thread, as careless user code does
        return "done"

    core.expose(hog)
    core.expose(lambda: "sync answer", "quick")
    hogging = threading.Thread(target=page.py, args=("hog",))
    hogging.start()
    assert started.wait(WAIT)
    page.post({"type": "call", "id": 1, "name": "hog", "args": [], "kwargs": {}})  # another async call: queued
    assert page.py("quick") == "sync answer"  # the receiving thread was not held by the loop
    release.set()
    hogging.join(WAIT)


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("", "''"),
        (" ", "' '"),
        ("\t\n", r"'\t\n'"),
        ("x" * 100_000, "'xxxxxxxx"),
        ("no such thing", "'no such thing'"),
    ],
)
def test_odd_names_are_a_name_error_naming_them(
    pages: Callable[[], tuple[BridgeCore, ScriptedPage]], name: str, shown: str
) -> None:
    core, page = pages()
    core.expose(lambda: 1, "add")
    with pytest.raises(RuntimeError, match=r"^NameError: no Python function named ") as info:
        page.py(name)
    assert shown in str(info.value)
    assert len(str(info.value)) < 400  # a huge name is shortened, and says how long it was
    if len(name) > 1000:
        assert "(100000 characters)" in str(info.value)


def test_a_name_with_stray_spaces_suggests_the_exposed_one(
    pages: Callable[[], tuple[BridgeCore, ScriptedPage]],
) -> None:
    core, page = pages()
    core.expose(lambda: 1, "add")
    with pytest.raises(RuntimeError, match=r"no Python function named ' add ' is exposed .*did you mean 'add'\?"):
        page.py(" add ")


def test_a_name_that_is_not_a_string_is_a_protocol_error() -> None:
    page = FakePage()
    core = BridgeCore(page.send)
    try:
        core.receive(*envelope({"type": "hello"}))
        core.receive(*envelope({"type": "call", "id": 1, "name": 5, "args": []}))
        error = page.answer("v1", 1)["error"]
        assert (error["ename"], error["evalue"]) == ("ProtocolError", "'name' must be a string, not int")
    finally:
        core.close()


def test_async_chain_with_asyncio_gather_of_nested_calls(pages: Callable[[], tuple[BridgeCore, ScriptedPage]]) -> None:
    core, page = pages()

    async def fan(n: int) -> list[int]:
        return list(await asyncio.gather(*(core.call_js("echo", [i], None) for i in range(n))))

    core.expose(fan)
    core.expose(lambda i: i * 10, "times_ten")
    page.handlers["echo"] = lambda i: page.py("times_ten", i)
    assert page.py("fan", 8) == [i * 10 for i in range(8)]


def test_an_interrupt_ends_a_def_waiting_for_the_page(pages: Callable[[], tuple[BridgeCore, ScriptedPage]]) -> None:
    core, page = pages()
    asked = threading.Event()
    release = threading.Event()

    def waits() -> Any:
        return core.call_js("never", [], None).result()  # no timeout: only an interrupt ends it

    def handler() -> None:
        asked.set()
        release.wait(WAIT)

    core.expose(waits)
    core.expose(lambda: "served", "after")
    page.handlers["never"] = handler
    outcome: list[str] = []
    caller = threading.Thread(target=lambda: outcome.append(_error_name(page, "waits")))
    caller.start()
    assert asked.wait(WAIT)
    core.interrupt()
    caller.join(WAIT)
    release.set()
    assert outcome == ["KeyboardInterrupt"]
    assert page.py("after") == "served"  # the worker is free again


def _error_name(page: ScriptedPage, name: str) -> str:
    try:
        page.py(name)
    except RuntimeError as exc:
        return str(exc).split(":", 1)[0]
    return "no error"
