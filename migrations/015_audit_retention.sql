-- 015: retention of the audit trail, verifiable across removals.
--
-- The oldest rows of sluice_audit may be removed (retention.audit), but
-- only as a prefix of the chain and only together with a checkpoint that
-- the scheduler signs with its audit key: "the rows before seq N are gone;
-- the last of them hashed to H and was appended at T".  The row N that
-- remains chains to H, so `sluice audit verify` starts from the checkpoint
-- instead of from row 1, and checks its signature like a row's.  Whoever
-- removes rows without the scheduler's private key cannot write a
-- checkpoint that verifies, so the removal shows.
--
-- Only the newest checkpoint is needed (it matches the oldest remaining
-- row); older ones are removed with the rows they described.
CREATE TABLE sluice_audit_checkpoints (
    cut_seq      bigint PRIMARY KEY,   -- the first row kept
    prev_hash    text NOT NULL,        -- hash of row cut_seq - 1, the last one removed
    last_at_us   bigint NOT NULL,      -- when that row was appended (µs since the epoch)
    created_at   timestamptz NOT NULL DEFAULT now(),
    key_id       text NOT NULL CHECK (key_id ~ '^[0-9a-f]{16}$'),
    sig          text NOT NULL CHECK (sig ~ '^[0-9a-f]{128}$')
);

-- The append-only guard lets exactly one thing delete rows: this
-- migration's cut function, which marks its transaction first.  (A role
-- that can set the mark has no DELETE privilege; the table's owner can do
-- anything and is caught by the signatures, not by the trigger.)
CREATE OR REPLACE FUNCTION sluice_audit_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_catalog AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('sluice.audit_cut', true) = 'on' THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.version = 2 AND OLD.sig IS NULL AND NEW.sig IS NOT NULL
       AND (NEW.seq, NEW.at, NEW.run_id, NEW.gate_id, NEW.actor, NEW.decision, NEW.comment,
            NEW.inputs, NEW.reason, NEW.prev_hash, NEW.hash, NEW.version, NEW.method,
            NEW.address, NEW.db_role)
           IS NOT DISTINCT FROM
           (OLD.seq, OLD.at, OLD.run_id, OLD.gate_id, OLD.actor, OLD.decision, OLD.comment,
            OLD.inputs, OLD.reason, OLD.prev_hash, OLD.hash, OLD.version, OLD.method,
            OLD.address, OLD.db_role) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'sluice_audit is append-only';
END $$;

-- The candidate cut for rows older than p_keep_ms, at most p_batch of them:
-- the first row to keep, and the hash and time of the row before it.  The
-- newest row is always kept (the chain goes on from it).  No row: nothing
-- to remove.
CREATE FUNCTION sluice_audit_cut_candidate(p_keep_ms bigint, p_batch integer,
                                           OUT cut_seq bigint, OUT prev_hash text,
                                           OUT last_at_us bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_catalog AS $$
DECLARE
    newest bigint;
BEGIN
    SELECT max(a.seq) INTO newest FROM sluice_audit a;
    SELECT a.seq + 1, a.hash, (extract(epoch FROM a.at) * 1000000)::bigint
      INTO cut_seq, prev_hash, last_at_us
      FROM (SELECT s.seq, s.hash, s.at,
                   bool_and(s.at < now() - p_keep_ms * interval '1 millisecond')
                       OVER (ORDER BY s.seq) AS all_old
              FROM (SELECT * FROM sluice_audit ORDER BY seq LIMIT p_batch) s) a
     WHERE a.all_old AND a.seq < newest
     ORDER BY a.seq DESC LIMIT 1;
END $$;
REVOKE ALL ON FUNCTION sluice_audit_cut_candidate(bigint, integer) FROM PUBLIC;

-- Removes the rows before p_cut_seq and records the signed checkpoint.
-- Refuses unless the rows removed are all older than p_keep_ms (at least
-- one hour), row p_cut_seq - 1 hashed to p_prev_hash and was appended at
-- p_last_at_us, and row p_cut_seq exists.  The signature is checked by
-- `sluice audit verify`, which has the public keys; here only its form.
CREATE FUNCTION sluice_audit_cut(p_cut_seq bigint, p_prev_hash text, p_last_at_us bigint,
                                 p_key_id text, p_sig text, p_keep_ms bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_catalog AS $$
DECLARE
    removed bigint;
BEGIN
    IF p_keep_ms < 3600000 THEN
        RAISE EXCEPTION 'sluice_audit_cut: audit rows are kept at least 1h (asked: % ms)', p_keep_ms;
    END IF;
    PERFORM pg_advisory_xact_lock(7236833929497834356);  -- the append lock (006)
    IF NOT EXISTS (SELECT 1 FROM sluice_audit WHERE seq = p_cut_seq) THEN
        RAISE EXCEPTION 'sluice_audit_cut: row % does not exist; the newest row is always kept', p_cut_seq;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM sluice_audit WHERE seq = p_cut_seq - 1 AND hash = p_prev_hash
                      AND (extract(epoch FROM at) * 1000000)::bigint = p_last_at_us) THEN
        RAISE EXCEPTION 'sluice_audit_cut: row % is not the one the checkpoint describes', p_cut_seq - 1;
    END IF;
    IF EXISTS (SELECT 1 FROM sluice_audit WHERE seq < p_cut_seq
                  AND at >= now() - p_keep_ms * interval '1 millisecond') THEN
        RAISE EXCEPTION 'sluice_audit_cut: rows before % include some younger than % ms', p_cut_seq, p_keep_ms;
    END IF;
    INSERT INTO sluice_audit_checkpoints (cut_seq, prev_hash, last_at_us, key_id, sig)
    VALUES (p_cut_seq, p_prev_hash, p_last_at_us, p_key_id, p_sig);
    DELETE FROM sluice_audit_checkpoints WHERE cut_seq < p_cut_seq;
    PERFORM set_config('sluice.audit_cut', 'on', true);
    DELETE FROM sluice_audit WHERE seq < p_cut_seq;
    GET DIAGNOSTICS removed = ROW_COUNT;
    PERFORM set_config('sluice.audit_cut', 'off', true);
    RETURN removed;
END $$;
REVOKE ALL ON FUNCTION sluice_audit_cut(bigint, text, bigint, text, text, bigint) FROM PUBLIC;

INSERT INTO sluice_grants (role, privileges, object) VALUES
    ('scheduler', 'EXECUTE', 'FUNCTION sluice_audit_cut_candidate(bigint, integer)'),
    ('scheduler', 'EXECUTE', 'FUNCTION sluice_audit_cut(bigint, text, bigint, text, text, bigint)'),
    ('scheduler', 'SELECT', 'TABLE sluice_audit_checkpoints'),
    ('api', 'SELECT', 'TABLE sluice_audit_checkpoints'),
    ('operator', 'SELECT', 'TABLE sluice_audit_checkpoints');
