-- Small keyed documents (schedules, events, steps waiting for events), each kind its own key
-- space. Keys compare as bytes (COLLATE "C") so a kind is read by key range, as on redb.

CREATE TABLE docs (
    kind      smallint NOT NULL,
    key       text COLLATE "C" NOT NULL,
    revision  bigint NOT NULL,
    doc       bytea NOT NULL,
    PRIMARY KEY (kind, key)
);
