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

/** How long to look for the notebook panel (Voila and other pages have none). */
const MAX_PANEL_TRIES = 100;

/**
 * The JupyterLab / Notebook 7 objects of the notebook this view is shown in: the
 * NotebookPanel (found by walking up from this view's Lumino widget), its notebook
 * widget and document context, and the application's CommandRegistry (the one the
 * notebook toolbar's buttons run commands with). Null when not (yet) in a notebook.
 * @param {any} model @param {HTMLElement} el @returns {Promise<any>}
 */
async function notebookHandles(model, el) {
  const manager = model.widget_manager;
  const id = model.get("_legacy_model_id");
  if (!manager || !id || typeof manager.get_model !== "function") return null;
  const real = await manager.get_model(id);
  for (const viewPromise of Object.values(real?.views ?? {})) {
    const view = await viewPromise;
    if (!view || !(view.el === el || view.el?.contains(el))) continue;
    for (let widget = view.luminoWidget ?? view.pWidget; widget; widget = widget.parent) {
      if (widget.content && widget.context && widget.sessionContext && widget.toolbar) {
        return { panel: widget, notebook: widget.content, context: widget.context, commands: commandsOf(widget) };
      }
    }
  }
  return null;
}

/** @param {any} panel @returns {any} the application's CommandRegistry, or null */
function commandsOf(panel) {
  for (const item of panel.toolbar.children()) {
    const commands = item?.props?.commands;
    if (commands && typeof commands.execute === "function" && commands.hasCommand("notebook:run-cell")) return commands;
  }
  return null;
}

/**
 * A script a widget's event handler displayed (`legacy_display`): add it to the
 * outputs of the cell that shows the widget, where the classic notebook put it
 * (it runs there, through JupyterLab's own renderer). Every legacy view of the
 * kernel gets the item; the first one handles it.
 * @param {any} hub @param {any} manager @param {{key: string, model_id: string, content: any}} item
 */
async function showInWidgetCell(hub, manager, item) {
  hub.shown = hub.shown || new Set();
  if (hub.shown.has(item.key)) return;
  hub.shown.add(item.key);
  try {
    const widgetModel = await manager.get_model(item.model_id);
    for (const viewPromise of Object.values(widgetModel?.views ?? {})) {
      const view = await viewPromise;
      if (!view?.el?.isConnected) continue;
      for (let widget = view.luminoWidget ?? view.pWidget; widget; widget = widget.parent) {
        if (widget.node?.classList?.contains("jp-OutputArea") && typeof widget.model?.add === "function") {
          const { data, metadata } = item.content;
          widget.model.add({ output_type: "display_data", data, metadata });
          return;
        }
      }
    }
    console.warn("ipybridge: a widget callback displayed a script, but its widget is not shown in a cell");
  } catch (error) {
    console.error("ipybridge: could not show a script displayed by a widget callback", error);
  }
}

/** @param {{model: any, el: HTMLElement}} ctx */
function render({ model, el }) {
  const hub = /** @type {any} */ (window)[HUB_KEY];
  el.classList.add("ipybridge-legacy");
  el.style.cssText = "font: 11px var(--jp-ui-font-family, sans-serif); color: var(--jp-ui-font-color2, #777);";
  el.textContent = "ipybridge: classic IPython.notebook.kernel.execute API enabled";

  const client = new BridgeClient(model, {
    customTypes: ["legacy_output", "legacy_display"],
    onCustom: (item) => {
      if (item.type === "legacy_display") showInWidgetCell(hub, model.widget_manager, item);
      else calls.output(item.msg_id, item.msg_type, item.content);
    },
  });
  const realKernel = /** @type {any} */ (window).IPython?.notebook?.kernel;
  if (realKernel && !realKernel.__ipybridge) {
    // The classic notebook itself: its own comm_manager registers targets as scripts run, so the
    // kernel need not hold its comms for this page (see _CommHold in legacy.py).
    client._post({ type: "legacy_target", target: "*" });
  }
  const session = client.viewId;
  const calls = new LegacyCalls((item, onStream) => client.request(item, { onOutput: onStream }), session);

  /** @type {Element|null} the notebook this view was seen in (kept while the view is virtualized away) */
  let home = null;
  const transport = {
    alive: true,
    /** @type {any} the NotebookPanel handles once found (js/legacy_classic.js uses them) */
    panel: null,
    /** The notebook's kernel connection (the widget manager's), for classic comms before the panel is found. */
    kernel: () => model.widget_manager?.kernel ?? null,
    /** A classic comm target is registered on that connection: the kernel's comms to it may go now. @param {string} name */
    targetRegistered: (name) => client._post({ type: "legacy_target", target: name }),
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
      findPanel();
    } else timer = setTimeout(waitForPage, ATTACH_POLL_MS);
  };
  let panelTries = 0;
  const findPanel = () => {
    notebookHandles(model, el).then(
      (handles) => {
        if (!transport.alive) return;
        if (handles) {
          transport.panel = handles;
          model.set("_in_lab_notebook", true);
          model.save_changes();
          if (hub.classic) hub.classic.panelFound(handles);
        } else if (++panelTries < MAX_PANEL_TRIES) timer = setTimeout(findPanel, ATTACH_POLL_MS);
      },
      (error) => console.warn("ipybridge: the classic notebook API could not find its notebook", error),
    );
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
