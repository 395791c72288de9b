"""The classic notebook's kernel.execute, revived by ``%load_ext ipybridge``.

Classic-style JavaScript (HTML script tags, ``%%html``, ``%%javascript``,
``IPython.display.Javascript``, inline onclick handlers) runs unmodified in
JupyterLab 4 and Notebook 7; the checks run in the page and write what the
callbacks saw into the DOM, where the test reads it.
"""

from __future__ import annotations

import json
import re
import textwrap
import uuid
from pathlib import Path

from playwright.sync_api import Page, expect

from .harness import Jupyter, NotebookPage, write_notebook

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

EARLY = textwrap.dedent(
    """
    %load_ext ipybridge
    from IPython.display import HTML, Javascript, display
    # Displayed in the same cell, right after the shim: found at once, queued until the link is up.
    display(HTML('''<pre id="early"></pre><script>
    var box = document.currentScript.parentNode.querySelector("#early");
    IPython.notebook.kernel.execute("runs = globals().get('runs', 0) + 1\\\\nf'run {runs}'", {
      iopub: {output: function (msg) { box.textContent = msg.msg_type + ":" + msg.content.data["text/plain"]; }}
    }, {silent: false});
    </script>'''))
    """
)

CHECKS = r"""
<button id="legacy-set" onclick="IPython.notebook.kernel.execute('clicked = \'from the button\'', {shell: {reply: function (msg) { document.getElementById('legacy-set-status').textContent = 'set ' + msg.content.status; }}})">Set a variable</button>
<span id="legacy-set-status"></span>
<button id="legacy-release" onclick="IPython.notebook.kernel.execute('print(\'released\'); release = True', {output: function (type, content) { var box = document.getElementById('legacy-release-status'); box.dataset.type = type; box.textContent += content.text; }})">Release</button>
<pre id="legacy-release-status"></pre>
<button id="legacy-slow" onclick="IPython.notebook.kernel.execute('import time; time.sleep(120)', {output: function (type, content) { document.getElementById('legacy-slow-status').textContent = type + ':' + content.ename; }})">Slow</button>
<pre id="legacy-slow-status"></pre>
<pre id="legacy-magic"></pre><pre id="legacy-js-display"></pre>
<pre id="legacy-results"></pre>
<script>
(function () {
  function run1x(code, options) {
    return new Promise(function (resolve) {
      var seen = [];
      IPython.notebook.kernel.execute(code, {
        output: function (type, content) { seen.push([type, content]); },
        execute_reply: function (content) { resolve({seen: seen, reply: content}); }
      }, options);
    });
  }
  function run2(code, options) {
    return new Promise(function (resolve) {
      var seen = [], statuses = [];
      var id = Jupyter.notebook.kernel.execute(code, {
        iopub: {
          output: function (msg) { seen.push([msg.msg_type, msg.content, msg.parent_header.msg_id === id]); },
          status: function (msg) { statuses.push(msg.content.execution_state); }
        },
        shell: {reply: function (msg) { resolve({seen: seen, reply: msg.content, type: msg.msg_type, id: typeof id, statuses: statuses}); }}
      }, options);
    });
  }
  var checks = {
    v1: run1x("import sys\nprint('one')\nprint('two', file=sys.stderr)\n6 * 7", {silent: false}),
    v1_display: run1x("from IPython.display import display, HTML\ndisplay(HTML('<i>hi</i>'))"),
    v1_error: run1x("print('before')\n1/0"),
    v2: run2("print('a')\ndisplay(HTML('<b>b</b>'))\nprint('c')\n'result'", {silent: false}),
    v2_silent: run2("print('p')\n'hidden by silent'"),
    v2_error: run2("1/0"),
    v2_image: run2("from IPython.display import Image\nImage(data=bytes.fromhex('89504e470d0a1a0a0000000d4948445200000001000000010806000000" +
                   "1f15c4890000000d49444154789c63f8cfc0f01f0005000201e2c6ee1b0000000049454e44ae426082'))", {silent: false}),
    figure: run2("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])", {silent: false}),
    history: run2("7 * 6", {silent: false, store_history: true}),
    expressions: run2("z = 5", {user_expressions: {twice: "z * 2", bad: "undefined_name"}})
  };
  var names = Object.keys(checks);
  Promise.all(names.map(function (k) { return checks[k]; })).then(function (values) {
    var out = {};
    names.forEach(function (k, i) { out[k] = values[i]; });
    document.getElementById("legacy-results").textContent = JSON.stringify(out);
  });
})();
</script>
"""

MAGIC_JS = textwrap.dedent(
    """
    %%javascript
    Jupyter.notebook.kernel.execute("from_magic = 'javascript magic'\\nfrom_magic", {
      iopub: {output: function (msg) { document.getElementById("legacy-magic").textContent = msg.content.data["text/plain"]; }}
    }, {silent: false});
    """
)

JS_DISPLAY = textwrap.dedent(
    '''
    display(Javascript("""
    IPython.notebook.kernel.execute("print(40 + 2)", {output: function (type, content) {
      var box = document.getElementById("legacy-js-display");  // a print may come in several pieces
      box.dataset.type = type;
      box.textContent += content.data;
    }});
    """))
    '''
)

HTML_MAGIC = textwrap.dedent(
    """
    %%html
    <pre id="legacy-html-magic"></pre>
    <script>
    IPython.notebook.kernel.execute("'html magic'", {
      iopub: {output: function (msg) { document.getElementById("legacy-html-magic").textContent = msg.content.data["text/plain"]; }}
    }, {silent: false});
    </script>
    """
)


def merge_streams(seen: list) -> list:
    """Join consecutive pieces of one stream: Jupyter may send a print in several messages."""
    out: list = []
    for entry in seen:
        kind, content = entry[0], entry[1]
        is_stream = kind == "stream" or content.get("name") in ("stdout", "stderr")
        if is_stream and out and out[-1][0] == kind and out[-1][1].get("name") == content.get("name"):
            previous = out[-1][1]
            out[-1] = [
                kind,
                {**previous, **{k: previous[k] + content[k] for k in ("text", "data") if k in content}},
                *entry[2:],
            ]
        else:
            out.append(list(entry))
    return out


def test_classic_callbacks_outputs_errors_and_variables(jupyter: Jupyter, ui: str) -> None:
    cells = [
        EARLY,
        f"display(HTML({CHECKS!r}))",
        MAGIC_JS,
        JS_DISPLAY,
        HTML_MAGIC,
        "print('button:', globals().get('clicked'))",
        "print('history:', _, '7 * 6' in In, 'z' in dir())",
        "import time\nprint('cell starts')\nwhile not globals().get('release'):\n    time.sleep(0.05)\nprint('cell ends')",
    ]
    nb = jupyter.open(ui, cells, name="legacy")
    nb.run_cell(0)
    nb.run_cell(1)
    page = nb.page
    results_box = page.locator("#legacy-results")
    expect(results_box).not_to_have_text("")
    r = json.loads(results_box.inner_text())
    # Only now the other cells: a cell ending while a call draws with pyplot would
    # flush (and close) pyplot's figures, the call's included (see docs/legacy.md).
    for index in range(2, 7):  # not the last one: it waits for the page
        nb.run_cell(index)
    for check in r.values():
        check["seen"] = merge_streams(check["seen"])

    # Installed synchronously, called at once, queued until the widget's link was up.
    expect(page.locator("#early")).to_have_text("execute_result:'run 1'")

    # IPython 1.x style: out_type + content, prints before the result, stream text in .data and .text.
    # stdout and stderr are separate streams (in Jupyter their relative order is not kept): compare each.
    *streams, result = r["v1"]["seen"]
    assert sorted(streams, key=lambda s: s[1]["name"]) == [
        ["stream", {"name": "stderr", "data": "two\n", "text": "two\n"}],
        ["stream", {"name": "stdout", "data": "one\n", "text": "one\n"}],
    ]
    assert result == [
        "pyout",
        {"execution_count": r["v1"]["reply"]["execution_count"], "data": {"text/plain": "42"}, "metadata": {}},
    ]
    assert r["v1"]["reply"]["status"] == "ok"
    [(kind, content)] = r["v1_display"]["seen"]
    assert kind == "display_data"
    assert content["data"]["text/html"] == "<i>hi</i>"
    v1_error = r["v1_error"]["seen"]
    assert v1_error[0] == ["stream", {"name": "stdout", "data": "before\n", "text": "before\n"}]
    assert v1_error[1][0] == "pyerr"
    assert f"{v1_error[1][1]['ename']}: {v1_error[1][1]['evalue']}" == "ZeroDivisionError: division by zero"
    assert v1_error[1][1]["traceback"][-1] == "ZeroDivisionError: division by zero"
    assert r["v1_error"]["reply"]["status"] == "error"

    # IPython 2+ style: messaging-spec messages, in order, addressed to the returned msg id.
    v2 = r["v2"]
    assert (v2["id"], v2["type"], v2["reply"]["status"]) == ("string", "execute_reply", "ok")
    assert [(m[0], m[2]) for m in v2["seen"]] == [
        ("stream", True),
        ("display_data", True),
        ("stream", True),
        ("execute_result", True),
    ]
    assert v2["seen"][0][1]["text"] == "a\n"
    assert v2["seen"][1][1]["data"]["text/html"] == "<b>b</b>"
    assert v2["seen"][2][1]["text"] == "c\n"
    assert v2["seen"][3][1]["data"]["text/plain"] == "'result'"
    assert v2["statuses"] == ["busy", "idle"]
    # silent (the default): prints arrive, the result does not.
    assert [m[0] for m in r["v2_silent"]["seen"]] == ["stream"]
    [(kind, error, _)] = r["v2_error"]["seen"]
    assert kind == "error"
    assert f"{error['ename']}: {error['evalue']}" == "ZeroDivisionError: division by zero"
    assert (r["v2_error"]["reply"]["status"], r["v2_error"]["reply"]["ename"]) == ("error", "ZeroDivisionError")
    # Rich results arrive as the classic notebook had them: PNG as base64 text.
    image = r["v2_image"]["seen"][0][1]["data"]
    assert image["image/png"].startswith("iVBORw0KGgo")
    # A pyplot figure arrives after the result, as the inline backend showed it after a cell.
    figure = r["figure"]["seen"]
    assert [m[0] for m in figure] == ["execute_result", "display_data"]
    assert "Line2D" in figure[0][1]["data"]["text/plain"]
    assert figure[1][1]["data"]["image/png"].startswith("iVBORw0KGgo")
    # store_history: a numbered execution; user_expressions: evaluated after the code.
    history = r["history"]
    assert history["seen"][0][1]["execution_count"] == history["reply"]["execution_count"]
    assert isinstance(history["reply"]["execution_count"], int)
    expressions = r["expressions"]["reply"]["user_expressions"]
    assert expressions["twice"]["data"]["text/plain"] == "10"
    assert (expressions["bad"]["status"], expressions["bad"]["ename"]) == ("error", "NameError")

    # %%javascript, IPython.display.Javascript and %%html reach the kernel too.
    expect(page.locator("#legacy-magic")).to_have_text("'javascript magic'")
    expect(page.locator("#legacy-js-display")).to_have_text("42\n")
    expect(page.locator("#legacy-js-display")).to_have_attribute("data-type", "stream")
    expect(page.locator("#legacy-html-magic")).to_have_text("'html magic'")

    # A button sets a variable that a later cell sees.
    page.locator("#legacy-set").click()
    expect(page.locator("#legacy-set-status")).to_have_text("set ok")
    nb.run_cell(5)
    expect(nb.output(5)).to_have_text("button: from the button")
    nb.run_cell(6)
    expect(nb.output(6)).to_have_text("history: 42 True True")

    # A call is served while a cell runs (kernel subshell), and its print stays with the call.
    nb.run_cell(7)
    expect(nb.output(7)).to_have_text("cell starts")
    page.locator("#legacy-release").click()
    expect(page.locator("#legacy-release-status")).to_have_text("released\n")
    expect(page.locator("#legacy-release-status")).to_have_attribute("data-type", "stream")
    nb.wait_cell_done(7)
    expect(nb.output(7)).to_have_text("cell starts\ncell ends")

    # Outputs went to the callbacks only: the only stream outputs are the cells' own prints.
    streams = page.locator('[data-mime-type^="application/vnd.jupyter.std"]')
    expect(streams).to_have_count(3)
    expect(page.locator('[data-mime-type="application/vnd.jupyter.stderr"]')).to_have_count(0)
    expect(page.locator('[data-mime-type="image/png"]')).to_have_count(0)  # the figure went to its call only

    # Re-running the %load_ext cell (as after a page reload) installs the transport again.
    nb.run_cell(0)
    expect(page.locator("#early")).to_have_text("execute_result:'run 2'")

    # A kernel restart ends a running call with an error (nothing hangs); later calls
    # wait for %load_ext in the new kernel, then run.
    page.locator("#legacy-slow").click()
    nb.restart_kernel()
    expect(page.locator("#legacy-slow-status")).to_have_text("pyerr:BridgeClosedError")
    nb.wait_kernel_idle()
    page.evaluate("document.getElementById('legacy-set-status').textContent = ''")
    page.locator("#legacy-set").click()
    nb.run_cell(5)
    expect(nb.output(5)).to_have_text("button: None")  # queued, not lost and not run elsewhere
    nb.run_cell(0)
    expect(page.locator("#legacy-set-status")).to_have_text("set ok")
    nb.run_cell(5)
    expect(nb.output(5)).to_have_text("button: from the button")


# ---------------------------------------------------------------- two kernels
def asker(tag: str) -> str:
    """The same classic script in every notebook; only the element ids differ."""
    html = (
        f'<button id="ask-{tag}" onclick="IPython.notebook.kernel.execute(\'print(who, pid)\', '
        f"{{iopub: {{output: function (msg) {{ document.getElementById('answer-{tag}').textContent += msg.content.text; }}}}}})\">"
        f'Ask {tag}</button><span id="answer-{tag}"></span>'
    )
    return f"%load_ext ipybridge\nimport os\nwho, pid = {tag!r}, os.getpid()\nfrom IPython.display import HTML\nHTML({html!r})"


def late_script(flag: str) -> str:
    """A cell that waits for ``flag`` to exist, then shows a script that calls at once."""
    html = (
        '<pre id="late-A"></pre><script>var box = document.currentScript.parentNode.querySelector("#late-A");'
        'IPython.notebook.kernel.execute("print(who)", {iopub: {output: function (msg) {'
        " box.textContent += msg.content.text; }}});</script>"
    )
    return f"import os, time\nwhile not os.path.exists({flag!r}):\n    time.sleep(0.05)\nHTML({html!r})"


def open_second_notebook_in_lab(page: Page, nb: NotebookPage, path: Path) -> NotebookPage:
    """Open ``path`` in the same JupyterLab page (from the file browser) and run it."""
    other = NotebookPage(page, nb.server, "lab", path)
    page.locator(".jp-DirListing-item", has_text=path.name).dblclick()
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=path.name)
    expect(tab).to_have_class(re.compile("lm-mod-current"))
    # The other notebook's kernel is busy (its last cell waits): look at this panel's indicator only.
    indicator = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator")
    button = page.locator(f"#ask-{path.stem.split('-')[1]}")
    for _attempt in range(4):  # a run request made while the kernel connects may be dropped
        expect(indicator).to_have_attribute("data-status", "idle")
        other.menu("Run", "Run All Cells")
        try:
            expect(button).to_be_visible(timeout=15_000)
            return other
        except AssertionError:
            pass
    raise AssertionError("the second notebook never ran")


def answer_of(page: Page, tag: str) -> tuple[str, int]:
    answer = page.locator(f"#answer-{tag}")
    answer.evaluate("el => { el.textContent = ''; }")
    page.locator(f"#ask-{tag}").click()
    # A print may arrive in several stream messages (as in any kernel): the script appends them.
    expect(answer).to_have_text(re.compile(r"^\s*[AB] \d+\s*$"))
    who, pid = answer.inner_text().split()
    return who, int(pid)


def test_two_notebooks_each_reach_their_own_kernel(jupyter: Jupyter, ui: str) -> None:
    if ui == "lab":
        # Both notebooks in one JupyterLab page: one shim, two transports, routed by interaction.
        path_b = jupyter.server.root / f"legacy-B-{uuid.uuid4().hex[:8]}.ipynb"
        write_notebook(path_b, [asker("B")])
        flag = jupyter.server.root / f"go-{uuid.uuid4().hex[:8]}.flag"
        nb_a = jupyter.open(ui, [asker("A"), late_script(flag.name)], name="legacy-A")
        nb_a.run_all()
        expect(nb_a.page.locator("#ask-A")).to_be_visible()
        page = nb_a.page
        open_second_notebook_in_lab(page, nb_a, path_b)
        answer_b = answer_of(page, "B")
        # The user now works in B; A's second cell only now shows a script that calls
        # at once: the call goes to A's kernel, the notebook the script lives in.
        flag.touch()
        expect(page.locator("#late-A")).to_have_text("A")
        page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=nb_a.path.name).click()
        answer_a = answer_of(page, "A")
        page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=path_b.name).click()
        assert answer_of(page, "B") == answer_b
    else:
        # Notebook 7: one notebook per browser tab.
        nb_a = jupyter.open(ui, [asker("A")], name="legacy-A")
        nb_b = jupyter.open(ui, [asker("B")], name="legacy-B")
        for nb in (nb_a, nb_b):
            nb.run_all()
        answer_a = answer_of(nb_a.page, "A")
        answer_b = answer_of(nb_b.page, "B")
    assert answer_a[0] == "A"
    assert answer_b[0] == "B"
    assert answer_a[1] != answer_b[1]  # two kernel processes


# ------------------------------------------------------------------ the example
def test_classic_api_example(jupyter: Jupyter, ui: str) -> None:
    notebook = json.loads((EXAMPLES / "classic_api.ipynb").read_text())
    code = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    nb = jupyter.open(ui, code, name="classic-api")
    nb.run_all()
    for index in range(len(code)):
        nb.wait_cell_done(index)
    page = nb.page
    expect(page.locator('[data-mime-type="application/vnd.jupyter.stderr"]')).to_have_count(0)

    # The viewer asked the kernel for its first frame as soon as it was shown.
    image = page.locator("#viewer-image")
    expect(image).to_have_attribute("data-frame", "0")
    first_src = image.get_attribute("src")
    assert first_src is not None
    assert first_src.startswith("data:image/png;base64,iVBORw0KGgo")
    page.get_by_role("button", name="Next Frame").click()
    expect(image).to_have_attribute("data-frame", "1")
    expect(page.locator("#viewer-counter")).to_have_text("frame 1")
    assert image.get_attribute("src") != first_src  # a new picture, drawn on demand
    page.get_by_role("button", name="Play").click()
    expect(image).to_have_attribute("data-frame", re.compile(r"^([5-9]|\d\d+)$"))
    page.get_by_role("button", name="Pause").click()

    # The form sets a variable that the next cell prints.
    page.locator("#name-input").fill("Grace")
    page.get_by_role("button", name="Set name").click()
    expect(page.locator("#name-status")).to_have_text('user_name = "Grace"')
    hello = code.index('print("Hello,", user_name)')
    nb.run_cell(hello)
    expect(nb.output(hello)).to_have_text("Hello, Grace")

    # The code box shows prints, the result and errors, through its output callback.
    run = page.get_by_role("button", name="Run in the kernel")
    run.click()
    expect(page.locator("#code-output")).to_have_text("pi is about 3.1416\nOut: [0, 1, 4, 9, 16, 25]\n")
    page.locator("#code-input").fill("print('dividing')\n1 / 0")
    run.click()
    expect(page.locator("#code-output")).to_have_text("dividing\nZeroDivisionError: division by zero\n")

    # Comms: the kernel's comm reached the page's target, which answered each message.
    expect(page.locator("#comm-log")).to_have_text(
        "opened: celsius\nkernel says 0 °C\nkernel says 37 °C\nkernel says 100 °C\n"
    )
    converted = code.index(next(c for c in code if c.startswith("print(converted)")))
    nb.run_cell(converted)
    expect(nb.output(converted)).to_have_text("[32, 98.6, 212]")
    # ... and the page's comm reaches the kernel's target: a roll comes back.
    page.get_by_role("button", name="Roll a d6").click()
    expect(page.locator("#roll-result")).to_have_text(re.compile(r"^d6: [1-6]$"))
