-- 013: notifications of gate events (docs/notifications.md).
--
-- A gate records, when it opens, the channels its events go to (the
-- pipeline's or the gate's `notify:`, else notify.default); a gate opened
-- before this migration has none and notifies nobody.
--
-- sluice_notifications is the leading scheduler's book of what it emitted:
-- one row per (run, gate, event, channel), written in the transaction that
-- decides to emit it, with the job id (deterministic for that tuple) and
-- the job's args; `enqueued` is set once the job is known to be in its
-- queue's stream.  A scheduler that dies between the two finds the row
-- not enqueued and sends the same job again: the worker's one-run-per-id
-- claim makes the copy a no-op if the first one had arrived.  A row is
-- never emitted twice because its primary key forbids a second one.
ALTER TABLE sluice_gates ADD COLUMN notify text[];

CREATE TABLE sluice_notifications (
    run_id      text NOT NULL REFERENCES sluice_runs (id) ON DELETE CASCADE,
    gate_id     text NOT NULL,
    event       text NOT NULL CHECK (event IN ('opened', 'reminder', 'decided', 'timed_out')),
    channel     text NOT NULL,
    job_id      text NOT NULL UNIQUE,
    queue       text NOT NULL,
    args        jsonb NOT NULL,              -- what the job carries (the body's fields)
    emitted_at  timestamptz NOT NULL DEFAULT now(),
    enqueued    boolean NOT NULL DEFAULT false,  -- the XADD is known to have happened
    PRIMARY KEY (run_id, gate_id, event, channel)
);
CREATE INDEX sluice_notifications_unsent ON sluice_notifications (emitted_at) WHERE NOT enqueued;

INSERT INTO sluice_grants (role, privileges, object) VALUES
    -- the leader records what it emits and marks it enqueued
    ('scheduler', 'SELECT, INSERT, UPDATE', 'TABLE sluice_notifications'),
    ('api', 'SELECT', 'TABLE sluice_notifications'),
    ('operator', 'SELECT', 'TABLE sluice_notifications');
