"""Makes docs/images/science.png: a Player of an xarray DataArray in JupyterLab, as a user sees it.

.venv/bin/python scripts/screenshot_science.py
"""

from __future__ import annotations

import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.harness import Jupyter, launched_chromium, start_server, stop_server  # noqa: E402

CELL = textwrap.dedent(
    """
    import numpy as np, xarray as xr, ipybridge
    # A synthetic surface-temperature field: a seasonal cycle, a wandering warm pool and weather noise.
    time = np.arange("2024-01-01", "2024-12-31", 3, dtype="datetime64[D]")
    lat = np.linspace(-89, 89, 180); lon = np.linspace(-179, 179, 360)
    la, lo = np.meshgrid(np.deg2rad(lat), np.deg2rad(lon), indexing="ij")
    rng = np.random.default_rng(1)
    def day(t):
        season = np.sin(2 * np.pi * t / 365)
        pool = 6 * np.exp(-((lo - 2.5 + 0.01 * t) ** 2 + (la - 0.1 * season) ** 2) / 0.08)
        waves = 5 * np.sin(4 * lo + 0.08 * t + 2 * np.sin(3 * la)) * np.cos(la) ** 2 * np.sin(2 * la)
        return 288 + 30 * np.cos(la) - 18 + 12 * season * np.sin(la) + pool + waves + rng.normal(0, 0.3, la.shape)
    t2m = xr.DataArray(np.stack([day(t) for t in range(0, 365, 3)[: len(time)]]).astype("float32")[:, ::-1],
                       dims=("time", "lat", "lon"), coords={"time": time, "lat": lat[::-1], "lon": lon},
                       name="t2m", attrs={"long_name": "2 m temperature", "units": "K"})
    p = ipybridge.Player(t2m, cmap="RdBu_r", colorbar=True)
    p.seek(40)
    p
    """
)


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="science-shot-"))
    server = start_server(root)
    try:
        with launched_chromium() as browser:
            jupyter = Jupyter(server, browser, ROOT / "test-artifacts")
            nb = jupyter.open("lab", [CELL], name="science")
            nb.run_cell(0)
            player = nb.output(0).locator(".ipybridge-player")
            player.locator("canvas[data-frame='40']").wait_for(timeout=60_000)
            player.get_by_role("img", name="Colour bar").wait_for(timeout=60_000)
            nb.page.wait_for_function(
                "() => document.querySelector('.ipybridge-player .ipb-counter').textContent.includes('time =')"
            )
            out = ROOT / "docs" / "images" / "science.png"
            nb.cell(0).locator(".jp-OutputArea").screenshot(path=str(out))
            print(f"wrote {out}")
            jupyter.close(None)
    finally:
        stop_server(server)


if __name__ == "__main__":
    main()
