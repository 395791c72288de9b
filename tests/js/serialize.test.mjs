// The page half of the wire format against the same examples as the Python half.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { decode, encode } from "../../js/serialize.js";

const { examples, invalid } = JSON.parse(readFileSync(new URL("../shared/wire_examples.json", import.meta.url), "utf8"));
const fromHex = (hex) => new Uint8Array((hex.match(/../g) ?? []).map((b) => parseInt(b, 16)));
const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** The language-neutral description used in wire_examples.json. */
function describe(value) {
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "bigint") return { int: value.toString() };
  if (typeof value === "number") {
    if (Number.isNaN(value)) return { float: "nan" };
    if (!Number.isFinite(value)) return { float: value > 0 ? "inf" : "-inf" };
    if (Object.is(value, -0)) return { float: "-0" };
    return value;
  }
  if (value instanceof Uint8Array) return { bytes: toHex(value) };
  if (Array.isArray(value)) return value.map(describe);
  if (ArrayBuffer.isView(value.data)) {
    return { ndarray: { dtype: value.dtype, shape: value.shape, values: Array.from(value.data, String) } };
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, describe(v)]));
}

function expected(example) {
  const e = example.expect;
  if ("json" in e) return e.json;
  if ("json_with" in e) return e.json_with;
  return e;
}

for (const example of examples) {
  test(`shared example: ${example.name}`, () => {
    const value = decode(example.tree, example.buffers.map(fromHex));
    assert.deepEqual(describe(value), expected(example));
    const buffers = [];
    assert.deepEqual(encode(value, buffers), example.tree);
    assert.deepEqual(buffers.map(toHex), example.buffers);
  });
}

for (const example of invalid) {
  test(`shared invalid example is refused: ${example.name}`, () => {
    assert.throws(() => decode(example.tree, example.buffers.map(fromHex)), TypeError);
  });
}

test("typed arrays become ndarrays, Uint8Array/ArrayBuffer/DataView become bytes", () => {
  const buffers = [];
  const tree = encode([new Float32Array([1, 2]), new BigUint64Array(1), new Uint8Array([7]), new ArrayBuffer(2), new DataView(new ArrayBuffer(3))], buffers);
  assert.deepEqual(tree.map((t) => [t.$ipb, t.dtype]), [["ndarray", "float32"], ["ndarray", "uint64"], ["bytes", undefined], ["bytes", undefined], ["bytes", undefined]]);
  assert.deepEqual(buffers.map((b) => b.byteLength), [8, 8, 1, 2, 3]);
});

test("views honour byteOffset and byteLength", () => {
  const whole = new Float64Array([1, 2, 3, 4]);
  const buffers = [];
  encode(new Float64Array(whole.buffer, 8, 2), buffers);
  assert.deepEqual(Array.from(new Float64Array(buffers[0].slice().buffer)), [2, 3]);
});

test("misaligned buffers are decoded through an aligned copy", () => {
  const bytes = new Uint8Array(17);
  new DataView(bytes.buffer).setFloat64(1, 6.5, true);
  const value = decode({ $ipb: "ndarray", dtype: "float64", shape: [1], i: 0 }, [new DataView(bytes.buffer, 1, 8)]);
  assert.equal(value.data[0], 6.5);
});

test("items decode relative to their own first buffer (b0)", () => {
  const value = decode({ $ipb: "bytes", i: 0 }, [new Uint8Array([1]), new Uint8Array([2])], 1);
  assert.deepEqual(Array.from(value), [2]);
});

test("values JSON cannot carry survive: NaN, infinities, -0, big doubles, BigInt", () => {
  const buffers = [];
  const input = [NaN, Infinity, -Infinity, -0, 2 ** 60, 12345678901234567890n];
  const back = decode(JSON.parse(JSON.stringify(encode(input, buffers))), buffers);
  assert.ok(Number.isNaN(back[0]));
  assert.deepEqual(back.slice(1, 3), [Infinity, -Infinity]);
  assert.ok(Object.is(back[3], -0));
  assert.equal(back[4], 2 ** 60);
  assert.equal(back[5], 12345678901234567890n);
});

test("unsendable values are TypeErrors naming where they are", () => {
  assert.throws(() => encode({ f: () => 1 }, []), /value\.f: cannot send a function/);
  assert.throws(() => encode(new Map(), []), /cannot send a Map/);
  const loop = [];
  loop.push(loop);
  assert.throws(() => encode(loop, []), /nesting/);
  assert.throws(() => encode({ dtype: "float64", shape: [3], data: new Float64Array(2) }, []), /needs 3 elements/);
});

// encode/decode hand JSON values over as they are (no copy): only what the slow path would leave unchanged.
test("a JSON value encodes and decodes to itself; anything that needs converting is still converted, however deep", () => {
  const plain = { a: 1, b: "x", c: [true, null, 2.5, -3, { d: [] }], e: {}, f: 2 ** 53 - 1, g: "é😀" };
  const buffers = [];
  assert.equal(encode(plain, buffers), plain);
  assert.equal(decode(plain, [], 0, true), plain); // the caller's own tree: as it is
  assert.notEqual(decode(plain, []), plain); // a shared one: a copy
  assert.deepEqual(decode(plain, []), plain);
  assert.deepEqual(buffers, []);
  const fromPython = JSON.parse(JSON.stringify(plain));
  assert.equal(decode(fromPython, [], 0, true), fromPython);
  // Each of these, alone or deep inside a plain value, must take the converting path.
  const deep = (v) => ({ a: [1, { b: [v] }] });
  const cases = [
    [NaN, { $ipb: "float", v: "nan" }],
    [-0, { $ipb: "float", v: "-0" }],
    [Infinity, { $ipb: "float", v: "inf" }],
    [2 ** 60, { $ipb: "float", v: String(2 ** 60) }],
    [10n, { $ipb: "bigint", v: "10" }],
    [{ $ipb: "x" }, { $ipb: "dict", v: { $ipb: "x" } }],
    [{ toJSON: () => "t" }, "t"],
    [new Date(0), "1970-01-01T00:00:00.000Z"],
    [{ k: undefined, m: 1 }, { m: 1 }],
    [[undefined], [null]],
    [new Uint8Array([1]), { $ipb: "bytes", i: 0 }],
  ];
  for (const [value, want] of cases) {
    assert.deepEqual(encode(value, []), want, `alone: ${String(value)}`);
    const wrapped = deep(value);
    const got = encode(wrapped, []);
    assert.notEqual(got, wrapped);
    assert.deepEqual(got, deep(want), `deep: ${String(value)}`);
  }
  assert.throws(() => encode(deep(() => 1), []), /cannot send a function/);
  assert.throws(() => encode(deep(new Map()), []), /cannot send a Map/);
  // Tagged values from Python are decoded wherever they are.
  const tagged = { a: [1, { b: [{ $ipb: "float", v: "nan" }] }] };
  for (const owned of [false, true]) {
    assert.ok(Number.isNaN(decode(tagged, [], 0, owned).a[1].b[0]));
    assert.deepEqual(decode({ a: [{ $ipb: "bytes", i: 0 }] }, [new Uint8Array([7])], 0, owned).a[0], new Uint8Array([7]));
  }
});

test("the nesting limit holds on the fast path: 100 levels pass, 101 are refused both ways", () => {
  const nest = (n) => {
    let v = 1;
    for (let i = 0; i < n; i++) v = [v];
    return v;
  };
  assert.deepEqual(encode(nest(100), []), nest(100));
  assert.throws(() => encode(nest(101), []), /deeper than 100/);
  for (const owned of [false, true]) {
    assert.deepEqual(decode(nest(100), [], 0, owned), nest(100));
    assert.throws(() => decode(nest(101), [], 0, owned), /deeper than 100/);
  }
  const cycle = { a: 1 };
  cycle.self = cycle;
  assert.throws(() => encode(cycle, []), /deeper than 100 levels \(or a cycle\)/);
});
