"""Frame sources: something that turns a frame index into an RGBA image.

No widget and no kernel here; each source is driven by the Player's render
thread, one frame at a time, in whatever order the page asks for.

* :class:`FigureSource` draws a matplotlib figure through its own Agg canvas,
  calling ``func(frame_value, *fargs)`` (FuncAnimation's contract), with
  ``init_func`` run once before the first frame and, with ``blit=True``, only
  the returned artists drawn over a cached background.
* :class:`VideoSource` converts one frame of an ``(N, H, W)`` or
  ``(N, H, W, 3|4)`` array.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np

_locks: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def figure_lock(fig: Any) -> threading.RLock:
    """The lock every Player holds while it draws ``fig``.

    Hold it in a cell that changes a figure a Player is playing, so a frame is
    never drawn from a half-changed figure: ``with figure_lock(fig): ...``.
    """
    with _locks_guard:
        lock = _locks.get(fig)
        if lock is None:
            lock = _locks[fig] = threading.RLock()
        return lock


class FrameOutOfRange(IndexError):  # noqa: N818 - reads as what it is; an IndexError
    """A frame index outside the animation."""


class FrameSource(Protocol):
    @property
    def length(self) -> int | None:
        """Number of frames, or None when unknown or endless."""
        ...

    def render(self, index: int) -> np.ndarray:
        """RGBA uint8 image ``(H, W, 4)`` of frame ``index`` (a new array, the caller's to keep)."""
        ...


def _out_of_range(index: int, length: int | None) -> FrameOutOfRange:
    if length is None:
        return FrameOutOfRange(f"frame {index} is out of range: frame indexes start at 0")
    if length == 0:
        return FrameOutOfRange(f"frame {index} is out of range: this animation has no frames")
    return FrameOutOfRange(f"frame {index} is out of range: this animation has {length} frames (0..{length - 1})")


#: How far past the values seen so far a request may advance an iterable's iterator. Without
#: a bound, one request for frame 10**30 of an endless generator would occupy the render
#: thread and grow memory forever.
MAX_LOOKAHEAD = 100_000


class FrameValues:
    """Random access to the values handed to the frame function.

    ``frames`` as in FuncAnimation: an int ``n`` (values ``0..n-1``), a
    sequence, an iterable or generator (values kept as they are first
    needed, so earlier frames can be revisited), a callable returning an
    iterator, or None (endless: ``0, 1, 2, ...``).
    """

    def __init__(self, frames: Any, length_hint: int | None = None) -> None:
        self._seq: Sequence[Any] | np.ndarray | None = None
        self._iter: Iterator[Any] | None = None
        self._seen: list[Any] = []
        self.endless = False
        self.length: int | None = None
        if frames is None:
            self.endless = True
        elif isinstance(frames, (int, np.integer)) and not isinstance(frames, bool):
            if frames < 0:
                raise ValueError(f"frames must be >= 0, not {frames}")
            self._seq = range(int(frames))
        elif isinstance(frames, Sequence) or (isinstance(frames, np.ndarray) and frames.ndim >= 1):
            self._seq = frames
        elif callable(frames):
            self._iter = iter(frames())
        elif isinstance(frames, Iterable):
            self._iter = iter(frames)
        else:
            raise TypeError(f"frames must be an int, a sequence, an iterable, a callable or None, not {frames!r}")
        if self._seq is not None:
            self.length = len(self._seq)
        elif length_hint is not None and not self.endless:
            self.length = length_hint
        self._guard = threading.Lock()

    def __getitem__(self, index: int) -> Any:
        if index < 0 or (self.length is not None and index >= self.length):
            raise _out_of_range(index, self.length)
        if self.endless:
            return index
        if self._seq is not None:
            return self._seq[index]
        with self._guard:
            if index - len(self._seen) >= MAX_LOOKAHEAD:
                raise FrameOutOfRange(
                    f"frame {index} is out of reach: this animation's frames come from an iterator, "
                    f"{len(self._seen)} produced so far; a request may go at most {MAX_LOOKAHEAD} beyond that"
                )
            while len(self._seen) <= index:
                assert self._iter is not None
                try:
                    self._seen.append(next(self._iter))
                except StopIteration:
                    self.length = len(self._seen)
                    raise _out_of_range(index, self.length) from None
            return self._seen[index]


def _as_artists(value: Any, what: str) -> list[Any]:
    from matplotlib.artist import Artist

    if value is None:
        raise RuntimeError(f"with blit=True, {what} must return a sequence of the artists it changed")
    try:
        artists = list(value)
    except TypeError:
        raise RuntimeError(f"with blit=True, {what} must return a sequence of artists, not {value!r}") from None
    for artist in artists:
        if not isinstance(artist, Artist):
            raise RuntimeError(f"with blit=True, {what} must return artists; got {artist!r}")
    return sorted(artists, key=lambda a: a.get_zorder())


class FigureSource:
    """Frames of a matplotlib figure drawn by ``func`` through a private Agg canvas."""

    def __init__(
        self,
        fig: Any,
        func: Callable[..., Any],
        frames: Any = None,
        init_func: Callable[[], Any] | None = None,
        fargs: Sequence[Any] | None = None,
        *,
        blit: bool = False,
        length_hint: int | None = None,
    ) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        if not callable(func):
            raise TypeError(f"func must be callable, not {func!r}")
        self.fig = fig
        self.func = func
        self.init_func = init_func
        self.fargs = tuple(fargs) if fargs is not None else ()
        self.blit = bool(blit)
        self.values = FrameValues(frames, length_hint)
        self.lock = figure_lock(fig)
        _close_in_pyplot(fig)
        # Our own canvas: whatever backend made the figure (inline, ipympl),
        # drawing goes through Agg from now on, and closing it in pyplot does
        # not stop the Player.
        self.canvas: Any = FigureCanvasAgg(fig)
        self._initialized = False
        self._background: Any = None
        self._background_key: Any = None
        self._animated: list[Any] = []

    @property
    def length(self) -> int | None:
        return self.values.length

    def render(self, index: int) -> np.ndarray:
        value = self.values[index]  # out of range raises before anything is drawn
        with self.lock:
            if self.blit:
                self._render_blit(value)
            else:
                if not self._initialized:
                    self._initialized = True
                    if self.init_func is not None:
                        self.init_func()
                self.func(value, *self.fargs)
                self.canvas.draw()
            return np.array(self.canvas.buffer_rgba(), dtype=np.uint8, copy=True)

    # ---------------------------------------------------------------- blit
    def _render_blit(self, value: Any) -> None:
        if not self._initialized:
            self._initialized = True
            if self.init_func is not None:
                first = _as_artists(self.init_func(), "init_func")
            else:
                first = _as_artists(self.func(self.values[0], *self.fargs), "the frame function")
            self._animate(first)
        artists = _as_artists(self.func(value, *self.fargs), "the frame function")
        new = [a for a in artists if not a.get_animated()]
        if new:  # artists seen for the first time must leave the background
            self._animate(new)
        if self._background is None or self._background_key != self._view_key():
            self._draw_background()
        self.canvas.restore_region(self._background)
        for artist in artists:
            if artist.axes is not None:
                artist.axes.draw_artist(artist)
            else:
                self.fig.draw_artist(artist)

    def _animate(self, artists: Iterable[Any]) -> None:
        for artist in artists:
            artist.set_animated(True)
            if artist not in self._animated:
                self._animated.append(artist)
        self._background = None

    def _view_key(self) -> Any:
        axes = {a.axes for a in self._animated if a.axes is not None}
        views = tuple(sorted((id(ax), repr(ax._get_view())) for ax in axes))
        return (self.canvas.get_width_height(), self.fig.dpi, views)

    def _draw_background(self) -> None:
        self.canvas.draw()  # animated artists are left out of a full draw
        self._background = self.canvas.copy_from_bbox(self.fig.bbox)
        self._background_key = self._view_key()


def _close_in_pyplot(fig: Any) -> None:
    """Remove ``fig`` from pyplot so the inline backend does not show it again."""
    import sys

    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    try:
        if fig in [m.canvas.figure for m in plt._pylab_helpers.Gcf.get_all_fig_managers()]:
            plt.close(fig)
    except Exception:  # noqa: BLE001, S110 - a figure pyplot cannot close is simply not in pyplot
        pass


def from_animation(animation: Any) -> tuple[FigureSource, float]:
    """A :class:`FigureSource` for a FuncAnimation, and its fps (1000 / interval)."""
    from matplotlib.animation import FuncAnimation

    if not isinstance(animation, FuncAnimation):
        raise TypeError(
            f"Player plays a matplotlib FuncAnimation, not {type(animation).__name__}; "
            "or use Player(fig, func, frames=...) or Player(video_array)"
        )
    anim: Any = animation  # FuncAnimation's private attributes are how it can be read
    fig = anim._fig
    # Stop matplotlib's own playback machinery: its timer, and the draw-event
    # hook that would start it on our first draw.
    anim._draw_was_started = True  # no "Animation was deleted without rendering" warning
    first_draw = getattr(anim, "_first_draw_id", None)
    if first_draw is not None:
        fig.canvas.mpl_disconnect(first_draw)
    source = getattr(anim, "event_source", None)
    if source is not None:
        with contextlib.suppress(Exception):  # some backends' timers cannot stop before they start
            source.stop()
    if anim._iter_gen is itertools.count:
        frames: Any = None
        hint = None
    else:
        frames = anim._iter_gen
        hint = anim._save_count
    source_obj = FigureSource(
        fig, anim._func, frames, anim._init_func, anim._args, blit=bool(anim._blit), length_hint=hint
    )
    interval = float(getattr(anim, "_interval", 200) or 200)
    return source_obj, 1000.0 / interval


class VideoSource:
    """Frames of a numpy video ``(N, H, W)`` or ``(N, H, W, 3|4)``, uint8 or float in [0, 1]."""

    def __init__(self, video: Any) -> None:
        array = np.asarray(video)
        if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[3] not in (3, 4)):
            raise ValueError(f"a video is an array (N, H, W) or (N, H, W, 3|4); got shape {array.shape}")
        if array.dtype.kind not in "uifb":
            raise TypeError(f"a video must hold numbers (uint8, or floats in [0, 1]), not {array.dtype}")
        self.array = array
        self.length: int | None = int(array.shape[0])

    def render(self, index: int) -> np.ndarray:
        if index < 0 or self.length is None or index >= self.length:
            raise _out_of_range(index, self.length)
        return to_rgba(self.array[index])


def to_rgba(frame: np.ndarray) -> np.ndarray:
    """One video frame ``(H, W)`` / ``(H, W, 3|4)`` as RGBA uint8 ``(H, W, 4)``."""
    if frame.dtype.kind == "f":
        frame = np.clip(np.nan_to_num(frame, nan=0.0), 0.0, 1.0) * 255.0 + 0.5
        frame = frame.astype(np.uint8)
    elif frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    height, width = frame.shape[:2]
    out = np.empty((height, width, 4), dtype=np.uint8)
    if frame.ndim == 2:
        out[..., :3] = frame[..., None]
        out[..., 3] = 255
    elif frame.shape[2] == 3:
        out[..., :3] = frame
        out[..., 3] = 255
    else:
        out[...] = frame
    return out
