// weft-plugin: write a Weft step plugin, or an action target, in JavaScript (weft:plugin@0.2.0).
//
// A plugin module imports this package and default-exports one definition:
//
//   import { defineStep, complete, log } from 'weft-plugin';
//
//   export default defineStep({
//     summary: 'Greets someone',
//     input: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] },
//     run(ctx, input) {
//       log.info(`greeting ${input.name} (attempt ${ctx.attempt})`);
//       return complete({ greeting: `hello ${input.name}` });
//     },
//   });
//
// Input that does not fit the `input` schema fails the step before `run` ("invalid input:
// name: expected a string, got 5"), and describe() returns that schema. Build the module into a
// component with `node sdk/js/build.mjs PLUGIN_DIR OUT.wasm`.

export { AnswerError, coerce, field, FIELD_TYPES, readAnswer } from './form.js';
export { bindHost, log, secret } from './host.js';
export { complete, fail, invalidAnswer, reject, retryable, suspend, TargetError } from './outcome.js';
export {
  componentExports,
  defineStep,
  defineTarget,
  describePlugin,
  handleTarget,
  resumeStep,
  runStep,
  STEP_WORLD,
  TARGET_WORLD,
} from './plugin.js';
export { checkSchema, validate } from './schema.js';
