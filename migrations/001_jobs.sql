-- 001: job results.  One row per job id (the worker's exactly-once record).
CREATE TABLE sluice_jobs (
    id            text COLLATE "C" PRIMARY KEY,
    queue         text NOT NULL,
    kind          text NOT NULL,
    args          jsonb NOT NULL DEFAULT '{}'::jsonb,
    status        text NOT NULL CHECK (status IN ('succeeded', 'failed', 'dead', 'cancelled')),
    attempts      integer NOT NULL CHECK (attempts >= 1),
    max_attempts  integer,
    timeout_ms    bigint,
    run_id        text,
    step_id       text,
    unique_key    text,
    enqueued_at   timestamptz,
    started_at    timestamptz,
    finished_at   timestamptz NOT NULL DEFAULT now(),
    worker        text,
    outputs       jsonb,
    error         text
);
CREATE INDEX sluice_jobs_run ON sluice_jobs (run_id) WHERE run_id IS NOT NULL;

-- Every attempt, successful or not: the history `sluice job` shows.
CREATE TABLE sluice_job_attempts (
    job_id       text COLLATE "C" NOT NULL,
    attempt      integer NOT NULL,
    status       text NOT NULL CHECK (status IN ('succeeded', 'failed', 'dead', 'timed_out', 'cancelled')),
    error        text,
    worker       text,
    started_at   timestamptz,
    finished_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, attempt)
);
