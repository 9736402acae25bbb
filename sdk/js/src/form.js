// Form fields and the checking of answers against them (the Rust SDK's form.rs, message for
// message, so a refused answer reads the same whichever language the plugin is written in).

import { jsonType, sameJson, show } from './json.js';

export const FIELD_TYPES = ['string', 'secure-string', 'boolean', 'number', 'integer', 'date-time', 'json'];

const EXPECTED = {
  string: 'a string',
  'secure-string': 'a string',
  boolean: 'a boolean (true/false)',
  number: 'a number',
  integer: 'an integer',
  'date-time': 'an RFC 3339 date-time such as 2026-11-22T10:00:00Z',
  json: 'any JSON value',
};
const INTEGER = /^[+-]?[0-9]+$/;
const NUMBER = /^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/;
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))$/;
const NO = Symbol('does not fit');

/** An answer that does not fit the form; the message says every problem, joined by "; ". */
export class AnswerError extends Error {
  constructor(message) {
    super(message);
    this.name = 'AnswerError';
  }
}

/**
 * One form field: `{name, type, description, required, choices, default}`. Only `name` is needed;
 * `type` defaults to `string`, `required` to true. `default` (any JSON value but null) is used
 * when the answer leaves the field out.
 */
export function field({ name, type = 'string', description = '', required = true, choices = [], default: fallback }) {
  if (typeof name !== 'string' || name === '') throw new TypeError('a field needs a non-empty name');
  if (!FIELD_TYPES.includes(type)) {
    throw new TypeError(`field ${name}: unknown type ${show(type)}; use one of ${FIELD_TYPES.join(', ')}`);
  }
  const f = { name, type, description, required, choices: [...choices] };
  if (fallback !== undefined && fallback !== null) f.default = fallback;
  return Object.freeze(f);
}

/**
 * Checks one answered value against a field's type and choices, converting the text forms that
 * form tools send ("True", "4096") to JSON booleans and numbers. Throws an AnswerError naming
 * the field: `field n: expected an integer, got 1.5`.
 */
export function coerce(f, value) {
  const converted = convert(f.type, value);
  if (converted === NO) {
    // A secure string's value must never be echoed, so describe only its JSON type.
    const got = f.type === 'secure-string' ? jsonType(value) : show(value, 200);
    throw new AnswerError(`field ${f.name}: expected ${EXPECTED[f.type]}, got ${got}`);
  }
  const choices = f.choices ?? [];
  if (choices.length > 0 && !choices.some((c) => sameJson(c, converted))) {
    const shown = choices.map((c) => (typeof c === 'string' ? c : show(c))).join(', ');
    throw new AnswerError(`field ${f.name}: must be one of ${shown}`);
  }
  return converted;
}

/**
 * Checks an answer's `data` against a form and returns the converted values by field name. A
 * missing field takes its default or, if required, is a problem; fields the form does not have
 * are problems. Throws one AnswerError with every problem.
 */
export function readAnswer(fields, data) {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new AnswerError(`the answer must be a JSON object, got ${jsonType(data)}`);
  }
  const values = {};
  const problems = [];
  for (const f of fields) {
    let value;
    if (Object.hasOwn(data, f.name)) value = data[f.name];
    else if (f.default !== undefined && f.default !== null) value = f.default;
    else {
      if (f.required ?? true) problems.push(`field ${f.name} is required`);
      continue;
    }
    try {
      values[f.name] = coerce(f, value);
    } catch (e) {
      if (!(e instanceof AnswerError)) throw e;
      problems.push(e.message);
    }
  }
  const known = fields.map((f) => f.name);
  for (const name of Object.keys(data)) {
    if (!known.includes(name)) {
      problems.push(`unknown field ${name}; the form has ${known.length ? known.join(', ') : 'no fields'}`);
    }
  }
  if (problems.length) throw new AnswerError(problems.join('; '));
  return values;
}

function convert(type, value) {
  switch (type) {
    case 'string':
    case 'secure-string':
      return typeof value === 'string' ? value : NO;
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (typeof value === 'string' && ['true', 'false'].includes(value.toLowerCase())) {
        return value.toLowerCase() === 'true';
      }
      return NO;
    case 'number':
      if (typeof value === 'number') return value;
      return typeof value === 'string' ? parseNumber(value.trim()) : NO;
    case 'integer':
      // JSON.parse makes 4096.0 the number 4096, so unlike serde_json it counts as an integer.
      if (Number.isInteger(value)) return value;
      return typeof value === 'string' && INTEGER.test(value.trim()) ? Number(value.trim()) : NO;
    case 'date-time':
      return typeof value === 'string' && isRfc3339(value) ? value : NO;
    default:
      return value; // json
  }
}

function parseNumber(text) {
  if (!INTEGER.test(text) && !NUMBER.test(text)) return NO;
  const number = Number(text);
  return Number.isFinite(number) ? number : NO;
}

function isRfc3339(text) {
  const m = RFC3339.exec(text);
  if (!m) return false;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  // RFC 3339 allows a leap second; Date does not, and it changes no other check.
  const d = new Date(Date.UTC(year, month - 1, day, hour, minute, Math.min(second, 59)));
  const fits =
    d.getUTCFullYear() === year &&
    d.getUTCMonth() === month - 1 &&
    d.getUTCDate() === day &&
    d.getUTCHours() === hour &&
    d.getUTCMinutes() === minute;
  const offsetFits = m[9] === undefined || (Number(m[9]) < 24 && Number(m[10]) < 60);
  return fits && second <= 60 && offsetFits;
}
