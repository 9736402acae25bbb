// js-stamp-target: an action target that stamps the payload with what triggered it, for `call`
// targets whose later targets (or the API) want to know.
//
// Config: {"field": "stamped_by"}. An object payload comes back with config.field set to
// {"target": ..., "trigger": ...}; one that has that field already is refused with status 400,
// and a payload that is not an object fails the call.

import { defineTarget, log, TargetError } from 'weft-plugin';

export default defineTarget({
  summary: 'Stamps the payload with the target and trigger that saw it',
  config: {
    type: 'object',
    properties: { field: { type: 'string', default: 'stamped_by', description: 'Where to put the stamp' } },
    additionalProperties: false,
  },
  payload: { type: 'object' },
  output: { type: 'object' },
  handle(ctx, config, payload) {
    if (Object.hasOwn(payload, config.field)) {
      throw new TargetError(`the payload already has ${config.field}`, { status: 400 });
    }
    log.info(`${ctx.target}: stamping ${ctx.trigger}`);
    return { ...payload, [config.field]: { target: ctx.target, trigger: ctx.trigger } };
  },
});
