// The classic notebook's comms (`IPython.notebook.kernel.comm_manager`), on
// JupyterLab's kernel connection. Classic scripts opened comms of their own with
// `comm_manager.new_comm(target, data)` and answered the kernel's with
// `comm_manager.register_target(target, function (comm, msg) {...})`; the kernel
// side (`ipykernel.comm.Comm`, `kernel.comm_manager.register_target`) is the same
// in every frontend. Here each classic call maps onto the notebook's
// `IKernelConnection` (`createComm`, `registerCommTarget`), found by the legacy
// widget's view; calls made before it is found wait for it, in order.
// No DOM here: node tests drive it with a fake kernel connection.

import { deliverOutput, deliverReply, deliverStatus } from "./legacy_messages.js";

/** iopub messages that are outputs of a comm message's handler (messaging spec 5). */
const OUTPUT_TYPES = new Set(["stream", "display_data", "execute_result", "error", "update_display_data"]);

let counter = 0;

/** @returns {string} a fresh comm id (a UUID where the page has WebCrypto) */
function newCommId() {
  const c = globalThis.crypto;
  return c && typeof c.randomUUID === "function" ? c.randomUUID().replace(/-/g, "") : `ipybridge-comm-${++counter}-${Date.now()}`;
}

/**
 * A kernel message as classic handlers received it: with the top-level `msg_id`
 * and `msg_type` the classic notebook's websocket messages carried.
 * @param {any} msg @returns {any}
 */
export function classicMessage(msg) {
  if (!msg || typeof msg !== "object") return msg;
  const header = msg.header ?? {};
  return { ...msg, msg_id: msg.msg_id ?? header.msg_id, msg_type: msg.msg_type ?? header.msg_type, buffers: msg.buffers ?? [] };
}

/** @param {unknown} fn @param {string} what @param {any} msg */
function invoke(fn, what, msg) {
  if (typeof fn !== "function") return undefined;
  try {
    return fn(msg);
  } catch (error) {
    console.error(`ipybridge: the comm's ${what} callback threw`, error);
    return undefined;
  }
}

/**
 * Route what the kernel answers to one comm message to its classic callbacks
 * (`{iopub: {output, status, clear_output}, shell: {reply}}`).
 * @param {any} future a JupyterLab IShellFuture @param {any} callbacks
 */
function wireCallbacks(future, callbacks) {
  if (!future || !callbacks || typeof callbacks !== "object") return;
  future.onIOPub = (/** @type {any} */ raw) => {
    const msg = classicMessage(raw);
    if (msg.msg_type === "status") deliverStatus(callbacks, msg);
    else if (msg.msg_type === "clear_output") invoke(callbacks.iopub?.clear_output, "iopub.clear_output", msg);
    else if (OUTPUT_TYPES.has(msg.msg_type)) deliverOutput(callbacks, msg);
  };
  future.onReply = (/** @type {any} */ raw) => deliverReply(callbacks, classicMessage(raw));
}

/** One comm, as the classic page's `Comm`: `open`/`send`/`close` return the message id; `on_msg`/`on_close`. */
export class ClassicComm {
  /**
   * @param {ClassicCommManager} manager @param {string} targetName @param {string} commId
   */
  constructor(manager, targetName, commId) {
    this.target_name = targetName;
    this.comm_id = commId;
    /** @type {any} the classic kernel object (classic comms had it) */
    this.kernel = manager.kernel;
    /** @type {((msg: any) => any)|null} */
    this._msg_callback = null;
    /** @type {((msg: any) => any)|null} */
    this._close_callback = null;
    /** @type {any} the JupyterLab IComm, once the kernel is known */
    this._lab = null;
    /** @type {(() => void)[]} sends made before the kernel was known, in order */
    this._waiting = [];
    this._closed = false;
  }

  /** @param {any} data @param {any} [callbacks] @param {any} [metadata] @param {any[]} [buffers] */
  open(data, callbacks, metadata, buffers) {
    return this._send("open", data, callbacks, metadata, buffers);
  }

  /** @param {any} data @param {any} [callbacks] @param {any} [metadata] @param {any[]} [buffers] */
  send(data, callbacks, metadata, buffers) {
    return this._send("send", data, callbacks, metadata, buffers);
  }

  /** Close the kernel's side (the classic page did not call this comm's own `on_close`). @param {any} [data] @param {any} [callbacks] @param {any} [metadata] @param {any[]} [buffers] */
  close(data, callbacks, metadata, buffers) {
    return this._send("close", data, callbacks, metadata, buffers);
  }

  /** @param {(msg: any) => any} callback called with each message the kernel sends on this comm */
  on_msg(callback) {
    this._msg_callback = callback;
  }

  /** @param {(msg: any) => any} callback called once when the kernel closes this comm */
  on_close(callback) {
    this._close_callback = callback;
  }

  /** @param {any} msg */
  handle_msg(msg) {
    return invoke(this._msg_callback, "on_msg", msg);
  }

  /** @param {any} msg */
  handle_close(msg) {
    invoke(this._close_callback, "on_close", msg);
  }

  /**
   * @param {"open"|"send"|"close"} kind @param {any} data @param {any} callbacks @param {any} metadata
   * @param {any[]|undefined} buffers @returns {string} the message's id (a provisional one while the kernel is not known)
   */
  _send(kind, data, callbacks, metadata, buffers) {
    if (!this._lab) {
      const provisional = `${this.comm_id}-${kind}-${++counter}`;
      this._waiting.push(() => this._send(kind, data, callbacks, metadata, buffers));
      return provisional;
    }
    if (this._closed) {
      console.warn(`ipybridge: comm ${this.comm_id} (${this.target_name}) is closed; ${kind} not sent`);
      return "";
    }
    const lab = this._lab;
    const args = [data ?? {}, metadata ?? {}, Array.isArray(buffers) ? buffers : []];
    let future;
    try {
      if (kind === "close") {
        this._closed = true;
        lab.onClose = () => {}; // the classic page called no on_close for a close it made itself
      }
      future = lab[kind](...args);
    } catch (error) {
      console.error(`ipybridge: comm ${this.comm_id} (${this.target_name}): ${kind} failed`, error);
      return "";
    }
    wireCallbacks(future, callbacks);
    return future?.msg?.header?.msg_id ?? "";
  }

  /** Bind to JupyterLab's comm and send what waited. @param {any} lab */
  _bind(lab) {
    this._lab = lab;
    lab.onMsg = (/** @type {any} */ msg) => this.handle_msg(classicMessage(msg));
    lab.onClose = (/** @type {any} */ msg) => {
      this._closed = true;
      this.handle_close(classicMessage(msg));
    };
    const waiting = this._waiting;
    this._waiting = [];
    for (const send of waiting) send();
  }
}

/**
 * `IPython.notebook.kernel.comm_manager`: comm targets and comms of the classic
 * page, on the JupyterLab kernel connection(s) `link` finds.
 *
 * `link.target()` is the notebook a call made now belongs to (its element, or null);
 * `link.kernelFor(target)` that notebook's IKernelConnection, or null while not known;
 * `link.registered(target, name)`, if given, is told each time a target is registered on it
 * (the kernel holds its comms to a target the page has not registered yet, for a moment).
 */
export class ClassicCommManager {
  /**
   * @param {{target: () => any, kernelFor: (target: any) => any, registered?: (target: any, name: string) => void}} link
   * @param {any} [kernel] the classic kernel object comms point back to
   */
  constructor(link, kernel) {
    this.link = link;
    this.kernel = kernel;
    /** @type {Record<string, Promise<ClassicComm>>} comm id -> the comm, as the classic page kept them */
    this.comms = {};
    /** @type {Record<string, Function>} target name -> handler `(comm, msg)` */
    this.targets = {};
    /** @type {{target: any, run: (kernel: any) => void}[]} what waits for a notebook's kernel */
    this._waiting = [];
    /** @type {Map<string, any>} target name -> the notebook whose script registered it */
    this._targetNotebooks = new Map();
  }

  /**
   * Register `f(comm, msg)` for comms the kernel opens with `target_name`
   * (on the kernel of the notebook whose script calls this).
   * @param {string} targetName @param {Function} f
   */
  register_target(targetName, f) {
    const name = String(targetName);
    this.targets[name] = f;
    const notebook = this.link.target();
    this._targetNotebooks.set(name, notebook);
    this._when(notebook, (kernel) => {
      this._registerOn(kernel, name);
      this.link.registered?.(notebook, name);
    });
  }

  /** @param {string} targetName @param {Function} [_f] */
  unregister_target(targetName, _f) {
    const name = String(targetName);
    delete this.targets[name];
    this._targetNotebooks.delete(name);
  }

  /**
   * Open a comm to the kernel's `target_name` (the kernel's `comm_manager.register_target`).
   * @param {string} targetName @param {any} [data] @param {any} [callbacks] @param {any} [metadata]
   * @param {string} [commId] @param {any[]} [buffers] @returns {ClassicComm}
   */
  new_comm(targetName, data, callbacks, metadata, commId, buffers) {
    const comm = new ClassicComm(this, String(targetName), commId ? String(commId) : newCommId());
    this.register_comm(comm);
    this._when(this.link.target(), (kernel) => {
      let lab;
      try {
        lab = kernel.createComm(comm.target_name, comm.comm_id);
      } catch (error) {
        console.error(`ipybridge: could not open comm ${comm.comm_id} (${comm.target_name})`, error);
        this.unregister_comm(comm);
        return;
      }
      comm._bind(lab);
    });
    comm.open(data, callbacks, metadata, buffers);
    return comm;
  }

  /** @param {ClassicComm} comm @returns {string} */
  register_comm(comm) {
    this.comms[comm.comm_id] = Promise.resolve(comm);
    return comm.comm_id;
  }

  /** @param {ClassicComm} comm */
  unregister_comm(comm) {
    delete this.comms[comm.comm_id];
  }

  /**
   * A notebook's kernel connection is (again) known: register the targets of that
   * notebook's scripts on it (after a kernel change, or on the first view), and
   * run what waited for it.
   */
  retry() {
    this.resume();
    for (const [name, notebook] of this._targetNotebooks) {
      const kernel = this.link.kernelFor(notebook);
      if (kernel) this._registerOn(kernel, name);
    }
  }

  /**
   * Run what waited for a notebook's kernel connection, where it is known now (a legacy
   * view joined the page). Cheap when nothing waits: `kernel.execute` drains through here.
   */
  resume() {
    if (this._waiting.length === 0) return;
    const waiting = this._waiting;
    this._waiting = [];
    for (const entry of waiting) this._when(entry.target, entry.run);
  }

  /** @param {any} target @param {(kernel: any) => void} run */
  _when(target, run) {
    const kernel = this.link.kernelFor(target);
    if (kernel) run(kernel);
    else this._waiting.push({ target, run });
  }

  /** @param {any} kernel @param {string} name */
  _registerOn(kernel, name) {
    const f = this.targets[name];
    if (typeof f !== "function") return;
    // Registering again is harmless (the connection keeps one handler per name) and covers a
    // connection that forgot its targets (a restart, a kernel change).
    kernel.registerCommTarget(name, (/** @type {any} */ lab, /** @type {any} */ raw) => this._opened(name, f, lab, raw));
  }

  /** The kernel opened a comm to a target of ours. @param {string} name @param {Function} f @param {any} lab @param {any} raw */
  _opened(name, f, lab, raw) {
    if (this.targets[name] !== f) {
      // unregistered (or replaced) since: the newest handler takes it, or nobody
      const now = this.targets[name];
      if (typeof now !== "function") {
        lab.close();
        return undefined;
      }
      f = now;
    }
    const comm = new ClassicComm(this, name, lab.commId);
    comm._bind(lab);
    this.register_comm(comm);
    let response;
    try {
      response = f(comm, classicMessage(raw));
    } catch (error) {
      console.error(`ipybridge: the comm target ${name} threw while opening a comm`, error);
      comm.close();
      this.unregister_comm(comm);
      return undefined;
    }
    return response;
  }
}
