"""Live, on-demand animation: :class:`Player`, its frame sources and codecs."""

from __future__ import annotations

from .sources import FigureSource, FrameOutOfRange, VideoSource, figure_lock
from .widget import Player

__all__ = ["FigureSource", "FrameOutOfRange", "Player", "VideoSource", "figure_lock"]
