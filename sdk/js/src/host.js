// What the host offers a plugin: log lines for the run's log, and granted secrets. Inside a
// component the build's entry module binds the WIT `weft:plugin/host` imports here; outside one
// (unit tests, plain Node) log lines go to stderr and no secret is granted, unless a test binds
// its own functions with bindHost.

export const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];

let hostLog = (level, message) => console.error(`[${level}] ${message}`);
let hostSecret = () => undefined;

/** Routes `log` to `log(level, message)` and `secret` to `secret(name)`. */
export function bindHost({ log, secret }) {
  hostLog = log;
  hostSecret = secret;
}

/** The secret `name` if it was granted to this plugin, else undefined. */
export function secret(name) {
  return hostSecret(name) ?? undefined;
}

/** Lines for the run's log: `log.info('...')`, and trace, debug, warn, error. */
export const log = Object.freeze(
  Object.fromEntries(LEVELS.map((level) => [level, (message) => hostLog(level, String(message))])),
);
