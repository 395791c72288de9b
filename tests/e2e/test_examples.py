"""The example notebooks run top to bottom without an error, and do what they show."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import expect

from .harness import Jupyter

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_bridge_example_runs_and_works(jupyter: Jupyter) -> None:
    notebook = json.loads((EXAMPLES / "bridge.ipynb").read_text())
    code = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    nb = jupyter.open("lab", code, name="bridge-example")
    nb.run_all()
    for index in range(len(code)):
        nb.wait_cell_done(index)
    expect(nb.page.locator('[data-mime-type="application/vnd.jupyter.stderr"]')).to_have_count(0)
    # The form sets a Python variable.
    nb.page.get_by_role("button", name="Save in Python").click()
    expect(nb.page.get_by_text("saved 'Ada', 36")).to_be_visible()
    nb.run_cell(1)
    expect(nb.output(1)).to_contain_text("{'name': 'Ada', 'age': 36}")
    # The code box shows output and result.
    nb.page.get_by_role("button", name="Run", exact=True).click()
    expect(nb.page.locator("pre.out")).to_contain_text("pi is about 3.1416")
    expect(nb.page.locator("pre.out")).to_contain_text("→ [0, 1, 4, 9, 16, 25, 36, 49]")
    # The Julia set was painted (the info line reports the round trip).
    expect(nb.page.locator(".info")).to_contain_text(" ms")
    # Python's events and call_js reached the page.
    expect(nb.page.locator(".log")).to_have_text("tick 5 from Python")
    expect(nb.output(len(code) - 1)).to_contain_text("the page is titled:")


def test_installed_server_extension_is_loaded(jupyter: Jupyter) -> None:
    """ipybridge enables its server extension where it is installed (no Nagle on kernel websockets)."""
    assert "ipybridge.server: TCP_NODELAY on kernel websockets" in jupyter.server.log_text()
