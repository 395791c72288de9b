// The legacy widget's view: the transport of the classic kernel.execute API.
// One view per notebook (the output of `%load_ext ipybridge`); it registers
// with the page's hub (js/legacy_shim.js) and runs the calls routed to its
// notebook over ipybridge's protocol.

import "./legacy_shim.js"; // installs the hub if the %load_ext script output did not run
import { BridgeClient } from "./protocol.js";
import { LegacyCalls } from "./legacy_messages.js";

const HUB_KEY = "__ipybridgeLegacy";
/** How often to look whether the view has joined the page (it is rendered detached). */
const ATTACH_POLL_MS = 50;

/** @param {{model: any, el: HTMLElement}} ctx */
function render({ model, el }) {
  const hub = /** @type {any} */ (window)[HUB_KEY];
  el.classList.add("ipybridge-legacy");
  el.style.cssText = "font: 11px var(--jp-ui-font-family, sans-serif); color: var(--jp-ui-font-color2, #777);";
  el.textContent = "ipybridge: classic IPython.notebook.kernel.execute API enabled";

  const client = new BridgeClient(model, {
    customTypes: ["legacy_output"],
    onCustom: (item) => calls.output(item.msg_id, item.msg_type, item.content),
  });
  const session = client.viewId;
  const calls = new LegacyCalls((item, onStream) => client.request(item, { onOutput: onStream }), session);

  /** @type {Element|null} the notebook this view was seen in (kept while the view is virtualized away) */
  let home = null;
  const transport = {
    alive: true,
    notebook: () => {
      const now = el.closest(".jp-Notebook");
      if (now) home = now;
      return home && home.isConnected ? home : now;
    },
    /** @param {{msgId: string, code: string, callbacks: any, options: any}} call */
    run: (call) => {
      calls.run(call).catch((error) => console.error("ipybridge: kernel.execute failed", error));
    },
  };
  const unregister = hub.register(transport);

  /** @type {ReturnType<typeof setTimeout>|undefined} */
  let timer;
  const waitForPage = () => {
    timer = undefined;
    if (!transport.alive) return;
    if (el.isConnected) {
      transport.notebook(); // remember the notebook, in case the cell is later detached (windowing)
      hub.drain(); // calls aimed at this notebook can go now
    }
    else timer = setTimeout(waitForPage, ATTACH_POLL_MS);
  };
  waitForPage();

  const stop = () => {
    transport.alive = false;
    unregister();
    if (timer !== undefined) clearTimeout(timer);
  };
  client.onClose(() => {
    stop();
    el.textContent = "ipybridge: the link to the kernel is gone; run %load_ext ipybridge again";
  });
  return () => {
    stop();
    client.dispose();
  };
}

export default { render };
