// Values <-> JSON tree + binary buffers: the page's half of
// src/ipybridge/_serialize.py (see the table there and docs/protocol.md).
// Pure functions, no DOM: tested with `node --test` against
// tests/protocol_examples.json, like the Python half.

export const TAG = "$ipb";
export const MAX_DEPTH = 100;
const FLOAT_TEXT = /^(nan|-?inf|-?\d{1,400}(\.\d{1,400})?(e[+-]?\d{1,3})?)$/;

/** @typedef {Int8Array|Uint8Array|Uint8ClampedArray|Int16Array|Uint16Array|Int32Array|Uint32Array|Float32Array|Float64Array|BigInt64Array|BigUint64Array} TypedArray */
/** @typedef {{dtype: string, shape: number[], data: TypedArray}} NDArray */

/** dtype name -> TypedArray constructor used to view its data. */
export const DTYPES = {
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
  float32: Float32Array,
  float64: Float64Array,
  bool: Uint8Array,
};

/** @param {TypedArray} array @returns {string|null} the dtype a bare TypedArray is sent as */
function dtypeOf(array) {
  if (array instanceof Uint8ClampedArray) return "uint8";
  for (const [name, ctor] of Object.entries(DTYPES)) {
    if (name !== "bool" && array instanceof ctor) return name;
  }
  return null;
}

/** @param {unknown} value @returns {value is TypedArray} */
function isTypedArray(value) {
  return ArrayBuffer.isView(value) && !(value instanceof DataView);
}

/** @param {ArrayBufferView} view @returns {Uint8Array} the exact bytes of a view */
function bytesOf(view) {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/**
 * Encode a JavaScript value for Python.
 * @param {unknown} value
 * @param {Uint8Array[]} buffers  binary parts are appended here
 * @returns {unknown} a JSON-safe tree
 */
export function encode(value, buffers) {
  // Most values (numbers, strings, small plain objects) encode to themselves: checked without copying.
  if (encodesToItself(value, 0)) return value;
  return enc(value, buffers, 0, "value");
}

/**
 * Whether `encode(value)` would be a deep copy of `value` (so the value can be sent as it is): JSON values
 * only (finite numbers other than -0 and integral doubles beyond 2**53, strings, booleans, null, arrays
 * without holes or undefined, plain objects without undefined values, `$ipb` keys or `toJSON`), at most
 * MAX_DEPTH deep. Anything else takes `enc`, which converts it or says why it cannot.
 * @param {unknown} value @param {number} depth @returns {boolean}
 */
function encodesToItself(value, depth) {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      if (value === 0) return !Object.is(value, -0);
      return Number.isInteger(value) ? Number.isSafeInteger(value) : Number.isFinite(value);
    case "object":
      break;
    default:
      return false;
  }
  if (value === null) return true;
  if (depth >= MAX_DEPTH) return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      if (item === undefined || !encodesToItself(item, depth + 1)) return false;
    }
    return true;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  const obj = /** @type {Record<string, unknown>} */ (value);
  if (typeof obj.toJSON === "function" || Object.hasOwn(obj, TAG)) return false;
  for (const key in obj) {
    if (!Object.hasOwn(obj, key)) return false;
    const item = obj[key];
    if (item === undefined || !encodesToItself(item, depth + 1)) return false;
  }
  return true;
}

/** @param {unknown} value @param {Uint8Array[]} buffers @param {number} depth @param {string} path @returns {unknown} */
function enc(value, buffers, depth, path) {
  if (depth > MAX_DEPTH) throw new TypeError(`${path}: nesting deeper than ${MAX_DEPTH} levels (or a cycle)`);
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      if (Number.isNaN(value)) return { [TAG]: "float", v: "nan" };
      if (!Number.isFinite(value)) return { [TAG]: "float", v: value > 0 ? "inf" : "-inf" };
      if (Object.is(value, -0)) return { [TAG]: "float", v: "-0" };
      // An integral double beyond 2**53 would reach Python as an int: keep it a float.
      if (Number.isInteger(value) && !Number.isSafeInteger(value)) return { [TAG]: "float", v: String(value) };
      return value;
    case "bigint":
      return { [TAG]: "bigint", v: value.toString() };
    case "function":
    case "symbol":
      throw new TypeError(`${path}: cannot send a ${typeof value} to Python`);
  }
  if (value instanceof ArrayBuffer) {
    buffers.push(new Uint8Array(value));
    return { [TAG]: "bytes", i: buffers.length - 1 };
  }
  if (value instanceof DataView || value instanceof Uint8Array) {
    buffers.push(bytesOf(value));
    return { [TAG]: "bytes", i: buffers.length - 1 };
  }
  if (isTypedArray(value)) {
    buffers.push(bytesOf(value));
    return { [TAG]: "ndarray", dtype: dtypeOf(value), shape: [value.length], i: buffers.length - 1 };
  }
  if (Array.isArray(value)) {
    return value.map((item, i) => enc(item, buffers, depth + 1, `${path}[${i}]`));
  }
  const obj = /** @type {Record<string, unknown>} */ (value);
  if (isNDArrayLike(obj)) return encodeND(obj, buffers, path);
  if (typeof (/** @type {any} */ (obj).toJSON) === "function") {
    return enc(/** @type {any} */ (obj).toJSON(), buffers, depth + 1, path);
  }
  const proto = Object.getPrototypeOf(obj);
  if (proto !== Object.prototype && proto !== null) {
    const kind = obj.constructor?.name ?? "object";
    throw new TypeError(`${path}: cannot send a ${kind} to Python (use plain objects, arrays, numbers, strings, TypedArrays)`);
  }
  /** @type {Record<string, unknown>} */
  const out = {};
  for (const [key, item] of Object.entries(obj)) {
    if (item === undefined) continue;
    out[key] = enc(item, buffers, depth + 1, `${path}.${key}`);
  }
  return TAG in out ? { [TAG]: "dict", v: out } : out;
}

/** @param {Record<string, unknown>} obj */
function isNDArrayLike(obj) {
  return typeof obj.dtype === "string" && Array.isArray(obj.shape) && isTypedArray(obj.data);
}

/** @param {Record<string, any>} nd @param {Uint8Array[]} buffers @param {string} path */
function encodeND(nd, buffers, path) {
  const ctor = DTYPES[/** @type {keyof typeof DTYPES} */ (nd.dtype)];
  if (!ctor) throw new TypeError(`${path}: unsupported dtype ${JSON.stringify(nd.dtype)}`);
  const count = nd.shape.reduce((/** @type {number} */ a, /** @type {number} */ b) => a * b, 1);
  if (nd.data.length !== count) {
    throw new TypeError(`${path}: shape [${nd.shape}] needs ${count} elements, data has ${nd.data.length}`);
  }
  buffers.push(bytesOf(nd.data));
  return { [TAG]: "ndarray", dtype: nd.dtype, shape: [...nd.shape], i: buffers.length - 1 };
}

/**
 * Decode a tree from Python.
 * @param {unknown} tree
 * @param {ArrayLike<ArrayBuffer|ArrayBufferView>} buffers
 * @param {number} [base] index of this item's first buffer in the message
 * @param {boolean} [owned] the tree is the caller's alone: returned as it is when nothing in it is tagged
 * @returns {any}
 */
export function decode(tree, buffers, base = 0, owned = false) {
  // A tree without tagged values that only this caller sees (a message parsed for it alone) decodes to
  // itself: no copy. One shared with others (a comm message every view of a widget gets) is copied.
  if (owned && untagged(tree, 0)) return tree;
  return dec(tree, buffers, base, 0);
}

/** Whether a tree from Python holds no tagged value, at most MAX_DEPTH deep. @param {unknown} tree @param {number} depth */
function untagged(tree, depth) {
  if (tree === null || typeof tree !== "object") return true;
  if (depth >= MAX_DEPTH) return false;
  if (Array.isArray(tree)) {
    for (let i = 0; i < tree.length; i++) if (!untagged(tree[i], depth + 1)) return false;
    return true;
  }
  const obj = /** @type {Record<string, unknown>} */ (tree);
  if (TAG in obj || Object.getPrototypeOf(obj) !== Object.prototype) return false;
  for (const key in obj) if (!untagged(obj[key], depth + 1)) return false;
  return true;
}

/** @param {unknown} tree @param {ArrayLike<ArrayBuffer|ArrayBufferView>} buffers @param {number} base @param {number} depth @returns {any} */
function dec(tree, buffers, base, depth) {
  if (depth > MAX_DEPTH) throw new TypeError(`value nested deeper than ${MAX_DEPTH} levels`);
  if (Array.isArray(tree)) return tree.map((item) => dec(item, buffers, base, depth + 1));
  if (tree === null || typeof tree !== "object") return tree;
  const obj = /** @type {Record<string, any>} */ (tree);
  if (!(TAG in obj)) {
    /** @type {Record<string, any>} */
    const out = {};
    for (const [key, item] of Object.entries(obj)) out[key] = dec(item, buffers, base, depth + 1);
    return out;
  }
  switch (obj[TAG]) {
    case "float":
      if (typeof obj.v !== "string" || !FLOAT_TEXT.test(obj.v)) throw new TypeError(`bad tagged float ${JSON.stringify(obj.v)}`);
      return obj.v === "nan" ? NaN : obj.v === "inf" ? Infinity : obj.v === "-inf" ? -Infinity : Number(obj.v);
    case "bigint":
      if (typeof obj.v !== "string" || !/^-?\d{1,4000}$/.test(obj.v)) throw new TypeError("bigint must be a decimal string");
      return BigInt(obj.v);
    case "bytes":
      return toBytes(buffers[base + obj.i]);
    case "ndarray": {
      const ctor = DTYPES[/** @type {keyof typeof DTYPES} */ (obj.dtype)];
      if (!ctor || !Object.hasOwn(DTYPES, obj.dtype)) throw new TypeError(`unsupported dtype ${obj.dtype}`);
      const bytes = toBytes(buffers[base + obj.i]);
      const count = obj.shape.reduce((/** @type {number} */ a, /** @type {number} */ b) => a * b, 1);
      if (count * ctor.BYTES_PER_ELEMENT !== bytes.byteLength) {
        throw new TypeError(`ndarray of shape [${obj.shape}] needs ${count * ctor.BYTES_PER_ELEMENT} bytes, buffer has ${bytes.byteLength}`);
      }
      return { dtype: obj.dtype, shape: obj.shape, data: view(ctor, bytes) };
    }
    case "dict": {
      /** @type {Record<string, any>} */
      const out = {};
      for (const [key, item] of Object.entries(obj.v)) out[key] = dec(item, buffers, base, depth + 1);
      return out;
    }
    default:
      throw new TypeError(`unknown tagged value ${JSON.stringify(obj[TAG])}`);
  }
}

/** @param {ArrayBuffer|ArrayBufferView|undefined} buf @returns {Uint8Array} */
export function toBytes(buf) {
  if (buf === undefined) throw new TypeError("message refers to a missing buffer");
  if (buf instanceof ArrayBuffer) return new Uint8Array(buf);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * A TypedArray over `bytes`: zero-copy when aligned, else over an aligned copy.
 * @template {new (buffer: ArrayBufferLike, byteOffset?: number, length?: number) => any} C
 * @param {C & {BYTES_PER_ELEMENT: number}} ctor @param {Uint8Array} bytes @returns {InstanceType<C>}
 */
export function view(ctor, bytes) {
  const size = ctor.BYTES_PER_ELEMENT;
  if (bytes.byteLength % size !== 0) throw new TypeError(`buffer of ${bytes.byteLength} bytes is not a whole number of ${size}-byte items`);
  if (bytes.byteOffset % size === 0) return new ctor(bytes.buffer, bytes.byteOffset, bytes.byteLength / size);
  return new ctor(bytes.slice().buffer, 0, bytes.byteLength / size);
}
