// {{name}}: a Weft step plugin.

import { complete, defineStep, log } from 'weft-plugin';

export default defineStep({
  summary: 'Greets someone',
  // The SDK checks the input against this schema before run, and describe() returns it.
  input: {
    type: 'object',
    properties: { name: { type: 'string', description: 'Who to greet' } },
    required: ['name'],
    additionalProperties: false,
  },
  output: { type: 'object', properties: { greeting: { type: 'string' } } },
  run(ctx, input) {
    log.info(`greeting ${input.name} (attempt ${ctx.attempt})`);
    return complete({ greeting: `hello ${input.name}` });
  },
});
