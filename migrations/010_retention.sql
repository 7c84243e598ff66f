-- 010: retention (scheduler/retention.h).  The leader removes the oldest
-- expired job results and runs in small batches; these indexes let it find
-- them without scanning the tables.
CREATE INDEX sluice_jobs_finished ON sluice_jobs (finished_at);
CREATE INDEX sluice_runs_finished ON sluice_runs (finished_at)
    WHERE status IN ('succeeded', 'failed', 'cancelled');
