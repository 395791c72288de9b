"""Where ipybridge's Python code runs: one event loop thread, serial workers.

* Messages from the page arrive on whatever thread the kernel delivers comm
  messages on: a subshell thread when the frontend uses kernel subshells
  (JupyterLab 4.4+, Notebook 7.4+ with ipykernel 7+), else the main thread.
  That thread only parses, validates and routes; it never runs user code and
  never waits for the loop or a worker (the page's replies must get through).
* ``async def`` exposed functions run as tasks on ipybridge's own asyncio event
  loop, in the daemon thread ``ipybridge-loop`` shared by all bridges. It keeps
  running while a cell blocks the kernel's main thread.
* Plain ``def`` exposed functions run on the bridge's :class:`SerialWorker`
  thread, one at a time, in the order the page called them. One that blocks on
  the page (``call_js(...).result()``) runs the calls queued meanwhile, nested
  (:func:`wait_serving`), so calls may nest in both directions without deadlock.
  A call that reaches an idle worker over the direct transport runs on the
  thread that read it instead (:meth:`SerialWorker.run_here`), still one at a
  time: waking a second thread for it would cost more than the call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import logging
import queue
import signal
import threading
import time
import weakref
from collections.abc import Callable, Iterator
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


_STOP = object()
#: Put on a worker's queue to wake a job that waits (wait_serving) for a future that is now done.
_WAKE = object()
#: How often a waiting worker job checks for an interrupt or for being abandoned (seconds).
_WAIT_POLL_S = 0.1

#: A cancelled or interrupted job that still holds its worker after this long
#: (stuck in C code such as ``time.sleep``, or looping forever) is abandoned:
#: a fresh thread takes over the queue so later calls do not wait behind it.
RELEASE_AFTER_S = 0.5


def _raise_in_thread(thread: threading.Thread | None, exc_type: type[BaseException] | None) -> None:
    """Make ``thread`` raise ``exc_type`` at its next Python bytecode (None: forget a pending one)."""
    if thread is None or thread.ident is None:
        return
    exc = ctypes.py_object(exc_type) if exc_type is not None else None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), exc)


class _Lane:
    """One thread serving a worker's queue, and what it is doing."""

    __slots__ = ("abandoned", "in_user_code", "interrupt_aimed", "job", "on_block", "thread")

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.job: Callable[[], None] | None = None
        self.in_user_code = False  # only then may an interrupt raise KeyboardInterrupt in it
        self.interrupt_aimed = False  # a KeyboardInterrupt was aimed at it and may still be pending
        self.abandoned = False
        #: Set for a lane lent by another thread (SerialWorker.run_here): called with that thread when its job
        #: waits or is abandoned, so that whatever the thread was doing before (reading a connection) goes on
        #: elsewhere.
        self.on_block: Callable[[threading.Thread], None] | None = None


_thread_state = threading.local()


def _plain_wait(future: concurrent.futures.Future[Any], timeout: float | None) -> bool:
    done, _ = concurrent.futures.wait([future], timeout)
    return bool(done)


@contextlib.contextmanager
def internal() -> Iterator[None]:
    """Around ipybridge's own work done inside a worker job's user code (call_js, emit, waiting).

    A kernel interrupt raises KeyboardInterrupt asynchronously in a worker's user
    code. Landing inside ipybridge's bookkeeping (between taking messages out of
    the outbox and sending them, say), it would lose them. Inside this block
    none lands: one aimed before is held back and raised when the block ends.
    """
    worker: SerialWorker | None = getattr(_thread_state, "worker", None)
    if worker is None:
        yield
        return
    with worker.outside_user_code():
        yield


def wait_serving(future: concurrent.futures.Future[Any], timeout: float | None) -> bool:
    """Wait for ``future``; on a worker thread (any widget's), serve that worker's queue meanwhile.

    See :meth:`SerialWorker.wait_serving`. Returns whether the future is done.
    """
    worker: SerialWorker | None = getattr(_thread_state, "worker", None)
    if worker is None:
        return _plain_wait(future, timeout)
    return worker.wait_serving(future, timeout)


class _UserCode:
    """See :meth:`SerialWorker.interruptible` (a class: it is entered once per call)."""

    __slots__ = ("_lane", "_outer", "_worker")

    def __init__(self, worker: SerialWorker, lane: _Lane) -> None:
        self._worker = worker
        self._lane = lane
        self._outer = lane.in_user_code  # a job run by wait_serving() inside another job's user code

    def __enter__(self) -> None:
        with self._worker._lock:  # interrupt() aims only after this releases the lock: inside the with
            self._lane.in_user_code = True

    def __exit__(self, *exc_info: object) -> None:
        self._worker._leave_user_code(self._lane, self._outer)


class SerialWorker:
    """Runs submitted callables one at a time, in order, on a daemon thread.

    A job the caller gave up on (:meth:`release_later`, :meth:`interrupt`) that
    still runs :data:`RELEASE_AFTER_S` later is abandoned: it finishes on its
    old thread in the background while a new thread serves the queue.

    A thread may also lend itself to run one job when the worker is idle
    (:meth:`run_here`): the job is then the worker's, as if it were queued,
    and whatever is submitted meanwhile waits for it.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        #: Notified when the worker is free again (no lane holds it), if anyone waits (_free_waiters).
        self._free = threading.Condition(self._lock)
        self._free_waiters = 0
        self._lane: _Lane | None = None
        #: The lane running a job now, nested ones included: the worker thread's, or a lent one
        #: (run_here). Others wait for it to be None. Changed under the lock.
        self._holder: _Lane | None = None
        self._queued = 0  # jobs submitted and not taken off the queue yet
        self._reclaiming = 0  # lent lanes waiting to take the worker back after a wait: they go first
        self._abandoned: set[_Lane] = set()
        self._local = threading.local()
        self._stopped = False
        self._interrupts = 0  # bumped by interrupt(): a job waiting in wait_serving stops waiting
        self.threads_started = 0
        #: Jobs run by run_here (a diagnostic for tests and benchmarks).
        self.jobs_run_here = 0

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._lane is None and not self._stopped:
                self._start_lane()
            self._queued += 1
        self._queue.put(job)

    def run_here(
        self,
        job: Callable[[], None],
        on_block: Callable[[threading.Thread], None],
        on_start: Callable[[], None] | None = None,
    ) -> bool:
        """Run ``job`` on the calling thread now if the worker is idle; False (nothing run) if it is not.

        Idle: nothing queued, running or waiting to resume. The job then runs
        exactly as on the worker thread (interruptible, given up on with
        :meth:`release_later`, :func:`wait_serving` works in it) and jobs
        submitted meanwhile wait for it, so the order and one-at-a-time stay.
        It saves the wake-up of the worker thread and the hand-over of the GIL
        that a queued job costs (a good part of a tiny call's time).

        ``on_block`` is called (on any thread, with the calling thread) when the job waits in
        :func:`wait_serving`, or is abandoned: the calling thread is then held
        for long, and whatever else it serves (a connection it reads) must go
        on without it. While it waits, the worker serves other jobs; it takes
        the worker back, before any queued job, when its wait ends.
        ``on_start`` is called on the calling thread once the job is accepted, just before it runs.
        """
        lane = _Lane()
        lane.thread = threading.current_thread()
        lane.on_block = on_block
        with self._lock:
            if self._stopped or self._queued or self._holder is not None or self._reclaiming:
                return False
            self._holder = lane
            lane.job = job
            self.jobs_run_here += 1
        if on_start is not None:
            on_start()
        local = self._local
        outer_lane, outer_worker = getattr(local, "lane", None), getattr(_thread_state, "worker", None)
        local.lane, _thread_state.worker = lane, self
        try:
            job()
        except BaseException:  # the lending thread must survive any job, as a worker does
            log.exception("ipybridge worker job failed")
        finally:
            local.lane, _thread_state.worker = outer_lane, outer_worker
            self._end_job(lane)
        return True

    def _start_lane(self) -> None:
        """A new thread for the queue (call with the lock held)."""
        self.threads_started += 1
        suffix = "" if self.threads_started == 1 else f"-{self.threads_started}"
        lane = _Lane()
        lane.thread = threading.Thread(target=self._run, args=(lane,), name=f"{self._name}{suffix}", daemon=True)
        self._lane = lane
        lane.thread.start()

    def idle(self) -> bool:
        return self._queue.empty()

    def is_current(self) -> bool:
        return getattr(self._local, "lane", None) is not None

    def running(self) -> Callable[[], None] | None:
        """The job the worker runs now (the innermost one, when jobs are nested), if any."""
        lane = self._holder
        return lane.job if lane is not None else None

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            started = self._lane is not None
        if started:
            self._queue.put(_STOP)

    def interruptible(self) -> _UserCode | contextlib.nullcontext[None]:
        """Around the user's code in a job: a kernel interrupt raises KeyboardInterrupt there."""
        lane: _Lane | None = getattr(self._local, "lane", None)
        if lane is None:
            return contextlib.nullcontext()
        return _UserCode(self, lane)

    def _leave_user_code(self, lane: _Lane, outer: bool = False) -> None:
        while True:
            try:
                with self._lock:
                    lane.in_user_code = outer
                    if lane.interrupt_aimed and not outer:  # an interrupt aimed at the user's code ends here
                        lane.interrupt_aimed = False
                        _raise_in_thread(lane.thread, None)
                return
            except KeyboardInterrupt:  # noqa: PERF203 - it landed just after the user's code returned: retry
                continue

    @contextlib.contextmanager
    def outside_user_code(self) -> Iterator[None]:
        """See :func:`internal`."""
        lane: _Lane | None = getattr(self._local, "lane", None)
        if lane is None or not lane.in_user_code:
            yield
            return
        with self._lock:  # a KeyboardInterrupt landing before this is the user code's: it propagates
            lane.in_user_code = False
            held_back = lane.interrupt_aimed
            if held_back:
                lane.interrupt_aimed = False
                _raise_in_thread(lane.thread, None)
        try:
            yield
        finally:
            with self._lock:
                lane.in_user_code = True
        if held_back:
            raise KeyboardInterrupt("the kernel was interrupted")

    def wait_serving(self, future: concurrent.futures.Future[Any], timeout: float | None) -> bool:
        """Wait for ``future``; called from a job of this worker, run the jobs queued meanwhile.

        A ``def`` that blocks on the page (``call_js(...).result()``) holds the
        worker; the page's handler may call another ``def`` of the same widget,
        queued behind it. Running queued jobs here, nested, like a call stack,
        is what lets that chain finish instead of deadlocking. Returns whether
        the future is done (False: the timeout passed). Off the worker, or on a
        thread that was abandoned, it is a plain wait. Raises KeyboardInterrupt
        when the kernel is interrupted meanwhile.
        """
        lane: _Lane | None = getattr(self._local, "lane", None)
        if lane is None or lane.abandoned:
            return _plain_wait(future, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        if lane.on_block is not None:
            return self._wait_lent(lane, future, deadline)
        future.add_done_callback(lambda _f: self._queue.put(_WAKE))
        # While it waits, the job is not "in user code": an interrupt reaches it through
        # self._interrupts, checked between jobs, never as an asynchronous exception that
        # could land between taking a job off the queue and running it (losing that job).
        with self._lock:
            interrupts = self._interrupts
        with self.outside_user_code():
            return self._serve_until(lane, future, deadline, interrupts)

    def _serve_until(
        self, lane: _Lane, future: concurrent.futures.Future[Any], deadline: float | None, interrupts: int
    ) -> bool:
        while not future.done():
            wait = self._wait_slice(interrupts, deadline)
            if wait is None:
                return False
            if lane.abandoned or self._stopped:  # a newer thread serves the queue: only wait
                _plain_wait(future, wait)
                continue
            try:
                job = self._queue.get(timeout=wait)
            except queue.Empty:
                continue
            if job is _WAKE:
                continue
            if job is _STOP:
                self._queue.put(_STOP)  # for the loop in _run, once this job returns
                self._stopped = True
                continue
            self._run_nested(lane, job)
        return True

    def _wait_lent(self, lane: _Lane, future: concurrent.futures.Future[Any], deadline: float | None) -> bool:
        """wait_serving for a job run by run_here: let the worker thread serve the queue meanwhile.

        The lending thread cannot serve the queue itself (the worker thread takes
        jobs off it too): the job lets go of the worker while it waits, and takes
        it back, before any queued job, when the wait ends (the worker thread's
        job of the moment finishes first, as a nested one would).
        """
        assert lane.on_block is not None
        assert lane.thread is not None
        with self._lock:
            interrupts = self._interrupts  # before on_block: an interrupt meanwhile is not missed
        lane.on_block(lane.thread)  # what the lending thread served (a connection, where the answer may come) goes on
        with self._lock:
            if self._holder is lane:
                self._holder = None
                self._notify_free()
        with self.outside_user_code():
            try:
                while not future.done():
                    wait = self._wait_slice(interrupts, deadline)
                    if wait is None:
                        return False
                    _plain_wait(future, wait)
                return True
            finally:
                self._take_back(lane)

    def _wait_slice(self, interrupts: int, deadline: float | None) -> float | None:
        """The next slice of a wait (seconds); None when ``deadline`` passed. KeyboardInterrupt after an interrupt."""
        if self._interrupts != interrupts:
            raise KeyboardInterrupt("the kernel was interrupted")
        if deadline is None:
            return _WAIT_POLL_S
        remaining = deadline - time.monotonic()
        return None if remaining <= 0 else min(remaining, _WAIT_POLL_S)

    def _take_back(self, lane: _Lane) -> None:
        """A lent lane's wait ended: hold the worker again once its current job ends (not if abandoned)."""
        with self._lock:
            self._reclaiming += 1
            try:
                while self._holder is not None and not (lane.abandoned or self._stopped):
                    self._wait_free()
                if not (lane.abandoned or self._stopped):
                    self._holder = lane
            finally:
                self._reclaiming -= 1
                self._notify_free()  # the worker thread may wait for the reclaiming to end

    def _wait_free(self) -> None:
        """Wait (lock held) until the worker may be free."""
        self._free_waiters += 1
        try:
            self._free.wait()
        finally:
            self._free_waiters -= 1

    def _notify_free(self) -> None:
        """The worker may be free (lock held): wake whoever waits for it (nobody, nearly always)."""
        if self._free_waiters:
            self._free.notify_all()

    def _run_nested(self, lane: _Lane, job: Callable[[], None]) -> None:
        with self._lock:
            self._queued -= 1
            outer_job, lane.job = lane.job, job
        try:
            job()
        except BaseException:  # a worker must survive any job
            log.exception("ipybridge worker job failed")
        finally:
            with self._lock:
                lane.job = outer_job

    def interrupt(self) -> None:
        """The kernel was interrupted: raise KeyboardInterrupt in the user code this worker
        runs (abandoned jobs included); abandon the job if it does not stop soon."""
        with self._lock:
            self._interrupts += 1
            for lane in {self._lane, self._holder, *self._abandoned}:
                if lane is not None and lane.in_user_code:
                    lane.interrupt_aimed = True
                    _raise_in_thread(lane.thread, KeyboardInterrupt)
            job = self._holder.job if self._holder is not None else None
        if job is not None:
            self.release_later(job)

    def release_later(self, job: Callable[[], None], after: float = RELEASE_AFTER_S) -> None:
        """If ``job`` still runs ``after`` seconds from now, leave it and serve the queue on a new thread."""
        timer = threading.Timer(after, self._release, (job,))
        timer.daemon = True
        timer.start()

    def _release(self, job: Callable[[], None]) -> None:
        with self._lock:
            lane = self._holder
            if lane is None or lane.job is not job or self._stopped:
                return
            lane.abandoned = True
            self._abandoned.add(lane)
            self._holder = None
            if lane is self._lane:
                self._start_lane()
            self._notify_free()
        if lane.on_block is not None and lane.thread is not None:
            lane.on_block(lane.thread)
        log.warning(
            "ipybridge: a call given up on is still running on %s; later calls run on a new thread",
            lane.thread.name if lane.thread is not None else "?",
        )

    def _run(self, lane: _Lane) -> None:
        self._local.lane = lane
        _thread_state.worker = self
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            if job is _WAKE:
                continue
            with self._lock:
                while (self._holder is not None and self._holder is not lane) or self._reclaiming:
                    self._wait_free()  # a job run by run_here goes on (it came first)
                # Counted as queued until it holds the worker: run_here must not start a later job meanwhile.
                self._queued -= 1
                self._holder = lane
                lane.job = job
            try:
                job()
            except BaseException:  # a worker must survive any job
                log.exception("ipybridge worker job failed")
            self._end_job(lane)
            if lane.abandoned:
                return  # a newer thread serves the queue now

    def _end_job(self, lane: _Lane) -> None:
        # No KeyboardInterrupt can land here: interrupts only aim at user code,
        # and interruptible() cleared any pending one when that code ended.
        with self._lock:
            lane.job = None
            self._abandoned.discard(lane)
            if self._holder is lane:
                self._holder = None
                self._notify_free()


# ------------------------------------------------------------------ interrupts
# The kernel's "interrupt" is a SIGINT (sent by the server, or by ipykernel itself
# for a control-channel interrupt_request). Python runs signal handlers on the
# main thread only, and ipykernel ignores SIGINT while no cell runs: so nothing
# would ever stop a call running on a worker thread. ipybridge chains its own
# handler in front of whatever handler ipykernel installs (idle: SIG_IGN; a
# running cell: default_int_handler; an async cell: its cancelling handler).
# The handler only queues a note (SimpleQueue.put is safe in signal handlers);
# the ``ipybridge-interrupt`` thread then tells every listener.

_interrupts: queue.SimpleQueue[int] = queue.SimpleQueue()
_listeners: weakref.WeakSet[Any] = weakref.WeakSet()
_listeners_lock = threading.Lock()
_interrupt_thread: threading.Thread | None = None
_hook_installed = False
#: Interrupts every listener has been told about (tests wait on it).
interrupts_handled = 0
#: jupyter_client interrupts a kernel before it shuts it down. Page views must then
#: see BridgeClosedError (when the frontend notices the shutdown), not
#: KeyboardInterrupt: an interrupt is acted on only if no shutdown_request
#: follows within this long.
INTERRUPT_SETTLE_S = 0.25
_shutting_down = threading.Event()


class _ChainedSigint:
    """A SIGINT handler: note the interrupt for ipybridge, then do what ``previous`` does."""

    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __call__(self, signum: int, frame: Any) -> Any:
        kernel_interrupted()
        previous = self.previous
        if callable(previous):
            return previous(signum, frame)
        if previous == signal.SIG_DFL:
            return signal.default_int_handler(signum, frame)
        return None  # SIG_IGN (no cell running) or a handler not set from Python


def kernel_interrupted() -> None:
    """Tell every listener the kernel was interrupted (safe to call from a signal handler)."""
    _interrupts.put(signal.SIGINT)


def on_interrupt(listener: Any) -> None:
    """Call ``listener.interrupt()`` on each kernel interrupt, while the listener lives."""
    global _interrupt_thread
    with _listeners_lock:
        _listeners.add(listener)
        if _interrupt_thread is None:
            _interrupt_thread = threading.Thread(target=_serve_interrupts, name="ipybridge-interrupt", daemon=True)
            _interrupt_thread.start()
    install_interrupt_hook()


def _serve_interrupts() -> None:
    global interrupts_handled
    while True:
        _interrupts.get()
        if _shutting_down.wait(INTERRUPT_SETTLE_S):
            continue  # the interrupt that precedes a shutdown or restart: not the user's
        with _listeners_lock:
            listeners = list(_listeners)
        for listener in listeners:
            try:
                listener.interrupt()
            except Exception:  # noqa: PERF203 - one failing listener must not stop the others
                log.exception("ipybridge could not handle a kernel interrupt")
        interrupts_handled += 1


def _tell_closing(restart: bool) -> None:
    """The kernel received a shutdown_request: each listener with a ``kernel_closing`` tells its pages now."""
    with _listeners_lock:
        listeners = list(_listeners)
    for listener in listeners:
        closing = getattr(listener, "kernel_closing", None)
        if closing is None:
            continue
        try:
            closing(restart)
        except Exception:  # one failing listener must not stop the others, nor the shutdown
            log.exception("ipybridge could not tell its pages that the kernel is closing")


def _chain_current_handler() -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    current = signal.getsignal(signal.SIGINT)
    if not isinstance(current, _ChainedSigint):
        signal.signal(signal.SIGINT, _ChainedSigint(current))


def install_interrupt_hook() -> None:
    """Chain ipybridge's SIGINT handler into the running ipykernel (once, from the main thread)."""
    global _hook_installed
    if _hook_installed or threading.current_thread() is not threading.main_thread():
        return
    try:
        from ipykernel.kernelbase import Kernel
    except ImportError:
        return
    if not Kernel.initialized():
        return
    kernel = Kernel.instance()
    _hook_installed = True
    _chain_current_handler()
    # A running cell's handler is swapped back to this one when the cell ends.
    saved = getattr(kernel, "saved_sigint_handler", None)
    if saved is not None and not isinstance(saved, _ChainedSigint):
        kernel.saved_sigint_handler = _ChainedSigint(saved)
    # Before each main-shell message ipykernel installs default_int_handler: chain it.
    pre_handler_hook = getattr(kernel, "pre_handler_hook", None)
    if pre_handler_hook is not None:

        def chained_pre_handler_hook() -> None:
            pre_handler_hook()
            _chain_current_handler()

        kernel.pre_handler_hook = chained_pre_handler_hook  # type: ignore[method-assign]
    # A cell with top-level await installs its own handler, which cancels the cell: chain it.
    cancel_on_sigint = getattr(kernel, "_cancel_on_sigint", None)
    if cancel_on_sigint is not None:

        @contextlib.contextmanager
        def chained_cancel_on_sigint(future: Any) -> Iterator[None]:
            with cancel_on_sigint(future):
                _chain_current_handler()
                yield

        kernel._cancel_on_sigint = chained_cancel_on_sigint  # type: ignore[attr-defined]
    # Note a shutdown (or restart) request, which jupyter_client sends right after a SIGINT.
    control_handlers = getattr(kernel, "control_handlers", None)
    shutdown_request = control_handlers.get("shutdown_request") if isinstance(control_handlers, dict) else None
    if control_handlers is not None and shutdown_request is not None:

        def noting_shutdown_request(*args: Any, **kwargs: Any) -> Any:
            _shutting_down.set()
            parent = args[2] if len(args) > 2 else kwargs.get("parent")
            content = parent.get("content") if isinstance(parent, dict) else None
            _tell_closing(bool(content.get("restart")) if isinstance(content, dict) else False)
            return shutdown_request(*args, **kwargs)

        control_handlers["shutdown_request"] = noting_shutdown_request
