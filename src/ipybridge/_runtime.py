"""Where ipybridge's Python code runs: one event loop thread, serial workers.

* Messages from the page arrive on whatever thread the kernel delivers comm
  messages on: a subshell thread when the frontend uses kernel subshells
  (JupyterLab 4.4+, Notebook 7.4+ with ipykernel 7+), else the main thread.
  That thread only parses, validates and routes; it never runs user code.
* ``async def`` exposed functions run as tasks on ipybridge's own asyncio event
  loop, in the daemon thread ``ipybridge-loop`` shared by all bridges. It keeps
  running while a cell blocks the kernel's main thread.
* Plain ``def`` exposed functions run on the bridge's :class:`SerialWorker`
  thread, one at a time, in the order the page called them.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("ipybridge")
_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def event_loop() -> asyncio.AbstractEventLoop:
    """ipybridge's event loop, started on first use in the ``ipybridge-loop`` thread."""
    global _loop
    if _loop is not None:
        return _loop
    with _loop_lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            threading.Thread(target=run, name="ipybridge-loop", daemon=True).start()
            ready.wait()
            _loop = loop
    return _loop


def in_loop_thread() -> bool:
    loop = _loop
    if loop is None:
        return False
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def spawn(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Start ``coro`` as a task on ipybridge's loop from any thread; return the task.

    From another thread this blocks only until the task object exists (a few
    microseconds), so the caller can cancel it later.
    """
    loop = event_loop()
    if in_loop_thread():
        return loop.create_task(coro)
    holder: list[asyncio.Task[Any]] = []
    made = threading.Event()

    def create() -> None:
        holder.append(loop.create_task(coro))
        made.set()

    loop.call_soon_threadsafe(create)
    made.wait()
    return holder[0]


_STOP = object()


class SerialWorker:
    """A daemon thread that runs submitted callables one at a time, in order."""

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False
        self._lock = threading.Lock()
        self.on_idle: Callable[[], None] | None = None

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if not self._started:
                self._started = True
                self._thread.start()
        self._queue.put(job)

    def idle(self) -> bool:
        return self._queue.empty()

    def is_current(self) -> bool:
        return threading.current_thread() is self._thread

    def stop(self) -> None:
        if self._started:
            self._queue.put(_STOP)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            try:
                job()
            except BaseException:  # a worker must survive any job
                log.exception("ipybridge worker job failed")
            if self.on_idle is not None and self._queue.empty():
                self.on_idle()
