"""Frames of a scientific array of any size: lazy reads, colour maps as ``imshow`` draws them.

:class:`ArraySource` plays any array-like of shape ``(T, H, W)`` (scalar data) or
``(T, H, W, 3|4)`` (RGB or RGBA) that has ``shape``, ``dtype`` and ``__getitem__``:
numpy (memmap too), zarr, h5py datasets, dask arrays, xarray DataArrays. It reads
only the frames the page asks for; the page's requests run ahead of playback
(the page keeps up to 16-32 requests out), and each request starts reading at
once on a small pool of threads, so I/O of the next frames overlaps. A request
the page cancels (it seeked away) is dropped before its read starts.

Colour: a scalar frame goes through matplotlib's own pipeline, a
:class:`~matplotlib.cm.ScalarMappable` with the same colour map and norm, whose
``to_rgba(frame, bytes=True)`` is what ``imshow(frame, cmap=..., norm=...)`` paints
at one screen pixel per data pixel (``interpolation="none"``), NaN in the colour
map's "bad" colour included. Limits: ``vmin``/``vmax`` or ``norm`` as given;
whatever is missing comes from :data:`SAMPLE_FRAMES` frames spread evenly over the
array (first and last included): the min and max of their finite values, read
once when the Player is made. ``imshow`` scales each image to its own min and max;
a player needs one scale for all frames, and reading every frame to find it would
read the whole array. Fix them with ``vmin``/``vmax``, ``norm``, or later with
:meth:`ArraySource.set_clim` (``Player.set_clim``).

RGB(A) frames are shown as they are, as ``imshow`` shows them: uint8, or floats
in [0, 1] (clipped), other integers clipped to [0, 255].
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from . import codecs
from .parallel import Ahead, Encoding, ahead_pool, check_executor, executor_result, is_distributed_client
from .sources import FrameOutOfRange

#: Frames read to choose colour limits when ``vmin``/``vmax``/``norm`` leave them open.
SAMPLE_FRAMES = 8


def _is_xarray(array: Any) -> bool:
    return hasattr(array, "dims") and hasattr(array, "coords") and hasattr(array, "variable")


def _is_dask(array: Any) -> bool:
    return hasattr(array, "dask") and hasattr(array, "compute") and hasattr(array, "chunks")


def _format_coord(value: Any) -> str:
    value = np.asarray(value)
    if value.dtype.kind == "M":
        return str(np.datetime_as_string(value, unit="auto")).replace("T00:00:00", "")
    if value.dtype.kind == "m":
        return str(value)
    if value.dtype.kind == "f":
        return f"{float(value):g}"
    return str(value.item() if value.ndim == 0 else value)


class Paletted:
    """A colour-mapped frame as colour-map indices ``(H, W)`` uint8 and their RGBA colours ``(n, 4)`` uint8."""

    __slots__ = ("indices", "palette")

    def __init__(self, indices: np.ndarray, palette: np.ndarray) -> None:
        self.indices = indices
        self.palette = palette

    def rgba(self) -> np.ndarray:
        out: np.ndarray = self.palette.take(self.indices, axis=0)
        return out


def finish(frame: np.ndarray | Paletted, encoding: Encoding) -> Any:
    """A frame made by :meth:`ColourMapper.paletted` as the page asked: RGBA (``encoding`` None) or encoded."""
    if encoding is None:
        return frame.rgba() if isinstance(frame, Paletted) else frame
    if isinstance(frame, Paletted):
        if encoding[0] == "auto":  # the page's default: the codec cheapest to decode, see codecs.indexed
            h, w = frame.indices.shape
            return codecs.Encoded("indexed", int(w), int(h), codecs.indexed(frame.indices, frame.palette))
        if encoding[0] == "png":
            data = codecs.indexed_png(frame.indices, frame.palette)
            return codecs.Encoded("png", int(frame.indices.shape[1]), int(frame.indices.shape[0]), data)
        frame = frame.rgba()
    return codecs.encode(frame, *encoding)


class ColourMapper:
    """Frame -> RGBA uint8 ``(H, W, 4)``, as ``imshow`` colours it; picklable, so workers can run it.

    ``rgb`` frames (``(H, W, 3|4)``) pass through as ``imshow`` shows them; scalar
    frames go through ``ScalarMappable(norm, cmap).to_rgba(frame, bytes=True)``.
    """

    def __init__(self, rgb: bool, cmap: Any = None, norm: Any = None) -> None:
        self.rgb = rgb
        self.cmap = cmap
        self.norm = norm
        self._mappable: Any = None
        self._index_cmap: Any = None
        self._table: np.ndarray | None = None
        self._fold: tuple[np.ndarray, int, int, int] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"rgb": self.rgb, "cmap": self.cmap, "norm": self.norm, "_mappable": None, "_index_cmap": None,
                "_table": None, "_fold": None}  # fmt: skip

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _indexing(self) -> tuple[Any, np.ndarray]:
        """A copy of the colour map whose table holds row numbers, and the real table as bytes.

        Calling the copy runs matplotlib's own colour-map code (under, over, bad, N) and
        returns, for every pixel, the row of the table ``imshow`` would paint it with.
        """
        if self._index_cmap is None:
            cmap = self.cmap
            cmap(0.5)  # builds its table (_lut: N colours, then under, over, bad)
            table = (cmap._lut * 255).astype(np.uint8)  # as Colormap.__call__(bytes=True) makes it
            rows = copy.copy(cmap)
            rows._lut = np.arange(len(table), dtype=np.uint16)[:, None]
            self._index_cmap, self._table = rows, table
        assert self._table is not None
        return self._index_cmap, self._table

    def _folded(self) -> tuple[np.ndarray, int, int, int] | None:
        """For a linear norm and a plain colour map of at most 256 colours: the palette ``imshow``'s
        colours come from (the table's first N rows, then the under, over and bad colours, each
        only when no row before it has the same colour) and the rows of those three; None otherwise.
        """
        from matplotlib import colors

        cmap = self.cmap
        if (
            type(self.norm) is not colors.Normalize
            or type(cmap).__call__ is not colors.Colormap.__call__
            or getattr(type(cmap), "_get_rgba_and_mask", None) is not getattr(colors.Colormap, "_get_rgba_and_mask", 0)
            or not 1 <= cmap.N <= 256
        ):
            return None
        if self._fold is None:
            _, table = self._indexing()
            n = cmap.N
            rows = list(table[:n])
            slots = []
            for special in table[n : n + 3]:  # under, over, bad (Colormap._i_under, _i_over, _i_bad)
                same = np.flatnonzero((table[:n] == special).all(axis=1))
                if len(same):
                    slots.append(int(same[0]))
                else:
                    slots.append(len(rows))
                    rows.append(special)
            self._fold = (np.array(rows, dtype=np.uint8), slots[0], slots[1], slots[2])
        return self._fold

    def _fast_paletted(self, frame: np.ndarray) -> Paletted | None:
        """Colormap.__call__'s steps on the norm's output, written straight into palette indices
        (no masked arrays, no int64 rows): the same rows, so the same pixels as imshow."""
        folded = self._folded()
        if folded is None:
            return None
        palette, under_slot, over_slot, bad_slot = folded
        n = self.cmap.N
        xa = np.ma.getdata(self.norm(frame))  # a float copy of the frame, ours to change in place
        if xa.dtype.kind != "f" or xa.shape != frame.shape:
            return None
        with np.errstate(over="ignore", invalid="ignore"):
            xa *= n
        xa[xa == n] = n - 1
        under = xa < 0
        over = xa >= n
        # Bad as Colormap finds it: what masked_invalid masked, or with nothing masked, NaN after the norm.
        bad = ~np.isfinite(frame) if frame.dtype.kind == "f" else None
        if bad is None or not bad.any():
            bad = np.isnan(xa)
        for mask, slot in ((under, under_slot), (over, over_slot), (bad, bad_slot)):
            if slot > 255 and mask.any():
                return None  # a 257th colour in this frame: the general path
        with np.errstate(invalid="ignore"):
            np.clip(xa, 0, n - 1, out=xa)
            indices = xa.astype(np.uint8)  # truncation, as astype(int): rows 0..n-1
        if under.any():
            indices[under] = under_slot
        if over.any():
            indices[over] = over_slot
        if bad.any():
            indices[bad] = bad_slot
        used = len(palette) if len(palette) <= 256 else 256
        return Paletted(indices, palette[:used])

    def paletted(self, frame: np.ndarray) -> np.ndarray | Paletted:
        """The frame coloured: RGB(A) frames as RGBA, scalar frames as :class:`Paletted` (or RGBA past 256 colours)."""
        if self.rgb:
            return rgb_to_rgba(frame)
        rows_cmap, table = self._indexing()
        if frame.dtype.kind == "b":
            frame = frame.astype(np.uint8)
        fast = self._fast_paletted(frame)
        if fast is not None:
            return fast
        # ScalarMappable.to_rgba's steps: norm, then the colour map, here one that returns table rows.
        rows = rows_cmap(self.norm(np.ma.masked_invalid(frame, copy=False)))[..., 0]
        if len(table) <= 256:
            return Paletted(rows.astype(np.uint8), table)
        used = np.flatnonzero(np.bincount(rows.ravel(), minlength=len(table)))
        if len(used) > 256:
            return table.take(rows, axis=0)  # type: ignore[no-any-return]
        remap = np.zeros(len(table), dtype=np.uint8)
        remap[used] = np.arange(len(used), dtype=np.uint8)
        return Paletted(remap.take(rows), table[used])

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        if self.rgb:
            return rgb_to_rgba(frame)
        if self._mappable is None:
            from matplotlib.cm import ScalarMappable

            self._mappable = ScalarMappable(norm=self.norm, cmap=self.cmap)
        if frame.dtype.kind == "b":
            frame = frame.astype(np.uint8)
        rgba: np.ndarray = self._mappable.to_rgba(np.ma.masked_invalid(frame, copy=False), bytes=True)
        return rgba


def rgb_to_rgba(frame: np.ndarray) -> np.ndarray:
    """An RGB(A) frame ``(H, W, 3|4)`` as RGBA uint8, the way ``imshow`` reads such data."""
    if frame.dtype.kind == "f":
        frame = (np.clip(frame, 0.0, 1.0) * 255).astype(np.uint8)  # imshow's to_rgba truncates: x * 255 -> uint8
    elif frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    if frame.shape[2] == 4:
        return np.ascontiguousarray(frame)
    out = np.empty((*frame.shape[:2], 4), dtype=np.uint8)
    out[..., :3] = frame
    out[..., 3] = 255
    return out


def render_frame(mapper: ColourMapper, frame: Any) -> np.ndarray | Paletted:
    """Colour one frame (run in the kernel's threads or on an executor's workers)."""
    return mapper.paletted(np.asarray(frame))


class ArraySource:
    """Frames of an array-like ``(T, H, W)`` or ``(T, H, W, 3|4)``, read lazily and colour-mapped.

    Parameters (as for ``imshow``): ``cmap`` a colour map or its name (default
    ``rcParams["image.cmap"]``); ``vmin``/``vmax`` or ``norm`` (a
    :class:`matplotlib.colors.Normalize`); ``dim`` the dimension to animate for an
    xarray DataArray (default its first). ``executor`` (a
    :class:`concurrent.futures.Executor` or a dask ``distributed.Client``) colours
    frames on its workers; a dask array with a ``distributed.Client`` is computed
    frame by frame on the cluster.

    Raises ``ValueError`` for a shape that is not ``(T, H, W)`` / ``(T, H, W, 3|4)``
    and ``TypeError`` for data that is not numbers, or not an array at all.
    """

    def __init__(
        self,
        array: Any,
        *,
        cmap: Any = None,
        vmin: float | None = None,
        vmax: float | None = None,
        norm: Any = None,
        dim: str | None = None,
        executor: Any = None,
    ) -> None:
        self.reads = 0  # frames read from the array (a counter for tests and benchmarks)
        self._kept: tuple[int, np.ndarray] | None = None
        self.sampled_frames: list[int] = []
        self.title: str | None = None
        self.coord_name: str | None = None
        self._coord: np.ndarray | None = None
        if _is_xarray(array):
            array = self._from_xarray(array, dim)
        elif dim is not None:
            raise TypeError(f"dim= names a dimension of an xarray DataArray; {type(array).__name__} has none")
        for attribute in ("shape", "dtype", "__getitem__"):
            if not hasattr(array, attribute):
                raise TypeError(
                    f"Player plays an array-like with shape, dtype and indexing (numpy, zarr, h5py, dask, "
                    f"xarray); {type(array).__name__} has no {attribute}"
                )
        shape = tuple(int(n) for n in array.shape)
        dtype = np.dtype(array.dtype)
        if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] not in (3, 4)):
            hint = ""
            if len(shape) == 4 and shape[1] in (3, 4):
                hint = " (channels first? move them last: np.moveaxis(a, 1, -1))"
            elif len(shape) == 2:
                hint = " (one image? add a frame axis: a[None])"
            raise ValueError(
                f"Player plays frames of shape (T, H, W) or (T, H, W, 3|4); this array has shape {shape}{hint}"
            )
        if shape[1] == 0 or shape[2] == 0:
            raise ValueError(f"frames of shape {shape[1:]} have no pixels")
        if dtype.kind not in "uifb":
            what = "complex numbers (show np.abs(a) or a.real)" if dtype.kind == "c" else f"dtype {dtype}"
            raise TypeError(f"Player colours real numbers (integers, floats, booleans); this array holds {what}")
        self.array = array
        self.shape = shape
        self.dtype = dtype
        self.length: int | None = shape[0]
        self.rgb = len(shape) == 4
        self._dask = _is_dask(array)
        self.executor = executor
        check_executor(executor)
        self._distributed = executor is not None and is_distributed_client(executor)
        self.mapper = ColourMapper(self.rgb)
        if not self.rgb:
            self.mapper.cmap, self.mapper.norm = _colour_map(cmap, vmin, vmax, norm)
            if not self.mapper.norm.scaled():
                self._sample_limits()
        elif cmap is not None or vmin is not None or vmax is not None or norm is not None:
            raise ValueError("cmap, vmin, vmax and norm colour scalar data; RGB(A) frames are shown as they are")
        self.ahead = Ahead(self._work, lambda: self.length, finish)

    # ------------------------------------------------------------ xarray
    def _from_xarray(self, da: Any, dim: str | None) -> Any:
        dims = tuple(da.dims)
        if dim is None:
            dim = dims[0] if dims else None
        elif dim not in dims:
            raise ValueError(f"dim={dim!r} is not a dimension of this DataArray; its dimensions are {dims}")
        if dim is not None and dims and dims[0] != dim:
            da = da.transpose(dim, ...)
        if len(dims) > 4 or (len(dims) == 4 and da.shape[3] not in (3, 4)):
            extra = list(da.dims[1:-2])
            raise ValueError(
                f"Player plays a DataArray of dimensions ({dim}, y, x) or ({dim}, y, x, rgb); this one has "
                f"{tuple(da.dims)}: select the others first, e.g. da.isel({extra[0]}=0)"
            )
        name = da.attrs.get("long_name") or da.name
        units = da.attrs.get("units")
        if name is not None:
            self.title = f"{name} [{units}]" if units else str(name)
        if dim is not None and dim in da.coords:
            self.coord_name = str(dim)
            self._coord = np.asarray(da.coords[dim].values)
        return da.data if _is_dask(getattr(da, "data", None)) else da

    def label(self, index: int) -> str | None:
        """What the frame counter shows for frame ``index`` besides its number (xarray: the coordinate's value)."""
        if self._coord is None or not 0 <= index < len(self._coord):
            return None
        return f"{self.coord_name} = {_format_coord(self._coord[index])}"

    # ------------------------------------------------------------ limits
    def _sample_limits(self) -> None:
        """vmin/vmax from :data:`SAMPLE_FRAMES` frames spread evenly over the array."""
        assert self.length is not None
        norm = self.mapper.norm
        if self.length == 0:
            norm.vmin = 0.0 if norm.vmin is None else norm.vmin
            norm.vmax = 1.0 if norm.vmax is None else norm.vmax
            return
        picks = sorted({round(i) for i in np.linspace(0, self.length - 1, min(SAMPLE_FRAMES, self.length))})
        from matplotlib import colors

        if type(norm) is colors.Normalize:
            # Its autoscale takes the min and max: each frame's finite min and max, found where it was read.
            extremes = list(ahead_pool().map(self._sample_extremes, picks))
            finite = [e for e in extremes if e is not None]
            if finite:
                norm.autoscale_None(np.array([v for pair in finite for v in pair]).reshape(-1, 1))
        else:  # e.g. LogNorm's autoscale looks at positive values only: give it every value
            frames = [np.asarray(f) for f in ahead_pool().map(self._read, picks)]
            sample = np.ma.masked_invalid(np.stack(frames))
            norm.autoscale_None(sample.reshape(-1, 1))  # one column: what every norm's autoscale accepts
        if norm.vmin is None or norm.vmax is None or np.ma.is_masked(norm.vmin) or np.ma.is_masked(norm.vmax):
            norm.vmin, norm.vmax = 0.0, 1.0  # every sampled value was NaN
        self.sampled_frames = picks

    @property
    def vmin(self) -> float | None:
        return None if self.rgb else float(self.mapper.norm.vmin)

    @property
    def vmax(self) -> float | None:
        return None if self.rgb else float(self.mapper.norm.vmax)

    def set_clim(self, vmin: float | None = None, vmax: float | None = None) -> None:
        """New colour limits (as ``ScalarMappable.set_clim``); frames drawn after this use them."""
        if self.rgb:
            raise ValueError("RGB(A) frames have no colour limits")
        mapper = ColourMapper(False, self.mapper.cmap, copy.copy(self.mapper.norm))
        if vmin is not None:
            mapper.norm.vmin = vmin
        if vmax is not None:
            mapper.norm.vmax = vmax
        self.mapper = mapper  # frames started before this keep the old mapper: forget them
        self.ahead.forget()

    def _sample_extremes(self, index: int) -> tuple[Any, Any] | None:
        """The finite min and max of frame ``index`` (None: no finite value); frame 0 is kept for the poster."""
        frame = self._read(index)
        if index == 0:
            self._kept = (0, frame)
        if frame.dtype.kind == "b":
            frame = frame.astype(np.uint8)
        if frame.dtype.kind == "f":
            finite = np.isfinite(frame)
            if not finite.all():
                if not finite.any():
                    return None
                return frame.min(where=finite, initial=np.inf), frame.max(where=finite, initial=-np.inf)
        return frame.min(), frame.max()

    # ------------------------------------------------------------ reading
    def _read(self, index: int) -> np.ndarray:
        kept = self._kept
        if kept is not None and kept[0] == index:  # read once already (for the limits): the first frame shown
            self._kept = None
            return kept[1]
        frame = self.array[index]
        if self._dask:
            frame = frame.compute()
        self.reads += 1
        return np.asarray(frame)

    def _work(self, index: int) -> np.ndarray | Paletted:
        """Frame ``index`` read and coloured (RGBA, or palette indices for scalar data)."""
        if self._distributed:
            return self._on_cluster(index)
        frame = self._read(index)
        if self.executor is not None:
            made: np.ndarray | Paletted = executor_result(
                self.executor.submit(render_frame, self.mapper, frame), f"frame {index}"
            )
            return made
        return self.mapper.paletted(frame)

    def _on_cluster(self, index: int) -> np.ndarray | Paletted:
        client = self.executor
        if self._dask:
            from dask.delayed import delayed

            # The frame is computed where its chunks are, coloured there; only the coloured frame comes back.
            job = delayed(render_frame)(self.mapper, self.array[index])
            made: np.ndarray | Paletted = executor_result(client.compute(job), f"frame {index}")
            self.reads += 1
            return made
        frame = self._read(index)
        result: np.ndarray | Paletted = executor_result(
            client.submit(render_frame, self.mapper, frame, pure=False), f"frame {index}"
        )
        return result

    def prefetch(self, index: int, encoding: Encoding = None) -> None:
        """Start frame ``index`` now (the page asked for it), encoded as ``encoding`` = (codec, quality)."""
        self.ahead.prefetch(index, encoding)

    def cancel(self, index: int, encoding: Encoding = None) -> None:
        """The page no longer wants one request for frame ``index``: work not yet started is dropped."""
        self.ahead.cancel(index, encoding)

    def _check(self, index: int) -> None:
        if self.length is None or not 0 <= index < self.length:
            raise FrameOutOfRange(
                f"frame {index} is out of range: this array has {self.length} frames (0..{(self.length or 0) - 1})"
            )

    def collect(self, index: int, encoding: Encoding = None) -> Any:
        """Frame ``index`` as asked for by :meth:`prefetch`: RGBA, or encoded when ``encoding`` is given."""
        self._check(index)
        return self.ahead.collect(index, encoding)

    def poster(self, index: int) -> tuple[bytes, codecs.Encoded]:
        """Frame ``index`` read and coloured once, as a PNG (the output's static picture) and as the
        page's default codec (the view's first frame, sent with the widget's state)."""
        self._check(index)
        made = self._work(index)
        png = finish(made, ("png", 85))
        return png.data, finish(made, ("auto", 85))

    def render(self, index: int, scale: float = 1.0) -> np.ndarray:
        """RGBA uint8 ``(H, W, 4)`` of frame ``index`` (one pixel per data pixel: ``scale`` is not used)."""
        self._check(index)
        rgba: np.ndarray = self.ahead.collect(index)
        return rgba

    def close(self) -> None:
        self.ahead.forget()


def _colour_map(cmap: Any, vmin: float | None, vmax: float | None, norm: Any) -> tuple[Any, Any]:
    """The colour map and norm ``imshow(cmap=, vmin=, vmax=, norm=)`` would use (norm not yet scaled)."""
    import matplotlib as mpl
    from matplotlib import colors

    if isinstance(cmap, str) and cmap not in mpl.colormaps:
        raise ValueError(
            f"cmap={cmap!r} is not a matplotlib colour map; e.g. {', '.join(sorted(mpl.colormaps)[:6])}, ..."
        )
    colormap = (
        mpl.colormaps[mpl.rcParams["image.cmap"] if cmap is None else cmap]
        if not isinstance(cmap, colors.Colormap)
        else cmap
    )
    if norm is not None:
        if vmin is not None or vmax is not None:
            raise ValueError("give either norm or vmin/vmax, not both (as imshow)")
        if isinstance(norm, str):
            raise TypeError("norm must be a matplotlib.colors.Normalize instance, e.g. LogNorm(vmin, vmax)")
        if not isinstance(norm, colors.Normalize):
            raise TypeError(f"norm must be a matplotlib.colors.Normalize, not {type(norm).__name__}")
        norm = copy.copy(norm)  # limits sampled here do not change the caller's norm
    else:
        norm = colors.Normalize(vmin, vmax)
    return colormap, norm
