-- Whom a waiting run waits for (names and `group:NAME`), so an inbox reads only the runs
-- waiting for its reader. NULL on runs written before this column existed: the store fills
-- those in when it opens the database (the run documents are read by the store, not SQL).

ALTER TABLE runs ADD COLUMN waiting_for text[];
CREATE INDEX runs_waiting_for ON runs USING gin (waiting_for) WHERE state = 'waiting';
