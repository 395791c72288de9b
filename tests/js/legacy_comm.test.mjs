// Classic comms (js/legacy_comm.js) on a fake JupyterLab kernel connection: the
// classic CommManager/Comm calls map onto createComm/registerCommTarget, calls made
// before the notebook's kernel is known wait for it in order, and the kernel's
// messages reach on_msg/on_close with the classic message shape.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ClassicCommManager, classicMessage } from "../../js/legacy_comm.js";

/** What JupyterLab's IKernelConnection does with comms, recording what goes to the kernel. */
class FakeKernel {
  constructor() {
    this.sent = [];
    this.targets = new Map();
    this.comms = new Map();
  }
  createComm(target, id) {
    if (this.comms.has(id)) throw new Error(`comm ${id} exists`);
    const comm = new FakeComm(this, target, id);
    this.comms.set(id, comm);
    return comm;
  }
  registerCommTarget(name, fn) {
    this.targets.set(name, fn);
  }
  /** The kernel opens a comm to the page's target `name`. */
  open(name, id, data) {
    const comm = new FakeComm(this, name, id);
    this.comms.set(id, comm);
    const fn = this.targets.get(name);
    if (!fn) {
      this.sent.push(["close", id, {}]);
      return null;
    }
    fn(comm, message("comm_open", { comm_id: id, target_name: name, data }));
    return comm;
  }
}

let seq = 0;
function message(type, content, buffers = []) {
  return { header: { msg_id: `k${++seq}`, msg_type: type }, parent_header: {}, metadata: {}, content, buffers, channel: "iopub" };
}

class FakeComm {
  constructor(kernel, target, id) {
    this.kernel = kernel;
    this.targetName = target;
    this.commId = id;
    this.onMsg = null;
    this.onClose = null;
  }
  _future(kind, data, metadata, buffers) {
    const future = { msg: { header: { msg_id: `p${++seq}` } }, onIOPub: null, onReply: null };
    this.kernel.sent.push([kind, this.commId, data, metadata, buffers, future]);
    return future;
  }
  open(data, metadata, buffers) {
    return this._future("open", data, metadata, buffers);
  }
  send(data, metadata, buffers) {
    return this._future("send", data, metadata, buffers);
  }
  close(data, metadata, buffers) {
    const future = this._future("close", data, metadata, buffers);
    if (this.onClose) this.onClose(message("comm_close", { comm_id: this.commId, data }));
    return future;
  }
  /** The kernel sends on this comm. */
  deliver(data, buffers = []) {
    return this.onMsg?.(message("comm_msg", { comm_id: this.commId, data }, buffers));
  }
  closeFromKernel(data) {
    this.onClose?.(message("comm_close", { comm_id: this.commId, data }));
  }
}

function manager(kernelNow) {
  const link = { notebook: "nb", kernel: kernelNow, target: () => "nb", kernelFor: (t) => (t === "nb" ? link.kernel : null) };
  return { link, cm: new ClassicCommManager(link, { classic: "kernel" }) };
}

test("a target the page registers gets the kernel's comm, its messages and its close, classic-shaped", () => {
  const kernel = new FakeKernel();
  const { cm } = manager(kernel);
  const got = [];
  cm.register_target("my_comm_target", (comm, msg) => {
    got.push(["open", comm.comm_id, comm.target_name, msg.msg_type, msg.content.data]);
    comm.on_msg((m) => got.push(["msg", m.msg_type, m.content.data, m.buffers.length]));
    comm.on_close((m) => got.push(["close", m.msg_type]));
    comm.send({ reply: "hello" });
  });
  const lab = kernel.open("my_comm_target", "c1", { foo: 1 });
  lab.deliver({ foo: 2 }, [new Uint8Array([1, 2])]);
  lab.closeFromKernel({});
  assert.deepEqual(got, [
    ["open", "c1", "my_comm_target", "comm_open", { foo: 1 }],
    ["msg", "comm_msg", { foo: 2 }, 1],
    ["close", "comm_close"],
  ]);
  assert.deepEqual(kernel.sent.map((s) => s.slice(0, 3)), [["send", "c1", { reply: "hello" }]]);
  assert.ok(cm.comms.c1 instanceof Promise);
});

test("a comm the page opens reaches the kernel's target; its send returns the message id; callbacks get outputs", () => {
  const kernel = new FakeKernel();
  const { cm } = manager(kernel);
  const outputs = [];
  const comm = cm.new_comm("from_js", { hello: 1 });
  const id = comm.send({ x: 21 }, { iopub: { output: (m) => outputs.push([m.msg_type, m.content.text]), status: (m) => outputs.push([m.msg_type, m.content.execution_state]) } });
  assert.equal(kernel.sent[0][0], "open");
  assert.equal(kernel.sent[0][1], comm.comm_id);
  assert.deepEqual(kernel.sent[0][2], { hello: 1 });
  const [kind, commId, data, , , future] = kernel.sent[1];
  assert.deepEqual([kind, commId, data], ["send", comm.comm_id, { x: 21 }]);
  assert.equal(id, future.msg.header.msg_id);
  future.onIOPub(message("status", { execution_state: "busy" }));
  future.onIOPub(message("stream", { name: "stdout", text: "printed by the handler\n" }));
  future.onIOPub(message("status", { execution_state: "idle" }));
  assert.deepEqual(outputs, [["status", "busy"], ["stream", "printed by the handler\n"], ["status", "idle"]]);
});

test("calls made before the notebook's kernel is known wait for it, then go in order", () => {
  const { link, cm } = manager(null);
  const seen = [];
  cm.register_target("early", (comm) => seen.push(comm.comm_id));
  const comm = cm.new_comm("to_kernel", { a: 1 });
  comm.send({ b: 2 });
  comm.on_msg((m) => seen.push(m.content.data));
  const kernel = new FakeKernel();
  assert.equal(kernel.targets.size, 0);
  link.kernel = kernel;
  cm.resume(); // what a legacy view joining the page (hub.drain) runs
  assert.deepEqual(kernel.sent.map((s) => s.slice(0, 3)), [
    ["open", comm.comm_id, { a: 1 }],
    ["send", comm.comm_id, { b: 2 }],
  ]);
  kernel.open("early", "k1", {});
  kernel.comms.get(comm.comm_id).deliver({ back: true });
  assert.deepEqual(seen, ["k1", { back: true }]);
});

test("after a kernel change the page's targets are registered on the new kernel", () => {
  const first = new FakeKernel();
  const { link, cm } = manager(first);
  const opened = [];
  cm.register_target("t", (comm) => opened.push(comm.comm_id));
  const second = new FakeKernel();
  link.kernel = second;
  cm.retry();
  second.open("t", "n1", {});
  assert.deepEqual(opened, ["n1"]);
});

test("resume (every kernel.execute drains through it) runs only what waits: no target is registered again", () => {
  const kernel = new FakeKernel();
  const { cm } = manager(kernel);
  cm.register_target("t", () => {});
  let registrations = 0;
  const register = kernel.registerCommTarget.bind(kernel);
  kernel.registerCommTarget = (...args) => {
    registrations++;
    return register(...args);
  };
  cm.resume();
  cm.resume();
  assert.equal(registrations, 0);
  cm.retry();
  assert.equal(registrations, 1);
});

test("closing from the page sends comm_close, calls no on_close of its own, and later sends are refused", (t) => {
  const warn = t.mock.method(console, "warn", () => {});
  const kernel = new FakeKernel();
  const { cm } = manager(kernel);
  const comm = cm.new_comm("x");
  let closed = 0;
  comm.on_close(() => closed++);
  comm.close({ bye: 1 });
  assert.equal(comm.send({ late: 1 }), "");
  assert.deepEqual(kernel.sent.map((s) => s[0]), ["open", "close"]);
  assert.equal(closed, 0);
  assert.equal(warn.mock.callCount(), 1);
});

test("an unregistered target's comm is closed; a throwing target closes its comm and is reported", (t) => {
  const error = t.mock.method(console, "error", () => {});
  const kernel = new FakeKernel();
  const { cm } = manager(kernel);
  cm.register_target("gone", () => {});
  cm.unregister_target("gone");
  kernel.open("gone", "g1", {});
  cm.register_target("bad", () => {
    throw new Error("boom");
  });
  kernel.open("bad", "b1", {});
  assert.deepEqual(kernel.sent.map((s) => s.slice(0, 2)), [["close", "g1"], ["close", "b1"]]);
  assert.equal(cm.comms.b1, undefined);
  assert.equal(error.mock.callCount(), 1);
});

test("messages get the classic top-level msg_id and msg_type", () => {
  const m = classicMessage(message("comm_msg", { data: {} }));
  assert.equal(m.msg_type, "comm_msg");
  assert.equal(m.msg_id, m.header.msg_id);
});
