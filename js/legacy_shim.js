// The synchronous half of the legacy API's kernel part: a classic script (no
// modules), bundled into the application/javascript output of `%load_ext ipybridge`
// (with js/legacy_classic.js, the rest of the classic page). It installs
// `IPython.notebook.kernel` and `Jupyter.notebook.kernel` at once, so a script
// rendered right after it can call `kernel.execute`. Every classic object it
// makes throws on a member it lacks, naming it (`strict`). Calls wait in a queue
// until a transport (the legacy widget's view, js/legacy.js) of the right
// notebook registers with the hub; each call goes to the notebook its script
// lives in, else to the notebook the user last clicked or typed in.
//
// The hub is one object per page (`window.__ipybridgeLegacy`), shared by every
// notebook of a JupyterLab window; it is installed once, whichever of this
// script and the widget module runs first.

(function (win) {
  "use strict";
  const HUB_KEY = "__ipybridgeLegacy";
  const VERSION = 1;
  const NOTEBOOK_SELECTOR = ".jp-Notebook";
  const WARN_AFTER_MS = 3000;
  const existing = win[HUB_KEY];
  if (existing && existing.version === VERSION) {
    existing.installGlobals();
    return;
  }
  const doc = win.document;
  let counter = 0;
  /** Members probed on any object by generic code (promises, JSON, jQuery, DOM and test tools). */
  const PROBED = new Set(["then", "toJSON", "nodeType", "jquery", "length", "window", "$$typeof", "asymmetricMatch", "__esModule"]);

  /** @param {any} node @returns {any} the notebook element holding `node`, or null */
  function notebookOf(node) {
    const element = node && node.nodeType === 1 ? node : node && node.parentElement;
    return (element && typeof element.closest === "function" && element.closest(NOTEBOOK_SELECTOR)) || null;
  }

  function newMsgId() {
    const random = win.crypto && win.crypto.randomUUID ? win.crypto.randomUUID() : `${Math.random()}`.slice(2);
    return `ipybridge-${++counter}-${random}`;
  }

  /**
   * @typedef {{msgId: string, code: string, callbacks: any, options: any, target: any}} LegacyCall
   * @typedef {{alive: boolean, notebook: () => any, run: (call: LegacyCall) => void, panel?: any, kernel?: () => any, targetRegistered?: (name: string) => void}} Transport
   */
  const hub = {
    version: VERSION,
    /** @type {Transport[]} in registration order */
    transports: [],
    /** @type {LegacyCall[]} calls not handed to a transport yet, in call order */
    queue: [],
    /** the notebook the user last clicked, typed or focused in */
    lastNotebook: /** @type {any} */ (null),
    /** the notebook of the script whose callback runs now (set around require() callbacks) */
    scriptTarget: /** @type {any} */ (null),
    /** @type {ReturnType<typeof setTimeout>|null} pending "calls are waiting" warning */
    warnTimer: /** @type {any} */ (null),
    notebookOf,
    /** the classic kernel object (below) */
    kernel: /** @type {any} */ (null),
    /** what `IPython` and `Jupyter` are (below; js/legacy_classic.js upgrades it) */
    namespace: /** @type {any} */ (null),
    /** @type {any} makes a classic object that throws on members it lacks (below) */
    strict: null,

    /**
     * The NotebookPanel-side handles of the notebook a call made now belongs to
     * (found by its transport), or null when none is known yet.
     * @returns {any}
     */
    current() {
      const target = hub.pickTarget();
      const live = hub.transports.filter((t) => t.alive && t.panel);
      if (target) {
        for (let i = live.length - 1; i >= 0; i--) if (live[i].notebook() === target) return live[i].panel;
        return null;
      }
      const visible = live.filter((t) => isVisible(t.notebook()));
      const pool = visible.length > 0 ? visible : live;
      return pool.length > 0 ? pool[pool.length - 1].panel : null;
    },

    /** @param {Transport} transport @returns {() => void} unregister */
    register(transport) {
      hub.transports.push(transport);
      hub.drain();
      return () => {
        const index = hub.transports.indexOf(transport);
        if (index >= 0) hub.transports.splice(index, 1);
      };
    },

    /** The notebook a call made now belongs to, or null when the page gives no clue. */
    pickTarget() {
      if (hub.scriptTarget) return hub.scriptTarget;
      const fromScript = notebookOf(doc && doc.currentScript);
      if (fromScript) return fromScript;
      if (hub.lastNotebook && hub.lastNotebook.isConnected !== false) return hub.lastNotebook;
      return notebookOf(doc && doc.activeElement);
    },

    /** @param {any} target @returns {Transport|null} */
    transportFor(target) {
      const live = hub.transports.filter((t) => t.alive);
      if (target) {
        for (let i = live.length - 1; i >= 0; i--) if (live[i].notebook() === target) return live[i];
        return null; // that notebook's transport is not up yet (or it never loaded ipybridge)
      }
      if (live.length === 0) return null;
      const visible = live.filter((t) => isVisible(t.notebook()));
      return (visible.length > 0 ? visible : live)[(visible.length > 0 ? visible : live).length - 1];
    },

    /** Hand every queued call whose transport is up to it, in call order. */
    drain() {
      const waiting = hub.queue;
      hub.queue = [];
      for (const call of waiting) {
        const transport = hub.transportFor(call.target);
        if (!transport) {
          hub.queue.push(call);
          continue;
        }
        try {
          transport.run(call);
        } catch (error) {
          console.error("ipybridge: kernel.execute failed", error);
        }
      }
    },

    /**
     * The classic `kernel.execute(code, callbacks, options)`: returns a msg id at once.
     * @param {unknown} code @param {any} [callbacks] @param {any} [options]
     */
    execute(code, callbacks, options) {
      const call = {
        msgId: newMsgId(),
        code: String(code),
        callbacks: callbacks || {},
        options: options || {},
        target: hub.pickTarget(),
      };
      hub.queue.push(call);
      hub.drain();
      if (hub.queue.includes(call) && hub.warnTimer === null) {
        // Normal for a moment (the widget is loading); say so if it lasts, e.g. after a page reload.
        hub.warnTimer = win.setTimeout(() => {
          hub.warnTimer = null;
          if (hub.queue.length > 0) {
            console.warn(
              `ipybridge: ${hub.queue.length} kernel.execute call(s) waiting: ` +
                "run `%load_ext ipybridge` in this notebook (again after a page reload or kernel restart)",
            );
          }
        }, WARN_AFTER_MS);
      }
      return call.msgId;
    },

    /** Install `IPython` / `Jupyter` (hub.namespace) unless the page is the classic notebook itself. */
    installGlobals() {
      const current = win.IPython;
      const kernel = current && typeof current === "object" && current.notebook && current.notebook.kernel;
      if (kernel && !kernel.__ipybridge) return; // the classic notebook itself: leave it alone
      win.IPython = hub.namespace;
      win.Jupyter = hub.namespace;
    },
  };

  /**
   * The classic objects fail loudly on a member ipybridge does not provide, instead of
   * reading `undefined` (a feature test would pass and the script go wrong quietly).
   * Members some code probes on any object (promise `then`, JSON, jQuery and DOM checks)
   * read `undefined` as on a plain object.
   * @template {object} T @param {string} path e.g. "IPython.notebook" @param {T} target @returns {T}
   */
  function strict(path, target) {
    return new Proxy(target, {
      get(obj, key, receiver) {
        if (typeof key === "symbol" || key in obj || PROBED.has(key)) return Reflect.get(obj, key, receiver);
        throw new Error(`${path}.${key} is not supported by ipybridge (see ipybridge's docs/legacy.md)`);
      },
    });
  }
  hub.strict = strict;

  /** The classic kernel object: what old scripts find at `IPython.notebook.kernel`. */
  hub.kernel = strict(
    "IPython.notebook.kernel",
    Object.freeze({
      __ipybridge: true,
      /** @param {unknown} code @param {any} [callbacks] @param {any} [options] */
      execute: (code, callbacks, options) => hub.execute(code, callbacks, options),
      is_connected: () => hub.transports.some((t) => t.alive),
      is_fully_disconnected: () => !hub.transports.some((t) => t.alive),
    }),
  );
  /** `IPython` / `Jupyter` until the classic page (js/legacy_classic.js) replaces it with the whole API. */
  hub.namespace = strict("IPython", {
    notebook: strict("IPython.notebook", { kernel: hub.kernel }),
    keyboard_manager: strict("IPython.keyboard_manager", { enable() {}, disable() {}, register_events() {} }),
  });

  /** @param {any} node */
  function isVisible(node) {
    if (!node || node.isConnected === false) return false;
    if (typeof node.checkVisibility === "function") return node.checkVisibility();
    return !(node.closest && node.closest(".lm-mod-hidden"));
  }

  /** @param {Event} event */
  function onInteraction(event) {
    const notebook = notebookOf(event.target);
    if (notebook) hub.lastNotebook = notebook;
  }

  if (doc && typeof doc.addEventListener === "function") {
    for (const type of ["pointerdown", "keydown", "focusin"]) doc.addEventListener(type, onInteraction, true);
  }
  win[HUB_KEY] = hub;
  hub.installGlobals();
})(/** @type {any} */ (typeof window !== "undefined" ? window : globalThis));
