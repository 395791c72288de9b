"""The Player widget: the page asks for frames, the kernel draws them.

Threads (see docs/player.md):

* the page's ``frame`` requests arrive on a kernel subshell thread (or the
  main thread where the frontend has no subshells) and are only queued;
* the Player's render thread (the core's serial worker) draws one frame at a
  time under the figure's lock and copies the pixels out;
* its encode thread compresses them (zlib releases the GIL, so encoding
  frame i overlaps drawing frame i+1) and posts the frame to the page.

Frames the page asked for ahead of need leave together (up to
:data:`BATCH_FRAMES` per message, held at most :data:`BATCH_HOLD_S`): every
comm message costs the kernel, the server and the browser a few ms whatever
it carries. A frame the page is waiting for (``urgent``), or the last one the
kernel has to draw, leaves at once.
"""

from __future__ import annotations

import base64
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import traitlets

from .. import _runtime
from .._core import BridgeCore, Send, error_payload
from .._protocol import Custom, is_valid_id, simple_error
from ..bridge import STATIC, BridgeWidget
from . import codecs
from .arrays import ArraySource
from .parallel import PureFigureSource
from .sources import FigureSource, FrameOutOfRange, FrameSource, from_animation

LOOP_MODES = ("loop", "once", "reflect")
#: At most this many frames leave in one message ...
BATCH_FRAMES = 8
#: ... and a frame asked for ahead of need waits at most this long (s) for company.
BATCH_HOLD_S = 0.05
#: Encode on a second thread, overlapping the next frame's draw (False: right after drawing, on the render thread).
ENCODE_IN_PARALLEL = True
#: Device pixels per CSS pixel a page may ask frames at.
SCALE_RANGE = (0.25, 8.0)


class ShownFrames:
    """The encoded frames a sequential source sent, by (index, codec, quality, scale), LRU within a byte bound.

    A stateful or random animation draws frame k differently after a replay, so a
    frame once sent is sent again from here, the same.
    """

    def __init__(self, max_bytes: int) -> None:
        from collections import OrderedDict

        self.max_bytes = max_bytes
        self.bytes = 0
        self._frames: OrderedDict[tuple[int, str, int, float], codecs.Encoded] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, str, int, float]) -> codecs.Encoded | None:
        with self._lock:
            frame = self._frames.get(key)
            if frame is not None:
                self._frames.move_to_end(key)
            return frame

    def put(self, key: tuple[int, str, int, float], frame: codecs.Encoded, *, replace: bool = True) -> None:
        with self._lock:
            if not replace and key in self._frames:
                return
            old = self._frames.pop(key, None)
            if old is not None:
                self.bytes -= len(old.data)
            self._frames[key] = frame
            self.bytes += len(frame.data)
            while self.bytes > self.max_bytes and len(self._frames) > 1:
                _, dropped = self._frames.popitem(last=False)
                self.bytes -= len(dropped.data)

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()
            self.bytes = 0

    def __len__(self) -> int:
        return len(self._frames)


class _Keep:
    """Frames a sequential source draws on its way to the one asked for: encoded and kept (never replacing one sent)."""

    def __init__(self, core: PlayerCore, codec: str, quality: int, scale: float) -> None:
        self.core, self.codec, self.quality, self.scale = core, codec, quality, scale

    def has(self, index: int) -> bool:
        return self.core.shown.get((index, self.codec, self.quality, self.scale)) is not None

    def put(self, index: int, rgba: np.ndarray) -> None:
        key = (index, self.codec, self.quality, self.scale)

        def encode() -> None:
            with contextlib.suppress(Exception):  # a frame that cannot be encoded is simply not kept
                self.core.shown.put(key, codecs.encode(rgba, self.codec, self.quality), replace=False)

        self.core._encoder.submit(encode)


def _scalable(source: Any) -> bool:
    """Whether ``source.render(index, scale)`` draws at ``scale`` device pixels per CSS pixel."""
    return bool(getattr(source, "scales", False))


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class PlayerCore(BridgeCore):
    """The bridge core plus the frame pipeline (``frame``, ``frame_cancel``, ``player_stats`` items)."""

    custom_types = frozenset({"frame", "frame_cancel", "player_stats"})

    def __init__(self, send: Send, *, name: str = "Player", **kwargs: Any) -> None:
        super().__init__(send, name=name, **kwargs)
        self.source: FrameSource | None = None
        self.on_length: Callable[[int], None] | None = None
        #: Told the frame the page painted last and the page's ``_frame_seq``, as its ``player_stats`` report
        #: them (every second while playing; the seq is None from a page that does not send it).
        self.on_page_frame: Callable[[int, int | None], None] | None = None
        self._encoder = _runtime.SerialWorker(f"{name}-encoder")
        self._pending: set[tuple[str, int]] = set()
        # Requests whose frame the source started ahead of need (sources with prefetch/cancel), by key.
        self._started: dict[tuple[str, int], tuple[int, tuple[str, int]]] = {}
        self._to_draw = 0  # requests queued or drawing on the render thread
        self._held = 0  # frames posted to the outbox since the last flush this core asked for
        self._pending_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self.frames_rendered = 0
        self.frames_cached = 0
        self.frames_requested = 0
        self.errors = 0
        self._render_s = 0.0
        self._encode_s = 0.0
        self._bytes = 0
        self.page_stats: dict[str, Any] = {}
        self.shown = ShownFrames(128 << 20)

    # --------------------------------------------------------------- page
    def handle_custom(self, item: Custom) -> None:
        data = item.data
        if item.type == "frame":
            self._request(item.view, data)
        elif item.type == "frame_cancel":
            ids = data.get("ids")
            if isinstance(ids, list):
                dropped = []
                with self._pending_lock:
                    for ident in ids:
                        if is_valid_id(ident):
                            self._pending.discard((item.view, ident))
                            started = self._started.pop((item.view, ident), None)
                            if started is not None:
                                dropped.append(started)
                self._cancel_started(dropped)
        elif item.type == "player_stats":
            stats = data.get("stats")
            if isinstance(stats, dict):
                self.page_stats = {
                    k: v for k, v in stats.items() if isinstance(k, str) and isinstance(v, (int, float, str))
                }
                shown = _int(stats.get("frame"))
                if shown is not None and shown >= 0 and self.on_page_frame is not None:
                    self.on_page_frame(shown, _int(stats.get("seq")))

    def _request(self, view: str, data: dict[str, Any]) -> None:
        ident = data.get("id") if is_valid_id(data.get("id")) else None  # as for every request: [0, 2**53)
        index, gen = _int(data.get("index")), _int(data.get("gen", 0))
        codec, quality = data.get("codec", "auto"), _int(data.get("quality", 85))
        urgent = data.get("urgent", False) is True
        scale = data.get("scale", 1)
        if not (
            isinstance(scale, (int, float))
            and not isinstance(scale, bool)
            and SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]
        ):
            scale = None
        if (
            ident is None or index is None or gen is None or quality is None
            or codec not in codecs.CODECS or scale is None
        ):  # fmt: skip
            self.post(
                {
                    "type": "protocol_error",
                    "view": view,
                    "error": simple_error(
                        "ProtocolError",
                        "a frame request needs an id in [0, 2**53), integer "
                        f"index, gen and quality, a codec in {codecs.CODECS} and a "
                        f"scale in [{SCALE_RANGE[0]}, {SCALE_RANGE[1]}]",
                    ),
                }
            )
            return
        key = (view, ident)
        prefetch = getattr(self.source, "prefetch", None)
        with self._pending_lock:
            self._pending.add(key)
            if prefetch is not None:
                self._started[key] = (index, (codec, quality))
        with self._stats_lock:
            self.frames_requested += 1
            self._to_draw += 1
        if prefetch is not None:
            prefetch(index, (codec, quality))  # drawing and encoding start now, in parallel; _render collects in order
        self._worker.submit(lambda: self._render(view, ident, index, gen, codec, quality, urgent, float(scale)))

    def _cancel_started(self, started: list[tuple[int, tuple[str, int]]]) -> None:
        cancel = getattr(self.source, "cancel", None)
        if cancel is not None:
            for index, encoding in started:
                cancel(index, encoding)

    def _collecting(self, key: tuple[str, int]) -> bool:
        """The render thread takes up request ``key``: a frame started for it is now its to collect or drop.

        Returns whether the request is still wanted; the caller must collect the frame when it is
        (deciding again later could drop a request whose started frame nobody then collects or cancels).
        """
        with self._pending_lock:
            started = self._started.pop(key, None)
            wanted = key in self._pending and key[0] in self.views and not self.closed
        if started is not None and not wanted:
            self._cancel_started([started])
        return wanted

    def _wanted(self, key: tuple[str, int]) -> bool:
        with self._pending_lock:
            return key in self._pending and key[0] in self.views and not self.closed

    def _drop(self, key: tuple[str, int]) -> None:
        with self._pending_lock:
            self._pending.discard(key)

    # ------------------------------------------------------------ pipeline
    def _drawn(self) -> None:
        with self._stats_lock:
            self._to_draw -= 1

    def _render(
        self, view: str, ident: int, index: int, gen: int, codec: str, quality: int, urgent: bool, scale: float = 1.0
    ) -> None:
        key = (view, ident)
        if not self._collecting(key) or self.source is None:
            self._drop(key)
            self._drawn()
            self._encoder.submit(self._flush_if_nothing_to_draw)
            return
        if not _scalable(self.source):
            scale = 1.0
        sequential = not getattr(self.source, "pure", True)
        cached = self.shown.get((index, codec, quality, scale)) if sequential else None
        if cached is not None:
            self._drawn()
            self._encoder.submit(lambda: self._send(key, index, gen, cached, 0.0, 0.0, urgent, scale, False))
            return
        length_before = self.source.length
        start = time.perf_counter()
        try:
            collect = getattr(self.source, "collect", None)
            with self._worker.interruptible():
                if collect is not None:
                    # A source that works ahead hands over the frame already encoded (see parallel.Ahead).
                    rgba = collect(index, (codec, quality))
                elif sequential and _scalable(self.source):
                    keep = _Keep(self, codec, quality, scale)
                    rgba = self.source.render(index, scale, keep)  # type: ignore[call-arg]
                elif scale != 1.0:
                    rgba = self.source.render(index, scale)  # type: ignore[call-arg]
                else:
                    rgba = self.source.render(index)
        except BaseException as exc:  # noqa: BLE001 - the page shows it; the kernel goes on
            self._drawn()
            self._drop(key)
            with self._stats_lock:
                self.errors += 1
            length = self.source.length
            self.post(
                {"type": "frame_error", "view": view, "id": ident, "index": index, "gen": gen,
                 "error": error_payload(exc), "length": length}
            )  # fmt: skip
            if isinstance(exc, FrameOutOfRange) and length is not None and length != length_before and self.on_length:
                self.on_length(length)
            return
        rendered = time.perf_counter()
        self._drawn()

        def encode() -> None:
            self._encode(key, index, gen, codec, quality, rgba, rendered - start, urgent, scale, sequential)

        if ENCODE_IN_PARALLEL:
            self._encoder.submit(encode)
        else:
            encode()

    def _flush_if_nothing_to_draw(self) -> None:
        """On the thread that encodes: send the held frames when no more are coming soon."""
        with self._stats_lock:
            idle = self._to_draw == 0
        if idle and self._held and self._encoder.idle():
            self._held = 0
            self.outbox.flush()

    def _encode(
        self,
        key: tuple[str, int],
        index: int,
        gen: int,
        codec: str,
        quality: int,
        rgba: np.ndarray | codecs.Encoded,
        render_s: float,
        urgent: bool,
        scale: float = 1.0,
        keep: bool = False,
    ) -> None:
        if not self._wanted(key) and not keep:
            self._flush_if_nothing_to_draw()
            return
        start = time.perf_counter()
        try:
            encoded = rgba if isinstance(rgba, codecs.Encoded) else codecs.encode(rgba, codec, quality)
        except Exception as exc:  # noqa: BLE001 - e.g. Pillow missing for png/jpeg
            self._drop(key)
            self.post({"type": "frame_error", "view": key[0], "id": key[1], "index": index, "gen": gen,
                       "error": error_payload(exc)})  # fmt: skip
            return
        encode_s = time.perf_counter() - start
        if keep:  # a sequential source's frame, once drawn, is the one sent for this index from now on
            self.shown.put((index, codec, quality, scale), encoded)
        self._send(key, index, gen, encoded, render_s, encode_s, urgent, scale, True)

    def _send(
        self,
        key: tuple[str, int],
        index: int,
        gen: int,
        encoded: codecs.Encoded,
        render_s: float,
        encode_s: float,
        urgent: bool,
        scale: float,
        drawn: bool,
    ) -> None:
        if not self._wanted(key):
            self._flush_if_nothing_to_draw()
            return
        self._drop(key)
        with self._stats_lock:
            if drawn:
                self.frames_rendered += 1
                self._render_s += render_s
                self._encode_s += encode_s
                self._bytes += len(encoded.data)
            else:
                self.frames_cached += 1
        message = {
            "type": "frame",
            "view": key[0],
            "id": key[1],
            "index": index,
            "gen": gen,
            "codec": encoded.codec,
            "width": encoded.width,
            "height": encoded.height,
            "scale": scale,
            "length": self.source.length if self.source is not None else None,
        }
        labeller = getattr(self.source, "label", None)
        label = labeller(index) if labeller is not None else None
        if label is not None:
            message["label"] = label  # what the counter shows besides the index (an array's coordinate)
        self.post(
            message,
            [memoryview(encoded.data)],
            delay=0.0 if urgent else BATCH_HOLD_S,
        )
        self._held += 1
        if urgent or self._held >= BATCH_FRAMES:
            self._held = 0
            self.outbox.flush()
        else:
            self._flush_if_nothing_to_draw()

    def stats(self) -> dict[str, Any]:
        with self._stats_lock:
            n = self.frames_rendered
            out: dict[str, Any] = {
                "frames_rendered": n,
                "frames_from_kernel_cache": self.frames_cached,
                "frames_requested": self.frames_requested,
                "errors": self.errors,
                "render_ms": 1000 * self._render_s / n if n else 0.0,
                "encode_ms": 1000 * self._encode_s / n if n else 0.0,
                "bytes_per_frame": self._bytes / n if n else 0.0,
            }
        page = dict(self.page_stats)
        out["displayed_fps"] = float(page.pop("displayed_fps", 0.0))
        out["dropped"] = int(page.pop("dropped", 0))
        out.update({f"page_{k}": v for k, v in page.items()})
        return out

    def close(self) -> None:
        super().close()
        self._encoder.stop()
        close_source = getattr(self.source, "close", None)
        if close_source is not None:
            close_source()


class Player(BridgeWidget):
    """Live, on-demand animation: the kernel draws frame i only when the page asks.

    ::

        Player(anim, fps=None, pure=None) # any matplotlib Animation; fps None = 1000 / its interval
        Player(fig, func, frames=100, init_func=None, fargs=None, fps=30, blit=False, pure=False)
        Player(array, fps=30, cmap=None, vmin=None, vmax=None, norm=None, dim=None,
               colorbar=False, executor=None)
                                          # any array-like (T, H, W) or (T, H, W, 3|4): numpy, memmap,
                                          # zarr, h5py, dask, xarray; read frame by frame
        Player(fig, func, frames=100, pure=True, executor=ProcessPoolExecutor(2))
                                          # a pure frame function drawn on several processes

    Frame ``k`` is what matplotlib shows at frame ``k`` of the same animation
    (``Animation.save`` / ``to_jshtml``): the Player calls ``init_func`` (or
    the frame function with the first value) and the frame function in
    matplotlib's order. ``Player(fig, func, ...)`` plays
    ``FuncAnimation(fig, func, ...)``.

    ``pure``: False (the default for FuncAnimation and frame functions) plays
    sequentially: frame ``k`` is the figure after frames ``0..k`` in order (a
    seek ahead applies the frames in between without drawing them, a seek
    back replays from ``init_func``), and a frame once sent is sent again the
    same. True declares that the frame function draws frame ``k`` from its
    value alone: frames are drawn in any order, one call each (the default
    for ArtistAnimation).

    The figure is closed in pyplot (so it is not shown again as a static
    image) and drawn through the Player's own Agg canvas, under
    :func:`ipybridge.player.figure_lock`, at the page's devicePixelRatio;
    while a frame is drawn, pyplot's current figure in that thread is the
    animation's. ``fps=0`` plays as fast as frames arrive. The displayed
    output also carries an ``image/png`` of the current frame for viewers
    without a kernel.

    Arrays (see :mod:`ipybridge.player.arrays`): only the frames the page asks
    for are read. Scalar frames are coloured as ``imshow(frame, cmap=cmap,
    vmin=vmin, vmax=vmax, norm=norm)`` colours them; limits not given come from a
    few frames sampled evenly over the array (fix them with ``vmin``/``vmax``,
    ``norm`` or :meth:`set_clim`). ``colorbar=True`` shows a colour bar. For an
    xarray DataArray, ``dim`` is the animated dimension (default: the first), the
    counter shows its coordinate and the title the variable's name and units.

    ``executor``: a :class:`concurrent.futures.Executor` or a dask
    ``distributed.Client`` that makes frames in parallel: array frames, and frames
    of a frame function declared ``pure=True`` (frame k depends only on k); see
    :mod:`ipybridge.player.parallel`. Frames reach the page in the order it asked.
    """

    core_class = PlayerCore
    _esm = STATIC / "player.js"
    _css = STATIC / "player.css"

    frame = traitlets.Int(0, help="index of the current frame").tag(sync=True)
    frames = traitlets.Int(None, allow_none=True, help="number of frames; None = endless or unknown").tag(sync=True)
    playing = traitlets.Bool(False).tag(sync=True)
    direction = traitlets.Int(1, help="1 forwards, -1 backwards").tag(sync=True)
    fps = traitlets.Float(30.0, help="target frames per second; 0 = as fast as frames arrive").tag(sync=True)
    loop = traitlets.Enum(LOOP_MODES, "loop").tag(sync=True)
    codec = traitlets.Enum(codecs.CODECS, "auto").tag(sync=True)
    quality = traitlets.Int(85, help="JPEG quality, 1-100").tag(sync=True)
    cache_mb = traitlets.Float(128.0, help="bound of the page's frame cache, in MB").tag(sync=True)
    title = traitlets.Unicode("", help="shown above the frames (xarray: variable and units)").tag(sync=True)
    _colorbar = traitlets.Bytes(b"", help="PNG of the colour bar, or empty").tag(sync=True)
    _base_fps = traitlets.Float(30.0).tag(sync=True)
    #: Python's seeks (``frame`` set from Python, not from the page) so far, synced after each one: the page
    #: sends it back in its stats, so a report made before the page saw a seek is not followed.
    _frame_seq = traitlets.Int(0).tag(sync=True)
    _generation = traitlets.Int(0).tag(sync=True)
    #: The frame drawn for the output's static picture (PNG), sent with the widget's state so that a
    #: view paints it at once instead of asking the kernel to draw it again (see _repr_mimebundle_).
    _poster = traitlets.Bytes(b"").tag(sync=True)
    _poster_frame = traitlets.Int(-1).tag(sync=True)
    _poster_gen = traitlets.Int(0).tag(sync=True)
    _poster_label = traitlets.Unicode("", help="the counter's label of the poster frame (an array's coordinate)").tag(
        sync=True
    )
    #: The poster's codec ("png", or an array's "indexed": cheaper for the page) and size in pixels.
    _poster_codec = traitlets.Unicode("png").tag(sync=True)
    _poster_size = traitlets.List(traitlets.Int(), [0, 0]).tag(sync=True)
    #: The poster serves a page at any devicePixelRatio (an array's frames have one pixel per data pixel).
    _poster_any_scale = traitlets.Bool(False).tag(sync=True)

    def __init__(
        self,
        source: Any,
        func: Callable[..., Any] | None = None,
        frames: Any = None,
        init_func: Callable[[], Any] | None = None,
        fargs: Sequence[Any] | None = None,
        fps: float | None = None,
        *,
        blit: bool = False,
        loop: str | None = None,
        codec: str = "auto",
        quality: int = 85,
        autoplay: bool = False,
        cache_mb: float = 128.0,
        cmap: Any = None,
        vmin: float | None = None,
        vmax: float | None = None,
        norm: Any = None,
        dim: str | None = None,
        colorbar: bool = False,
        executor: Any = None,
        pure: bool | None = None,
        **kwargs: Any,
    ) -> None:
        self._state_lock = threading.RLock()  # before the comm opens: see set_state
        colour = {"cmap": cmap, "vmin": vmin, "vmax": vmax, "norm": norm, "dim": dim}
        frame_source, default_fps, default_loop = _make_source(
            source, func, frames, init_func, fargs, blit, colour=colour, executor=executor, pure=pure
        )
        if colorbar and not isinstance(frame_source, ArraySource):
            raise TypeError("colorbar=True goes with an array of scalar data; a figure draws its own colorbar")
        chosen_fps = float(default_fps if fps is None else fps)
        # Everything the page needs is in the state the comm opens with: no update message follows.
        known: dict[str, Any] = {"frames": frame_source.length}
        if isinstance(frame_source, ArraySource):
            known["title"] = frame_source.title or ""
            if colorbar:
                known["_colorbar"] = colorbar_png(frame_source)
        super().__init__(
            fps=chosen_fps,
            _base_fps=chosen_fps if chosen_fps > 0 else 30.0,
            loop=loop or default_loop,
            codec=codec,
            quality=quality,
            cache_mb=cache_mb,
            **{**known, **kwargs},
        )
        self._want_colorbar = bool(colorbar)
        core = self._player_core
        core.source = frame_source
        core.shown.max_bytes = int(max(cache_mb, 1.0) * (1 << 20))
        core.on_length = self._set_length
        core.on_page_frame = self._follow_page_frame
        self._source = frame_source
        if autoplay:
            self.play()

    @property
    def _player_core(self) -> PlayerCore:
        core = self._core
        assert isinstance(core, PlayerCore)
        return core

    @property
    def source(self) -> FrameSource:
        """Where frames come from (a ``FigureSource``, an :class:`~ipybridge.player.arrays.ArraySource`, ...)."""
        return self._source

    def _set_length(self, length: int) -> None:
        self.frames = length

    #: Held while the page's trait changes are applied (ipywidgets' ``set_state``), and while the kernel's
    #: ``frame`` follows the page's painted frame: both use ipywidgets' property lock, which is one dict.
    _state_lock: threading.RLock  # set first in __init__, before the comm opens

    def set_state(self, sync_data: Any) -> None:
        with self._state_lock:
            super().set_state(sync_data)

    #: Python's seeks counted as they are validated, before ``frame`` changes (``_frame_seq`` follows it once
    #: the change is sent): a page report read meanwhile on another thread is already seen as older.
    _seeks = 0

    @traitlets.validate("frame")
    def _valid_frame(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if value != self.frame and "frame" not in self._property_lock:  # Python's own seek
            self._seeks += 1
        return value

    @traitlets.observe("frame")
    def _sent_seek(self, change: Any) -> None:
        if self._frame_seq != self._seeks:
            self._frame_seq = self._seeks  # after the frame: the page reports this seq once it has the frame

    def _follow_page_frame(self, shown: int, seq: int | None = None) -> None:
        """While playing, ``frame`` follows the frame the page painted (its stats, every second), without a
        message back: the page plays over the direct transport without syncing ``frame`` (docs/player.md),
        yet ``p.frame`` and ``observe(..., "frame")`` follow playback within a second, as on the comm.

        Skipped (the next report comes a second later) while the page's own changes are being applied:
        this runs on the thread that reads the page's messages, which must never wait.
        """
        lock = self._state_lock
        if not lock.acquire(blocking=False):
            return
        try:
            if not self.playing or self.frame == shown or (self.frames is not None and shown >= self.frames):
                return
            if seq is not None and seq != self._seeks:
                return  # painted before the page saw Python's last seek: the next report will be after it
            with self._lock_property(frame=shown):  # the page painted it: nothing to send back
                self.frame = shown
        finally:
            lock.release()

    @traitlets.validate("direction")
    def _valid_direction(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if value not in (1, -1):
            raise traitlets.TraitError(f"direction must be 1 or -1, not {value}")
        return value

    @traitlets.validate("fps")
    def _valid_fps(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if not value >= 0 or value == float("inf"):
            raise traitlets.TraitError(f"fps must be a finite number >= 0 (0 = as fast as possible), not {value}")
        return value

    @traitlets.validate("codec")
    def _valid_codec(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if value == "jpeg":
            try:
                codecs.pillow()
            except ModuleNotFoundError as exc:
                raise traitlets.TraitError(str(exc)) from exc
        return value

    @traitlets.validate("quality")
    def _valid_quality(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if not 1 <= value <= 100:
            raise traitlets.TraitError(f"quality must be in 1..100, not {value}")
        return value

    # ------------------------------------------------------------ methods
    def play(self) -> None:
        """Play forwards from the current frame."""
        with self.hold_sync():
            self.direction = 1
            self.playing = True

    def pause(self) -> None:
        self.playing = False

    def reverse(self) -> None:
        """Play backwards from the current frame."""
        with self.hold_sync():
            self.direction = -1
            self.playing = True

    def step(self, n: int = 1) -> None:
        """Pause and move ``n`` frames (negative: back); wraps in loop mode, else stops at the ends."""
        target = self.frame + int(n)
        if self.frames is not None and self.frames > 0:
            if self.loop == "loop":
                target %= self.frames
            else:
                target = min(max(target, 0), self.frames - 1)
        else:
            target = max(target, 0)
        with self.hold_sync():
            self.playing = False
            self.frame = target

    def seek(self, i: int) -> None:
        """Show frame ``i``; an index out of range shows an error in the player and pauses."""
        self.frame = int(i)

    def set_clim(self, vmin: float | None = None, vmax: float | None = None) -> None:
        """New colour limits for an array of scalar data (as ``imshow``'s ``set_clim``); frames are redrawn."""
        if not isinstance(self._source, ArraySource):
            raise TypeError("set_clim applies to a Player of an array")
        self._source.set_clim(vmin, vmax)
        if self._want_colorbar:
            self._colorbar = colorbar_png(self._source)
        self.invalidate()

    def invalidate(self) -> None:
        """Forget every frame drawn so far (after changing what the frames depend on).

        The page's and the kernel's caches are emptied, and a sequential
        animation starts again from ``init_func`` at the next frame.
        """
        core = self._player_core
        core.shown.clear()
        reset = getattr(self._source, "reset", None)
        if reset is not None:
            reset()
        self._generation += 1

    @property
    def stats(self) -> dict[str, Any]:
        """``frames_rendered``, ``render_ms``, ``encode_ms`` (averages), ``bytes_per_frame``, and from
        the page (its latest view, reported every second while playing and on pause):

        ``displayed_fps``: frames that reached the screen per second, over the last second (at most one
        per display refresh: a refresh that showed a newly painted frame counts once, as the readout
        does); ``dropped``: frames painted on the canvas and replaced before a refresh showed them;
        ``page_drawn_fps``, ``page_painted`` (frames painted), ``page_displayed``, cache counters, and
        ``page_frame``: the frame painted last (over the direct transport the page does not sync ``frame``
        while it plays: the kernel's ``frame`` follows this report instead, within a second).
        """
        return self._player_core.stats()

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[Any, Any], dict[Any, Any]] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        index = self.frame
        if self.frames is not None:
            index = min(max(index, 0), max(self.frames - 1, 0))
        try:
            collect = getattr(self._source, "collect", None)
            poster: codecs.Encoded | None = None
            if isinstance(self._source, ArraySource):  # a palette PNG, and the page's own codec for the view
                png, poster = self._source.poster(index)
            elif collect is not None:
                png = collect(index, ("png", 85)).data
            else:
                png = codecs.encode(self._source.render(index), "png").data
            bundle[0]["image/png"] = base64.b64encode(png).decode("ascii")
            # The same picture is the view's first frame: it reaches the page with the widget's state
            # (an update sent before this display message), so the first paint needs no round trip.
            with self.hold_sync():
                self._poster_frame = index
                self._poster_gen = self._generation
                labeller = getattr(self._source, "label", None)
                self._poster_label = (labeller(index) if labeller is not None else None) or ""
                self._poster_codec = poster.codec if poster is not None else "png"
                self._poster_size = [poster.width, poster.height] if poster is not None else [0, 0]
                self._poster_any_scale = poster is not None
                self._poster = poster.data if poster is not None else png
        except Exception:  # noqa: BLE001, S110 - no static picture is better than no widget
            pass
        return bundle


def _make_source(
    source: Any,
    func: Callable[..., Any] | None,
    frames: Any,
    init_func: Callable[[], Any] | None,
    fargs: Sequence[Any] | None,
    blit: bool,
    pure: bool | None = None,
    *,
    colour: dict[str, Any] | None = None,
    executor: Any = None,
) -> tuple[FrameSource, float, str]:
    import sys

    colour = {k: v for k, v in (colour or {}).items() if v is not None}

    # matplotlib is imported only if the caller has it loaded: an RGB(A) array needs none.
    animation = sys.modules.get("matplotlib.animation")
    figure = sys.modules.get("matplotlib.figure")
    if animation is not None and isinstance(source, animation.Animation):
        if func is not None:
            raise TypeError("Player(anim) takes no frame function: the animation has one")
        _no_colour(colour, "an animation")
        anim_source, fps = from_animation(source, pure=pure)
        if executor is not None:
            return _parallel(anim_source, executor), fps, "loop" if getattr(source, "_repeat", True) else "once"
        return anim_source, fps, "loop" if getattr(source, "_repeat", True) else "once"
    if figure is not None and isinstance(source, figure.Figure):
        if func is None:
            raise TypeError("Player(fig, func, frames=...) needs a frame function func(frame, *fargs)")
        _no_colour(colour, "a figure")
        fig_source: FrameSource = FigureSource(source, func, frames, init_func, fargs, blit=blit, pure=bool(pure))
        if executor is not None:
            return _parallel(fig_source, executor), 30.0, "loop"
        return fig_source, 30.0, "loop"
    if hasattr(source, "shape") and hasattr(source, "dtype"):
        if func is not None:
            raise TypeError("Player(array) takes no frame function")
        if pure is not None:
            raise TypeError("pure= is for frame functions and animations; an array's frames are pure")
        return ArraySource(source, executor=executor, **colour), 30.0, "loop"
    if figure is None:
        try:
            import matplotlib  # noqa: F401 - only to tell a missing extra from a wrong argument
        except ImportError as exc:
            raise codecs.missing_extra("Player(fig, func, frames=...) and Player(anim)", "matplotlib") from exc
    raise TypeError(
        "Player plays a matplotlib Animation, Player(fig, func, frames=...), or an array-like "
        f"(T, H, W[, 3|4]) with shape and dtype (numpy, zarr, h5py, dask, xarray); not {type(source).__name__}"
    )


def _no_colour(colour: dict[str, Any], what: str) -> None:
    if colour:
        raise TypeError(f"{', '.join(colour)} colour an array's frames; {what} draws its own colours")


def _parallel(source: Any, executor: Any) -> FrameSource:
    if not hasattr(getattr(source, "anim", None), "_func"):
        raise TypeError("executor= draws the frames of a frame function (FuncAnimation or Player(fig, func, ...))")
    if not getattr(source, "pure", False):
        raise TypeError(
            "executor= draws frames of a frame function on other processes only when it is declared pure "
            "(frame k depends only on k): Player(fig, func, frames=..., pure=True, executor=...)"
        )
    return PureFigureSource(source, executor)


def colorbar_png(source: ArraySource) -> bytes:
    """A PNG of a vertical colour bar for ``source``'s colour map and norm, as tall as its frames (at least 160 px)."""
    if source.rgb:
        return b""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.figure import Figure

    height = max(int(source.shape[1]), 160)
    dpi = 100
    fig = Figure(figsize=(1.1, height / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.08, 12 / height, 0.2, 1 - 24 / height))
    fig.colorbar(ScalarMappable(norm=source.mapper.norm, cmap=source.mapper.cmap), cax=ax)
    if source.title:
        ax.set_ylabel(source.title)
    import io

    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=dpi, transparent=True)
    return out.getvalue()
