"use strict";
(() => {
  // js/legacy_shim.js
  (function(win) {
    "use strict";
    const HUB_KEY = "__ipybridgeLegacy";
    const VERSION = 1;
    const NOTEBOOK_SELECTOR = ".jp-Notebook";
    const WARN_AFTER_MS = 3e3;
    const existing = win[HUB_KEY];
    if (existing && existing.version === VERSION) {
      existing.installGlobals();
      return;
    }
    const doc = win.document;
    let counter = 0;
    function notebookOf(node) {
      const element = node && node.nodeType === 1 ? node : node && node.parentElement;
      return element && typeof element.closest === "function" && element.closest(NOTEBOOK_SELECTOR) || null;
    }
    function newMsgId() {
      const random = win.crypto && win.crypto.randomUUID ? win.crypto.randomUUID() : `${Math.random()}`.slice(2);
      return `ipybridge-${++counter}-${random}`;
    }
    const hub = {
      version: VERSION,
      /** @type {Transport[]} in registration order */
      transports: [],
      /** @type {LegacyCall[]} calls not handed to a transport yet, in call order */
      queue: [],
      /** the notebook the user last clicked, typed or focused in */
      lastNotebook: (
        /** @type {any} */
        null
      ),
      /** @type {ReturnType<typeof setTimeout>|null} pending "calls are waiting" warning */
      warnTimer: (
        /** @type {any} */
        null
      ),
      notebookOf,
      /** the classic kernel object (below) */
      kernel: (
        /** @type {any} */
        null
      ),
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
          return null;
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
          target: hub.pickTarget()
        };
        hub.queue.push(call);
        hub.drain();
        if (hub.queue.includes(call) && hub.warnTimer === null) {
          hub.warnTimer = win.setTimeout(() => {
            hub.warnTimer = null;
            if (hub.queue.length > 0) {
              console.warn(
                `ipybridge: ${hub.queue.length} kernel.execute call(s) waiting: run \`%load_ext ipybridge\` in this notebook (again after a page reload or kernel restart)`
              );
            }
          }, WARN_AFTER_MS);
        }
        return call.msgId;
      },
      /** Install `IPython.notebook.kernel` / `Jupyter.notebook.kernel` unless a real one exists. */
      installGlobals() {
        const current = win.IPython;
        const ns = current && typeof current === "object" ? current : {};
        const kernel = ns.notebook && ns.notebook.kernel;
        if (kernel && !kernel.__ipybridge) return;
        ns.notebook = ns.notebook || {};
        ns.notebook.kernel = hub.kernel;
        ns.keyboard_manager = ns.keyboard_manager || { enable() {
        }, disable() {
        }, register_events() {
        } };
        win.IPython = ns;
        const other = win.Jupyter && win.Jupyter.notebook && win.Jupyter.notebook.kernel;
        if (!other || other.__ipybridge) win.Jupyter = ns;
      }
    };
    hub.kernel = Object.freeze({
      __ipybridge: true,
      /** @param {unknown} code @param {any} [callbacks] @param {any} [options] */
      execute: (code, callbacks, options) => hub.execute(code, callbacks, options),
      is_connected: () => hub.transports.some((t) => t.alive),
      is_fully_disconnected: () => !hub.transports.some((t) => t.alive)
    });
    function isVisible(node) {
      if (!node || node.isConnected === false) return false;
      if (typeof node.checkVisibility === "function") return node.checkVisibility();
      return !(node.closest && node.closest(".lm-mod-hidden"));
    }
    function onInteraction(event) {
      const notebook = notebookOf(event.target);
      if (notebook) hub.lastNotebook = notebook;
    }
    if (doc && typeof doc.addEventListener === "function") {
      for (const type of ["pointerdown", "keydown", "focusin"]) doc.addEventListener(type, onInteraction, true);
    }
    win[HUB_KEY] = hub;
    hub.installGlobals();
  })(
    /** @type {any} */
    typeof window !== "undefined" ? window : globalThis
  );
})();
