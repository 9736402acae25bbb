-- Small keyed documents (schedules, events, steps waiting for events), each kind its own key
-- space. Keys are UTF-8 bytes (they hold `\0` separators, which text cannot), compared as
-- bytes, so a kind is read by key range as on redb.

CREATE TABLE docs (
    kind      smallint NOT NULL,
    key       bytea NOT NULL,
    revision  bigint NOT NULL,
    doc       bytea NOT NULL,
    PRIMARY KEY (kind, key)
);
