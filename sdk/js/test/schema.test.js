// The JSON Schema subset: every mismatch with its path, defaults, and refusal of what is unchecked.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkSchema, validate } from '../src/schema.js';

const CHECK = {
  type: 'object',
  properties: {
    url: { type: 'string' },
    expect_status: { type: 'array', items: { type: 'integer' }, default: [200] },
    method: { enum: ['GET', 'POST'], default: 'GET' },
    retries: { type: ['integer', 'null'], minimum: 0, maximum: 5 },
    approvers: {
      type: 'array',
      items: {
        type: 'object',
        properties: { name: { type: 'string' }, weight: { type: 'integer', minimum: 1 } },
        required: ['name'],
        additionalProperties: false,
      },
    },
    headers: { type: 'object', additionalProperties: { type: 'string' } },
  },
  required: ['url'],
  additionalProperties: false,
};

const problems = (schema, value) => validate(schema, value).problems;

test('names the field and the expected type', () => {
  assert.deepEqual(problems(CHECK, { url: 'u', expect_status: 201 }), [
    'expect_status: expected a list of integers, got 201',
  ]);
});

test('reports every mismatch with its path', () => {
  assert.deepEqual(
    problems(CHECK, {
      method: 'PUT',
      retries: 9,
      approvers: [{ name: 'a' }, { name: 5, weight: 0 }, 'bob'],
      headers: { a: 1 },
      colour: 1,
    }),
    [
      'url: missing required field',
      'method: expected one of "GET", "POST", got "PUT"',
      'retries: must be at most 5, got 9',
      'approvers[1].name: expected a string, got 5',
      'approvers[1].weight: must be at least 1, got 0',
      'approvers[2]: expected an object, got "bob"',
      'headers.a: expected a string, got 1',
      'colour: unknown field; expected url, expect_status, method, retries, approvers, headers',
    ],
  );
});

test('fills in defaults without touching the schema', () => {
  const { value, problems: found } = validate(CHECK, { url: 'u' });
  assert.deepEqual(found, []);
  assert.deepEqual(value, { url: 'u', expect_status: [200], method: 'GET' });
  value.expect_status.push(1);
  assert.deepEqual(CHECK.properties.expect_status.default, [200]);
});

test('types', () => {
  assert.deepEqual(problems({ type: 'integer' }, 1.5), ['expected an integer, got 1.5']);
  assert.deepEqual(problems({ type: 'integer' }, true), ['expected an integer, got true']);
  assert.deepEqual(problems({ type: 'number' }, '1'), ['expected a number, got "1"']);
  assert.deepEqual(problems({ type: 'object' }, [1, 2]), ['expected an object, got [1,2]']);
  assert.deepEqual(problems({ type: ['string', 'null'] }, 3), ['expected a string or null, got 3']);
  assert.deepEqual(problems({ type: 'array', items: { type: 'array', items: { type: 'string' } } }, [[1]]), [
    '[0][0]: expected a string, got 1',
  ]);
  assert.deepEqual(problems({}, { anything: [1] }), []);
  assert.deepEqual(problems(false, 1), ['no value is allowed here']);
});

test('long values are cut', () => {
  const [problem] = problems({ type: 'integer' }, 'x'.repeat(500));
  assert.ok(problem.length < 100 && problem.endsWith('…'));
});

test('refuses keywords it would not check', () => {
  assert.throws(() => checkSchema({ type: 'object', properties: { name: { type: 'string', pattern: '^a' } } }), {
    message: /^name: unsupported JSON Schema keyword "pattern"/,
  });
  assert.throws(() => checkSchema({ type: 'text' }), { message: 'unknown type "text"' });
  assert.doesNotThrow(() => checkSchema(CHECK));
});
