// Steps and targets without WebAssembly: input checks, exceptions, resume, describe, and the
// WIT shapes componentExports hands to componentize-js.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import {
  bindHost,
  complete,
  componentExports,
  defineStep,
  defineTarget,
  describePlugin,
  fail,
  field,
  handleTarget,
  invalidAnswer,
  log,
  reject,
  resumeStep,
  runStep,
  secret,
  suspend,
  TargetError,
} from '../src/index.js';

const CTX = { runId: 'run-1', workflow: 'wf', step: 'Greet', attempt: 1, startedBy: 'alice' };
const WIT_CTX = CTX;
let lines;

beforeEach(() => {
  lines = [];
  bindHost({ log: (level, message) => lines.push([level, message]), secret: (name) => ({ token: 's3cret' })[name] });
});

const greet = defineStep({
  summary: 'Greets someone after a confirmation',
  input: {
    type: 'object',
    properties: {
      name: { type: 'string' },
      expect_status: { type: 'array', items: { type: 'integer' } },
      tone: { enum: ['warm', 'dry'], default: 'warm' },
    },
    required: ['name'],
    additionalProperties: false,
  },
  output: { type: 'object' },
  run(ctx, input) {
    if (input.name === 'boom') throw new RangeError('kaboom');
    if (input.name === 'plain') return { not: 'an outcome' };
    if (input.name === 'async') return Promise.resolve(complete());
    log.info(`asking about ${input.name} (${input.tone})`);
    return suspend({
      prompt: 'Greet?',
      fields: [field({ name: 'ok', type: 'boolean' })],
      signalTypes: ['Confirmation'],
      expiresIn: 60,
      state: { name: input.name },
    });
  },
  resume(ctx, state, event) {
    if (event.type === 'expired') return fail('expired');
    if (event.data.ok === true) return complete({ greeting: `hello ${state.name}`, by: event.answeredBy });
    if (event.data.ok === false) return reject({ by: event.answeredBy });
    return invalidAnswer('say ok: true or false');
  },
});

const answer = (data) => ({
  type: 'answer',
  signalType: 'Confirmation',
  answeredBy: 'bob',
  answeredAt: '2026-11-22T10:00:00Z',
  data: JSON.stringify(data),
});

test('run gets checked input with defaults', () => {
  const outcome = runStep(greet, CTX, '{"name": "Ada"}');
  assert.equal(outcome.kind, 'suspend');
  assert.deepEqual(outcome.state, { name: 'Ada' });
  assert.deepEqual(lines, [['info', 'asking about Ada (warm)']]);
});

test('input that does not fit fails naming the field', () => {
  const outcome = runStep(greet, CTX, '{"name": "Ada", "expect_status": 201}');
  assert.equal(outcome.message, 'invalid input: expect_status: expected a list of integers, got 201');
  assert.equal(outcome.retryable, false);
  assert.equal(
    runStep(greet, CTX, '{"tone": "loud"}').message,
    'invalid input: name: missing required field; tone: expected one of "warm", "dry", got "loud"',
  );
  assert.match(runStep(greet, CTX, '{nope').message, /^invalid input JSON: /);
});

test('exceptions, non-outcomes and promises fail the step', () => {
  assert.equal(runStep(greet, CTX, '{"name": "boom"}').message, 'run threw RangeError: kaboom');
  assert.equal(lines[0][0], 'error');
  assert.match(lines[0][1], /RangeError: kaboom\n\s+at /);
  assert.match(runStep(greet, CTX, '{"name": "plain"}').message, /^run returned \{"not":"an outcome"\}, not an outcome/);
  assert.match(runStep(greet, CTX, '{"name": "async"}').message, /must be synchronous/);
});

test('resume', () => {
  const state = '{"name": "Ada"}';
  assert.deepEqual(resumeStep(greet, CTX, state, answer({ ok: true })).output, { greeting: 'hello Ada', by: 'bob' });
  assert.equal(resumeStep(greet, CTX, state, answer({ ok: false })).kind, 'reject');
  assert.equal(resumeStep(greet, CTX, state, answer({})).message, 'say ok: true or false');
  assert.equal(resumeStep(greet, CTX, state, { type: 'expired' }).message, 'expired');
  const garbled = { ...answer({}), data: '{' };
  assert.equal(resumeStep(greet, CTX, state, garbled).kind, 'invalid-answer');
  assert.match(resumeStep(greet, CTX, '{', { type: 'expired' }).message, /^invalid state: /);
  const once = defineStep({ summary: 'never waits', run: (ctx, input) => complete(input) });
  assert.equal(resumeStep(once, CTX, 'null', { type: 'expired' }).message, 'this step never waits, so it cannot be resumed');
});

test('log and secret', () => {
  log.warn('careful');
  assert.deepEqual(lines, [['warn', 'careful']]);
  assert.equal(secret('token'), 's3cret');
  assert.equal(secret('other'), undefined);
});

test('describe', () => {
  const d = describePlugin(greet);
  assert.equal(d.summary, 'Greets someone after a confirmation');
  assert.equal(d.inputSchema.$schema, 'https://json-schema.org/draft/2020-12/schema');
  assert.deepEqual(d.inputSchema.required, ['name']);
  assert.equal(d.configSchema, undefined);
  assert.throws(() => defineStep({ run() {} }), /needs a summary/);
  assert.throws(() => defineStep({ summary: 's', input: { type: 'string', format: 'email' }, run() {} }), {
    message: /^input schema: unsupported JSON Schema keyword "format"/,
  });
  assert.throws(() => defineStep({ summary: 's', run() {}, resum() {} }), /unknown option resum/);
});

test('step exports in WIT shapes', () => {
  const { step, describe } = componentExports(greet);
  const suspended = step.run(WIT_CTX, '{"name": "Ada"}');
  assert.deepEqual(suspended, {
    tag: 'suspend',
    val: {
      prompt: 'Greet?',
      fields: [{ name: 'ok', type: 'boolean', description: '', required: true, choices: [], default: undefined }],
      assignees: [],
      signalTypes: ['Confirmation'],
      expiresIn: 60n,
      state: '{"name":"Ada"}',
    },
  });
  const event = { tag: 'answer', val: { signalType: 'Confirmation', answeredBy: 'bob', answeredAt: 'x', data: '{"ok":true}' } };
  assert.deepEqual(step.resume(WIT_CTX, suspended.val.state, event), {
    tag: 'complete',
    val: '{"greeting":"hello Ada","by":"bob"}',
  });
  assert.deepEqual(step.resume(WIT_CTX, '{}', { tag: 'expired' }), { tag: 'fail', val: { message: 'expired', retryable: false } });
  const d = describe.describe();
  assert.equal(JSON.parse(d.inputSchema).properties.tone.default, 'warm');
  assert.equal(d.configSchema, undefined);
});

test('outcomes that cannot be encoded fail the step', () => {
  const odd = componentExports(defineStep({ summary: 's', run: () => complete({ n: 1n }) }));
  assert.match(odd.step.run(WIT_CTX, '{}').val.message, /^the step's complete outcome is not JSON/);
  assert.throws(() => suspend({ prompt: 'p', expiresIn: 1.5 }), /whole seconds/);
});

const deny = defineTarget({
  summary: 'Refuses listed users',
  config: {
    type: 'object',
    properties: {
      deny: { type: 'array', items: { type: 'string' }, default: [] },
      status: { type: 'integer', minimum: 400, maximum: 499, default: 403 },
    },
    additionalProperties: false,
  },
  handle(ctx, config, payload) {
    const user = payload?.user;
    if (config.deny.includes(user)) throw new TargetError(`${user} may not call ${ctx.trigger}`, { status: config.status });
    if (user === 'crash') throw new Error('oops');
    if (user === 'rewrite') return { user, checked_by: ctx.target };
    return undefined;
  },
});

const TCTX = { trigger: '/v1.Executions/Start', target: 'deny' };
const envelope = (config, payload) => JSON.stringify({ config, payload });

test('a target passes or replaces the payload', () => {
  assert.equal(handleTarget(deny, TCTX, envelope(null, { user: 'ada' })), undefined);
  assert.equal(handleTarget(deny, TCTX, envelope({}, { user: 'rewrite' })), '{"user":"rewrite","checked_by":"deny"}');
});

test('a target refuses with a status, and config is checked', () => {
  assert.throws(() => handleTarget(deny, TCTX, envelope({ deny: ['mallory'], status: 451 }, { user: 'mallory' })), {
    message: 'mallory may not call /v1.Executions/Start',
    status: 451,
  });
  assert.throws(() => handleTarget(deny, TCTX, envelope({ status: 500 }, {})), {
    message: 'invalid config: status: must be at most 499, got 500',
  });
  assert.throws(() => handleTarget(deny, TCTX, envelope({}, { user: 'crash' })), { message: 'handle threw Error: oops' });
  assert.throws(() => handleTarget(deny, TCTX, 'nope'), /not JSON/);
});

test('target exports in WIT shapes', () => {
  const { target, describe } = componentExports(deny);
  assert.equal(target.handle(TCTX, envelope({}, { user: 'ada' })), undefined);
  assert.throws(
    () => target.handle(TCTX, envelope({ deny: ['eve'] }, { user: 'eve' })),
    (thrown) => {
      assert.deepEqual(thrown, { payload: { message: 'eve may not call /v1.Executions/Start', status: 403 } });
      return true;
    },
  );
  const d = describe.describe();
  assert.equal(JSON.parse(d.configSchema).properties.status.maximum, 499);
  assert.equal(d.inputSchema, '{}');
});
