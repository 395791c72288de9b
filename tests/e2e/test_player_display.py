"""The Player reports what reaches the screen, paints at most one frame per display refresh, and
paints its first frame from the picture drawn for the output (no request, no second draw)."""

from __future__ import annotations

import json
import textwrap

from .harness import Jupyter

SETUP = textwrap.dedent(
    """
    import json
    import matplotlib.pyplot as plt
    import numpy as np
    import ipybridge

    x = np.linspace(0, 10, 500)
    fig, ax = plt.subplots(figsize=(3.2, 2.4), dpi=80)
    (line,) = ax.plot(x, np.sin(x))
    ax.set_ylim(-2, 2)

    def update(i):
        line.set_ydata(np.cos(0.05 * i) * np.sin(x - 0.1 * i))
        return (line,)

    p = ipybridge.Player(fig, update, frames=100000, fps=0, blit=True)
    p
    """
)

#: Over `ms`: every write of the canvas's data-frame, grouped by display refresh (requestAnimationFrame),
#: and at each update of the Player's readout, the readout minus the refreshes that showed a new frame in
#: the second before it (as counted here).
PER_REFRESH_JS = """([canvas, ms]) => new Promise((resolve) => {
  const readout = canvas.closest(".ipybridge-player").querySelector(".ipb-fps");
  const shown = [];
  let writes = 0, sinceRefresh = 0, most = 0, done = false;
  const diffs = [];
  const t0 = performance.now();
  const frameObs = new MutationObserver((records) => { writes += records.length; sinceRefresh += records.length; });
  frameObs.observe(canvas, {attributes: true, attributeFilter: ["data-frame"]});
  const readoutObs = new MutationObserver(() => {
    const t = performance.now();
    if (t - t0 < 1000) return;  // the count here covers a whole second only after one
    diffs.push(parseFloat(readout.textContent) - shown.filter((x) => x > t - 1000).length);
  });
  readoutObs.observe(readout, {childList: true, characterData: true, subtree: true});
  const onRefresh = (now) => {
    if (done) return;
    most = Math.max(most, sinceRefresh);
    if (sinceRefresh) shown.push(now);
    sinceRefresh = 0;
    requestAnimationFrame(onRefresh);
  };
  requestAnimationFrame(onRefresh);
  setTimeout(() => {
    done = true; frameObs.disconnect(); readoutObs.disconnect();
    diffs.sort((a, b) => Math.abs(a) - Math.abs(b));
    resolve({writes, most, displayed_fps: shown.length * 1000 / ms, diffs,
             median_abs_diff: diffs.length ? Math.abs(diffs[Math.floor(diffs.length / 2)]) : null});
  }, ms);
})"""


def test_player_counts_frames_displayed_and_paints_at_most_once_per_refresh(jupyter: Jupyter, ui: str) -> None:
    nb = jupyter.open(
        ui, [SETUP, "p.pause(); print(json.dumps(p.stats))", "print(json.dumps(p.stats))"], name="player-display"
    )
    nb.run_cell(0)
    nb.wait_cell_done(0)
    canvas = nb.output(0).locator(".ipybridge-player canvas")
    # The first frame is the picture drawn for the output: painted before any frame was requested.
    nb.page.wait_for_function("c => c.dataset.frame === '0'", arg=canvas.element_handle())
    nb.run_cell(1)
    nb.wait_cell_done(1)
    before = json.loads(nb.output(1).inner_text())
    assert before["frames_rendered"] <= 2, before  # frames 1 and 2, asked for ahead; never frame 0 again

    nb.output(0).get_by_role("button", name="Play", exact=True).click()
    nb.page.wait_for_function("c => Number(c.dataset.frame) > 30", arg=canvas.element_handle())
    seen = nb.page.evaluate(PER_REFRESH_JS, [canvas.element_handle(), 3000])
    # fps=0 ("as frames arrive"): never two frames painted before one display refresh.
    assert seen["writes"] > 20, seen
    assert seen["most"] == 1, seen
    # The readout counts frames displayed in the last second, as counted in the page (one per refresh
    # that showed a new frame; within 2: which refresh a frame is counted in can differ by one at
    # either end of the second).
    assert len(seen["diffs"]) >= 5, seen
    assert seen["median_abs_diff"] <= 2, seen

    nb.run_cell(1)
    nb.wait_cell_done(1)
    # The page reports its counts every second while playing and once more when it pauses; that last
    # report reaches the kernel after the cell that paused it: read the stats again until it is in.
    for _attempt in range(20):
        nb.run_cell(2)
        nb.wait_cell_done(2)
        stats = json.loads(nb.output(2).inner_text())
        if stats["page_displayed"] >= seen["writes"]:
            break
        nb.page.wait_for_timeout(250)  # bounded by the attempts
    assert stats["dropped"] == 0, stats
    assert stats["page_displayed"] >= seen["writes"], stats
    assert stats["displayed_fps"] <= stats["page_drawn_fps"] + 1, stats
