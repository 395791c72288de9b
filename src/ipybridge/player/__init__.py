"""Live, on-demand animation: :class:`Player`, its frame sources and codecs."""

from __future__ import annotations

from .arrays import ArraySource
from .sources import FigureSource, FrameOutOfRange, VideoSource, figure_lock
from .widget import Player

__all__ = ["ArraySource", "FigureSource", "FrameOutOfRange", "Player", "VideoSource", "figure_lock"]
