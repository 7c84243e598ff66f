-- 003: the scheduler's state: runs, their steps, approval gates, the
-- append-only audit trail of gate decisions, and cron bookkeeping.
--
-- A run keeps the pipeline's YAML text as it was when the run started
-- (source), so a run ends as it began even if the file changes meanwhile.

CREATE TABLE sluice_runs (
    id             text PRIMARY KEY,          -- UUIDv7
    pipeline       text NOT NULL,
    source_name    text NOT NULL,             -- the file, for messages
    source         text NOT NULL,             -- the pipeline's YAML when the run was made
    vars           jsonb NOT NULL DEFAULT '{}'::jsonb,
    triggered_by   text NOT NULL,
    status         text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    concurrency_group text,
    release_at_gates  boolean NOT NULL DEFAULT false,
    scheduled_for  timestamptz,               -- the cron fire time that made it
    created_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    finished_at    timestamptz,
    error          text
);
-- One run per cron fire time, whatever the number of schedulers.
CREATE UNIQUE INDEX sluice_runs_fire ON sluice_runs (pipeline, scheduled_for)
    WHERE scheduled_for IS NOT NULL;
CREATE INDEX sluice_runs_active ON sluice_runs (status) WHERE status IN ('queued', 'running');

CREATE TABLE sluice_run_steps (
    run_id       text NOT NULL REFERENCES sluice_runs (id),
    step_id      text NOT NULL,
    position     integer NOT NULL,            -- order in the file
    status       text NOT NULL CHECK (status IN ('pending', 'queued', 'waiting', 'succeeded',
                                                 'failed', 'skipped', 'cancelled')),
    job_id       text,                        -- derived from (run, step, attempt)
    attempt      integer NOT NULL DEFAULT 1,
    enqueued     boolean NOT NULL DEFAULT false,  -- the XADD is known to have happened
    queued_at    timestamptz,
    finished_at  timestamptz,
    outputs      jsonb,
    error        text,
    PRIMARY KEY (run_id, step_id)
);
CREATE INDEX sluice_run_steps_job ON sluice_run_steps (job_id) WHERE job_id IS NOT NULL;

CREATE TABLE sluice_gates (
    run_id        text NOT NULL REFERENCES sluice_runs (id),
    gate_id       text NOT NULL,
    status        text NOT NULL CHECK (status IN ('open', 'approved', 'rejected', 'timed_out',
                                                  'cancelled')),
    approvers     text[] NOT NULL,            -- users, groups expanded when it opened
    required      integer NOT NULL CHECK (required >= 1),
    allow_self    boolean NOT NULL DEFAULT false,
    triggered_by  text NOT NULL,
    on_timeout    text NOT NULL DEFAULT 'reject' CHECK (on_timeout IN ('approve', 'reject')),
    input_spec    jsonb NOT NULL DEFAULT '[]'::jsonb,   -- [{name, type, default}]
    inputs        jsonb NOT NULL DEFAULT '{}'::jsonb,   -- values supplied so far
    instructions  text,
    opened_at     timestamptz NOT NULL DEFAULT now(),
    deadline      timestamptz,
    decided_at    timestamptz,
    PRIMARY KEY (run_id, gate_id)
);
CREATE INDEX sluice_gates_open ON sluice_gates (deadline) WHERE status = 'open';

-- Every decision and refusal.  Each row's hash covers its fields and the
-- previous row's hash, so editing or deleting a row breaks the chain
-- (`sluice audit verify`).  Rows are only ever appended through
-- sluice_audit_append(), which serialises writers.
CREATE TABLE sluice_audit (
    seq        bigint PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    run_id     text NOT NULL,
    gate_id    text NOT NULL,
    actor      text NOT NULL,
    decision   text NOT NULL,   -- approve, reject, timeout-approve, timeout-reject, refused
    comment    text,
    inputs     jsonb,
    reason     text,            -- why a decision was refused
    prev_hash  text NOT NULL,
    hash       text NOT NULL
);

CREATE FUNCTION sluice_audit_hash(a sluice_audit) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT encode(sha256(convert_to(concat_ws(chr(31), a.prev_hash, a.seq::text,
        (extract(epoch FROM a.at) * 1000000)::bigint::text, a.run_id, a.gate_id, a.actor,
        a.decision,
        CASE WHEN a.comment IS NULL THEN 'N' ELSE 'S' || a.comment END,
        CASE WHEN a.inputs IS NULL THEN 'N' ELSE 'S' || a.inputs::text END,
        CASE WHEN a.reason IS NULL THEN 'N' ELSE 'S' || a.reason END), 'UTF8')), 'hex')
$$;

CREATE FUNCTION sluice_audit_append(p_run text, p_gate text, p_actor text, p_decision text,
                                    p_comment text, p_inputs jsonb, p_reason text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    last sluice_audit;
    r sluice_audit;
BEGIN
    PERFORM pg_advisory_xact_lock(7236833929497834356);  -- 'dauditlk'
    SELECT * INTO last FROM sluice_audit ORDER BY seq DESC LIMIT 1;
    r.seq := coalesce(last.seq, 0) + 1;
    r.at := clock_timestamp();
    r.run_id := p_run; r.gate_id := p_gate; r.actor := p_actor; r.decision := p_decision;
    r.comment := p_comment; r.inputs := p_inputs; r.reason := p_reason;
    r.prev_hash := coalesce(last.hash, '');
    r.hash := sluice_audit_hash(r);
    INSERT INTO sluice_audit VALUES (r.*);
    RETURN r.seq;
END $$;

CREATE FUNCTION sluice_audit_readonly() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'sluice_audit is append-only';
END $$;
CREATE TRIGGER sluice_audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON sluice_audit
    FOR EACH STATEMENT EXECUTE FUNCTION sluice_audit_readonly();

-- Cron: the last fire time started per pipeline.
CREATE TABLE sluice_schedules (
    pipeline   text PRIMARY KEY,
    last_fire  timestamptz NOT NULL
);

-- The scheduler learns of finished steps from this notification (payload:
-- the run id), sent when the worker's transaction commits.
CREATE FUNCTION sluice_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.run_id IS NOT NULL AND NEW.status IN ('succeeded', 'failed', 'dead', 'cancelled') THEN
        PERFORM pg_notify('sluice_jobs', NEW.run_id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER sluice_jobs_notify AFTER INSERT OR UPDATE OF status ON sluice_jobs
    FOR EACH ROW EXECUTE FUNCTION sluice_jobs_notify();
