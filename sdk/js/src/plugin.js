// Steps and targets: defineStep and defineTarget, everything between the host's JSON text and the
// author's functions (parsing, schema checks, exceptions), and componentExports, which shapes it
// all as the WIT exports the way componentize-js expects them. No WebAssembly is needed to test
// any of it.

import { FIELD_TYPES } from './form.js';
import { log } from './host.js';
import { dump } from './json.js';
import { fail, invalidAnswer, isOutcome, TargetError } from './outcome.js';
import { checkSchema, DIALECT, validate } from './schema.js';

export const STEP_WORLD = 'step-plugin';
export const TARGET_WORLD = 'target-plugin';

/**
 * A workflow step:
 * `defineStep({summary, input, output, run(ctx, input), resume(ctx, state, event)})`.
 *
 * `input` is a JSON Schema (the supported subset, see schema.js): it is what `describe()`
 * returns, and input that does not fit fails the step (not retryable) before `run`, naming every
 * offending field; missing properties take their schema's `default`. `output` is a schema for
 * `describe()` only. `resume` is needed only by a step that suspends.
 */
export function defineStep({ summary, input = {}, output = {}, run, resume, ...rest }) {
  refuseUnknown(rest, 'defineStep');
  if (typeof run !== 'function') throw new TypeError('defineStep needs run(ctx, input)');
  if (resume !== undefined && typeof resume !== 'function') throw new TypeError('resume must be a function');
  const plugin = { world: STEP_WORLD, summary, schemas: { input, output }, run, resume };
  describePlugin(plugin);
  return Object.freeze(plugin);
}

/**
 * An action target: `defineTarget({summary, config, payload, output, handle(ctx, config, payload)})`.
 *
 * `config` is the JSON Schema of the target's config, checked before `handle`; `payload`, if
 * given, is checked too. `handle` returns undefined to leave the payload as it is, or a new
 * payload (used by later targets when the target's type is `call`); it throws a TargetError to
 * refuse.
 */
export function defineTarget({ summary, config = { type: 'object' }, payload = {}, output = {}, handle, ...rest }) {
  refuseUnknown(rest, 'defineTarget');
  if (typeof handle !== 'function') throw new TypeError('defineTarget needs handle(ctx, config, payload)');
  const plugin = { world: TARGET_WORLD, summary, schemas: { config, payload, output }, handle };
  describePlugin(plugin);
  return Object.freeze(plugin);
}

function refuseUnknown(rest, what) {
  const unknown = Object.keys(rest);
  if (unknown.length) throw new TypeError(`${what}: unknown option ${unknown.join(', ')}`);
}

/** The plugin's contract: `{summary, inputSchema, outputSchema, configSchema}`, schemas as objects. */
export function describePlugin(plugin) {
  if (typeof plugin.summary !== 'string' || plugin.summary.trim() === '') {
    throw new TypeError('a plugin needs a summary: one line saying what it does');
  }
  for (const [name, schema] of Object.entries(plugin.schemas)) {
    try {
      checkSchema(schema);
    } catch (e) {
      throw new TypeError(`${name} schema: ${e.message}`);
    }
  }
  const withDialect = (schema) =>
    typeof schema === 'object' && Object.keys(schema).length > 0 ? { $schema: DIALECT, ...schema } : schema;
  const { schemas } = plugin;
  return plugin.world === STEP_WORLD
    ? {
        summary: plugin.summary.trim(),
        inputSchema: withDialect(schemas.input),
        outputSchema: withDialect(schemas.output),
        configSchema: undefined,
      }
    : {
        summary: plugin.summary.trim(),
        inputSchema: withDialect(schemas.payload),
        outputSchema: withDialect(schemas.output),
        configSchema: withDialect(schemas.config),
      };
}

/** Parses and checks the input, then calls `run`. */
export function runStep(plugin, ctx, inputText) {
  let input;
  try {
    input = JSON.parse(inputText);
  } catch (e) {
    return fail(`invalid input JSON: ${e.message}`);
  }
  const checked = validate(plugin.schemas.input, input);
  if (checked.problems.length) return fail(`invalid input: ${checked.problems.join('; ')}`);
  return call(plugin, 'run', ctx, checked.value);
}

/**
 * Parses the state, then calls `resume`. `event` is `{type: 'expired'}` or `{type: 'answer',
 * signalType, answeredBy, answeredAt, data}` with `data` still JSON text.
 */
export function resumeStep(plugin, ctx, stateText, event) {
  if (!plugin.resume) return fail('this step never waits, so it cannot be resumed');
  let state;
  try {
    state = JSON.parse(stateText);
  } catch (e) {
    return fail(`invalid state: ${e.message}`);
  }
  if (event.type === 'answer') {
    try {
      event = { ...event, data: JSON.parse(event.data) };
    } catch (e) {
      // The step keeps waiting, so whoever answered can try again.
      return invalidAnswer(`the answer data is not JSON: ${e.message}`);
    }
  }
  return call(plugin, 'resume', ctx, state, event);
}

function call(plugin, method, ...args) {
  let result;
  try {
    result = plugin[method](...args);
  } catch (e) {
    return crashed(method, e);
  }
  if (isOutcome(result)) return result;
  if (result instanceof Promise) {
    return fail(`${method} returned a Promise; plugin functions must be synchronous`);
  }
  return fail(`${method} returned ${JSON.stringify(result) ?? String(result)}, not an outcome (complete, suspend, fail, reject or invalidAnswer)`);
}

function crashed(method, e) {
  // An exception is a bug rather than a passing fault, so it is not retried; the stack goes to
  // the run's log, the message to whoever reads the failure.
  log.error(e instanceof Error ? (e.stack ?? String(e)) : String(e));
  const what = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return fail(`${method} threw ${what}`);
}

/**
 * Splits the host's `{"config": ..., "payload": ...}` envelope, checks both, calls `handle` and
 * returns the new payload as JSON text (or undefined). Throws a TargetError.
 */
export function handleTarget(plugin, ctx, envelopeText) {
  let envelope;
  try {
    envelope = JSON.parse(envelopeText);
  } catch (e) {
    throw new TargetError(`the host sent an envelope that is not JSON: ${e.message}`);
  }
  if (typeof envelope !== 'object' || envelope === null || Array.isArray(envelope)) {
    throw new TargetError('the host sent an envelope that is not a JSON object');
  }
  const config = checkFor('config', plugin.schemas.config, envelope.config ?? {});
  const payload = checkFor('payload', plugin.schemas.payload, envelope.payload ?? null);
  let result;
  try {
    result = plugin.handle(ctx, config, payload);
  } catch (e) {
    if (e instanceof TargetError) throw e;
    throw new TargetError(crashed('handle', e).message);
  }
  if (result instanceof Promise) throw new TargetError('handle returned a Promise; plugin functions must be synchronous');
  if (result === undefined || result === null) return undefined;
  try {
    return dump(result);
  } catch (e) {
    throw new TargetError(`the payload handle returned is ${e.message}`);
  }
}

function checkFor(what, schema, value) {
  const checked = validate(schema, value);
  if (checked.problems.length) throw new TargetError(`invalid ${what}: ${checked.problems.join('; ')}`);
  return checked.value;
}

/**
 * The WIT exports of `plugin`, shaped as componentize-js wants them: `{step, describe}` for a
 * step, `{target, describe}` for a target. Records have camelCase fields, variants are
 * `{tag, val}`, `option<u64>` is a BigInt or undefined, and an `err` result is thrown as
 * `{payload}`.
 */
export function componentExports(plugin) {
  const describe = {
    describe() {
      const d = describePlugin(plugin);
      return {
        summary: d.summary,
        inputSchema: dump(d.inputSchema),
        outputSchema: dump(d.outputSchema),
        configSchema: d.configSchema === undefined ? undefined : dump(d.configSchema),
      };
    },
  };
  if (plugin.world === TARGET_WORLD) {
    return {
      describe,
      target: {
        handle(ctx, payload) {
          try {
            return handleTarget(plugin, { trigger: ctx.trigger, target: ctx.target }, payload);
          } catch (e) {
            const error = e instanceof TargetError ? e : new TargetError(String(e));
            throw { payload: { message: error.message, status: error.status ?? undefined } };
          }
        },
      },
    };
  }
  return {
    describe,
    step: {
      run: (ctx, input) => toWit(runStep(plugin, context(ctx), input)),
      resume(ctx, state, event) {
        const e = event.tag === 'answer' ? { type: 'answer', ...event.val } : { type: 'expired' };
        return toWit(resumeStep(plugin, context(ctx), state, e));
      },
    },
  };
}

function context({ runId, workflow, step, attempt, startedBy }) {
  return Object.freeze({ runId, workflow, step, attempt, startedBy });
}

/** An outcome as the WIT `step-outcome` variant; JSON that cannot be encoded fails the step. */
export function toWit(outcome) {
  try {
    switch (outcome.kind) {
      case 'complete':
        return { tag: 'complete', val: dump(outcome.output) };
      case 'suspend':
        return {
          tag: 'suspend',
          val: {
            prompt: outcome.prompt,
            fields: outcome.fields.map(witField),
            assignees: [...outcome.assignees],
            signalTypes: [...outcome.signalTypes],
            expiresIn: outcome.expiresIn === undefined ? undefined : BigInt(outcome.expiresIn),
            state: dump(outcome.state),
          },
        };
      case 'fail':
        return { tag: 'fail', val: { message: outcome.message, retryable: outcome.retryable } };
      case 'reject':
        return { tag: 'reject', val: dump(outcome.decision) };
      default:
        return { tag: 'invalid-answer', val: outcome.message };
    }
  } catch (e) {
    return { tag: 'fail', val: { message: `the step's ${outcome.kind} outcome is ${e.message}`, retryable: false } };
  }
}

function witField(f) {
  const type = f.type ?? 'string';
  if (!FIELD_TYPES.includes(type)) throw new TypeError(`field ${f.name} has the unknown type ${JSON.stringify(type)}`);
  return {
    name: f.name,
    type,
    description: f.description ?? '',
    required: f.required ?? true,
    choices: (f.choices ?? []).map(dump),
    default: f.default === undefined || f.default === null ? undefined : dump(f.default),
  };
}
