// The classic notebook page that old scripts expect, installed by the
// `%load_ext ipybridge` output next to the kernel hub (js/legacy_shim.js):
// jQuery as `$`/`jQuery`, RequireJS (`require`, `define`, `requirejs`) with the
// classic module names, and `IPython`/`Jupyter` with the notebook API mapped
// onto JupyterLab's / Notebook 7's own notebook widget and command registry.
// Members not provided throw, naming themselves (never a silent `undefined`).
//
// The notebook handles (`{panel, notebook, context, commands}`) come from the
// legacy widget's view (js/legacy.js), which walks from its own Lumino widget up
// to the NotebookPanel holding it; the application's CommandRegistry is the one
// the panel's toolbar buttons run commands with.

import jQuery from "jquery";
import installRequireJS from "ipybridge:requirejs";
import { ClassicCommManager } from "./legacy_comm.js";

/** Classic events ipybridge triggers; other classic-looking names never fire (a console warning says so). */
export const CLASSIC_EVENTS = Object.freeze([
  "kernel_connected.Kernel",
  "kernel_disconnected.Kernel",
  "kernel_ready.Kernel",
  "kernel_starting.Kernel",
  "kernel_restarting.Kernel",
  "kernel_autorestarting.Kernel",
  "kernel_busy.Kernel",
  "kernel_idle.Kernel",
  "kernel_dead.Kernel",
  "notebook_saved.Notebook",
]);

/** Kernel status (JupyterLab's ISessionContext) -> the classic event it fires. */
export const STATUS_EVENTS = Object.freeze({
  idle: "kernel_idle.Kernel",
  busy: "kernel_busy.Kernel",
  starting: "kernel_starting.Kernel",
  restarting: "kernel_restarting.Kernel",
  autorestarting: "kernel_autorestarting.Kernel",
  dead: "kernel_dead.Kernel",
});

/** How often, and how many times, an output script looks whether its output has joined the page. */
const ATTACH_POLL_MS = 10;
const ATTACH_TRIES = 300;
/** How long `require(['base/js/namespace'], ...)` waits for its notebook to be found. */
const NOTEBOOK_WAIT_MS = 30_000;

/** Classic module names that exist in the classic page but not here: loading one fails, naming it. */
const UNSUPPORTED_MODULES = [
  "base/js/utils",
  "base/js/dialog",
  "base/js/keyboard",
  "notebook/js/outputarea",
  "notebook/js/codecell",
  "notebook/js/notebook",
  "services/kernels/comm",
  "services/kernels/kernel",
];

/** @param {any} win @param {any} hub the page's legacy hub */
export function installClassic(win, hub) {
  if (hub.classic) {
    hub.installGlobals();
    return hub.classic;
  }
  const current = win.IPython;
  const realKernel = current && typeof current === "object" && current.notebook && current.notebook.kernel;
  if (realKernel && !realKernel.__ipybridge) return null; // the classic notebook itself
  const doc = win.document;
  const strict = hub.strict;
  const $ = jQuery;
  if (win.jQuery === undefined) win.jQuery = $;
  if (win.$ === undefined) win.$ = $;
  else if (!(win.$ && win.$.fn && win.$.fn.jquery)) {
    console.warn("ipybridge: this page already has a `$` that is not jQuery; classic scripts get that one (use `jQuery`)");
  }

  // ------------------------------------------------------------ events
  // Classic (4.x-5.x): `base/js/events` and `notebook.events` are `$([events])`, a jQuery-wrapped
  // plain object, and `IPython.events` is that plain object, so the IPython 1.x idiom
  // `$([IPython.events]).on(...)` binds the same bus. Here the plain object also has the jQuery
  // methods, so scripts of the 2.x-3.x years that call `IPython.events.on(...)` work as well.
  const bus = {};
  const events = $([bus]);
  const on = events.on;
  /** @param {any} name */
  function warnIfNeverFired(name) {
    for (const one of String(name).split(/\s+/)) {
      if (/\.(Kernel|Notebook|Session|CodeCell|Cell|OutputArea|TextCell)$/.test(one) && !CLASSIC_EVENTS.includes(one)) {
        console.warn(`ipybridge: the classic event ${one} is never triggered by ipybridge (see docs/legacy.md)`);
      }
    }
  }
  events.on = /** @type {any} */ (
    function (/** @type {any[]} */ ...args) {
      if (typeof args[0] === "string") warnIfNeverFired(args[0]);
      return on.apply(this, /** @type {any} */ (args));
    }
  );

  // ------------------------------------------------------------ notebook
  function baseUrl() {
    try {
      const el = doc.getElementById("jupyter-config-data");
      const url = el ? JSON.parse(el.textContent || "{}").baseUrl : undefined;
      if (typeof url === "string") return url.endsWith("/") ? url : `${url}/`;
    } catch {
      // fall through
    }
    return "/";
  }

  /**
   * The notebook's path as the page shows it, for scripts that read it before the
   * legacy widget has found the notebook (the cells right after `%load_ext` in a
   * "Run All"): Notebook 7's URL (`.../notebooks/<path>`), else the JupyterLab tab
   * of the script's notebook (its caption's "Path:" line). Null when neither says.
   * @returns {string|null}
   */
  function pathFromPage() {
    const notebookEl = hub.pickTarget() || doc.querySelector(".jp-Notebook");
    const panel = notebookEl ? notebookEl.closest(".jp-NotebookPanel") : null;
    const tab = panel && panel.id ? doc.querySelector(`.lm-TabBar-tab[data-id="${CSS.escape(panel.id)}"]`) : null;
    if (tab) {
      const caption = /^Path: (.+)$/m.exec(tab.getAttribute("title") || "");
      return caption ? caption[1] : null;
    }
    const base = baseUrl();
    const here = win.location.pathname;
    if (here.startsWith(`${base}notebooks/`)) return decodeURIComponent(here.slice(base.length + "notebooks/".length));
    return null;
  }

  /** @param {string} member @returns {any} the notebook handles, or throws saying why none */
  function need(member) {
    const handles = hub.current();
    if (!handles) {
      throw new Error(
        `IPython.notebook.${member}: ipybridge has not found this notebook yet ` +
          "(run %load_ext ipybridge in it; use require(['base/js/namespace'], ...) to wait for it)",
      );
    }
    return handles;
  }

  /** @param {any} h @param {string} member */
  function commandsOf(h, member) {
    if (!h.commands) {
      throw new Error(
        `IPython.notebook.${member}: ipybridge could not reach the application's commands ` +
          "(it finds them through the notebook toolbar's run button)",
      );
    }
    return h.commands;
  }

  /**
   * Run cells through the application's own command, so the notebook shows them running. As the
   * classic execute_cells, the cell after the last one run is then selected; `keep` (a cell's own
   * `execute()`, `execute_cell()`) leaves the selection where it was.
   * @param {any} h @param {number[]} indices @param {string} member @param {boolean} [keep]
   */
  function runCells(h, indices, member, keep = false) {
    const commands = commandsOf(h, member);
    const notebook = h.notebook;
    const widgets = indices.map((i) => notebook.widgets[i]).filter(Boolean);
    if (widgets.length === 0) return;
    const current = notebook.activeCellIndex;
    const before = selectedIndex(h);
    notebook.deselectAll();
    notebook.activeCellIndex = notebook.widgets.indexOf(widgets[0]);
    for (const widget of widgets) notebook.select(widget);
    const last = notebook.widgets.indexOf(widgets[widgets.length - 1]);
    const done = commands.execute("notebook:run-cell", { widgetId: h.panel.id, activate: false });
    settleSelection(h, keep ? before : last + 1, current);
    Promise.resolve(done).catch((/** @type {any} */ error) => console.error("ipybridge: running cells failed", error));
  }

  // The classic notebook selected a clicked cell only when the click bubbled up to it, after
  // the output's own handlers ran: a button's onclick saw the cell selected *before* the
  // click (insert_cell_below() inserted below it, execute_cells_below() started there).
  // JupyterLab selects on mousedown; remember what was selected before the press.
  /** @type {WeakMap<Element, {index: number, time: number}>} */
  const selectedBeforePress = new WeakMap();
  const PRESS_EVENTS = new Set(["pointerdown", "mousedown", "pointerup", "mouseup", "click", "dblclick"]);
  doc.addEventListener(
    "pointerdown",
    (/** @type {PointerEvent} */ event) => {
      const notebookEl = hub.notebookOf(event.target);
      const t = notebookEl && hub.transports.find((/** @type {any} */ x) => x.alive && x.panel && x.notebook() === notebookEl);
      if (t) selectedBeforePress.set(notebookEl, { index: t.panel.notebook.activeCellIndex, time: event.timeStamp });
    },
    true,
  );
  /** @param {any} h @returns {{index: number, time: number}|null} the selection before the press being handled now */
  function pressNow(h) {
    const press = selectedBeforePress.get(h.notebook.node);
    const event = /** @type {any} */ (win).event;
    return press && event && PRESS_EVENTS.has(event.type) && event.timeStamp >= press.time ? press : null;
  }
  /** @param {any} h @returns {number} the selected cell's index as a classic script saw it */
  function selectedIndex(h) {
    const press = pressNow(h);
    return press ? Math.min(press.index, h.notebook.widgets.length - 1) : h.notebook.activeCellIndex;
  }
  /**
   * Leave the selection where the classic page left it after a call: at `classic`; but while a
   * click is handled, the classic page then selected the clicked cell (JupyterLab already did at
   * the press: `clicked`, its index after the call's insertions and deletions).
   * @param {any} h @param {number} classic @param {number} clicked
   */
  function settleSelection(h, classic, clicked) {
    const nb = h.notebook;
    const last = nb.widgets.length - 1;
    nb.deselectAll();
    nb.activeCellIndex = Math.max(0, Math.min(pressNow(h) ? clicked : classic, last));
  }

  /** @type {WeakMap<object, any>} one classic cell object per cell widget (so === works) */
  const cellObjects = new WeakMap();

  /** @param {any} model a cell's or the notebook's model: its metadata as a classic object (top-level keys read and written live) */
  function metadataOf(model) {
    return new Proxy(
      {},
      {
        get: (_t, key) => (typeof key === "symbol" ? undefined : model.getMetadata(key)),
        set: (_t, key, value) => {
          if (typeof key !== "symbol") model.setMetadata(key, value);
          return true;
        },
        deleteProperty: (_t, key) => {
          if (typeof key !== "symbol") model.deleteMetadata(key);
          return true;
        },
        has: (_t, key) => typeof key === "string" && model.getMetadata(key) !== undefined,
        ownKeys: () => Object.keys(model.metadata || {}),
        getOwnPropertyDescriptor: (_t, key) =>
          typeof key === "string" && model.getMetadata(key) !== undefined
            ? { value: model.getMetadata(key), writable: true, enumerable: true, configurable: true }
            : undefined,
      },
    );
  }

  /** @param {any} h @param {any} widget a JupyterLab cell widget @returns {any} its classic Cell */
  function cellObject(h, widget) {
    let cell = cellObjects.get(widget);
    if (cell) return cell;
    const index = () => h.notebook.widgets.indexOf(widget);
    cell = strict("IPython.notebook cell", {
      get cell_type() {
        return widget.model.type;
      },
      get metadata() {
        return metadataOf(widget.model);
      },
      get element() {
        markClassicCells(h);
        return $(widget.node);
      },
      get input() {
        return $(widget.node.querySelector(".jp-Cell-inputWrapper") || widget.node);
      },
      get_text: () => widget.model.sharedModel.getSource(),
      set_text: (/** @type {unknown} */ text) => widget.model.sharedModel.setSource(String(text)),
      execute: () => runCells(h, [index()], "cell.execute", true),
      /** A Markdown cell shows its rendered text (as after running it); other cells: nothing to do. */
      render: () => {
        if (widget.model.type === "markdown" && "rendered" in widget) widget.rendered = true;
        return true;
      },
      unrender: () => {
        if (widget.model.type === "markdown" && "rendered" in widget) widget.rendered = false;
        return true;
      },
      clear_output: () => {
        if (widget.model.type === "code") widget.model.sharedModel.transact(() => widget.model.outputs.clear());
      },
      select: () => {
        h.notebook.activeCellIndex = index();
        return cell;
      },
    });
    cellObjects.set(widget, cell);
    return cell;
  }

  /**
   * The classic page's class names on this notebook's cells (`.cell`, `.code_cell`/`.text_cell`,
   * `div.input`, `.output_wrapper`): scripts find their cell with `.parents('.cell')` and hide
   * code with `$('div.input').hide()`.
   */
  function markClassicCells(/** @type {any} */ h) {
    markCells(h.notebook.node);
  }
  /** @param {Element} notebookEl */
  function markCells(notebookEl) {
    for (const node of notebookEl.querySelectorAll(".jp-Cell")) {
      node.classList.add("cell", node.classList.contains("jp-CodeCell") ? "code_cell" : "text_cell");
      node.querySelector(":scope > .jp-Cell-inputWrapper")?.classList.add("input");
      node.querySelector(":scope > .jp-Cell-outputWrapper")?.classList.add("output_wrapper");
    }
  }

  /**
   * Run one of the application's notebook commands on a cell (default: the selected one), as the
   * classic methods that took an index did. Out of range: nothing.
   * @param {any} h @param {any} index @param {string} member @param {string} command
   */
  function onCell(h, index, member, command) {
    const commands = commandsOf(h, member);
    const nb = h.notebook;
    const current = nb.activeCellIndex;
    const before = selectedIndex(h);
    const at = index === undefined || index === null ? before : Number(index);
    if (!(at >= 0 && at < nb.widgets.length)) return;
    nb.deselectAll();
    nb.activeCellIndex = at;
    commands.execute(command, { widgetId: h.panel.id, activate: false });
    if (command === "notebook:delete-cell") {
      // Classic keeps the selected cell selected; when that one was deleted, the cell now at its index.
      const after = (/** @type {number} */ sel) => (at < sel ? sel - 1 : sel);
      settleSelection(h, after(before), after(current));
    } else settleSelection(h, at, current); // classic selects the changed cell
    nb.mode = "command";
    markClassicCells(h);
  }

  /** Insert a cell with the application's command; returns its classic cell object (null for a bad index). */
  function insertCell(/** @type {any} */ h, /** @type {string} */ where, /** @type {any} */ type, /** @type {any} */ index) {
    const member = `insert_cell_${where}`;
    const commands = commandsOf(h, member);
    const nb = h.notebook;
    const at = index === undefined || index === null ? selectedIndex(h) : Number(index);
    if (nb.widgets.length > 0 && !(at >= 0 && at < nb.widgets.length)) return null;
    const kind = type === undefined || type === null ? "code" : String(type);
    if (kind !== "code" && kind !== "markdown" && kind !== "raw") {
      throw new Error(`IPython.notebook.${member}: unknown cell type '${kind}'`);
    }
    const args = { widgetId: h.panel.id, activate: false };
    const current = nb.activeCellIndex;
    const before = selectedIndex(h);
    nb.deselectAll();
    nb.activeCellIndex = at;
    commands.execute(`notebook:insert-cell-${where}`, args);
    if (kind !== "code") commands.execute(`notebook:change-cell-to-${kind}`, args);
    const cell = nb.activeCell ? cellObject(h, nb.activeCell) : null;
    // The classic notebook (4.x, 5.x) left the selection on the cell it was on: the caller selects.
    const inserted = nb.activeCellIndex;
    settleSelection(h, before >= inserted ? before + 1 : before, current >= inserted ? current + 1 : current);
    nb.mode = "command";
    markClassicCells(h);
    return cell;
  }

  let autosaveInterval = 120_000; // classic's default (ms)
  let autosaveNoted = false;
  const notebook = strict("IPython.notebook", {
    get kernel() {
      return hub.kernel;
    },
    get events() {
      return events;
    },
    get base_url() {
      return baseUrl();
    },
    get notebook_path() {
      const early = hub.current() ? null : pathFromPage();
      return early ?? need("notebook_path").context.path;
    },
    get notebook_name() {
      const early = hub.current() ? null : pathFromPage();
      const path = early ?? need("notebook_name").context.path;
      return path.slice(path.lastIndexOf("/") + 1);
    },
    ncells: () => need("ncells").notebook.widgets.length,
    get_cells: () => {
      const h = need("get_cells");
      return h.notebook.widgets.map((/** @type {any} */ w) => cellObject(h, w));
    },
    get_cell: (/** @type {number} */ index) => {
      const h = need("get_cell");
      const widget = h.notebook.widgets[index];
      return widget ? cellObject(h, widget) : null;
    },
    get_cell_elements: () => {
      const h = need("get_cell_elements");
      markClassicCells(h);
      return $(h.notebook.widgets.map((/** @type {any} */ w) => w.node));
    },
    get_selected_index: () => selectedIndex(need("get_selected_index")),
    get_selected_cell: () => {
      const h = need("get_selected_cell");
      const widget = h.notebook.widgets[selectedIndex(h)];
      return widget ? cellObject(h, widget) : null;
    },
    find_cell_index: (/** @type {any} */ cell) => {
      const h = need("find_cell_index");
      const found = h.notebook.widgets.findIndex((/** @type {any} */ w) => cellObjects.get(w) === cell);
      return found >= 0 ? found : null;
    },
    select: (/** @type {number} */ index) => {
      const h = need("select");
      if (index >= 0 && index < h.notebook.widgets.length) {
        h.notebook.deselectAll();
        h.notebook.activeCellIndex = index;
      }
      return notebook;
    },
    execute_cells: (/** @type {number[]} */ indices) => runCells(need("execute_cells"), [...indices], "execute_cells"),
    execute_cell_range: (/** @type {number} */ start, /** @type {number} */ end) => {
      const h = need("execute_cell_range");
      const indices = [];
      for (let i = Math.max(0, start); i < Math.min(end, h.notebook.widgets.length); i++) indices.push(i);
      runCells(h, indices, "execute_cell_range");
    },
    execute_cells_below: () => {
      const h = need("execute_cells_below");
      notebook.execute_cell_range(selectedIndex(h), h.notebook.widgets.length);
    },
    execute_cells_above: () => {
      const h = need("execute_cells_above");
      notebook.execute_cell_range(0, selectedIndex(h));
    },
    execute_all_cells: () => notebook.execute_cell_range(0, need("execute_all_cells").notebook.widgets.length),
    execute_selected_cells: () => {
      const h = need("execute_selected_cells");
      runCells(h, [selectedIndex(h)], "execute_selected_cells");
    },
    save_notebook: () => need("save_notebook").context.save(),
    save_checkpoint: () => {
      const context = need("save_checkpoint").context;
      return context.save().then(() => context.createCheckpoint());
    },
    get metadata() {
      return metadataOf(need("metadata").context.model);
    },
    /** Run the selected cell; it stays selected (classic `execute_cell`). */
    execute_cell: () => {
      const h = need("execute_cell");
      runCells(h, [selectedIndex(h)], "execute_cell", true);
    },
    /** Run the selected cell and select the next one, adding a code cell after the last (Shift+Enter). */
    execute_cell_and_select_below: () => {
      const h = need("execute_cell_and_select_below");
      const at = selectedIndex(h);
      runCells(h, [at], "execute_cell_and_select_below");
      if (at === h.notebook.widgets.length - 1) insertCell(h, "below", "code", at);
      notebook.select(at + 1);
    },
    /** Run the selected cell and add a code cell below it (Alt+Enter). */
    execute_cell_and_insert_below: () => {
      const h = need("execute_cell_and_insert_below");
      const at = selectedIndex(h);
      runCells(h, [at], "execute_cell_and_insert_below");
      insertCell(h, "below", "code", at);
      notebook.select(at + 1);
    },
    /** @param {number} [index] the cell (default: the selected one) */
    delete_cell: (index) => {
      const h = need("delete_cell");
      onCell(h, index, "delete_cell", "notebook:delete-cell");
      return notebook;
    },
    /** @param {number} [index] */
    to_code: (index) => onCell(need("to_code"), index, "to_code", "notebook:change-cell-to-code"),
    /** @param {number} [index] */
    to_markdown: (index) => onCell(need("to_markdown"), index, "to_markdown", "notebook:change-cell-to-markdown"),
    /** @param {number} [index] */
    to_raw: (index) => onCell(need("to_raw"), index, "to_raw", "notebook:change-cell-to-raw"),
    /** @param {number} [index] */
    clear_output: (index) => {
      const h = need("clear_output");
      const widget = h.notebook.widgets[index === undefined || index === null ? selectedIndex(h) : Number(index)];
      if (widget) cellObject(h, widget).clear_output();
    },
    clear_all_output: () => {
      const h = need("clear_all_output");
      for (const widget of h.notebook.widgets) cellObject(h, widget).clear_output();
    },
    select_next: () => notebook.select(selectedIndex(need("select_next")) + 1),
    select_prev: () => notebook.select(selectedIndex(need("select_prev")) - 1),
    get_selected_cells_indices: () => {
      const h = need("get_selected_cells_indices");
      const nb = h.notebook;
      const indices = [];
      for (let i = 0; i < nb.widgets.length; i++) if (nb.isSelectedOrActive(nb.widgets[i])) indices.push(i);
      return indices;
    },
    get_selected_cells: () => {
      const h = need("get_selected_cells");
      return notebook.get_selected_cells_indices().map((/** @type {number} */ i) => cellObject(h, h.notebook.widgets[i]));
    },
    get dirty() {
      return Boolean(need("dirty").context.model.dirty);
    },
    /** @param {unknown} [value] */
    set_dirty: (value) => {
      need("set_dirty").context.model.dirty = value === undefined ? true : Boolean(value);
    },
    /**
     * `%autosave N` displays `IPython.notebook.set_autosave_interval(N * 1000)`. JupyterLab has one
     * autosave setting for all documents (a user setting that outlives the page, unlike classic's),
     * so the interval is recorded, not applied.
     * @param {unknown} interval milliseconds; 0 disables autosave in classic
     */
    set_autosave_interval: (interval) => {
      autosaveInterval = Math.max(0, Number(interval) || 0);
      if (!autosaveNoted) {
        autosaveNoted = true;
        console.info(
          "ipybridge: set_autosave_interval is recorded, not applied: JupyterLab's autosave is a setting " +
            "(Settings > Autosave Documents, and the Document Manager's autosaveInterval)",
        );
      }
    },
    get autosave_interval() {
      return autosaveInterval;
    },
    insert_cell_below: (/** @type {any} */ type, /** @type {any} */ index) =>
      insertCell(need("insert_cell_below"), "below", type, index),
    insert_cell_above: (/** @type {any} */ type, /** @type {any} */ index) =>
      insertCell(need("insert_cell_above"), "above", type, index),
  });

  // ------------------------------------------------------------ keyboard manager
  // Classic disable() kept the notebook's shortcuts from firing while a script's own
  // input had the keys. Here: keys typed in an output area reach no notebook shortcut
  // while disabled (Lumino stops looking for shortcuts at data-lm-suppress-shortcuts).
  const SUPPRESS = "data-lm-suppress-shortcuts";
  let keyboardEnabled = true;
  doc.addEventListener(
    "keydown",
    (/** @type {KeyboardEvent} */ event) => {
      if (keyboardEnabled) return;
      const target = /** @type {any} */ (event.target);
      const area = target && target.closest ? target.closest(".jp-OutputArea") : null;
      if (area) area.setAttribute(SUPPRESS, "true");
    },
    true,
  );
  const keyboardManager = strict("IPython.keyboard_manager", {
    get enabled() {
      return keyboardEnabled;
    },
    enable() {
      keyboardEnabled = true;
      for (const el of doc.querySelectorAll(`.jp-OutputArea[${SUPPRESS}]`)) el.removeAttribute(SUPPRESS);
    },
    disable() {
      keyboardEnabled = false;
    },
    register_events() {},
  });

  // Settings of the classic output area that JupyterLab already has as they set them (no
  // auto-scrolling of long outputs): accepted and kept, so course notebooks' setup cells run.
  const OutputArea = strict("IPython.OutputArea", {
    prototype: strict("IPython.OutputArea.prototype", {}),
    auto_scroll_threshold: 100,
  });
  // ------------------------------------------------------------ kernel
  /**
   * The JupyterLab kernel connection of a notebook (its element; null: the one calls go to now),
   * or null while its legacy view has not rendered.
   * @param {any} target @returns {any}
   */
  function kernelFor(target) {
    const transport = hub.transportFor(target);
    if (!transport) return null;
    const fromPanel = transport.panel?.context?.sessionContext?.session?.kernel;
    return fromPanel ?? (typeof transport.kernel === "function" ? transport.kernel() : null) ?? null;
  }
  /** @param {string} member @returns {any} the session context of the notebook a call made now belongs to */
  function sessionFor(member) {
    const transport = hub.transportFor(hub.pickTarget());
    const session = transport?.panel?.context?.sessionContext;
    if (!session) {
      throw new Error(
        `IPython.notebook.kernel.${member}: ipybridge has not found this notebook yet ` +
          "(run %load_ext ipybridge in it; use require(['base/js/namespace'], ...) to wait for it)",
      );
    }
    return session;
  }
  /**
   * A classic kernel request with `success`/`error` callbacks, on a JupyterLab promise.
   * @param {() => Promise<any>} start @param {any} success @param {any} error @param {string} what
   */
  function request(start, success, error, what) {
    Promise.resolve()
      .then(start)
      .then(
        () => typeof success === "function" && success(),
        (/** @type {any} */ e) => {
          console.error(`ipybridge: kernel.${what} failed`, e);
          if (typeof error === "function") error(e);
        },
      );
  }
  const commManager = new ClassicCommManager({
    target: () => hub.pickTarget(),
    kernelFor,
    registered: (/** @type {any} */ target, /** @type {string} */ name) => hub.transportFor(target)?.targetRegistered?.(name),
  });
  const shimKernel = hub.kernel;
  hub.kernel = strict(
    "IPython.notebook.kernel",
    Object.freeze({
      __ipybridge: true,
      execute: shimKernel.execute,
      is_connected: shimKernel.is_connected,
      is_fully_disconnected: shimKernel.is_fully_disconnected,
      comm_manager: strict("IPython.notebook.kernel.comm_manager", commManager),
      /** the kernel's id (the server's), as the classic `kernel.id` */
      get id() {
        return kernelFor(hub.pickTarget())?.id ?? null;
      },
      /** the kernel spec's name (e.g. `python3`), as the classic `kernel.name` */
      get name() {
        return kernelFor(hub.pickTarget())?.name ?? null;
      },
      /** Restart the notebook's kernel at once, no dialog (the classic `kernel.restart(success, error)`). */
      restart(/** @type {any} */ success, /** @type {any} */ error) {
        const session = sessionFor("restart");
        request(() => session.restartKernel(), success, error, "restart");
      },
      /** Interrupt the notebook's kernel (the classic `kernel.interrupt(success, error)`). */
      interrupt(/** @type {any} */ success, /** @type {any} */ error) {
        const session = sessionFor("interrupt");
        request(() => session.session.kernel.interrupt(), success, error, "interrupt");
      },
    }),
  );
  commManager.kernel = hub.kernel;
  // A legacy view that joins the page (hub.drain) may be the notebook a comm or target waits for.
  // Only what waits runs here (drain also runs on every kernel.execute); targets are registered
  // again where a connection may have forgotten them (panelFound, kernel change, restart).
  const drain = hub.drain;
  hub.drain = () => {
    drain();
    commManager.resume();
  };

  for (const method of ["on", "off", "one", "trigger", "triggerHandler"]) {
    Object.defineProperty(bus, method, {
      value: (/** @type {any[]} */ ...args) => {
        /** @type {any} */ (events)[method](...args);
        return bus;
      },
      enumerable: false,
    });
  }
  const namespace = strict("IPython", { notebook, keyboard_manager: keyboardManager, events: bus, OutputArea });

  // ------------------------------------------------------------ RequireJS
  const amd = installRequireJS.call(win);
  /** @type {any[]} callbacks waiting for a notebook to be found */
  let waiting = [];
  amd.define("ipybridge/notebook", [], () => ({
    load(/** @type {string} */ _name, /** @type {any} */ _req, /** @type {any} */ onload) {
      if (hub.current()) {
        onload(namespace);
        return;
      }
      // Never a silent hang: without a notebook (a page with no notebook panel, or
      // %load_ext not run in it) the require fails, saying why.
      const timer = setTimeout(() => {
        waiting = waiting.filter((fn) => fn !== ready);
        onload.error(
          new Error(
            "base/js/namespace: ipybridge found no notebook for this script " +
              `within ${NOTEBOOK_WAIT_MS / 1000} s (run %load_ext ipybridge in the notebook)`,
          ),
        );
      }, NOTEBOOK_WAIT_MS);
      const ready = () => {
        clearTimeout(timer);
        onload(namespace);
      };
      waiting.push(ready);
    },
  }));
  amd.define("base/js/namespace", ["ipybridge/notebook!ready"], (/** @type {any} */ ns) => ns);
  amd.define("base/js/events", [], () => events);
  amd.define("jquery", [], () => $);
  for (const name of UNSUPPORTED_MODULES) {
    amd.define(name, [], () => {
      throw new Error(`the classic module '${name}' is not supported by ipybridge (see docs/legacy.md)`);
    });
  }
  /** The notebook a script lives in stays the target of calls made in its require() callbacks. */
  const withScriptTarget = (/** @type {Function} */ fn) =>
    new Proxy(fn, {
      apply(target, self, args) {
        const notebookEl = hub.pickTarget();
        if (notebookEl && typeof args[1] === "function") {
          const callback = args[1];
          args[1] = function (/** @type {any[]} */ ...values) {
            const before = hub.scriptTarget;
            hub.scriptTarget = notebookEl;
            try {
              return callback.apply(this, values);
            } finally {
              hub.scriptTarget = before;
            }
          };
        }
        return Reflect.apply(target, self, args);
      },
    });
  const requireFn = withScriptTarget(amd.require);
  const requirejsFn = withScriptTarget(amd.requirejs);

  // ------------------------------------------------------------ page DOM
  function syncNotebookName() {
    let span = doc.getElementById("notebook_name");
    if (span && !span.classList.contains("ipybridge-classic")) return; // the page has its own
    const h = hub.current();
    if (!h) return;
    if (!span) {
      span = doc.createElement("span");
      span.id = "notebook_name";
      span.className = "ipybridge-classic";
      span.hidden = true;
      doc.body.appendChild(span);
    }
    const path = h.context.path;
    span.textContent = path.slice(path.lastIndexOf("/") + 1).replace(/\.ipynb$/, "");
  }
  for (const type of ["pointerdown", "focusin"]) doc.addEventListener(type, () => setTimeout(syncNotebookName), true);

  /** @type {WeakSet<object>} the document contexts whose signals panelFound wired */
  const wiredContexts = new WeakSet();
  /** Wire a notebook's kernel and save signals to the classic events. @param {any} h */
  function wirePanel(h) {
    const session = h.context.sessionContext;
    // kernel_ready.Kernel: the first idle after the kernel (re)started (a new kernel
    // reports busy/idle for its kernel_info request on the way).
    let starting = false;
    session.statusChanged.connect((/** @type {any} */ _s, /** @type {string} */ status) => {
      const name = /** @type {Record<string, string>} */ (STATUS_EVENTS)[status];
      if (name) events.trigger(name, { kernel: hub.kernel });
      if (["starting", "restarting", "autorestarting", "unknown"].includes(status)) starting = true;
      else if (status === "idle" && starting) {
        starting = false;
        commManager.retry(); // a restarted kernel's connection keeps the page's comm targets
        events.trigger("kernel_ready.Kernel", { kernel: hub.kernel });
      }
    });
    session.connectionStatusChanged.connect((/** @type {any} */ _s, /** @type {string} */ status) => {
      if (status === "connected") events.trigger("kernel_connected.Kernel", { kernel: hub.kernel });
      if (status === "disconnected") events.trigger("kernel_disconnected.Kernel", { kernel: hub.kernel });
    });
    h.context.saveState.connect((/** @type {any} */ _c, /** @type {string} */ state) => {
      if (state === "completed") events.trigger("notebook_saved.Notebook");
    });
    h.context.pathChanged.connect(syncNotebookName);
    session.kernelChanged.connect(() => commManager.retry()); // targets go to the new kernel too
    h.notebook.model?.cells?.changed?.connect(() => setTimeout(() => markClassicCells(h)));
  }

  const classic = {
    namespace,
    events,
    /** A transport found its notebook: wire its kernel and save signals to the classic events. */
    panelFound(/** @type {any} */ h) {
      // Every legacy view of a notebook (and each re-run of %load_ext) finds the same panel:
      // its signals are wired once, or each classic event would fire once per view.
      if (!wiredContexts.has(h.context)) {
        wiredContexts.add(h.context);
        wirePanel(h);
      }
      markClassicCells(h);
      syncNotebookName();
      commManager.retry();
      const ready = waiting;
      waiting = [];
      for (const fn of ready) fn();
    },
    /**
     * Run an output's classic script as the classic page did: `element` is the output's
     * element wrapped in jQuery, `this` the output area (its `element` too).
     * @param {Function} body @param {any} element
     */
    runOutputScript(body, element) {
      const node = element && element.jquery ? element[0] : element;
      if (node && node.isConnected === false && (node.__ipybridgeWaits = (node.__ipybridgeWaits || 0) + 1) < ATTACH_TRIES) {
        // JupyterLab renders an output before it joins the page; the classic page ran
        // scripts in place (`this.element.parents('.cell')` finds the cell): wait for it.
        setTimeout(() => classic.runOutputScript(body, element), ATTACH_POLL_MS);
        return undefined;
      }
      const notebookEl = hub.notebookOf(node);
      const area = node && node.closest ? node.closest(".jp-OutputArea") || node : node;
      const before = hub.scriptTarget;
      hub.scriptTarget = notebookEl || before;
      try {
        const h = hub.current();
        if (h && notebookEl) markClassicCells(h);
        const outputArea = strict("this (the classic OutputArea)", { element: $(area) });
        return body.call(outputArea, $(node));
      } finally {
        hub.scriptTarget = before;
      }
    },
  };
  hub.classic = classic;
  hub.namespace = namespace;
  const installGlobals = hub.installGlobals;
  hub.installGlobals = () => {
    installGlobals();
    if (win.IPython !== namespace) return;
    win.require = requireFn;
    win.requirejs = requirejsFn;
    win.define = amd.define;
  };
  hub.installGlobals();
  // At once, before this notebook's panel is found: a script in the next cells may look for them.
  const here = hub.pickTarget();
  for (const notebookEl of here ? [here] : doc.querySelectorAll(".jp-Notebook")) markCells(notebookEl);
  for (const transport of hub.transports) if (transport.alive && transport.panel) classic.panelFound(transport.panel);
  return classic;
}
