// JSON helpers shared by the SDK: how a value is shown in a message, its type in words, equality
// as JSON sees it, and encoding that refuses what JSON cannot carry.

/** A JSON value as it appears in a message, cut to `limit` characters. */
export function show(value, limit = 60) {
  let text;
  try {
    text = JSON.stringify(value);
  } catch {
    text = String(value);
  }
  if (text === undefined) text = String(value);
  return text.length <= limit ? text : `${text.slice(0, limit - 1)}…`;
}

/** `a string`, `an array`, ...: a value's JSON type in words (for values never to be echoed). */
export function jsonType(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'boolean':
      return 'a boolean';
    case 'number':
      return 'a number';
    case 'string':
      return 'a string';
    default:
      return 'an object';
  }
}

/** Whether two JSON values are equal (deeply; object key order does not matter). */
export function sameJson(a, b) {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === b.length && a.every((v, i) => sameJson(v, b[i]));
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && sameJson(a[k], b[k]));
}

/** Compact JSON text of `value`; throws for what JSON cannot carry (undefined, BigInt, NaN, cycles). */
export function dump(value) {
  let text;
  try {
    text = JSON.stringify(value, (key, v) => {
      if (typeof v === 'number' && !Number.isFinite(v)) throw new TypeError(`${v} is not a JSON number`);
      return v;
    });
  } catch (e) {
    throw new TypeError(`not JSON: ${e.message}`);
  }
  if (text === undefined) throw new TypeError(`not JSON: ${String(value)}`);
  return text;
}
