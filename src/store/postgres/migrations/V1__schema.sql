-- Weft's tables on PostgreSQL. Documents are JSON bytes owned by the modules that write them;
-- the columns beside them are what the store indexes or conditions writes on.

CREATE TABLE runs (
    id          uuid PRIMARY KEY,
    doc         bytea NOT NULL,
    revision    bigint NOT NULL,
    owner       text,
    state       text NOT NULL,
    workflow    text NOT NULL,
    started_by  text NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX runs_live ON runs (id) WHERE state IN ('pending', 'running');
CREATE INDEX runs_waiting ON runs (id) WHERE state = 'waiting';
CREATE INDEX runs_owner ON runs (owner) WHERE owner IS NOT NULL;

CREATE TABLE run_logs (
    run  uuid NOT NULL,
    seq  bigint NOT NULL,
    doc  bytea NOT NULL,
    PRIMARY KEY (run, seq)
);

CREATE TABLE timers (
    due            timestamptz NOT NULL,
    run            uuid NOT NULL,
    step           text NOT NULL,
    kind           smallint NOT NULL,
    claimed_by     text,
    claimed_until  timestamptz,
    PRIMARY KEY (run, step, due)
);
CREATE INDEX timers_due ON timers (due);

CREATE TABLE idempotency_keys (
    key      text PRIMARY KEY,
    run      uuid NOT NULL,
    request  text NOT NULL
);

CREATE TABLE plugins (
    name     text NOT NULL,
    version  text NOT NULL,
    digest   text NOT NULL,
    meta     bytea NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE plugin_bytes (digest text PRIMARY KEY, bytes bytea NOT NULL);
CREATE TABLE artifacts (key text PRIMARY KEY, bytes bytea NOT NULL);

CREATE TABLE workflows (
    id       text NOT NULL,
    version  bigint NOT NULL,
    digest   text NOT NULL,
    PRIMARY KEY (id, version)
);
CREATE TABLE definitions (digest text PRIMARY KEY, doc bytea NOT NULL);
CREATE TABLE published_versions (id text NOT NULL, version bigint NOT NULL, PRIMARY KEY (id, version));
CREATE TABLE active_versions (id text PRIMARY KEY, version bigint NOT NULL);

CREATE TABLE tokens (hash text PRIMARY KEY, doc bytea NOT NULL);
CREATE TABLE audit (seq bigserial PRIMARY KEY, doc bytea NOT NULL);
CREATE TABLE grants (plugin text PRIMARY KEY, doc bytea NOT NULL);
CREATE TABLE sessions (id text PRIMARY KEY, doc bytea NOT NULL);

CREATE TABLE action_targets (id text PRIMARY KEY, doc bytea NOT NULL);
CREATE TABLE action_executions (key text PRIMARY KEY, doc bytea NOT NULL);
CREATE TABLE action_outbox (
    seq            bigserial PRIMARY KEY,
    doc            bytea NOT NULL,
    claimed_by     text,
    claimed_until  timestamptz
);
CREATE TABLE action_log (seq bigserial PRIMARY KEY, doc bytea NOT NULL);

-- Small named numbers: the action rule set's revision.
CREATE TABLE meta (key text PRIMARY KEY, value bigint NOT NULL);
INSERT INTO meta (key, value) VALUES ('rules_revision', 0);

CREATE TABLE runners (
    id            text PRIMARY KEY,
    address       text,
    started_at    timestamptz NOT NULL,
    heartbeat_at  timestamptz NOT NULL,
    lease_until   timestamptz NOT NULL
);
