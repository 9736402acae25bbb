// Checks the example components built into OUT_DIR by running them in Node with a fake host
// (harness.mjs): what they import and export, describe(), and each example's scenario: bad
// input, suspend, a wrongly typed answer, yes, no and expiry for the greeters; refusal, pass and
// rewrite for the targets.
//
//   node --experimental-wasm-extended-const sdk/js/tools/check-examples.mjs OUT_DIR
//
// (componentize-py's output uses extended constant expressions, which Node 20 has behind that
// flag; wasmtime has them on by default.)

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { load } from './harness.mjs';

const dir = resolve(process.argv[2] ?? 'out');
const CTX = { runId: 'run-1', workflow: 'sdk-approval', step: 'Greet', attempt: 1, startedBy: 'alice' };

function answer(data) {
  return {
    tag: 'answer',
    val: { signalType: 'Confirmation', answeredBy: 'bob', answeredAt: '2026-11-22T10:00:00Z', data: JSON.stringify(data) },
  };
}

/** Loads `name`.wasm, checks its imports and exports, and hands it to `body`. */
async function withComponent(name, world, body) {
  const path = join(dir, `${name}.wasm`);
  assert.ok(existsSync(path), `${path} is missing; build the examples first`);
  const component = await load(path, { secrets: { greeter_signature: 's3cret' } });
  try {
    const foreign = component.imports.filter((i) => !i.startsWith('wasi:') && !/^weft:plugin\/(host|types)\b/.test(i));
    assert.deepEqual(foreign, [], `${name} imports more than weft:plugin/host, types and WASI`);
    for (const iface of [world, 'describe']) {
      assert.ok(component.exports.includes(`weft:plugin/${iface}@0.2.0`), `${name} does not export weft:plugin/${iface}@0.2.0`);
    }
    const d = component.instance.describe.describe();
    assert.ok(d.summary.length > 0);
    for (const schema of [d.inputSchema, d.outputSchema]) JSON.parse(schema);
    assert.equal(d.configSchema === undefined, world === 'step', 'a config schema comes with targets only');
    await body(component.instance, component.logs, d);
  } finally {
    await component.close();
  }
}

function greeterScenario(name, input, badInput, badMessage) {
  test(`${name}: typed input, suspend, answers, expiry`, () =>
    withComponent(name, 'step', (plugin, logs) => {
      assert.deepEqual(plugin.step.run(CTX, JSON.stringify(badInput)), {
        tag: 'fail',
        val: { message: badMessage, retryable: false },
      });
      const suspended = plugin.step.run(CTX, JSON.stringify({ ...input, confirm_by: ['bob'], expires_in: 60 }));
      assert.equal(suspended.tag, 'suspend');
      const request = suspended.val;
      assert.deepEqual(request.signalTypes, ['Confirmation']);
      assert.deepEqual(request.assignees, ['bob']);
      assert.equal(request.expiresIn, 60n);
      assert.deepEqual(
        request.fields.map((f) => [f.name, f.type, f.required, f.default]),
        [
          ['Confirm', 'boolean', true, undefined],
          ['Comment', 'string', false, '""'],
        ],
      );
      const resume = (event) => plugin.step.resume(CTX, request.state, event);
      assert.deepEqual(resume(answer({ Confirm: 'yes' })), {
        tag: 'invalid-answer',
        val: 'field Confirm: expected a boolean (true/false), got "yes"',
      });
      const done = resume(answer({ Confirm: 'true', Comment: 'fine' }));
      assert.equal(done.tag, 'complete');
      assert.equal(JSON.parse(done.val).confirmed_by, 'bob');
      assert.deepEqual(resume(answer({ Confirm: false })), {
        tag: 'reject',
        val: JSON.stringify({ confirmed: false, by: 'bob', comment: '' }),
      });
      assert.equal(resume({ tag: 'expired' }).tag, 'fail');
      assert.ok(logs.some(([level]) => level === 'info'), 'no info line reached the host');
      assert.ok(!logs.some(([, message]) => message.includes('no greeter_signature')), 'the granted secret was not seen');
    }));
}

greeterScenario(
  'python-greeter',
  { name: 'Ada' },
  { name: 'Ada', greeting: 'yo', confirm_by: 'bob' },
  'invalid input: greeting: expected one of "hello", "good morning", "welcome", got "yo"; confirm_by: expected a list of strings, got "bob"',
);

greeterScenario(
  'js-greeter',
  { greeting: 'hello Ada' },
  { greeting: 'hello Ada', language: 'nl', confirm_by: 'bob' },
  'invalid input: language: expected one of "en", "fr", "de", got "nl"; confirm_by: expected a list of strings, got "bob"',
);

const TCTX = { trigger: '/v1.Executions/Start', target: 'policy' };
const envelope = (config, payload) => JSON.stringify({ config, payload });
const refusal = (message, status) => (e) => {
  assert.deepEqual({ message: e.message ?? e.payload?.message, status: e.status ?? e.payload?.status }, { message, status });
  return true;
};

test('python-deny-target: refuses listed users with the configured status', () =>
  withComponent('python-deny-target', 'target', (plugin, logs, d) => {
    assert.equal(JSON.parse(d.configSchema).properties.status.maximum, 499);
    assert.equal(plugin.target.handle(TCTX, envelope({ deny: ['mallory'] }, { user: 'ada' })), undefined);
    assert.throws(
      () => plugin.target.handle(TCTX, envelope({ deny: ['mallory'], status: 451 }, { request: { user: 'mallory' } })),
      refusal('mallory may not call /v1.Executions/Start', 451),
    );
    assert.throws(
      () => plugin.target.handle(TCTX, envelope({ status: 200 }, {})),
      refusal('invalid config: status: must be at least 400, got 200', undefined),
    );
    assert.deepEqual(logs.map(([level]) => level), ['warn']);
  }));

test('js-stamp-target: stamps the payload, refuses a stamped one', () =>
  withComponent('js-stamp-target', 'target', (plugin) => {
    assert.deepEqual(JSON.parse(plugin.target.handle(TCTX, envelope(null, { a: 1 }))), {
      a: 1,
      stamped_by: { target: 'policy', trigger: '/v1.Executions/Start' },
    });
    assert.throws(
      () => plugin.target.handle(TCTX, envelope({ field: 'a' }, { a: 1 })),
      refusal('the payload already has a', 400),
    );
    assert.throws(
      () => plugin.target.handle(TCTX, envelope({}, [1])),
      refusal('invalid payload: expected an object, got [1]', undefined),
    );
  }));
