// A small JSON Schema validator for the subset plugins use to declare their input and config:
// type, properties, required, items, enum, minimum, maximum and additionalProperties, plus the
// annotations $schema, $comment, title, description, default and examples. A schema using any
// other keyword is refused when the plugin is defined, so nothing is silently left unchecked.
// Validation reports every mismatch with its path and fills in `default`s of missing properties.

import { sameJson, show } from './json.js';

const KEYWORDS = new Set(['type', 'properties', 'required', 'items', 'enum', 'minimum', 'maximum', 'additionalProperties']);
const ANNOTATIONS = new Set(['$schema', '$comment', 'title', 'description', 'default', 'examples']);
const TYPES = new Set(['string', 'number', 'integer', 'boolean', 'object', 'array', 'null']);
const NOUNS = {
  string: ['a string', 'strings'],
  number: ['a number', 'numbers'],
  integer: ['an integer', 'integers'],
  boolean: ['a boolean', 'booleans'],
  object: ['an object', 'objects'],
  array: ['a list', 'lists'],
  null: ['null', 'nulls'],
};

export const DIALECT = 'https://json-schema.org/draft/2020-12/schema';

/** Throws, naming the path, if `schema` uses a keyword or type this validator does not check. */
export function checkSchema(schema, path = '') {
  if (schema === true || schema === false) return;
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
    throw new Error(`${at(path)}a schema must be an object or a boolean, not ${show(schema)}`);
  }
  for (const key of Object.keys(schema)) {
    if (!KEYWORDS.has(key) && !ANNOTATIONS.has(key)) {
      throw new Error(
        `${at(path)}unsupported JSON Schema keyword "${key}"; the SDK checks only ${[...KEYWORDS].join(', ')}`,
      );
    }
  }
  for (const type of types(schema) ?? []) {
    if (!TYPES.has(type)) throw new Error(`${at(path)}unknown type ${show(type)}`);
  }
  if (schema.enum !== undefined && !Array.isArray(schema.enum)) throw new Error(`${at(path)}enum must be a list`);
  if (schema.required !== undefined && !Array.isArray(schema.required)) {
    throw new Error(`${at(path)}required must be a list of property names`);
  }
  for (const [name, sub] of Object.entries(schema.properties ?? {})) checkSchema(sub, join(path, name));
  if (schema.items !== undefined) checkSchema(schema.items, `${path}[]`);
  if (schema.additionalProperties !== undefined) checkSchema(schema.additionalProperties, join(path, '*'));
}

/**
 * Checks `value` against `schema`. Returns `{value, problems}`: a copy of the value with the
 * defaults of missing properties filled in, and every mismatch as `path: what`.
 */
export function validate(schema, value) {
  const problems = [];
  return { value: check(schema, value, '', problems), problems };
}

/** What a value of `schema` is, in words: `a list of integers`. */
export function describeSchema(schema) {
  return noun(schema)[0];
}

function check(schema, value, path, problems) {
  if (schema === true || schema === undefined) return value;
  if (schema === false) {
    problems.push(`${at(path)}no value is allowed here`);
    return value;
  }
  const allowed = types(schema);
  if (allowed && !allowed.some((t) => isType(t, value))) {
    problems.push(`${at(path)}expected ${describeSchema(schema)}, got ${show(value)}`);
    return value;
  }
  if (schema.enum && !schema.enum.some((choice) => sameJson(choice, value))) {
    problems.push(`${at(path)}expected ${describeSchema({ enum: schema.enum })}, got ${show(value)}`);
    return value;
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) {
      problems.push(`${at(path)}must be at least ${schema.minimum}, got ${show(value)}`);
    }
    if (schema.maximum !== undefined && value > schema.maximum) {
      problems.push(`${at(path)}must be at most ${schema.maximum}, got ${show(value)}`);
    }
  }
  if (Array.isArray(value)) {
    return schema.items === undefined ? value : value.map((v, i) => check(schema.items, v, `${path}[${i}]`, problems));
  }
  if (isType('object', value)) return checkObject(schema, value, path, problems);
  return value;
}

function checkObject(schema, value, path, problems) {
  const properties = schema.properties ?? {};
  const result = {};
  for (const name of schema.required ?? []) {
    if (!Object.hasOwn(value, name)) {
      problems.push(`${join(path, name)}: missing required field`);
    }
  }
  for (const [name, sub] of Object.entries(properties)) {
    if (Object.hasOwn(value, name)) {
      result[name] = check(sub, value[name], join(path, name), problems);
    } else if (typeof sub === 'object' && Object.hasOwn(sub, 'default')) {
      result[name] = structuredClone(sub.default);
    }
  }
  for (const [name, v] of Object.entries(value)) {
    if (Object.hasOwn(properties, name)) continue;
    if (schema.additionalProperties === false) {
      const known = Object.keys(properties).join(', ') || 'no fields';
      problems.push(`${join(path, name)}: unknown field; expected ${known}`);
    } else {
      result[name] = check(schema.additionalProperties, v, join(path, name), problems);
    }
  }
  return result;
}

function types(schema) {
  if (schema.type === undefined) return undefined;
  return Array.isArray(schema.type) ? schema.type : [schema.type];
}

function isType(type, value) {
  switch (type) {
    case 'string':
      return typeof value === 'string';
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'integer':
      return Number.isInteger(value);
    case 'boolean':
      return typeof value === 'boolean';
    case 'array':
      return Array.isArray(value);
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
    case 'null':
      return value === null;
    default:
      return false;
  }
}

function noun(schema) {
  if (schema === true || schema === undefined || typeof schema !== 'object') return ['any value', 'values'];
  if (schema.enum) {
    const choices = schema.enum.map((c) => show(c)).join(', ');
    return [`one of ${choices}`, `values among ${choices}`];
  }
  const allowed = types(schema);
  if (!allowed) return ['any value', 'values'];
  const words = allowed.map((type) => {
    if (type === 'array' && schema.items !== undefined && noun(schema.items)[0] !== 'any value') {
      const items = noun(schema.items)[1];
      return [`a list of ${items}`, `lists of ${items}`];
    }
    return NOUNS[type] ?? [type, type];
  });
  return [words.map((w) => w[0]).join(' or '), words.map((w) => w[1]).join(' or ')];
}

function at(path) {
  return path ? `${path}: ` : '';
}

function join(path, key) {
  return path ? `${path}.${key}` : key;
}
