"""Array sources: lazy reads, imshow's colours, xarray labels, executors (process pools, Dask)."""

from __future__ import annotations

import threading
from concurrent.futures import ProcessPoolExecutor

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib import colors

from ipybridge.player import codecs
from ipybridge.player.arrays import SAMPLE_FRAMES, ArraySource, Paletted
from ipybridge.player.parallel import AHEAD_THREADS
from ipybridge.player.sources import FigureSource
from ipybridge.player.widget import PlayerCore

from .fakepage import FakePage, envelope

RNG = np.random.default_rng(7)
# A temperature field in kelvin with a few missing values: what "floats clipped to [0, 1]" painted white.
KELVIN = (RNG.normal(285.0, 12.0, (12, 24, 32))).astype(np.float32)
KELVIN[2, 5, 6] = np.nan
KELVIN[7, :3, 10] = np.nan


def imshow_rgba(frame: np.ndarray, **kwargs) -> np.ndarray:
    """What matplotlib paints for ``imshow(frame, **kwargs)`` at one pixel per data pixel."""
    height, width = frame.shape[:2]
    fig = plt.figure(figsize=(width / 100, height / 100), dpi=100, facecolor="none")
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.imshow(frame, interpolation="none", **kwargs)
    fig.canvas.draw()
    out = np.asarray(fig.canvas.buffer_rgba()).copy()
    plt.close(fig)
    return out


def assert_same_picture(mine: np.ndarray, reference: np.ndarray) -> None:
    """Equal alpha everywhere, equal colour wherever a pixel is visible (Agg leaves junk colour at alpha 0)."""
    assert mine.shape == reference.shape
    assert np.array_equal(mine[..., 3], reference[..., 3])
    visible = reference[..., 3] > 0
    assert np.array_equal(mine[visible], reference[visible])


@pytest.mark.parametrize(
    ("kwargs", "reference"),
    [
        ({"vmin": 270, "vmax": 300}, {"vmin": 270, "vmax": 300}),
        ({"cmap": "magma", "norm": colors.LogNorm(260, 310)}, {"cmap": "magma", "norm": colors.LogNorm(260, 310)}),
        (
            {"cmap": "RdBu_r", "norm": colors.TwoSlopeNorm(285, 250, 320)},
            {"cmap": "RdBu_r", "norm": colors.TwoSlopeNorm(285, 250, 320)},
        ),
        (
            {"cmap": plt.get_cmap("coolwarm", 7), "vmin": 275, "vmax": 295},
            {"cmap": plt.get_cmap("coolwarm", 7), "vmin": 275, "vmax": 295},
        ),
        (
            {"cmap": "viridis", "norm": colors.BoundaryNorm([260, 280, 290, 300], 256)},
            {"cmap": "viridis", "norm": colors.BoundaryNorm([260, 280, 290, 300], 256)},
        ),
    ],
)
def test_scalar_frames_are_coloured_exactly_as_imshow(kwargs, reference):
    source = ArraySource(KELVIN, **kwargs)
    for index in (2, 7, 11):
        assert_same_picture(source.render(index), imshow_rgba(KELVIN[index], **reference))


def test_integer_and_boolean_frames_match_imshow():
    counts = RNG.integers(0, 4096, (3, 10, 12), dtype=np.uint16)
    assert_same_picture(ArraySource(counts, vmin=0, vmax=4095).render(1), imshow_rgba(counts[1], vmin=0, vmax=4095))
    mask = RNG.random((3, 10, 12)) > 0.5
    assert_same_picture(ArraySource(mask, cmap="gray", vmin=0, vmax=1).render(0), imshow_rgba(mask[0], cmap="gray"))


def test_rgb_frames_are_shown_as_imshow_shows_them():
    floats = RNG.random((4, 9, 11, 3)).astype(np.float32) * 1.2 - 0.1  # out of [0, 1] on purpose: clipped
    reference = imshow_rgba(floats[2])  # matplotlib logs "Clipping input data to the valid range"
    assert_same_picture(ArraySource(floats).render(2), reference)
    bytes_rgb = RNG.integers(0, 256, (4, 9, 11, 3), dtype=np.uint8)
    assert_same_picture(ArraySource(bytes_rgb).render(3), imshow_rgba(bytes_rgb[3]))
    opaque_rgba = np.concatenate([bytes_rgb, np.full((4, 9, 11, 1), 255, np.uint8)], axis=-1)
    assert np.array_equal(ArraySource(opaque_rgba).render(1), opaque_rgba[1])
    with pytest.raises(ValueError, match="RGB"):
        ArraySource(bytes_rgb, cmap="gray")


def test_automatic_limits_come_from_sampled_frames_and_can_be_fixed():
    stack = np.zeros((100, 4, 5), np.float32)
    stack[:] = np.arange(100, dtype=np.float32)[:, None, None]  # frame i holds the value i
    source = ArraySource(stack)
    assert len(source.sampled_frames) == SAMPLE_FRAMES
    assert source.sampled_frames[0] == 0
    assert source.sampled_frames[-1] == 99
    assert (source.vmin, source.vmax) == (0.0, 99.0)
    assert source.reads == SAMPLE_FRAMES  # not the whole array
    half = ArraySource(stack, vmax=50)
    assert (half.vmin, half.vmax) == (0.0, 50.0)
    assert_same_picture(half.render(70), imshow_rgba(stack[70], vmin=0, vmax=50))
    half.set_clim(10, 20)
    assert_same_picture(half.render(15), imshow_rgba(stack[15], vmin=10, vmax=20))
    given = ArraySource(stack, vmin=1, vmax=2)
    assert given.reads == 0
    assert given.sampled_frames == []
    # The caller's norm is not changed by sampling.
    norm = colors.LogNorm()
    ArraySource(stack + 1, norm=norm)
    assert norm.vmin is None


class CountingArray:
    """An array-like that is not numpy: records every read; whole-array reads are a failure."""

    def __init__(self, data: np.ndarray, gate: threading.Event | None = None) -> None:
        self.data = data
        self.shape = data.shape
        self.dtype = data.dtype
        self.gate = gate
        self.reads: list[int] = []
        self.lock = threading.Lock()

    def __getitem__(self, key):
        assert isinstance(key, int), f"read {key!r}: more than one frame"
        if self.gate is not None:
            assert self.gate.wait(10)
        with self.lock:
            self.reads.append(key)
        return self.data[key]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole array was read")


def request(core, ident, index):
    core.receive(*envelope({"type": "frame", "id": ident, "index": index, "gen": 0, "codec": "raw", "quality": 80}))


def frames_sent(page: FakePage) -> list[tuple[dict, bytes]]:
    return [(item, bufs[item.get("b0", 0)]) for item, bufs in page.items() if item["type"] == "frame"]


def test_only_requested_frames_are_read_and_cancelled_ones_never(tmp_path):
    gate = threading.Event()
    array = CountingArray(KELVIN, gate)
    page = FakePage()
    core = PlayerCore(page.send)
    core.source = ArraySource(array, vmin=260, vmax=310)
    core.receive(*envelope({"type": "hello"}))
    try:
        for ident in range(1, 11):  # frames 0..9 asked for ahead of need
            request(core, ident, ident - 1)
        core.receive(*envelope({"type": "frame_cancel", "ids": list(range(6, 11))}))  # the page seeked away
        gate.set()
        page.wait_for(lambda i: i.get("id") == 5 and i["type"] == "frame")
        sent = frames_sent(page)
        assert [item["index"] for item, _ in sent] == [0, 1, 2, 3, 4]  # in the order asked
        for item, data in sent:
            image = codecs.decode(codecs.Encoded(item["codec"], item["width"], item["height"], data))
            assert_same_picture(image, imshow_rgba(KELVIN[item["index"]], vmin=260, vmax=310))
        # Reads already started when the cancel came may finish; none past the first pool's worth.
        assert set(array.reads) <= set(range(9))
        assert {0, 1, 2, 3, 4} <= set(array.reads)
        assert len(array.reads) <= 9
        assert core.source.ahead.__len__() == 0  # nothing left behind
    finally:
        core.close()


def test_reads_overlap_on_several_threads():
    """Four slow reads asked for at once run at once (reads are I/O: they wait, not compute)."""
    barrier = threading.Barrier(4, timeout=10)

    class SlowArray(CountingArray):
        def __getitem__(self, key):
            barrier.wait()  # passes only when four reads are in progress together
            return super().__getitem__(key)

    page = FakePage()
    core = PlayerCore(page.send)
    core.source = ArraySource(SlowArray(KELVIN), vmin=0, vmax=1)
    core.receive(*envelope({"type": "hello"}))
    try:
        for ident in range(1, 5):
            request(core, ident, ident + 3)
        page.wait_for(lambda i: i.get("id") == 4 and i["type"] == "frame")
        assert [item["index"] for item, _ in frames_sent(page)] == [4, 5, 6, 7]
    finally:
        core.close()


def test_zarr_h5py_dask_and_memmap_read_frame_by_frame(tmp_path):
    import dask.array as da
    import h5py
    import zarr

    z = zarr.open(str(tmp_path / "t.zarr"), mode="w", shape=KELVIN.shape, chunks=(1, 24, 32), dtype="f4")
    z[:] = KELVIN
    with h5py.File(tmp_path / "t.h5", "w") as f:
        f["t"] = KELVIN
    mm = np.lib.format.open_memmap(tmp_path / "t.npy", mode="w+", dtype="f4", shape=KELVIN.shape)
    mm[:] = KELVIN
    mm.flush()
    with h5py.File(tmp_path / "t.h5", "r") as f:
        arrays = {"zarr": z, "h5py": f["t"], "dask": da.from_array(KELVIN, chunks=(1, 24, 32)),
                  "memmap": np.load(tmp_path / "t.npy", mmap_mode="r")}  # fmt: skip
        for name, array in arrays.items():
            source = ArraySource(array, cmap="inferno", vmin=265, vmax=305)
            source.prefetch(7)
            assert_same_picture(source.render(7), imshow_rgba(KELVIN[7], cmap="inferno", vmin=265, vmax=305)), name
            assert source.reads == 1, name


def test_xarray_title_counter_label_and_dim():
    import xarray as xr

    times = np.arange("2021-06-01", "2021-06-13", dtype="datetime64[D]")
    air = xr.DataArray(
        KELVIN, dims=("time", "lat", "lon"), coords={"time": times}, name="t2m",
        attrs={"long_name": "2 m temperature", "units": "K"},
    )  # fmt: skip
    source = ArraySource(air, vmin=270, vmax=300)
    assert source.title == "2 m temperature [K]"
    assert source.label(3) == "time = 2021-06-04"
    assert_same_picture(source.render(3), imshow_rgba(air.isel(time=3).values, vmin=270, vmax=300))
    # Another animated dimension: the others keep their order.
    by_lat = ArraySource(air.transpose("lat", "time", "lon"), dim="time", vmin=270, vmax=300)
    assert by_lat.shape == (12, 24, 32)
    assert_same_picture(by_lat.render(5), imshow_rgba(KELVIN[5], vmin=270, vmax=300))
    across = ArraySource(air, dim="lon", vmin=270, vmax=300)
    assert across.shape == (32, 12, 24)
    assert across.label(0) is None  # lon has no coordinate
    assert ArraySource(air.rename(None).assign_attrs(long_name=None, units=None), vmin=0, vmax=1).title is None
    with pytest.raises(ValueError, match=r"dim='level' is not a dimension.*\('time', 'lat', 'lon'\)"):
        ArraySource(air, dim="level")
    with pytest.raises(TypeError, match="xarray"):
        ArraySource(KELVIN, dim="time")
    levels = xr.DataArray(np.zeros((2, 3, 4, 5), np.float32), dims=("time", "level", "lat", "lon"))
    with pytest.raises(
        ValueError, match=r"\('time', 'level', 'lat', 'lon'\): select the others first, e.g. da.isel\(level=0\)"
    ):
        ArraySource(levels)


def test_labels_travel_with_frames_to_the_page():
    import xarray as xr

    air = xr.DataArray(KELVIN, dims=("step", "y", "x"), coords={"step": np.arange(12) * 0.5})
    page = FakePage()
    core = PlayerCore(page.send)
    core.source = ArraySource(air, vmin=0, vmax=1)
    core.receive(*envelope({"type": "hello"}))
    try:
        request(core, 1, 3)
        item = page.wait_for(lambda i: i.get("id") == 1)
        assert item["label"] == "step = 1.5"
    finally:
        core.close()


@pytest.mark.parametrize(
    ("array", "error", "match"),
    [
        (np.zeros((4, 5)), ValueError, r"\(T, H, W\) or \(T, H, W, 3\|4\).*\(4, 5\).*a\[None\]"),
        (np.zeros((2, 3, 8, 8)), ValueError, r"shape \(2, 3, 8, 8\).*channels first"),
        (np.zeros((2, 4, 5, 2)), ValueError, r"\(2, 4, 5, 2\)"),
        (np.zeros((2, 4, 5), complex), TypeError, "complex numbers"),
        (np.array([[["a"]]]), TypeError, "dtype <U1"),
        (np.zeros((2, 0, 5)), ValueError, "no pixels"),
        ([[1, 2]], TypeError, "list has no shape"),
    ],
)
def test_wrong_shape_or_dtype_is_a_clear_error(array, error, match):
    with pytest.raises(error, match=match):
        ArraySource(array)


def test_bad_colour_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="either norm or vmin/vmax"):
        ArraySource(KELVIN, norm=colors.Normalize(0, 1), vmin=0)
    with pytest.raises(TypeError, match="Normalize"):
        ArraySource(KELVIN, norm="log")
    with pytest.raises(ValueError, match="is not a matplotlib colour map"):
        ArraySource(KELVIN, cmap="no-such-map")
    with pytest.raises(TypeError, match=r"concurrent.futures.Executor or a dask distributed.Client"):
        ArraySource(KELVIN, executor=object())
    with pytest.raises(IndexError, match=r"12 frames \(0..11\)"):
        ArraySource(KELVIN, vmin=0, vmax=1).render(12)


def test_a_process_pool_colours_array_frames_exactly():
    with ProcessPoolExecutor(2) as pool:
        source = ArraySource(KELVIN, cmap="plasma", vmin=270, vmax=300, executor=pool)
        for index in range(4):
            source.prefetch(index)
        for index in range(4):
            assert_same_picture(source.render(index), imshow_rgba(KELVIN[index], cmap="plasma", vmin=270, vmax=300))


def test_a_worker_that_never_answers_fails_the_frame_with_a_timeout_instead_of_holding_it(monkeypatch):
    from concurrent.futures import Future

    from ipybridge.player import parallel

    class HungPool:  # a worker that took the task and died, or hangs
        def __init__(self):
            self.futures = []

        def submit(self, fn, *args, **kwargs):
            self.futures.append(Future())
            return self.futures[-1]

    monkeypatch.setattr(parallel, "EXECUTOR_TIMEOUT_S", 0.2)
    pool = HungPool()
    source = ArraySource(KELVIN, vmin=270, vmax=300, executor=pool)
    with pytest.raises(TimeoutError, match=r"frame 3: the executor gave no result in 0.2 s"):
        source.render(3)
    assert pool.futures[-1].cancelled()
    from ipybridge.player.sources import FigureSource

    fig, update = _figure_and_func()  # a pure frame function's frames, drawn on the workers
    pure = parallel.PureFigureSource(FigureSource(fig, update, frames=4), pool)
    with pytest.raises(TimeoutError, match=r"frame 2: the executor gave no result"):
        pure.render(2)
    plt.close(fig)


def _figure_and_func():
    fig = plt.figure(figsize=(2, 1.5), dpi=50)
    ax = fig.add_subplot()
    ax.set_xlim(0, 2 * np.pi)
    ax.set_ylim(-1.1, 1.1)
    (line,) = ax.plot([], [])
    x = np.linspace(0, 2 * np.pi, 50)

    def update(k):  # pure: frame k depends only on k (a closure, as written in a notebook)
        line.set_data(x, np.sin(x + k / 3))
        ax.set_title(f"k = {k}")

    return fig, update


def test_a_pure_frame_function_draws_on_worker_processes_in_order():
    fig, update = _figure_and_func()
    serial = FigureSource(fig, update, frames=8)
    expected = [serial.render(k) for k in range(8)]
    from ipybridge.player.parallel import PureFigureSource

    fig2, update2 = _figure_and_func()
    with ProcessPoolExecutor(2) as pool:
        source = PureFigureSource(FigureSource(fig2, update2, frames=8), pool)
        for k in (5, 1, 7, 0):
            source.prefetch(k)
        for k in (5, 1, 7, 0, 3):
            assert np.array_equal(source.render(k), expected[k]), k
        with pytest.raises(IndexError):
            source.render(8)
        for k in range(8):
            source.prefetch(k)
        for k in range(8):
            assert np.array_equal(source.render(k), expected[k]), k
        # The pickle goes to a worker that asks for it: a few times at the start, not once per frame.
        assert 1 <= source.pickles_sent <= AHEAD_THREADS
        # Frames the page asks for encoded are encoded on the workers; the kernel only forwards them.
        source.prefetch(6, ("auto", 85))
        encoded = source.collect(6, ("auto", 85))
        assert isinstance(encoded, codecs.Encoded)
        assert encoded.codec == "png"
        assert np.array_equal(codecs.decode(encoded), expected[6])
    plt.close("all")


# Colour maps as users pass them: names, a resampled map, a map with its own under/over/bad colours,
# one whose bad colour is none of its 256 colours (a 257th colour).
USER_CMAPS = [
    "viridis",
    "gray",
    plt.get_cmap("coolwarm", 7),
    plt.get_cmap("inferno").with_extremes(under="cyan", over="magenta", bad="lime"),
    plt.get_cmap("twilight"),
]


@pytest.mark.parametrize("cmap", USER_CMAPS, ids=lambda c: getattr(c, "name", c))
def test_linear_norm_shortcut_gives_the_rows_matplotlib_gives(cmap):
    """Normalize + a plain colour map skip masked arrays; every pixel must still be imshow's."""
    from matplotlib.cm import ScalarMappable

    frames = {
        "kelvin with NaN": KELVIN[7],
        "inf and -inf": np.where(np.arange(KELVIN[3].size).reshape(KELVIN[3].shape) % 5 == 0, np.inf, KELVIN[3]),
        "under and over": KELVIN[4] * 1.1 - 20,
        "exactly the limits": np.full((4, 6), 270.0, np.float64).clip(270) + np.arange(6) * 6,
        "float16": KELVIN[5].astype(np.float16),
        "uint16 counts": RNG.integers(0, 4096, (24, 32), dtype=np.uint16),
        "int8 below zero": RNG.integers(-128, 127, (24, 32), dtype=np.int8),
        "mask": KELVIN[6] > 285,
        "all NaN": np.full((3, 3), np.nan, np.float32),
    }
    for limits in ((270, 300), (-5, 4000), (285, 285)):
        for name, frame in frames.items():
            mapper = ArraySource(frame[None], cmap=cmap, vmin=limits[0], vmax=limits[1]).mapper
            data = frame.astype(np.uint8) if frame.dtype == bool else frame
            expected = ScalarMappable(norm=colors.Normalize(*limits), cmap=mapper.cmap).to_rgba(
                np.ma.masked_invalid(data), bytes=True
            )
            made = mapper.paletted(frame)
            got = made.rgba() if isinstance(made, Paletted) else made
            assert np.array_equal(got, expected), (name, limits)


def test_sampled_limits_skip_nan_and_inf_as_imshow_autoscale_does():
    stack = np.stack([KELVIN[2], KELVIN[7], np.full_like(KELVIN[0], np.nan)])
    stack[1, 0, 0] = np.inf
    stack[0, 1, 1] = -np.inf
    source = ArraySource(stack)
    finite = stack[np.isfinite(stack)]
    assert (source.vmin, source.vmax) == (float(finite.min()), float(finite.max()))
    assert (ArraySource(np.full((2, 3, 3), np.nan)).vmin, ArraySource(np.full((2, 3, 3), np.nan)).vmax) == (0.0, 1.0)
    # Frame 0, read for the limits, is not read again for the first picture.
    source = ArraySource(KELVIN)
    reads = source.reads
    source.render(0)
    assert source.reads == reads


def test_the_page_codec_for_colour_mapped_frames_is_indexed_and_deflated_only_when_it_pays():
    smooth = np.broadcast_to(np.linspace(0, 1, 256, dtype=np.float32), (2, 256, 256))
    noise = RNG.random((2, 256, 256), dtype=np.float32)
    for stack, deflated in ((smooth, True), (noise, False)):
        source = ArraySource(stack, cmap="viridis", vmin=0, vmax=1)
        source.prefetch(1, ("auto", 85))
        encoded = source.collect(1, ("auto", 85))
        assert encoded.codec == "indexed"
        assert bool(encoded.data[1] & 1) is deflated
        assert len(encoded.data) < (0.2 if deflated else 1.01) * 256 * 256 + 1028
        assert_same_picture(codecs.decode(encoded), imshow_rgba(stack[1], cmap="viridis", vmin=0, vmax=1))
    with pytest.raises(ValueError, match="palette"):
        codecs.indexed(np.zeros((2, 2), np.uint8), np.zeros((300, 4), np.uint8))


def test_an_executor_needs_a_pure_frame_function():
    import ipybridge

    fig, update = _figure_and_func()
    with ProcessPoolExecutor(1) as pool, pytest.raises(TypeError, match="pure=True"):
        ipybridge.Player(fig, update, frames=4, executor=pool)
    with pytest.raises(TypeError, match="colour an array"):
        ipybridge.Player(fig, update, frames=4, cmap="gray")
    plt.close("all")


def test_dask_arrays_compute_each_frame_on_a_distributed_cluster():
    import dask.array as da
    from distributed import Client, LocalCluster

    stack = da.from_array(KELVIN, chunks=(1, 24, 32)) - 273.15  # a lazy computation, in degrees Celsius
    with (
        LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        source = ArraySource(stack, cmap="turbo", vmin=-5, vmax=30, executor=client)
        source.prefetch(4)
        picture = source.render(4)
        assert_same_picture(picture, imshow_rgba(KELVIN[4] - np.float32(273.15), cmap="turbo", vmin=-5, vmax=30))
        assert any("render_frame" in str(key) for key in client.run_on_scheduler(_task_prefixes))


def _task_prefixes(dask_scheduler=None):
    return list(dask_scheduler.task_prefixes)


@pytest.mark.parametrize("codec", ["auto", "png", "raw"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"cmap": "viridis", "vmin": 270, "vmax": 300},  # 256 colours + under, over, bad: 259 table rows
        {"cmap": plt.get_cmap("coolwarm", 7), "vmin": 275, "vmax": 295},  # 7 colours
        {
            "cmap": plt.get_cmap("viridis").with_extremes(under="white", over="black", bad="red"),
            "vmin": 280,
            "vmax": 290,
        },
    ],
)
def test_frames_sent_to_the_page_decode_to_imshow_pixels(kwargs, codec):
    """Colour-mapped frames travel as palette PNGs (one byte per pixel): still exactly imshow's pixels."""
    source = ArraySource(KELVIN, **kwargs)
    for index in (2, 7):
        source.prefetch(index, (codec, 85))
        encoded = source.collect(index, (codec, 85))
        image = codecs.decode(encoded)
        assert_same_picture(image, imshow_rgba(KELVIN[index], **kwargs))
        assert np.array_equal(image, source.render(index))


def test_more_than_256_colours_in_a_frame_fall_back_to_rgba():
    ramp = np.linspace(-0.1, 1.1, 40 * 40, dtype=np.float64).reshape(1, 40, 40).repeat(2, axis=0)
    ramp[:, 0, 0] = np.nan  # every table row is used: 256 colours, under, over and bad
    cmap = plt.get_cmap("viridis").with_extremes(under="white", over="black", bad="red")
    source = ArraySource(ramp, cmap=cmap, vmin=0, vmax=1)
    encoded = source.collect(1, ("png", 85))
    assert_same_picture(codecs.decode(encoded), imshow_rgba(ramp[1], cmap=cmap, vmin=0, vmax=1))


def test_indexed_png_round_trips():
    palette = RNG.integers(0, 256, (200, 4), dtype=np.uint8)
    indices = RNG.integers(0, 200, (13, 17), dtype=np.uint8)
    data = codecs.indexed_png(indices, palette)
    assert np.array_equal(codecs.decode(codecs.Encoded("png", 17, 13, data)), palette[indices])
    with pytest.raises(ValueError, match=r"1\.\.256"):
        codecs.indexed_png(indices, np.zeros((257, 4), np.uint8))


def test_a_flood_of_requests_keeps_work_ahead_bounded_and_answers_every_one():
    """A hostile or runaway page asking for every frame at once: at most MAX_AHEAD frames in the works."""
    from ipybridge.player.parallel import MAX_AHEAD

    stack = RNG.random((120, 6, 7)).astype(np.float32)
    gate = threading.Event()
    array = CountingArray(stack, gate)
    page = FakePage()
    core = PlayerCore(page.send)
    source = ArraySource(array, vmin=0, vmax=1)
    core.source = source
    core.receive(*envelope({"type": "hello"}))
    try:
        for ident in range(1, 121):
            request(core, ident, ident - 1)
        request(core, 121, 10**12)  # far out of range: an error, nothing read
        assert len(source.ahead) <= MAX_AHEAD
        gate.set()
        page.wait_for(lambda i: i.get("id") == 121, timeout=60)
        page.wait_for(lambda i: i.get("id") == 120, timeout=60)  # frames asked ahead may leave after the error
        sent = frames_sent(page)
        assert [item["index"] for item, _ in sent] == list(range(120))
        assert sorted(array.reads) == list(range(120))  # each frame read once
        error = next(item for item, _ in page.items() if item.get("id") == 121)
        assert error["type"] == "frame_error"
        assert "out of range" in error["error"]["evalue"]
    finally:
        core.close()


def test_player_widget_for_an_xarray_with_colour_bar_and_set_clim():
    import xarray as xr

    import ipybridge

    air = xr.DataArray(KELVIN, dims=("time", "y", "x"), name="t2m", attrs={"units": "K"})
    p = ipybridge.Player(air, cmap="coolwarm", colorbar=True)
    try:
        assert p.title == "t2m [K]"
        assert p.frames == 12
        assert p._colorbar.startswith(b"\x89PNG")
        before, generation = p._colorbar, p._generation
        p.set_clim(250, 320)
        assert (p.source.vmin, p.source.vmax) == (250, 320)
        assert p._colorbar != before
        assert p._generation == generation + 1  # the page drops the frames coloured with the old limits
        assert_same_picture(p.source.render(4), imshow_rgba(KELVIN[4], cmap="coolwarm", vmin=250, vmax=320))
        with pytest.raises(TypeError, match="takes no frame function"):
            ipybridge.Player(KELVIN, lambda i: None)
        with pytest.raises(TypeError, match="pure="):
            ipybridge.Player(KELVIN, pure=True)
    finally:
        p.close()


def test_the_saved_static_picture_is_the_current_frame_as_imshow_paints_it():
    import base64

    import ipybridge

    p = ipybridge.Player(KELVIN, cmap="magma", vmin=270, vmax=300)
    try:
        p.seek(7)
        bundle = p._repr_mimebundle_()
        assert bundle is not None
        png = base64.b64decode(bundle[0]["image/png"])
        image = codecs.decode(codecs.Encoded("png", 32, 24, png))
        assert_same_picture(image, imshow_rgba(KELVIN[7], cmap="magma", vmin=270, vmax=300))
        # The page paints the same frame as its first, without asking, in the page's own codec.
        assert p._poster_codec == "indexed"
        assert p._poster_size == [32, 24]
        assert p._poster_any_scale
        poster = codecs.decode(codecs.Encoded("indexed", 32, 24, p._poster))
        assert np.array_equal(poster, image)
    finally:
        p.close()
