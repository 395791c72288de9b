"""The message-size limit as a user meets it in JupyterLab 4 and Notebook 7: a 40 MB array
reaches Python, a bigger one is refused at once with MessageTooLargeError while other calls go
on, and raising the limit from Python takes effect in the page without re-rendering."""

from __future__ import annotations

import json
import textwrap

from playwright.sync_api import expect

JS = r"""
const out = el.querySelector('#results');
const report = {};
async function attempt(name, fn) {
  const started = performance.now();
  try { report[name] = {ok: true, value: await fn()}; }
  catch (e) { report[name] = {ok: false, name: e.name, message: e.message}; }
  report[name].ms = Math.round(performance.now() - started);
}
const ramp = (n) => { const a = new Float64Array(n); for (let i = 0; i < n; i++) a[i] = i; return a; };
// 5,000,000 float64 = 40 MB: under the default 64 MiB limit, over the server's 10 MiB per websocket message.
await attempt("upload40", () => py.stats(ramp(5_000_000)));
// 9,000,000 float64 = 72 MB: over the limit. Sent together with a small call.
const over = ramp(9_000_000);
const overStarted = performance.now();
const refused = py.stats(over).finally(() => { report.overMs = Math.round(performance.now() - overStarted); });
const [big, small] = await Promise.allSettled([refused, py.add(2, 3)]);
report.over = big.status === "rejected" ? {ok: false, name: big.reason.name, message: big.reason.message} : {ok: true};
report.small = small.status === "fulfilled" ? small.value : String(small.reason);
await attempt("after", () => py.add(40, 2));
out.textContent = JSON.stringify(report);
el.querySelector('#again').onclick = async () => {
  const again = el.querySelector('#again-result');
  try { again.textContent = JSON.stringify(await py.stats(over)); }
  catch (e) { again.textContent = e.name + ': ' + e.message; }
};
"""

SETUP = textwrap.dedent(
    """
    import ipybridge, numpy as np

    def stats(a):
        return [str(a.dtype), int(a.size), float(a[-1]), float(a.sum())]

    b = ipybridge.Bridge(
        html='<pre id="results"></pre><button id="again">again</button><pre id="again-result"></pre>',
        js=JS,
        expose={"stats": stats, "add": lambda a, b: a + b},
    )
    b
    """
)


def test_a_40_mb_upload_works_and_a_bigger_one_is_refused_at_once(jupyter, ui) -> None:
    nb = jupyter.open(ui, [f"JS = {JS!r}", SETUP, "b.max_message_bytes = 128 * 2**20"], name="limits")
    nb.run_cell(0)
    nb.run_cell(1)
    box = nb.page.locator("#results")
    expect(box).not_to_have_text("", timeout=120_000)
    report = json.loads(box.inner_text())
    n = 5_000_000
    print(f"40 MB upload {report['upload40']['ms']} ms; 72 MB call refused after {report['overMs']} ms")
    assert report["upload40"]["ok"], report["upload40"]
    assert report["upload40"]["value"] == ["float64", n, n - 1.0, n * (n - 1) / 2]
    assert report["over"]["ok"] is False
    assert report["over"]["name"] == "MessageTooLargeError"
    assert "68.7 MiB" in report["over"]["message"]
    assert "64.0 MiB" in report["over"]["message"]
    assert "max_message_bytes" in report["over"]["message"]
    assert report["small"] == 5  # sent in the same tick as the refused call
    assert report["after"]["ok"]
    assert report["after"]["value"] == 42  # the page's connection to the kernel is intact
    # Raise the limit for this widget from Python: the page learns it at once.
    nb.run_cell(2)
    nb.wait_cell_done(2)
    m = 9_000_000
    nb.page.locator("#again").click()
    again = nb.page.locator("#again-result")
    expect(again).not_to_have_text("", timeout=120_000)
    assert json.loads(again.inner_text()) == ["float64", m, m - 1.0, m * (m - 1) / 2]
