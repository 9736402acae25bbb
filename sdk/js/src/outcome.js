// The results a step returns (complete, suspend, fail, reject, invalidAnswer) and the error a
// target throws. Outcomes are plain frozen objects tagged with `kind`.

const OUTCOME = Symbol('weft outcome');

function outcome(kind, fields) {
  return Object.freeze({ [OUTCOME]: true, kind, ...fields });
}

/** Whether `value` was made by one of this module's outcome functions. */
export function isOutcome(value) {
  return typeof value === 'object' && value !== null && value[OUTCOME] === true;
}

/** The step is done; `output` (JSON) becomes `steps.<name>.output`. */
export function complete(output = {}) {
  return outcome('complete', { output });
}

/**
 * The step waits for a person. `state` (JSON) comes back to `resume` unchanged: nothing else
 * survives the wait. `expiresIn` is in seconds (undefined waits forever); `assignees` empty
 * means anyone may answer.
 */
export function suspend({ prompt, fields = [], assignees = [], signalTypes = [], expiresIn, state = null }) {
  if (typeof prompt !== 'string') throw new TypeError('suspend needs a prompt (a string)');
  if (expiresIn !== undefined && expiresIn !== null && !(Number.isInteger(expiresIn) && expiresIn >= 0)) {
    throw new TypeError(`expiresIn must be whole seconds (an integer >= 0), not ${expiresIn}`);
  }
  return outcome('suspend', { prompt, fields, assignees, signalTypes, expiresIn: expiresIn ?? undefined, state });
}

/** The step failed; the host retries it only if `retryable`. */
export function fail(message, { retryable = false } = {}) {
  return outcome('fail', { message: String(message), retryable });
}

/** A failure that may go away on a later attempt. */
export function retryable(message) {
  return fail(message, { retryable: true });
}

/** A person said no; `decision` is kept as the step's output and the run is rejected. */
export function reject(decision = {}) {
  return outcome('reject', { decision });
}

/** Only from `resume`: the answer is refused and the step keeps waiting; `message` says why. */
export function invalidAnswer(message) {
  return outcome('invalid-answer', { message: String(message) });
}

/** Thrown by a target's `handle` to refuse or fail; `status` (a 4xx) reaches an API caller. */
export class TargetError extends Error {
  constructor(message, { status } = {}) {
    super(message);
    this.name = 'TargetError';
    this.status = status;
  }
}
