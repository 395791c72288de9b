"""Science data in the Player, as a user meets it in JupyterLab 4 and Notebook 7.

A zarr stack on disk and an xarray DataArray play frame by frame; what the canvas
shows is compared pixel for pixel with matplotlib's own ``imshow`` of the same
frame with the same colour map and limits (computed here, in the test process,
from the same data). A dask array is computed frame by frame on a LocalCluster
worker process. Wrong shapes and dtypes are clear errors.
"""

from __future__ import annotations

import re
import textwrap

import numpy as np
from playwright.sync_api import expect

from ..unit.test_player_arrays import assert_same_picture, imshow_rgba
from .test_player import button, canvas_of, probe, wait_frame

# The same data in the kernel and in this process (the reference).
DATA = textwrap.dedent(
    """
    import numpy as np
    rng = np.random.default_rng(11)
    y, x = np.mgrid[0:36, 0:52]
    # 30 frames of a travelling warm blob over noise, in kelvin, with a hole of missing values.
    kelvin = np.stack([280 + 15 * np.exp(-((x - 1.5 * t) ** 2 + (y - 18) ** 2) / 60) + rng.normal(0, 1.5, x.shape)
                       for t in range(30)]).astype("float32")
    kelvin[:, 5:9, 40:44] = np.nan
    times = np.arange("2024-03-01T00", "2024-03-02T06", 1, dtype="datetime64[h]")
    """
)

SETUP = DATA + textwrap.dedent(
    """
    import tempfile, os
    import ipywidgets, xarray as xr, zarr
    from matplotlib.colors import LogNorm
    import ipybridge

    store = os.path.join(tempfile.mkdtemp(), "kelvin.zarr")
    z = zarr.open(store, mode="w", shape=kelvin.shape, chunks=(1, 36, 52), dtype="f4")
    z[:] = kelvin
    stack = zarr.open(store, mode="r")        # the Player reads this lazily, frame by frame
    pz = ipybridge.Player(stack, cmap="magma", norm=LogNorm(278, 296), fps=30)

    air = xr.DataArray(kelvin, dims=("time", "lat", "lon"), coords={"time": times},
                       name="t2m", attrs={"long_name": "air temperature", "units": "K"})
    px = ipybridge.Player(air, cmap="coolwarm", colorbar=True)   # limits from sampled frames
    ipywidgets.HBox([pz, px])
    """
)
PROBE = 'print(f"reads={pz.source.reads} vmin={px.source.vmin!r} vmax={px.source.vmax!r}")'
DASK = textwrap.dedent(
    """
    import dask.array as da
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None)
    client = Client(cluster)
    celsius = da.from_zarr(store) - 273.15          # lazy: nothing computed yet
    pd_ = ipybridge.Player(celsius, cmap="viridis", vmin=5, vmax=25, executor=client)
    pd_
    """
)
ON_CLUSTER = textwrap.dedent(
    """
    prefixes = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
    workers = client.run(os.getpid)
    print("on cluster:", "render_frame" in prefixes, "worker pid differs:", os.getpid() not in workers.values())
    """
)
BAD_SHAPE = "ipybridge.Player(np.zeros((10, 3, 64, 64), dtype=np.float32))"
BAD_DTYPE = "ipybridge.Player(np.zeros((10, 64, 64), dtype=np.complex64))"
CLEANUP = "client.close(); cluster.close(); print('closed')"

PIXELS = "c => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"


def painted(canvas) -> np.ndarray:
    width, height = canvas.evaluate("c => [c.width, c.height]")
    return np.array(canvas.evaluate(PIXELS), dtype=np.uint8).reshape(height, width, 4)


def test_zarr_xarray_and_dask_arrays_play_as_imshow_paints_them(jupyter, ui):
    reference: dict = {}
    exec(DATA, reference)  # the same data the notebook builds
    kelvin = reference["kelvin"]
    nb = jupyter.open(ui, [SETUP, PROBE, DASK, ON_CLUSTER, BAD_SHAPE, BAD_DTYPE, CLEANUP], name="arrays")
    nb.run_cell(0)
    zarr_canvas, xr_canvas = canvas_of(nb, 0, 0), canvas_of(nb, 0, 1)
    expect(zarr_canvas).to_have_attribute("data-frame", "0")
    expect(xr_canvas).to_have_attribute("data-frame", "0")
    assert zarr_canvas.evaluate("c => [c.width, c.height]") == [52, 36]

    from matplotlib.colors import LogNorm

    # zarr: frame 0, then frame 12 after a seek, equal to imshow with the same cmap and norm.
    assert_same_picture(painted(zarr_canvas), imshow_rgba(kelvin[0], cmap="magma", norm=LogNorm(278, 296)))
    zarr_player = nb.output(0).locator(".ipybridge-player").nth(0)
    zarr_player.get_by_label("Frame", exact=True).fill("12")
    expect(zarr_canvas).to_have_attribute("data-frame", "12")
    assert_same_picture(painted(zarr_canvas), imshow_rgba(kelvin[12], cmap="magma", norm=LogNorm(278, 296)))

    # xarray: title with variable and units, the time coordinate in the counter, a colour bar,
    # and frames equal to imshow with the limits the Player chose (printed by the kernel).
    xr_player = nb.output(0).locator(".ipybridge-player").nth(1)
    expect(xr_player.get_by_role("heading")).to_have_text("air temperature [K]")
    expect(xr_player.get_by_label("Frame counter")).to_have_text("time = 2024-03-01 (0 / 29)")
    colour_bar = xr_player.get_by_role("img", name="Colour bar")
    expect(colour_bar).to_be_visible()
    assert colour_bar.evaluate("i => i.complete && i.naturalHeight") >= 36
    button(nb, 0, "Last", 1).click()
    expect(xr_canvas).to_have_attribute("data-frame", "29")
    expect(xr_player.get_by_label("Frame counter")).to_have_text("time = 2024-03-02T05:00 (29 / 29)")
    probe(nb, 1, r"reads=\d+ vmin=\S+ vmax=\S+")
    match = re.search(r"reads=(\d+) vmin=(\S+) vmax=(\S+)", nb.output(1).inner_text())
    assert match
    vmin, vmax = float(match[2]), float(match[3])
    assert 270 < vmin < 285 < vmax < 300  # from the data's sampled frames, not [0, 1]
    assert_same_picture(painted(xr_canvas), imshow_rgba(kelvin[29], cmap="coolwarm", vmin=vmin, vmax=vmax))

    # Playing the zarr stack reads frames as they are needed, never the whole array up front.
    button(nb, 0, "Play", 0).click()
    wait_frame(nb, zarr_canvas, lambda f: f < 12, "past the end and round again")
    button(nb, 0, "Pause", 0).click()
    probe(nb, 1, r"reads=\d+")
    reads = int(re.search(r"reads=(\d+)", nb.output(1).inner_text())[1])
    assert 0 < reads < 200  # a few loops of 30 frames, each read once per request; the page caches

    # A dask array computed frame by frame on a LocalCluster worker process.
    nb.run_cell(2)
    dask_canvas = canvas_of(nb, 2)
    expect(dask_canvas).to_have_attribute("data-frame", "0", timeout=60_000)
    button(nb, 2, "Next Frame").click()
    expect(dask_canvas).to_have_attribute("data-frame", "1")
    celsius = kelvin[1] - np.float32(273.15)
    assert_same_picture(painted(dask_canvas), imshow_rgba(celsius, cmap="viridis", vmin=5, vmax=25))
    probe(nb, 3, r"on cluster: True worker pid differs: True")

    # Wrong shape, wrong dtype: a clear error in the cell's output.
    nb.run_cell(4)
    expect(nb.output(4)).to_contain_text(
        "ValueError: Player plays frames of shape (T, H, W) or (T, H, W, 3|4); this array has shape (10, 3, 64, 64)"
    )
    expect(nb.output(4)).to_contain_text("channels first?")
    # The error's reply first: a cell sent before it is aborted by the kernel (stop_on_error; its prompt goes
    # back to [ ], seen once under load).
    nb.wait_cell_done(4)
    nb.run_cell(5)
    expect(nb.output(5)).to_contain_text("TypeError: Player colours real numbers")
    expect(nb.output(5)).to_contain_text("complex numbers")
    # The error's reply first: a cell queued while an error is handled is aborted by the kernel.
    nb.wait_cell_done(5)
    probe(nb, 6, r"closed")
