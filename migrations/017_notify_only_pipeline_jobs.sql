-- 017: the row trigger on sluice_jobs fires only for pipeline jobs.
--
-- sluice_jobs_notify (migration 003) tells the scheduler that a step's job
-- reached a final status.  It was called for every row written, and
-- returned at once for the jobs that belong to no pipeline run, which are
-- most of them: a PL/pgSQL call per result, about 8 % of the time a batch
-- of 121 successful results takes to record.  The same condition in the
-- trigger's WHEN clause is evaluated before any call is queued, so rows
-- without a run_id cost nothing.  What is notified does not change.
DROP TRIGGER sluice_jobs_notify ON sluice_jobs;
CREATE TRIGGER sluice_jobs_notify AFTER INSERT OR UPDATE OF status ON sluice_jobs
    FOR EACH ROW
    WHEN (NEW.run_id IS NOT NULL AND NEW.status IN ('succeeded', 'failed', 'dead', 'cancelled'))
    EXECUTE FUNCTION sluice_jobs_notify();
