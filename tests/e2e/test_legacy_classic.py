"""Classic notebooks run unmodified: the same classic-era notebook in the classic
notebook (nbclassic, the reference), JupyterLab 4 and Notebook 7.

The user's steps (run cells, click, type) are the same in every page; what each
page reaches is collected into a dict. The classic notebook's dict is the
expected one: JupyterLab and Notebook 7 (after ``%load_ext ipybridge``) must reach
the same, except for the classic members ipybridge does not provide, which must
fail loudly, naming themselves.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from . import classic_notebook as cn
from .harness import WAIT_MS, Jupyter, JupyterServer, write_notebook


class Notebook(Protocol):
    page: Page
    path: Path

    def run_cell(self, index: int) -> None: ...
    def wait_cell_done(self, index: int, timeout: int = WAIT_MS) -> None: ...
    def output(self, index: int) -> Locator: ...
    def restart_kernel(self) -> float: ...
    def run_all(self) -> None: ...


class ClassicNotebook:
    """A notebook open in the classic notebook (nbclassic), driven as a user would."""

    def __init__(self, page: Page, server: JupyterServer, path: Path) -> None:
        self.page = page
        self.server = server
        self.path = path

    def open(self) -> ClassicNotebook:
        rel = self.path.relative_to(self.server.root).as_posix()
        self.page.goto(f"{self.server.url}/nbclassic/notebooks/{rel}")  # nbclassic next to Notebook 7
        expect(self.page.locator("#kernel_indicator_icon.kernel_idle_icon")).to_be_attached()
        return self

    def cell(self, index: int) -> Locator:
        return self.page.locator("#notebook-container > .cell").nth(index)

    def output(self, index: int) -> Locator:
        return self.cell(index).locator(".output_subarea")

    def run_cell(self, index: int) -> None:
        self.cell(index).locator(".input_prompt").first.click()
        self.page.keyboard.press("Escape")
        self.page.keyboard.press("Shift+Enter")
        expect(self.cell(index).locator(".input_prompt").first).to_have_text(re.compile(r"In\s*\[(\*|\d+)\]"))

    def run_all(self) -> None:
        self.page.locator("#celllink").click()
        self.page.locator("#run_all_cells > a").click()

    def restart_kernel(self) -> float:
        self.page.locator("#kernellink").click()
        self.page.locator("#restart_kernel > a").click()
        self.page.locator(".modal-dialog .btn-danger").click()
        return 0.0

    def wait_cell_done(self, index: int, timeout: int = WAIT_MS) -> None:
        expect(self.cell(index).locator(".input_prompt").first).to_have_text(
            re.compile(r"In\s*\[\d+\]"), timeout=timeout
        )


def drive(nb: Notebook) -> dict[str, Any]:
    """Run the classic-era notebook as a user would; return what the page reached."""
    page, i = nb.page, cn.INDEX
    seen: dict[str, Any] = {}
    for name in ("load", "form", "require_name", "define_label", "label_button", "labeller", "use_global",
                 "element", "iframe", "api", "widget", "run_below"):  # fmt: skip
        nb.run_cell(i[name])
    nb.wait_cell_done(i["run_below"])

    def printed(name: str) -> str:
        nb.run_cell(i[name])
        nb.wait_cell_done(i[name])
        expect(nb.output(i[name])).not_to_have_text("")
        return nb.output(i[name]).inner_text().strip()

    # 1. jQuery: the form's button asks the kernel; the answer is shown with $('#r').text().
    page.get_by_role("button", name="go", exact=True).click()
    expect(page.locator("#r")).to_have_text("42")
    seen["form"] = page.locator("#r").inner_text()
    # 2. require(['base/js/namespace']) gives Jupyter.notebook, whose notebook_name reached the kernel.
    seen["nb_name"] = printed("print_name")
    # 4. A function defined in %%javascript, called by another output's onclick.
    page.get_by_role("button", name="3", exact=True).click()
    seen["last_key"] = _eventually(nb, "print_label", "3")
    # 1 + 2 + 4: the labelling tool (built with jQuery, stored with define/require).
    page.locator("#pick-s1-dog").click()
    page.locator("#pick-s2-cat").click()
    expect(page.locator("#samples")).to_have_attribute("data-count", "2")
    seen["labels"] = _eventually(nb, "print_labels", '{"s1":"dog","s2":"cat"}')
    expect(page.locator("#ajax")).not_to_have_text("")
    seen["ajax"] = page.locator("#ajax").inner_text()
    seen["global"] = page.locator("#global-labels").inner_text()
    # 5. element and this in %%javascript; the classic cell-index snippet; #notebook_name.
    expect(page.locator("#from-element")).not_to_have_text("")
    seen["element"] = page.locator("#from-element").inner_text()
    seen["dom"] = printed("print_dom")
    # 6. parent.IPython from an output's iframe.
    page.frame_locator("#frame").locator("#in-frame").click()
    seen["iframe"] = _eventually(nb, "print_iframe", "42")
    # 3 + 8. The notebook API, then saving (the notebook_saved.Notebook event).
    expect(page.locator("#api")).not_to_have_text("")
    seen["api"] = json.loads(page.locator("#api").inner_text())
    page.locator("#save").click()
    expect(page.locator("#api")).to_have_attribute("data-saved", "yes")
    saved = json.loads(nb.path.read_text())
    seen["saved"] = [saved["cells"][0]["metadata"].get("classic_tag"), saved["metadata"].get("labelling")]
    # 7. A widget callback displays JavaScript: it runs in the widget's cell.
    page.get_by_role("button", name="Clicked from a widget").click()
    callback = nb.output(i["widget"]).filter(has_text="callback ran")
    expect(callback).to_have_text("callback ran function")
    seen["callback"] = callback.inner_text()
    # 3. A button runs the cells below it, visibly (they show their outputs).
    page.locator("#run-below").click()
    nb.wait_cell_done(i["below_2"])
    expect(nb.output(i["below_2"])).to_have_text("second below ran 1")
    seen["below"] = [nb.output(i["below_1"]).inner_text().strip(), nb.output(i["below_2"]).inner_text().strip()]
    # 9. Comms: the kernel opens one to the page's target and gets its replies; the page opens one
    # to the kernel's target and gets the kernel's answers; the kernel closes its comm.
    nb.run_cell(i["comm_target"])
    nb.wait_cell_done(i["comm_target"])
    expect(page.locator("#comm-log")).to_be_attached()
    nb.run_cell(i["comm_from_kernel"])
    nb.wait_cell_done(i["comm_from_kernel"])
    seen["comm_replies"] = _eventually(nb, "print_comm", "[{'got': 2}]")
    nb.run_cell(i["close_comm"])
    expect(page.locator("#comm-log")).to_have_text(re.compile("closed;$"))
    seen["comm_log"] = page.locator("#comm-log").inner_text()
    nb.run_cell(i["comm_from_page"])
    page.locator("#open-comm").click()
    expect(page.locator("#comm-echo")).to_have_text(re.compile(r"\{\"echo\":42\};$"))
    seen["comm_echo"] = page.locator("#comm-echo").inner_text()
    # %autosave 0: its script runs without an error (the output is the magic's own line).
    nb.run_cell(i["autosave"])
    nb.wait_cell_done(i["autosave"])
    expect(nb.output(i["autosave"]).filter(has_text="Autosave disabled")).not_to_have_count(0)
    # The magic's script ran to its end (classic and ipybridge both keep the interval): an error it
    # threw would be in the output by then.
    page.wait_for_function("() => IPython.notebook.autosave_interval === 0")
    seen["autosave"] = " ".join(t.strip() for t in nb.output(i["autosave"]).all_inner_texts() if t.strip())
    # 3. Kernel events: a restart fires kernel_restarting.Kernel, then kernel_ready.Kernel
    # (the classic notebook fires it twice, after reconnecting and on "starting"; ipybridge once).
    nb.restart_kernel()
    expect(page.locator("#api")).to_have_attribute("data-restarting", "yes")
    expect(page.locator("#api")).to_have_attribute("data-ready", re.compile(r"[12]"))
    expect(page.locator("#api")).to_have_attribute("data-ready-1x", "yes")  # $([IPython.events]).on(...)
    seen["ready_after_restart"] = True
    return seen


def drive_course(nb: Notebook) -> dict[str, Any]:
    """The course-material notebook: run all, read the page, use its buttons and notes box."""
    page, last = nb.page, len(cn.COURSE_CELLS) - 1
    seen: dict[str, Any] = {}
    visible_inputs = "() => $('div.input:visible').length"
    nb.run_all()
    nb.wait_cell_done(last)
    page.wait_for_function(f"() => ({visible_inputs})() === 0")  # the toggle hid the code
    seen["after_load"] = page.evaluate(visible_inputs)
    seen["no_scroll_output"] = "".join(t.strip() for t in nb.output(1).all_inner_texts())
    # Read at once by a script that "Run All" reached a moment after %load_ext.
    seen["placeholder"] = page.locator("#notes").get_attribute("placeholder")
    page.locator("#toggle").click()
    page.wait_for_function(f"() => ({visible_inputs})() > 0")
    seen["after_toggle"] = page.evaluate(visible_inputs)
    # Letters typed into the notes box stay there: no notebook shortcut (a: insert above...) fires.
    page.locator("#notes").click()
    page.keyboard.type("ab")
    expect(page.locator("#notes")).to_have_value("ab")
    seen["notes"] = page.locator("#notes").input_value()
    seen["cells_after_typing"] = page.evaluate("IPython.notebook.ncells()")
    # The new cell goes below the cell selected before the click (the notes box's), as in classic.
    page.locator("#add-cell").click()  # also takes the focus off the notes box (enable())
    nb.wait_cell_done(3)
    expect(nb.output(3)).to_have_text("42")
    seen["added"] = [page.evaluate("IPython.notebook.get_cell(3).get_text()"), nb.output(3).inner_text().strip()]
    seen["cells_after_adding"] = page.evaluate("IPython.notebook.ncells()")
    # insert_cell_below leaves the selection where it was (classic 4.x-5.x), so a loop inserts each
    # new cell right below the selected one; to_markdown + render shows a heading; delete_cell.
    seen["loop"] = page.evaluate(LOOP_INSERT)
    seen["markdown"] = page.evaluate(MAKE_MARKDOWN)
    expect(page.get_by_role("heading", name="Made by a script")).to_be_visible()
    return seen


LOOP_INSERT = """() => {
  var nb = IPython.notebook;
  nb.select(0);
  for (var k = 1; k <= 2; k++) nb.insert_cell_below('code').set_text('loop ' + k);
  return [nb.get_selected_index(), nb.get_cell(1).get_text(), nb.get_cell(2).get_text(), nb.ncells()];
}"""
MAKE_MARKDOWN = """() => {
  var nb = IPython.notebook;
  nb.to_markdown(1);
  var cell = nb.get_cell(1);
  cell.set_text('## Made by a script');
  cell.render();
  var after_convert = nb.get_selected_index();
  nb.delete_cell(2);
  return [cell.cell_type, after_convert, nb.get_selected_index(), nb.ncells(), nb.get_cell(2).get_text().slice(0, 9)];
}"""


def _eventually(nb: Notebook, name: str, expected: str) -> str:
    """Run the print cell ``name`` until it prints ``expected`` (the click's kernel call may still be on its way)."""
    index = cn.INDEX[name]
    for _attempt in range(20):
        nb.run_cell(index)
        nb.wait_cell_done(index)
        text = nb.output(index).inner_text().strip()
        if text == expected:
            return text
        nb.page.wait_for_timeout(250)  # the click's call is in flight: let it land, then print again
    return text


@pytest.fixture(scope="module")
def classic_reference(server: JupyterServer, browser: Browser) -> Iterator[dict[str, Any]]:
    """What the classic notebook (nbclassic, served by the same server) reaches with the same steps."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        path = server.root / "classic_era.ipynb"
        write_notebook(path, cn.CELLS)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        yield {"seen": drive(ClassicNotebook(page, server, path).open()), "name": path.name}
    finally:
        context.close()
        server.shutdown_kernels()


def test_a_classic_era_notebook_reaches_what_it_reached_in_the_classic_notebook(
    jupyter: Jupyter, ui: str, classic_reference: dict[str, Any]
) -> None:
    nb = jupyter.open(ui, cn.CELLS, name="classic_era")
    seen = drive(nb)
    expected = json.loads(json.dumps(classic_reference["seen"]))
    # What differs by nature: the file name, and the classic members ipybridge lacks.
    name, stem = nb.path.name, nb.path.stem
    classic_name = classic_reference["name"]
    assert expected["nb_name"] == classic_name
    expected["nb_name"] = name
    assert expected["dom"] == f"{cn.INDEX['element']} {Path(classic_name).stem}"
    expected["dom"] = f"{cn.INDEX['element']} {stem}"
    assert expected["api"].pop("missing").startswith("read function")
    missing = seen["api"].pop("missing")
    assert missing.startswith("IPython.notebook.undelete_cell is not supported by ipybridge")
    assert seen == expected
    # And the values themselves, so that the reference cannot drift unnoticed.
    assert seen["form"] == "42"
    assert seen["last_key"] == "3"
    assert seen["labels"] == '{"s1":"dog","s2":"cat"}'
    assert seen["ajax"] == "type=notebook"
    assert seen["global"] == "cat/dog/bird object"
    assert seen["element"] == "element is jQuery: true"
    assert seen["iframe"] == "42"
    assert seen["saved"] == ["set from js", {"done": True}]
    assert seen["below"] == ["below ran 1", "second below ran 1"]
    assert seen["ready_after_restart"] is True
    api = seen["api"]
    assert api["comm"] == "no error"
    assert seen["autosave"] == "Autosave disabled"
    assert (api["next"], api["prev"], api["sel_indices"], api["dirty"]) == (4, 2, [2], True)
    assert api["sel_text"] == cn.CELLS[2]
    assert seen["comm_replies"] == "[{'got': 2}]"
    assert seen["comm_log"] == 'open {"foo":1};msg {"foo":2};closed;'
    assert seen["comm_echo"] == '{"opened_with":{"hello":1}};{"echo":42};'
    assert (api["ncells"], api["first"], api["same_object"], api["out_of_range"]) == (
        len(cn.CELLS),
        cn.LOAD,
        True,
        None,
    )
    assert (api["metadata"], api["hidden"], api["selected_is_cell"]) == ("set from js", True, True)


CLASSIC_GLOBALS = """() => ["$", "jQuery", "require", "requirejs", "define", "IPython", "Jupyter", "__ipybridgeLegacy"]
    .filter((name) => typeof window[name] !== "undefined")"""


@pytest.fixture(scope="module")
def classic_course(server: JupyterServer, browser: Browser) -> Iterator[dict[str, Any]]:
    """The course-material notebook in the classic notebook."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        path = server.root / "classic_course.ipynb"
        write_notebook(path, cn.COURSE_CELLS)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        yield drive_course(ClassicNotebook(page, server, path).open())  # named classic_course.ipynb
    finally:
        context.close()
        server.shutdown_kernels()


def test_a_classic_course_notebook_sets_itself_up_as_in_the_classic_notebook(
    jupyter: Jupyter, ui: str, classic_course: dict[str, Any]
) -> None:
    nb = jupyter.open(ui, cn.COURSE_CELLS, name="classic_course")
    # Before %load_ext ipybridge runs, nothing of the classic page is there.
    assert nb.page.evaluate(CLASSIC_GLOBALS) == []
    seen = drive_course(nb)
    assert classic_course["placeholder"] == "Notes on classic_course.ipynb"
    assert seen == {**classic_course, "placeholder": f"Notes on {nb.path.name}"}
    assert seen["after_load"] == 0
    assert seen["after_toggle"] == len(cn.COURSE_CELLS)
    assert seen["no_scroll_output"] == ""
    assert (seen["notes"], seen["cells_after_typing"]) == ("ab", len(cn.COURSE_CELLS))
    assert seen["added"] == ["answer = 6 * 7\nprint(answer)", "42"]
    assert seen["cells_after_adding"] == len(cn.COURSE_CELLS) + 1
    n = len(cn.COURSE_CELLS) + 3
    assert seen["loop"] == [0, "loop 2", "loop 1", n]
    assert seen["markdown"] == ["markdown", 1, 1, n - 1, "%%javascr"]
