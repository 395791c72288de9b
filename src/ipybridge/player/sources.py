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
import operator
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

    def render(self, index: int, scale: float = 1.0) -> np.ndarray:
        """RGBA uint8 image ``(H, W, 4)`` of frame ``index`` (the caller's to keep; it may be read-only),
        drawn at ``scale`` device pixels per CSS pixel where the source can."""
        ...


def _out_of_range(index: int, length: int | None) -> FrameOutOfRange:
    if length is None:
        return FrameOutOfRange(f"frame {index} is out of range: frame indexes start at 0")
    if length == 0:
        return FrameOutOfRange(f"frame {index} is out of range: this animation has no frames")
    return FrameOutOfRange(f"frame {index} is out of range: this animation has {length} frames (0..{length - 1})")


#: A replay (a frame behind the state was asked for) draws this many frames before it too, for
#: whoever keeps them (the Player's kernel cache): Reverse asks for them next, and each would
#: otherwise replay from the start again.
REPLAY_KEEP = 32

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


# ------------------------------------------------------------------- pyplot
# While a frame is drawn, pyplot's current figure in the drawing thread is the
# animation's figure (plt.gcf(), plt.gca(), plt.title, plt.cla, plt.colorbar
# work as in matplotlib's own loop), and figures made by plt.figure() there go
# to that thread's own stack, never to pyplot's list (which the inline backend
# shows at the end of the next cell). Other threads, e.g. a running cell, see
# pyplot as it is.
_pyplot_local = threading.local()
_hooks_guard = threading.Lock()


def _drawing_stack() -> list[Any] | None:
    stack: list[Any] | None = getattr(_pyplot_local, "stack", None)
    return stack


def _install_pyplot_hooks() -> None:
    from matplotlib import _pylab_helpers

    gcf = _pylab_helpers.Gcf
    with _hooks_guard:
        if getattr(gcf, "_ipybridge_hooked", False):
            return
        get_active = gcf.get_active.__func__  # type: ignore[attr-defined]
        set_active = gcf.set_active.__func__  # type: ignore[attr-defined]
        set_new_active = gcf._set_new_active_manager.__func__  # type: ignore[attr-defined]

        def hooked_get_active(cls: Any) -> Any:
            stack = _drawing_stack()
            return stack[-1] if stack else get_active(cls)

        def hooked_set_active(cls: Any, manager: Any) -> None:
            stack = _drawing_stack()
            if stack is None:
                set_active(cls, manager)
                return
            if manager in stack:
                stack.remove(manager)
            stack.append(manager)

        def hooked_set_new_active(cls: Any, manager: Any) -> None:
            stack = _drawing_stack()
            if stack is None:
                set_new_active(cls, manager)
                return
            manager.canvas.figure._number = manager.num
            stack.append(manager)

        gcf.get_active = classmethod(hooked_get_active)  # type: ignore[method-assign,assignment]
        gcf.set_active = classmethod(hooked_set_active)  # type: ignore[method-assign,assignment]
        gcf._set_new_active_manager = classmethod(hooked_set_new_active)  # type: ignore[method-assign,assignment]
        gcf._ipybridge_hooked = True  # type: ignore[attr-defined]


@contextlib.contextmanager
def pyplot_current(fig: Any) -> Iterator[None]:
    """In this thread, make ``fig`` pyplot's current figure (and its current axes ``plt.gca()``).

    Figures ``plt.figure()`` makes inside stay out of pyplot's list of figures.
    ``fig.canvas.manager`` must be set (the Player gives its canvas a
    ``FigureManagerBase``).
    """
    _install_pyplot_hooks()
    previous = _drawing_stack()
    _pyplot_local.stack = [fig.canvas.manager]
    try:
        yield
    finally:
        _pyplot_local.stack = previous


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


def _take_over(fig: Any) -> Any:
    """Give ``fig`` a private Agg canvas with a pyplot-less manager; return the canvas."""
    from matplotlib.backend_bases import FigureManagerBase
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    _close_in_pyplot(fig)
    # Whatever backend made the figure (inline, ipympl), drawing goes through
    # Agg from now on (so blitting and plt.text work), and closing it in pyplot
    # does not stop the Player.
    canvas = FigureCanvasAgg(fig)
    FigureManagerBase(canvas, getattr(fig, "_number", None) or 0)  # sets canvas.manager
    return canvas


# --------------------------------------------------------------- animations
def _animation_length(animation: Any) -> tuple[int | None, bool]:
    """Frames in ``animation`` (None: unknown until its frames run out, or endless) and whether endless."""
    from matplotlib.animation import ArtistAnimation, FuncAnimation

    anim: Any = animation  # matplotlib's private attributes are how an animation can be read
    if isinstance(animation, FuncAnimation):
        if anim._iter_gen is itertools.count:
            return None, True
        return anim._save_count, False
    if isinstance(animation, ArtistAnimation):
        return len(anim._framedata), False
    count = getattr(anim, "_save_count", None)
    if isinstance(count, int):
        return count, False
    try:
        hint = operator.length_hint(anim.new_frame_seq(), 0)
    except Exception:  # noqa: BLE001 - a sequence that cannot say its length has an unknown one
        hint = 0
    return (hint or None), False


class AnimationSource:
    """Frames of any matplotlib ``Animation``, drawn as matplotlib draws them.

    The animation's own methods do the work, in matplotlib's order:
    ``_init_draw()`` once (``init_func``, or the frame function called with the
    first frame value; ArtistAnimation hides every frame's artists), then for
    frame ``k`` its ``_pre_draw`` / ``_draw_frame`` with the ``k``-th value of
    ``new_frame_seq()``, as :meth:`matplotlib.animation.Animation.save` does.
    The picture of a frame is a full draw of the figure as ``save`` makes it
    (``blit=False``), or, with ``blit=True``, the returned artists drawn in
    zorder over a background drawn without them (matplotlib's blitting; where
    they overlap an artist of higher zorder they cover it, as in matplotlib's
    window).

    Two modes:

    * sequential (``pure=False``, the default for FuncAnimation and frame
      functions): frame ``k`` is the figure after frames ``0..k`` were applied in
      order. A frame ahead of the state is reached by applying the frames in
      between without drawing them; a frame behind it by ``_init_draw()`` and
      applying ``0..k`` again.
    * pure (``pure=True``, the default for ArtistAnimation, whose frames are
      which artists are visible): the frame function draws frame ``k`` from its
      value alone, so frames are drawn in any order, each with one call.

    ``render(k, scale)`` draws at ``scale`` times the figure's dpi (the page's
    devicePixelRatio); the figure keeps its size in inches.
    """

    def __init__(self, animation: Any, *, pure: bool | None = None) -> None:
        from matplotlib.animation import Animation, ArtistAnimation

        if not isinstance(animation, Animation):
            raise TypeError(f"AnimationSource plays a matplotlib Animation, not {type(animation).__name__}")
        anim: Any = animation  # matplotlib's private attributes are how an animation can be driven
        self.anim: Any = anim
        self.fig: Any = self.anim._fig
        self.lock = figure_lock(self.fig)
        self.pure = bool(isinstance(anim, ArtistAnimation) if pure is None else pure)
        self.blit = bool(self.anim._blit)
        self.length, self.endless = _animation_length(anim)
        with self.lock:
            self._stop_matplotlib_loop()
            self.canvas: Any = _take_over(self.fig)
        self.base_dpi = float(self.fig.dpi)
        self._dpi = self.base_dpi
        self._iter: Iterator[Any] | None = None
        self._values: list[Any] = []
        self._at: int | None = None  # None: not started; -1: after _init_draw; k: after frame k
        self._pixels: tuple[int, float, np.ndarray] | None = None  # the picture of the state, if drawn
        self._background: Any = None
        self._background_key: Any = None
        self._in_background: set[int] = set()  # ids of the animated artists the background leaves out
        self.scales = True  # render(index, scale) draws at scale x the figure's dpi
        self.calls = 0  # frame values applied (drawn or fast-forwarded), for tests and stats

    # matplotlib's FuncAnimation attributes, for code that reads them
    @property
    def func(self) -> Any:
        return getattr(self.anim, "_func", None)

    @property
    def init_func(self) -> Any:
        return getattr(self.anim, "_init_func", None)

    @property
    def fargs(self) -> tuple[Any, ...]:
        return tuple(getattr(self.anim, "_args", ()) or ())

    def _stop_matplotlib_loop(self) -> None:
        anim: Any = self.anim
        # No "Animation was deleted without rendering" warning; no _start (init draw, timer) on our first draw.
        anim._draw_was_started = True
        first_draw = getattr(anim, "_first_draw_id", None)
        if first_draw is not None:
            self.fig.canvas.mpl_disconnect(first_draw)
        source = getattr(anim, "event_source", None)
        if source is not None:
            with contextlib.suppress(Exception):  # some backends' timers cannot stop before they start
                source.stop()
            with contextlib.suppress(Exception):
                source.remove_callback(anim._step)

    # ------------------------------------------------------------ values
    def _value(self, index: int) -> Any:
        if index < 0 or (self.length is not None and index >= self.length):
            raise _out_of_range(index, self.length)
        if index < len(self._values):
            return self._values[index]
        if index - len(self._values) >= MAX_LOOKAHEAD:
            raise FrameOutOfRange(
                f"frame {index} is out of reach: {len(self._values)} frames produced so far; "
                f"a request may go at most {MAX_LOOKAHEAD} beyond that"
            )
        if self._iter is None:
            self._iter = iter(self.anim.new_frame_seq())
        end = object()
        while len(self._values) <= index:
            value = next(self._iter, end)
            if value is end:
                self.length = len(self._values)
                raise _out_of_range(index, self.length)
            self._values.append(value)
        return self._values[index]

    def value(self, index: int) -> Any:
        """The value frame ``index`` is drawn from (the ``index``-th of ``new_frame_seq()``).

        Raises FrameOutOfRange past the end."""
        with self.lock:
            return self._value(index)

    # ------------------------------------------------------------ render
    def reset(self) -> None:
        """Start again from ``_init_draw()`` at the next frame (after the figure was changed from outside)."""
        with self.lock:
            if self._at is not None:
                self._at = -2  # behind every frame: the next one replays from init
            self._pixels = None
            self._background = None

    def render(self, index: int, scale: float = 1.0, keep: Any = None) -> np.ndarray:
        """RGBA ``(H, W, 4)`` uint8 of frame ``index`` at ``scale`` x the figure's dpi.

        ``keep``: an object with ``has(i) -> bool`` and ``put(i, rgba)``; when frame ``index``
        needs a replay from init, the :data:`REPLAY_KEEP` frames before it that ``keep`` has
        not got are drawn on the way and handed to ``keep.put``.
        """
        if index < 0 or (self.length is not None and index >= self.length):
            raise _out_of_range(index, self.length)
        if index - len(self._values) >= MAX_LOOKAHEAD:
            self._value(index)  # raises: out of reach
        with self.lock, pyplot_current(self.fig):
            if self.fig.canvas is not self.canvas:  # someone drew it elsewhere (e.g. plt.figure(fig) in a cell)
                self.canvas = _take_over(self.fig)
                self._pixels = None
                self._background = None
            if self.fig.stale:  # changed from outside since our last draw: draw the state again
                self._pixels = None
                self._background = None
            self._set_scale(scale)
            pixels = self._pixels
            if pixels is not None and pixels[0] == index and pixels[1] == scale and self._at == index:
                return pixels[2]
            if self.pure:
                if self._at is None or self._at < -1:
                    self._init()
                self._apply(index)
            else:
                replay = self._at is not None and (self._at < -1 or index < self._at)
                if self._at is None or replay:
                    self._init()
                while self._at is not None and self._at < index - 1:
                    step = self._at + 1
                    try:
                        self._apply(step)
                    except Exception as exc:
                        _note(exc, f"raised by frame {step}, applied on the way to frame {index}: frames "
                                   "play in order, as in matplotlib (pure=True draws each frame alone)")  # fmt: skip
                        raise
                    if replay and keep is not None and step >= index - REPLAY_KEEP and not keep.has(step):
                        self._draw()
                        keep.put(step, np.array(self.canvas.buffer_rgba(), dtype=np.uint8, copy=True))
                if self._at != index:
                    self._apply(index)
            self._draw()
            self.fig.stale = False  # a blitted frame leaves it stale; now it is drawn as it is
            rgba = np.array(self.canvas.buffer_rgba(), dtype=np.uint8, copy=True)
            rgba.flags.writeable = False  # kept for the next request of this frame, and the caller's to read
            self._pixels = (index, scale, rgba)
            return rgba

    def _init(self) -> None:
        _pyplot_local.stack = [self.canvas.manager]  # each call starts with the animation's figure current
        self.anim._init_draw()
        self._at = -1
        self._pixels = None
        self._background = None

    def _apply(self, index: int) -> None:
        value = self._value(index)
        _pyplot_local.stack = [self.canvas.manager]
        self._at = index
        self._pixels = None
        self.calls += 1
        try:
            self.anim._pre_draw(value, False)  # ArtistAnimation: hides the previous frame's artists
            self.anim._draw_frame(value)
        except BaseException:
            self._at = -2  # half applied: the next frame starts again from init
            raise

    def _set_scale(self, scale: float) -> None:
        if self.fig.dpi != self._dpi:  # the figure's dpi was changed from outside: that is its dpi now
            self.base_dpi = float(self.fig.dpi)
        dpi = self.base_dpi * scale
        if self.fig.dpi != dpi:
            self.fig.dpi = dpi
            self._pixels = None
            self._background = None
        self._dpi = float(self.fig.dpi)

    def _draw(self) -> None:
        if not self.blit:
            # As Animation.save draws (canvas "saving": artists marked animated are drawn too).
            with _saving(self.canvas):
                self.canvas.draw()
            return
        artists = sorted(_as_artists(getattr(self.anim, "_drawn_artists", None), "the frame function"),
                         key=lambda a: a.get_zorder())  # fmt: skip
        for artist in artists:
            artist.set_animated(True)
        if (
            self._background is None
            or self._background_key != self._view_key()
            or any(id(a) not in self._in_background for a in artists)
        ):
            self.canvas.draw()  # a full draw leaves animated artists out
            self._background = self.canvas.copy_from_bbox(self.fig.bbox)
            self._background_key = self._view_key()
            self._in_background = {id(a) for a in self.fig.findobj() if a.get_animated()}
        else:
            self.canvas.restore_region(self._background)
        for artist in artists:
            if artist.axes is not None:
                artist.axes.draw_artist(artist)
            else:
                self.fig.draw_artist(artist)

    def _view_key(self) -> Any:
        views = tuple((id(ax), repr(ax._get_view())) for ax in self.fig.axes)
        return (self.canvas.get_width_height(), self.fig.dpi, views)


def _note(exc: BaseException, note: str) -> None:
    add_note = getattr(exc, "add_note", None)  # Python 3.11+
    if add_note is not None:
        add_note(note)


@contextlib.contextmanager
def _saving(canvas: Any) -> Iterator[None]:
    previous = canvas._is_saving
    canvas._is_saving = True
    try:
        yield
    finally:
        canvas._is_saving = previous


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
    return artists


class FigureSource(AnimationSource):
    """``Player(fig, func, frames=...)``: the frames of ``FuncAnimation(fig, func, frames=...)``.

    The same animation matplotlib would make of these arguments, played as
    :class:`AnimationSource` plays any (including what constructing it calls:
    with ``blit=True`` matplotlib draws the figure and calls ``init_func``, or
    ``func`` with the first value, as it is made).
    """

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
        pure: bool = False,
    ) -> None:
        from matplotlib.animation import FuncAnimation

        if not callable(func):
            raise TypeError(f"func must be callable, not {func!r}")
        if isinstance(frames, (int, np.integer)) and not isinstance(frames, bool) and frames < 0:
            raise ValueError(f"frames must be >= 0, not {frames}")
        if not (frames is None or callable(frames) or np.iterable(frames) or isinstance(frames, (int, np.integer))):
            raise TypeError(f"frames must be an int, a sequence, an iterable, a callable or None, not {frames!r}")
        with figure_lock(fig):
            _take_over(fig)
            with pyplot_current(fig):
                anim = FuncAnimation(
                    fig, func, frames=frames, init_func=init_func, fargs=tuple(fargs) if fargs else None,
                    save_count=length_hint, blit=blit, cache_frame_data=False,
                )  # fmt: skip
        super().__init__(anim, pure=pure)


def from_animation(animation: Any, *, pure: bool | None = None) -> tuple[AnimationSource, float]:
    """An :class:`AnimationSource` for any matplotlib ``Animation``, and its fps (1000 / interval)."""
    from matplotlib.animation import Animation

    if not isinstance(animation, Animation):
        raise TypeError(
            f"Player plays a matplotlib Animation (FuncAnimation, ArtistAnimation, a TimedAnimation), "
            f"not {type(animation).__name__}; or use Player(fig, func, frames=...) or Player(video_array)"
        )
    source = AnimationSource(animation, pure=pure)
    interval = float(getattr(animation, "_interval", 200) or 200)
    return source, 1000.0 / interval


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

    def render(self, index: int, scale: float = 1.0) -> np.ndarray:  # an array's pixels are its pixels: no scale
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
