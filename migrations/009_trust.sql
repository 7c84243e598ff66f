-- 009: the scheduler runs only what its operators installed, and a step's
-- result counts only if it came from the job the scheduler enqueued.
--
-- A run is requested by pipeline name (sluice run, the API): the row has
-- no source and no source_sha256 until the leading scheduler accepts it,
-- resolving the name against the pipelines it loaded and writing their
-- text and its SHA-256 itself.  Whatever a client put in `source` is
-- overwritten, never parsed.
ALTER TABLE sluice_runs ALTER COLUMN source DROP NOT NULL;
ALTER TABLE sluice_runs ALTER COLUMN source_name DROP NOT NULL;
ALTER TABLE sluice_runs ADD COLUMN source_sha256 text;  -- hex SHA-256 of source, set on acceptance

-- What the scheduler enqueued for a job step: the recorded job (sluice_jobs)
-- must have this kind, queue and args (SHA-256 of the jsonb text of args,
-- which PostgreSQL prints canonically) for the step's result to count.
ALTER TABLE sluice_run_steps ADD COLUMN job_kind text;
ALTER TABLE sluice_run_steps ADD COLUMN job_queue text;
ALTER TABLE sluice_run_steps ADD COLUMN job_args_sha256 text;

-- The scheduler's seal on a run it accepted: its Ed25519 signature (hex)
-- over the run's id, pipeline, source_sha256 and vars, made with
-- scheduler.signing_key_file.  A run whose seal does not verify is failed,
-- not run: a row a client wrote with its own text cannot pass for one the
-- scheduler accepted.  NULL when the scheduler has no signing key.
ALTER TABLE sluice_runs ADD COLUMN seal text;
