-- 004: claims.  Before a worker runs a job it claims the job's id for one
-- stream entry, in the statement that also reads what PostgreSQL knows of
-- the job (one round trip per batch).  A claim names the attempt, the
-- entry that carries it and the consumer that took it; another entry with
-- the same id cannot run it while the claim's attempt has no recorded
-- result and its entry still exists.  A claim moves to a later attempt
-- once the earlier one is recorded, and is kept after the job ends: the
-- last claim tells a redelivery of the same entry (finish what it began)
-- from a duplicate (acknowledge it, run nothing).
CREATE TABLE sluice_claims (
    job_id      text COLLATE "C" PRIMARY KEY,
    attempt     integer NOT NULL CHECK (attempt >= 1),
    queue       text NOT NULL,
    entry       text NOT NULL,                 -- stream entry id, "ms-seq"
    consumer    text NOT NULL,                 -- host:pid of the worker that took it
    claimed_at  timestamptz NOT NULL DEFAULT now()
);
