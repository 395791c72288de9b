"""Frames drawn ahead of need, in parallel: on the kernel's threads, a process pool or a Dask cluster.

The Player's render thread takes the page's requests one at a time, in the order
they came, and posts each frame when it is done. A source with :class:`Ahead`
starts every request as it arrives (``prefetch``) on a small thread pool, so
several frames are read or drawn at once while the render thread collects them
in order: the page gets its frames in the order it asked for them, whoever
finished first. A request the page cancels (it seeked away) is dropped before it
starts.

Executors: any :class:`concurrent.futures.Executor` (a ``ProcessPoolExecutor``
for CPU-bound frames) or a dask ``distributed.Client`` (a ``LocalCluster`` or a
real cluster). Dask is the distributed engine; nothing here starts a worker.

A frame function declared pure (``Player(fig, func, frames=..., pure=True,
executor=...)``: frame k depends only on k, not on the frames drawn before it)
is drawn on the executor's workers by :class:`PureFigureSource`: the figure,
``func``, ``init_func`` and ``fargs`` are pickled once in the kernel (with
cloudpickle, so functions defined in a notebook travel too), sent to each
worker process about once (a dask Client scatters it to every worker; a process
pool's tasks carry only its hash, and a worker that has not seen it asks for
it: a few sends at the start, never one per frame), unpickled once per process,
and each worker draws the frames it is given through its own Agg canvas and
encodes them as the page asked (the kernel only forwards the bytes).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import numpy as np

#: Threads starting frames ahead of need, shared by all players in the kernel (reads are I/O
#: bound: disk, network, decompression; waits on an executor's futures cost nothing).
AHEAD_THREADS = 4
#: At most this many frames started ahead per player (the page keeps at most 32 requests out).
MAX_AHEAD = 48

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def ahead_pool() -> ThreadPoolExecutor:
    """The threads that start frames ahead for every player in this kernel (made on first use)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(AHEAD_THREADS, thread_name_prefix="ipybridge-ahead")
        return _pool


def is_distributed_client(executor: Any) -> bool:
    """True for a dask ``distributed.Client`` (checked without importing distributed)."""
    return type(executor).__module__.split(".")[0] == "distributed" and hasattr(executor, "compute")


def check_executor(executor: Any) -> None:
    if executor is None or is_distributed_client(executor):
        return
    if not callable(getattr(executor, "submit", None)):
        raise TypeError(
            f"executor must be a concurrent.futures.Executor or a dask distributed.Client, not {executor!r}"
        )


#: Seconds a frame may take on an executor's worker before it fails with ``TimeoutError`` (a hung or
#: lost worker must not hold the kernel's threads, or the Player, forever).
EXECUTOR_TIMEOUT_S = 300.0


def executor_result(future: Any, what: str) -> Any:
    """``future.result()`` of an executor's (or a dask Client's) future, bounded by :data:`EXECUTOR_TIMEOUT_S`.

    Raises ``TimeoutError`` naming ``what`` (and cancels the future) when the worker gives no result in time;
    the worker's own exception otherwise, as ``result()`` does.
    """
    try:
        return future.result(timeout=EXECUTOR_TIMEOUT_S)
    except (TimeoutError, FutureTimeout):  # the same class from Python 3.11 on
        if future.done():
            raise  # the frame function itself raised TimeoutError
        future.cancel()
        raise TimeoutError(
            f"{what}: the executor gave no result in {EXECUTOR_TIMEOUT_S:g} s (a hung or lost worker?)"
        ) from None


#: How the page wants a frame encoded: (codec, quality), or None for the RGBA image itself.
Encoding = tuple[str, int] | None


class Ahead:
    """Frames started as the page asks for them, collected in the order it asked.

    ``work(index)`` makes frame ``index`` (RGBA uint8, or what ``finish(made, encoding)``
    turns into RGBA or an encoded frame); it runs on :func:`ahead_pool`,
    followed by encoding when the request names one (zlib releases the GIL, so frames
    are compressed in parallel too). Several requests for the same frame and
    encoding share one piece of work.
    """

    def __init__(
        self,
        work: Callable[[int], Any],
        length: Callable[[], int | None],
        finish: Callable[[Any, Encoding], Any] | None = None,
        *,
        encodes: bool = False,
    ) -> None:
        self._work = work
        self._length = length
        self._finish = finish
        self._encodes = encodes  # work(index, encoding) returns the frame already encoded
        self._lock = threading.Lock()
        self._started: dict[tuple[int, Encoding], tuple[Future[Any], int]] = {}

    def __len__(self) -> int:
        return len(self._started)

    def _make(self, index: int, encoding: Encoding) -> Any:
        if self._encodes:
            return self._work(index, encoding)  # type: ignore[call-arg]
        made = self._work(index)
        if self._finish is not None:
            return self._finish(made, encoding)
        if encoding is None:
            return made
        from . import codecs

        return codecs.encode(made, *encoding)

    def prefetch(self, index: int, encoding: Encoding = None) -> None:
        length = self._length()
        if index < 0 or (length is not None and index >= length):
            return  # collect() reports it
        key = (index, encoding)
        with self._lock:
            entry = self._started.get(key)
            if entry is not None:
                self._started[key] = (entry[0], entry[1] + 1)
                return
            if len(self._started) >= MAX_AHEAD:
                return  # made when collected, on the render thread
            self._started[key] = (ahead_pool().submit(self._make, index, encoding), 1)

    def cancel(self, index: int, encoding: Encoding = None) -> None:
        key = (index, encoding)
        with self._lock:
            entry = self._started.get(key)
            if entry is None:
                return
            future, wants = entry
            if wants > 1:
                self._started[key] = (future, wants - 1)
                return
            del self._started[key]
        future.cancel()

    def collect(self, index: int, encoding: Encoding = None) -> Any:
        """Frame ``index``: an RGBA image, or a :class:`~ipybridge.player.codecs.Encoded` when ``encoding`` is given."""
        key = (index, encoding)
        future: Future[Any] | None = None
        with self._lock:
            entry = self._started.get(key)
            if entry is not None:
                future, wants = entry
                if wants > 1:
                    self._started[key] = (future, wants - 1)
                else:
                    del self._started[key]
        if future is not None:
            try:
                return future.result()
            except CancelledError:
                pass  # forgotten meanwhile (new limits, closing): make it now
        return self._make(index, encoding)

    def forget(self) -> None:
        """Drop every frame started and not collected (what they show has changed)."""
        with self._lock:
            started, self._started = self._started, {}
        for future, _ in started.values():
            future.cancel()


# ---------------------------------------------------------------- pure frame functions

#: Figures unpickled in this (worker) process, by the hash of their pickle; a few, least recently used out.
_figures: OrderedDict[str, _WorkerFigure] = OrderedDict()
_figures_lock = threading.Lock()
_FIGURES_KEPT = 4


class _WorkerFigure:
    def __init__(self, blob: bytes) -> None:
        import pickle

        from matplotlib.backends.backend_agg import FigureCanvasAgg

        self.fig, self.func, self.init_func, self.fargs = pickle.loads(blob)  # noqa: S301 - our own pickle, from the kernel
        self.canvas: Any = FigureCanvasAgg(self.fig)
        self.lock = threading.Lock()
        self.initialized = False

    def draw(self, value: Any, encoding: Encoding = None) -> Any:
        with self.lock:
            if not self.initialized:
                self.initialized = True
                if self.init_func is not None:
                    self.init_func()
            self.func(value, *self.fargs)
            self.canvas.draw()
            if encoding is not None:  # encoded here, on the worker: less to send, nothing left for the kernel
                from . import codecs

                return codecs.encode(np.asarray(self.canvas.buffer_rgba()), *encoding)
            return np.array(self.canvas.buffer_rgba(), dtype=np.uint8, copy=True)


#: What a worker answers when it has not seen the figure yet and was sent only its hash.
UNKNOWN_FIGURE = "ipybridge: figure not unpickled in this process yet"


def draw_pure_frame(token: str, blob: bytes | None, value: Any, encoding: Encoding = None) -> Any:
    """On a worker: frame ``value`` of the pickled figure ``blob`` (unpickled once per process),
    as RGBA, or encoded as ``encoding`` = (codec, quality) (a :class:`~ipybridge.player.codecs.Encoded`).

    With ``blob=None`` a worker that has not seen the figure answers :data:`UNKNOWN_FIGURE`
    and the kernel sends the task again with the pickle: each process receives it about once.
    """
    with _figures_lock:
        figure = _figures.get(token)
        if figure is None:
            if blob is None:
                return UNKNOWN_FIGURE
            figure = _figures[token] = _WorkerFigure(blob)
            while len(_figures) > _FIGURES_KEPT:
                _figures.popitem(last=False)
        _figures.move_to_end(token)
    return figure.draw(value, encoding)


def _frame(result: Any) -> Any:
    from . import codecs

    return result if isinstance(result, codecs.Encoded) else np.asarray(result)


class PureFigureSource:
    """A pure frame function's frames, drawn on an executor's workers (see the module's docstring)."""

    pure = True

    def __init__(self, source: Any, executor: Any) -> None:
        check_executor(executor)
        try:
            import cloudpickle
        except ImportError as exc:  # pragma: no cover - installed with the [science] extra
            raise ImportError(
                "drawing frames on an executor pickles the frame function with cloudpickle: "
                "pip install 'ipybridge[science]'"
            ) from exc
        self.source = source
        self.fig = source.fig
        self.executor = executor
        self._distributed = is_distributed_client(executor)
        import itertools

        from .sources import FrameValues

        anim = source.anim  # a FuncAnimation: its function, arguments and frame values travel to the workers
        endless = anim._iter_gen is itertools.count
        self.values = FrameValues(None if endless else anim._iter_gen, None if endless else anim._save_count)
        with source.lock:
            blob = cloudpickle.dumps((source.fig, anim._func, anim._init_func, tuple(anim._args or ())))
        self.pickle_bytes = len(blob)
        self.pickles_sent = 0
        self.token = hashlib.sha256(blob).hexdigest()
        self._payload: Any = blob
        if self._distributed:
            # Sent to every worker once; tasks carry a reference to it.
            self._payload = executor.scatter(blob, broadcast=True, hash=False)
        self.ahead = Ahead(self._work, lambda: self.source.length, encodes=True)

    @property
    def length(self) -> int | None:
        length: int | None = self.source.length
        return length

    def _work(self, index: int, encoding: Encoding = None) -> Any:
        """Frame ``index`` drawn (and encoded, when ``encoding`` is given) on a worker."""
        value = self.values[index]  # out of range raises here, in the kernel
        if self._distributed:
            future = self.executor.submit(draw_pure_frame, self.token, self._payload, value, encoding, pure=False)
            return _frame(executor_result(future, f"frame {index}"))
        # A process pool cannot be told "every worker": send the hash, and the pickle to a worker that asks.
        result = executor_result(
            self.executor.submit(draw_pure_frame, self.token, None, value, encoding), f"frame {index}"
        )
        if isinstance(result, str) and result == UNKNOWN_FIGURE:
            self.pickles_sent += 1
            result = executor_result(
                self.executor.submit(draw_pure_frame, self.token, self._payload, value, encoding), f"frame {index}"
            )
        return _frame(result)

    def prefetch(self, index: int, encoding: Encoding = None) -> None:
        self.ahead.prefetch(index, encoding)

    def cancel(self, index: int, encoding: Encoding = None) -> None:
        self.ahead.cancel(index, encoding)

    def collect(self, index: int, encoding: Encoding = None) -> Any:
        return self.ahead.collect(index, encoding)

    def render(self, index: int, scale: float = 1.0) -> np.ndarray:  # drawn at the figure's dpi on the workers
        rgba: np.ndarray = self.ahead.collect(index)
        return rgba

    def close(self) -> None:
        self.ahead.forget()
