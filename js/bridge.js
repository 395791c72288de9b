// The Bridge widget's view: the author's html, then the author's js with
// `el`, `py` and `bridge` in scope. One BridgeClient per view.

import { BridgeClient } from "./protocol.js";

const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;

/**
 * The `bridge` object the author's js receives.
 * @param {BridgeClient} client
 */
export function publicApi(client) {
  return Object.freeze({
    call: client.call.bind(client),
    execute: client.execute.bind(client),
    set: client.set.bind(client),
    get: client.get.bind(client),
    on: client.on.bind(client),
    handle: client.handle.bind(client),
    onClose: client.onClose.bind(client),
    get closed() {
      return client.closed;
    },
    /** The path this view's messages take: "direct" (a websocket to the kernel) or "comm". */
    get transport() {
      return client.transport;
    },
    /** A snapshot of the client's counters: `{unmatchedAnswers, pending}` (docs/protocol.md, "Diagnostics"). */
    get diagnostics() {
      return { ...client.diagnostics, pending: client._pending.size };
    },
    py: client.proxy(),
  });
}

/**
 * Show an error inside the widget (red, with the message) and in the console.
 * @param {HTMLElement} el @param {unknown} error @param {string} where
 */
export function showError(el, error, where) {
  console.error(`ipybridge: ${where}`, error);
  const box = document.createElement("pre");
  box.className = "ipybridge-error";
  box.setAttribute("role", "alert");
  const e = /** @type {any} */ (error);
  box.textContent = `${where}: ${e?.name ?? "Error"}: ${e?.message ?? String(error)}`;
  el.appendChild(box);
}

/** @param {{model: any, el: HTMLElement}} ctx */
function render({ model, el }) {
  el.classList.add("ipybridge-bridge");
  const client = new BridgeClient(model);
  const api = publicApi(client);
  el.innerHTML = model.get("html") ?? "";
  const source = model.get("js") ?? "";
  client.setSetup(
    (async () => {
      try {
        if (source.trim()) await new AsyncFunction("el", "py", "bridge", source)(el, api.py, api);
      } catch (error) {
        showError(el, error, "error in the Bridge's js");
      }
    })(),
  );
  return () => client.dispose();
}

export default { render };
