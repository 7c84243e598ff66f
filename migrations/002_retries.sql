-- 002: retries, timeouts and cancellation.
--
-- A job's row now exists from its first finished attempt: `retrying` while
-- attempts remain, then one final status.  `queued` marks a dead job sent
-- back by `sluice dead retry`.  Attempts may also end `timed_out` (the
-- master killed the process) or `cancelled`.
ALTER TABLE sluice_jobs DROP CONSTRAINT sluice_jobs_status_check;
ALTER TABLE sluice_jobs ADD CONSTRAINT sluice_jobs_status_check
    CHECK (status IN ('queued', 'retrying', 'succeeded', 'failed', 'dead', 'cancelled'));
ALTER TABLE sluice_job_attempts DROP CONSTRAINT sluice_job_attempts_status_check;
ALTER TABLE sluice_job_attempts ADD CONSTRAINT sluice_job_attempts_status_check
    CHECK (status IN ('succeeded', 'failed', 'dead', 'timed_out', 'cancelled'));

-- `sluice cancel JOB`: a request, recorded before the job may even exist.
CREATE TABLE sluice_cancellations (
    job_id        text COLLATE "C" PRIMARY KEY,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    requested_by  text
);

-- Attempts that succeeded are not written to sluice_job_attempts: the job
-- row (status succeeded, attempts, worker, timings) already describes its
-- last attempt, and one write per job instead of two is what lets the
-- worker commit tens of thousands of results a second.  The full history
-- of a job, every attempt, is this view.
CREATE VIEW sluice_job_history AS
    SELECT job_id, attempt, status, error, worker, started_at, finished_at
      FROM sluice_job_attempts
    UNION ALL
    SELECT id, attempts, status, NULL, worker, started_at, finished_at
      FROM sluice_jobs WHERE status = 'succeeded';
