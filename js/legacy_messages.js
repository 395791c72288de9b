// The classic notebook's kernel.execute callbacks, fed from ipybridge's legacy
// items (pure: no DOM, no kernel; tested with node --test).
//
// Two callback styles exist in the wild:
//   IPython 1.x:  {output: fn(out_type, content, metadata), execute_reply: fn(content)}
//                 out_type "stream" | "pyout" | "pyerr" | "display_data"
//   IPython 2+:   {iopub: {output: fn(msg), status: fn(msg)}, shell: {reply: fn(msg)}}
//                 msg.msg_type "stream" | "execute_result" | "display_data" | "error"
// A callbacks object may use both; each gets its own shape.

/** Output msg_types (messaging spec 5) -> IPython 1.x out_type. */
export const OUT_TYPE_1X = Object.freeze({
  stream: "stream",
  display_data: "display_data",
  execute_result: "pyout",
  error: "pyerr",
});

/**
 * @typedef {{msg_id: string, msg_type: string, username: string, session: string, date: string, version: string}} Header
 * @typedef {{header: Header, msg_id: string, msg_type: string, parent_header: Partial<Header>,
 *            metadata: Record<string, any>, content: Record<string, any>, buffers: any[], channel: string}} Message
 * @typedef {{silent: boolean, store_history: boolean, user_expressions: Record<string, string>}} RequestFields
 */

/**
 * The kernel-side fields of a call, with the classic notebook's defaults
 * (`silent: true, store_history: false`).
 * @param {any} options @returns {RequestFields}
 */
export function requestFields(options) {
  const o = options && typeof options === "object" ? options : {};
  const silent = o.silent === undefined ? true : Boolean(o.silent);
  const store_history = o.store_history === undefined ? false : Boolean(o.store_history);
  /** @type {Record<string, string>} */
  const user_expressions = {};
  if (o.user_expressions && typeof o.user_expressions === "object") {
    for (const [key, value] of Object.entries(o.user_expressions)) user_expressions[key] = String(value);
  }
  return { silent, store_history: store_history && !silent, user_expressions };
}

let sequence = 0;

/**
 * A Jupyter message as classic callbacks received it.
 * @param {string} msgType @param {Record<string, any>} content @param {string} parentId
 * @param {string} channel @param {string} session @returns {Message}
 */
export function makeMessage(msgType, content, parentId, channel, session) {
  const msgId = `${session}-${++sequence}`;
  const date = new Date().toISOString();
  const header = { msg_id: msgId, msg_type: msgType, username: "ipybridge", session, date, version: "5.3" };
  return {
    header,
    msg_id: msgId,
    msg_type: msgType,
    parent_header: { msg_id: parentId, msg_type: "execute_request", username: "ipybridge", session, version: "5.3" },
    metadata: {},
    content,
    buffers: [],
    channel,
  };
}

/**
 * The content of an output message in spec-5 form (streams also carry IPython 2's `data`).
 * @param {string} msgType @param {Record<string, any>} content @returns {Record<string, any>}
 */
export function outputContent(msgType, content) {
  if (msgType === "stream") return { name: content.name, text: content.text, data: content.text };
  return content;
}

/**
 * The IPython 1.x content of an output message.
 * @param {string} msgType @param {Record<string, any>} content @returns {Record<string, any>}
 */
export function content1x(msgType, content) {
  switch (msgType) {
    case "stream":
      return { name: content.name, data: content.text, text: content.text };
    case "execute_result":
      return { execution_count: content.execution_count, data: content.data, metadata: content.metadata ?? {} };
    case "error":
      return { ename: content.ename, evalue: content.evalue, traceback: content.traceback ?? [] };
    case "display_data":
      return { source: "", data: content.data, metadata: content.metadata ?? {} };
    default:
      return content;
  }
}

/** @param {unknown} fn @param {string} what @param {...any} args */
function invoke(fn, what, ...args) {
  if (typeof fn !== "function") return;
  try {
    fn(...args);
  } catch (error) {
    console.error(`ipybridge: the ${what} callback of kernel.execute threw`, error);
  }
}

/**
 * Give one output (stream, display_data, execute_result, error) to the callbacks.
 * @param {any} callbacks @param {Message} msg
 */
export function deliverOutput(callbacks, msg) {
  if (!callbacks) return;
  invoke(callbacks.iopub?.output, "iopub.output", msg);
  if (typeof callbacks.output === "function") {
    const outType = /** @type {Record<string, string>} */ (OUT_TYPE_1X)[msg.msg_type] ?? msg.msg_type;
    invoke(callbacks.output, "output", outType, content1x(msg.msg_type, msg.content), msg.metadata);
  }
}

/** @param {any} callbacks @param {Message} msg an execute_reply */
export function deliverReply(callbacks, msg) {
  if (!callbacks) return;
  invoke(callbacks.shell?.reply, "shell.reply", msg);
  invoke(callbacks.execute_reply, "execute_reply", msg.content);
}

/** @param {any} callbacks @param {Message} msg a status message */
export function deliverStatus(callbacks, msg) {
  if (!callbacks) return;
  invoke(callbacks.iopub?.status, "iopub.status", msg);
}

/**
 * Runs calls on a client and turns what comes back into callback invocations.
 * `request(item, onStream)` sends one legacy_execute item and resolves with the
 * execute_reply content (or rejects when the link to the kernel is lost).
 */
export class LegacyCalls {
  /**
   * @param {(item: Record<string, any>, onStream: (stream: string, text: string) => void) => Promise<any>} request
   * @param {string} session
   */
  constructor(request, session) {
    this._request = request;
    this.session = session;
    /** @type {Map<string, any>} msg id -> callbacks of a call in flight */
    this.inFlight = new Map();
  }

  /** @param {{msgId: string, code: string, callbacks: any, options: any}} call @returns {Promise<void>} */
  run(call) {
    const { msgId, callbacks } = call;
    const fields = requestFields(call.options);
    this.inFlight.set(msgId, callbacks);
    deliverStatus(callbacks, this._message("status", { execution_state: "busy" }, msgId, "iopub"));
    const onStream = (/** @type {string} */ stream, /** @type {string} */ text) =>
      this.output(msgId, "stream", { name: stream, text });
    return this._request({ type: "legacy_execute", msg_id: msgId, code: call.code, ...fields }, onStream)
      .then(
        (reply) => reply,
        (error) => {
          // The request never ran to completion (link lost, refused): say so as the kernel would.
          const content = {
            ename: error?.ename ?? error?.name ?? "Error",
            evalue: error?.evalue ?? error?.message ?? String(error),
            traceback: error?.traceback ?? [`${error?.name ?? "Error"}: ${error?.message ?? error}`],
          };
          this.output(msgId, "error", content);
          return { status: "error", execution_count: null, ...content, user_expressions: {}, payload: [] };
        },
      )
      .then((reply) => {
        deliverReply(callbacks, this._message("execute_reply", reply, msgId, "shell"));
        deliverStatus(callbacks, this._message("status", { execution_state: "idle" }, msgId, "iopub"));
        this.inFlight.delete(msgId);
      });
  }

  /**
   * An output of the call `msgId` (from a legacy_output item or a stream).
   * @param {string} msgId @param {string} msgType @param {Record<string, any>} content
   */
  output(msgId, msgType, content) {
    const callbacks = this.inFlight.get(msgId);
    if (callbacks === undefined) return;
    deliverOutput(callbacks, this._message(msgType, outputContent(msgType, content), msgId, "iopub"));
  }

  /** @param {string} type @param {Record<string, any>} content @param {string} parentId @param {string} channel */
  _message(type, content, parentId, channel) {
    return makeMessage(type, content, parentId, channel, this.session);
  }
}
