"""matplotlib's own frames of an animation: the reference the Player is compared with.

``reference_frames(make, n, scale)`` builds the animation afresh with ``make()``
and lets :meth:`matplotlib.animation.Animation.save` draw it, with an in-memory
movie writer that keeps each frame's pixels (``fig.canvas.buffer_rgba()`` when
save grabs it) at ``scale`` x the figure's dpi, as the Player draws for a page
whose devicePixelRatio is ``scale``. Self-contained (matplotlib and numpy
only): the e2e tests send this file's text to the kernel.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np
from matplotlib.animation import AbstractMovieWriter


class _Enough(Exception):  # noqa: N818 - not an error: the frames asked for are in
    pass


class FrameGrabber(AbstractMovieWriter):
    """A movie writer that keeps every frame save draws, as RGBA arrays."""

    def __init__(self, limit: int | None = None) -> None:
        super().__init__(fps=5)
        self.frames: list[np.ndarray] = []
        self.limit = limit

    def setup(self, fig: Any, outfile: Any, dpi: Any = None) -> None:
        self.fig, self.outfile, self.dpi = fig, outfile, dpi

    def grab_frame(self, **savefig_kwargs: Any) -> None:
        self.frames.append(np.array(self.fig.canvas.buffer_rgba(), dtype=np.uint8, copy=True))
        if self.limit is not None and len(self.frames) >= self.limit:
            raise _Enough

    def finish(self) -> None:
        pass


def reference_frames(make: Callable[[], Any], n: int | None = None, scale: float = 1.0) -> list[np.ndarray]:
    """The frames ``Animation.save`` draws of ``make()`` (the first ``n`` of them), at ``scale``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    anim = make()
    fig = anim._fig
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.dpi = fig.dpi * scale
    grabber = FrameGrabber(n)
    with contextlib.suppress(_Enough):
        anim.save("unused.frames", writer=grabber, dpi=fig.dpi)
    return grabber.frames


def window_frames(make: Callable[[], Any], n: int, scale: float = 1.0) -> list[np.ndarray]:
    """The frames matplotlib's own loop shows in a window, on Agg: ``_init_draw``, a full draw,
    then ``_draw_next_frame(value, blit)`` per frame (with blit: its background cache and
    ``draw_artist``), the canvas's pixels after each."""
    import itertools

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    anim = make()
    fig = anim._fig
    FigureCanvasAgg(fig)
    fig.dpi = fig.dpi * scale
    anim._blit_cache = {}
    anim._init_draw()
    fig.canvas.draw()
    frames = []
    for value in itertools.islice(anim.new_frame_seq(), n):
        anim._draw_next_frame(value, anim._blit)
        frames.append(np.array(fig.canvas.buffer_rgba(), dtype=np.uint8, copy=True))
    return frames
