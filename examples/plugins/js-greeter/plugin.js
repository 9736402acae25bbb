// js-greeter: turns a greeting into a message and sends it once a person confirms.
//
// Input: {"greeting": "hello Ada", "language": "en", "confirm_by": ["alice"], "expires_in": 3600}
// (only greeting is required). The step suspends with a Confirmation form of Confirm (boolean)
// and Comment (optional string): yes completes with {"message": ..., "confirmed_by": ...}, no
// rejects the run, and an answer that does not fit the form is refused and the step keeps
// waiting.

import {
  AnswerError,
  complete,
  defineStep,
  fail,
  field,
  invalidAnswer,
  log,
  readAnswer,
  reject,
  secret,
  suspend,
} from 'weft-plugin';

const SIGNAL = 'Confirmation';
const FORM = [
  field({ name: 'Confirm', type: 'boolean', description: 'Send this message?' }),
  field({ name: 'Comment', description: 'Why (optional)', required: false, default: '' }),
];
const SIGN_OFF = { en: 'Kind regards', fr: 'Bien cordialement', de: 'Mit freundlichen Grüßen' };

export default defineStep({
  summary: 'Sends a greeting as a message once a person confirms it',
  input: {
    type: 'object',
    description: 'The greeting to send, and who confirms it.',
    properties: {
      greeting: { type: 'string', description: 'The greeting, such as the python-greeter output' },
      language: { enum: ['en', 'fr', 'de'], default: 'en' },
      confirm_by: {
        type: 'array',
        items: { type: 'string' },
        default: [],
        description: 'Who may confirm: user names or group:NAME; empty means anyone',
      },
      expires_in: { type: 'integer', minimum: 1, description: 'Seconds to wait for the confirmation' },
    },
    required: ['greeting'],
    additionalProperties: false,
  },
  output: {
    type: 'object',
    properties: { message: { type: 'string' }, confirmed_by: { type: 'string' }, comment: { type: 'string' } },
    required: ['message', 'confirmed_by', 'comment'],
  },

  run(ctx, input) {
    const message = `${input.greeting}!\n\n${SIGN_OFF[input.language]}`;
    log.info(`asking to confirm a ${input.language} message (run ${ctx.runId}, attempt ${ctx.attempt})`);
    if (secret('greeter_signature') === undefined) log.debug('no greeter_signature secret granted; message unsigned');
    return suspend({
      prompt: `Send this message?\n\n${message}`,
      fields: FORM,
      assignees: input.confirm_by,
      signalTypes: [SIGNAL],
      expiresIn: input.expires_in,
      state: { message },
    });
  },

  resume(ctx, state, event) {
    if (event.type === 'expired') return fail('nobody confirmed the message in time');
    let answer;
    try {
      answer = readAnswer(FORM, event.data);
    } catch (e) {
      if (e instanceof AnswerError) return invalidAnswer(e.message);
      throw e;
    }
    if (!answer.Confirm) {
      log.info(`${event.answeredBy} declined the message`);
      return reject({ confirmed: false, by: event.answeredBy, comment: answer.Comment });
    }
    return complete({ message: state.message, confirmed_by: event.answeredBy, comment: answer.Comment });
  },
});
