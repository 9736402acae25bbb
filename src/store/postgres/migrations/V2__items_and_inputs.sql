-- for_each items, written apart from their run so a step over 10,000 items does not rewrite
-- one huge record; and the input index, to find runs by their inputs without a scan.

CREATE TABLE run_items (
    run    uuid NOT NULL,
    step   text NOT NULL,
    idx    bigint NOT NULL,
    doc    bytea NOT NULL,
    PRIMARY KEY (run, step, idx)
);

CREATE TABLE run_inputs (
    key    text NOT NULL,
    value  text NOT NULL,
    run    uuid NOT NULL,
    PRIMARY KEY (key, value, run)
);
CREATE INDEX run_inputs_run ON run_inputs (run);
