// Form fields and answers: the same conversions and messages as the Rust SDK's form.rs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AnswerError, coerce, field, readAnswer } from '../src/form.js';

const FORM = [
  field({ name: 'Approved', type: 'boolean', description: 'Whether you approve' }),
  field({ name: 'Comment', required: false, default: '' }),
  field({ name: 'size', type: 'integer', choices: [2048, 4096], default: 2048 }),
  field({ name: 'ratio', type: 'number', required: false }),
  field({ name: 'when', type: 'date-time', required: false }),
  field({ name: 'token', type: 'secure-string', required: false }),
  field({ name: 'extra', type: 'json', required: false }),
];

const refusal = (data, fields = FORM) => {
  try {
    readAnswer(fields, data);
  } catch (e) {
    assert.ok(e instanceof AnswerError);
    return e.message;
  }
  assert.fail(`${JSON.stringify(data)} was accepted`);
};

test('converts text forms and fills defaults', () => {
  assert.deepEqual(readAnswer(FORM, { Approved: 'True', size: '4096', ratio: ' 1.5 ', extra: [1] }), {
    Approved: true,
    Comment: '',
    size: 4096,
    ratio: 1.5,
    extra: [1],
  });
});

test('every problem at once', () => {
  assert.equal(
    refusal({ size: 1.5, bogus: 1, when: 'tomorrow' }),
    'field Approved is required; field size: expected an integer, got 1.5; ' +
      'field when: expected an RFC 3339 date-time such as 2026-11-22T10:00:00Z, got "tomorrow"; ' +
      'unknown field bogus; the form has Approved, Comment, size, ratio, when, token, extra',
  );
});

test('choices', () => {
  assert.equal(refusal({ Approved: true, size: 1024 }), 'field size: must be one of 2048, 4096');
  assert.equal(refusal({ c: 'x' }, [field({ name: 'c', choices: ['a', 'b'] })]), 'field c: must be one of a, b');
});

test('secure strings are never echoed', () => {
  assert.equal(refusal({ Approved: true, token: 12345 }), 'field token: expected a string, got a number');
});

test('booleans are not numbers and back', () => {
  assert.equal(refusal({ Approved: 1 }), 'field Approved: expected a boolean (true/false), got 1');
  assert.equal(refusal({ Approved: true, ratio: true }), 'field ratio: expected a number, got true');
  assert.equal(refusal({ Approved: true, ratio: 'NaN' }), 'field ratio: expected a number, got "NaN"');
});

test('date-times', () => {
  const t = field({ name: 't', type: 'date-time' });
  for (const good of ['2026-11-22T10:00:00Z', '2026-11-22t10:00:00.123456789+05:30', '2026-12-31T23:59:60Z']) {
    assert.equal(coerce(t, good), good);
  }
  for (const bad of ['2026-11-22', '2026-11-22T10:00:00', '2026-02-30T10:00:00Z', '2026-11-22 10:00:00Z']) {
    assert.throws(() => coerce(t, bad), AnswerError, bad);
  }
});

test('not an object, no fields, unknown type', () => {
  assert.equal(refusal([1]), 'the answer must be a JSON object, got an array');
  assert.equal(refusal({ a: 1 }, []), 'unknown field a; the form has no fields');
  assert.throws(() => field({ name: 'x', type: 'text' }), /unknown type "text"/);
});
