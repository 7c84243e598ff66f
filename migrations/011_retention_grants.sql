-- 011: the grants of the tables that came before 006 made roles (claims,
-- API tokens), and the retention pass as a function.
--
-- Retention (scheduler/retention.h) removes expired job results and runs.
-- Rather than giving the scheduler's role DELETE on those tables, the
-- removal is one SECURITY DEFINER function that can only remove rows past
-- the windows it is given (never an active run's, never the audit trail),
-- at most p_batch of each per call.
CREATE FUNCTION sluice_retention_pass(p_succeeded_ms bigint, p_failed_ms bigint, p_runs_ms bigint,
                                      p_batch integer, OUT jobs bigint, OUT runs bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_catalog AS $$
BEGIN
    IF p_batch < 1 OR p_batch > 100000 THEN
        RAISE EXCEPTION 'retention batch % out of range 1..100000', p_batch;
    END IF;
    jobs := 0;
    runs := 0;
    IF p_succeeded_ms > 0 OR p_failed_ms > 0 THEN
        WITH doomed AS (
            SELECT j.id FROM sluice_jobs j
             WHERE ((j.status = 'succeeded' AND p_succeeded_ms > 0
                     AND j.finished_at < now() - p_succeeded_ms * interval '1 millisecond')
                 OR (j.status IN ('failed', 'dead', 'cancelled') AND p_failed_ms > 0
                     AND j.finished_at < now() - p_failed_ms * interval '1 millisecond'))
               AND (j.run_id IS NULL OR NOT EXISTS (SELECT 1 FROM sluice_runs r
                    WHERE r.id = j.run_id AND r.status IN ('queued', 'running')))
             ORDER BY j.finished_at LIMIT p_batch FOR UPDATE OF j SKIP LOCKED),
        attempts AS (DELETE FROM sluice_job_attempts WHERE job_id IN (SELECT id FROM doomed)),
        cancels AS (DELETE FROM sluice_cancellations WHERE job_id IN (SELECT id FROM doomed)),
        claims AS (DELETE FROM sluice_claims WHERE job_id IN (SELECT id FROM doomed)),
        gone AS (DELETE FROM sluice_jobs WHERE id IN (SELECT id FROM doomed) RETURNING 1)
        SELECT count(*) INTO jobs FROM gone;
    END IF;
    IF p_runs_ms > 0 THEN
        WITH doomed AS (
            SELECT id FROM sluice_runs
             WHERE status IN ('succeeded', 'failed', 'cancelled')
               AND finished_at < now() - p_runs_ms * interval '1 millisecond'
             ORDER BY finished_at LIMIT p_batch FOR UPDATE SKIP LOCKED),
        steps AS (DELETE FROM sluice_run_steps WHERE run_id IN (SELECT id FROM doomed)),
        gates AS (DELETE FROM sluice_gates WHERE run_id IN (SELECT id FROM doomed)),
        gone AS (DELETE FROM sluice_runs WHERE id IN (SELECT id FROM doomed) RETURNING 1)
        SELECT count(*) INTO runs FROM gone;
    END IF;
END $$;
REVOKE ALL ON FUNCTION sluice_retention_pass(bigint, bigint, bigint, integer) FROM PUBLIC;

INSERT INTO sluice_grants (role, privileges, object) VALUES
    ('scheduler', 'EXECUTE', 'FUNCTION sluice_retention_pass(bigint, bigint, bigint, integer)'),
    -- the worker claims a job before running it (migration 004)
    ('worker', 'SELECT, INSERT, UPDATE, DELETE', 'TABLE sluice_claims'),
    ('operator', 'SELECT', 'TABLE sluice_claims'),
    ('api', 'SELECT', 'TABLE sluice_claims'),
    -- the API server authenticates tokens and remembers idempotency keys
    ('api', 'SELECT, UPDATE', 'TABLE sluice_api_tokens'),
    ('api', 'SELECT, INSERT', 'TABLE sluice_api_idempotency'),
    -- an operator issues, lists and revokes tokens
    ('operator', 'SELECT, INSERT, UPDATE', 'TABLE sluice_api_tokens');

-- A run request is accepted by the scheduler alone: whatever steps a
-- client wrote into it are deleted before it builds its own (migration
-- 009), so the scheduler may delete steps (never gates).
UPDATE sluice_grants SET privileges = 'SELECT, INSERT, UPDATE, DELETE'
 WHERE role = 'scheduler' AND object = 'TABLE sluice_run_steps';
