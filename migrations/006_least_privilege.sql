-- 006: least privilege.  Gate decisions and audit rows are written only by
-- SECURITY DEFINER functions that run as the owner of the schema (the role
-- that ran `sluice migrate`); runtime roles get EXECUTE on the ones they
-- need and nothing else (sluice_setup_roles(), `sluice migrate
-- --create-roles`).  The audit hash input becomes length-prefixed (v2),
-- and each v2 row carries the principal, how it was authenticated, its
-- address, the database role that wrote it, and an Ed25519 signature made
-- outside the database (sluice_audit_sign(), key in the API server or the
-- scheduler; `sluice audit verify --public-key`).
--
-- Rows written before this migration are version 1: they keep their
-- separator hash and are reported by `sluice audit verify` as legacy,
-- unsigned rows.  The first signed row's hash covers the last legacy
-- row's hash, so from then on the legacy rows cannot be rewritten without
-- breaking a signature.
--
-- Every function here pins search_path, so a role that can create objects
-- in some schema cannot substitute a table or operator.

-- ---- the audit table, version 2 -------------------------------------------

ALTER TABLE sluice_audit
    ADD COLUMN version  smallint NOT NULL DEFAULT 1 CHECK (version IN (1, 2)),
    ADD COLUMN method   text,    -- how the principal was proven: token:ID, jwt:ISS#SUB, break-glass, scheduler
    ADD COLUMN address  text,    -- the client's address, when it came over the network
    ADD COLUMN db_role  text,    -- session_user of the connection that wrote the row
    ADD COLUMN key_id   text,    -- the signing key's id (lib/sign.h), v2 rows
    ADD COLUMN sig      text;    -- Ed25519 signature, hex, of 'sluice-audit-v2 ' || hash
ALTER TABLE sluice_audit ALTER COLUMN version SET DEFAULT 2;

-- One field of the v2 hash input: '~' for NULL, else the UTF-8 byte length
-- in decimal, ':', the bytes, ','.  No value can run into the next field.
CREATE FUNCTION sluice_audit_field(v text) RETURNS bytea
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog AS $$
    SELECT CASE WHEN v IS NULL THEN '\x7e'::bytea
                ELSE convert_to(length(convert_to(v, 'UTF8'))::text || ':', 'UTF8')
                     || convert_to(v, 'UTF8') || '\x2c'::bytea END
$$;

-- The v2 row hash; scheduler/audit.c computes the same bytes to verify
-- (it never trusts this function: an owner could replace it).
CREATE FUNCTION sluice_audit_hash_v2(a sluice_audit) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = public, pg_catalog AS $$
    SELECT encode(sha256(convert_to('sluice-audit-v2' || chr(10), 'UTF8')
        || sluice_audit_field(a.seq::text)
        || sluice_audit_field(((extract(epoch FROM a.at) * 1000000)::bigint)::text)
        || sluice_audit_field(a.run_id) || sluice_audit_field(a.gate_id)
        || sluice_audit_field(a.actor) || sluice_audit_field(a.method)
        || sluice_audit_field(a.address) || sluice_audit_field(a.db_role)
        || sluice_audit_field(a.decision) || sluice_audit_field(a.comment)
        || sluice_audit_field(a.inputs::text) || sluice_audit_field(a.reason)
        || sluice_audit_field(a.prev_hash)), 'hex')
$$;

-- The old public appender is gone: nobody appends but the functions below.
DROP FUNCTION sluice_audit_append(text, text, text, text, text, jsonb, text);
REVOKE ALL ON FUNCTION sluice_audit_hash(sluice_audit) FROM PUBLIC;

-- Appends one v2 row (unsigned: the caller signs it in the same
-- transaction with sluice_audit_sign).  Internal: no role may execute it.
CREATE FUNCTION sluice_audit_append_v2(p_run text, p_gate text, p_actor text, p_method text,
                                       p_address text, p_decision text, p_comment text,
                                       p_inputs jsonb, p_reason text,
                                       OUT seq bigint, OUT hash text)
LANGUAGE plpgsql SET search_path = public, pg_catalog AS $$
DECLARE
    last sluice_audit;
    r sluice_audit;
BEGIN
    PERFORM pg_advisory_xact_lock(7236833929497834356);  -- 'dauditlk', as in 003
    SELECT * INTO last FROM sluice_audit a ORDER BY a.seq DESC LIMIT 1;
    r.seq := coalesce(last.seq, 0) + 1;
    r.at := clock_timestamp();
    r.run_id := p_run; r.gate_id := p_gate; r.actor := p_actor; r.decision := p_decision;
    r.comment := p_comment; r.inputs := p_inputs; r.reason := p_reason;
    r.prev_hash := coalesce(last.hash, '');
    r.version := 2; r.method := p_method; r.address := p_address; r.db_role := session_user;
    r.hash := sluice_audit_hash_v2(r);
    INSERT INTO sluice_audit VALUES (r.*);
    seq := r.seq;
    hash := r.hash;
END $$;
REVOKE ALL ON FUNCTION sluice_audit_append_v2(text, text, text, text, text, text, text, jsonb, text)
    FROM PUBLIC;

-- Rows are never updated except once, to receive their signature, by
-- sluice_audit_sign in the transaction that appended them; never deleted.
DROP TRIGGER sluice_audit_append_only ON sluice_audit;
CREATE FUNCTION sluice_audit_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_catalog AS $$
BEGIN
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
CREATE TRIGGER sluice_audit_append_only BEFORE UPDATE OR DELETE ON sluice_audit
    FOR EACH ROW EXECUTE FUNCTION sluice_audit_guard();
CREATE TRIGGER sluice_audit_no_truncate BEFORE TRUNCATE ON sluice_audit
    FOR EACH STATEMENT EXECUTE FUNCTION sluice_audit_readonly();

-- Stores the signature of a row appended in the calling transaction.
CREATE FUNCTION sluice_audit_sign(p_seq bigint, p_key_id text, p_sig text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_catalog AS $$
BEGIN
    IF p_sig !~ '^[0-9a-f]{128}$' OR p_key_id !~ '^[0-9a-f]{16}$' THEN
        RAISE EXCEPTION 'sluice_audit_sign: malformed key id or signature';
    END IF;
    UPDATE sluice_audit a SET key_id = p_key_id, sig = p_sig
     WHERE a.seq = p_seq AND a.sig IS NULL AND a.version = 2
       AND a.xmin::text = (pg_current_xact_id()::text::bigint % 4294967296)::text;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sluice_audit_sign: row % was not appended by this transaction', p_seq;
    END IF;
END $$;
REVOKE ALL ON FUNCTION sluice_audit_sign(bigint, text, text) FROM PUBLIC;

-- ---- gates -----------------------------------------------------------------

-- A gate is opened open with no inputs; its status changes only in the
-- functions below (runtime roles have no UPDATE on sluice_gates).
CREATE FUNCTION sluice_gates_insert_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_catalog AS $$
BEGIN
    IF NEW.status <> 'open' OR NEW.inputs <> '{}'::jsonb OR NEW.decided_at IS NOT NULL THEN
        RAISE EXCEPTION 'a gate is opened open, without inputs';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER sluice_gates_insert_guard BEFORE INSERT ON sluice_gates
    FOR EACH ROW EXECUTE FUNCTION sluice_gates_insert_guard();

-- The step of a gate succeeds only through a decision function (which runs
-- as the owner of sluice_gates), whoever else may update steps.
CREATE FUNCTION sluice_gate_step_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_catalog AS $$
BEGIN
    IF NEW.status = 'succeeded' AND OLD.status <> 'succeeded'
       AND EXISTS (SELECT 1 FROM sluice_gates g WHERE g.run_id = NEW.run_id AND g.gate_id = NEW.step_id)
       AND (SELECT c.relowner FROM pg_class c WHERE c.oid = 'sluice_gates'::regclass)
           <> (SELECT r.oid FROM pg_roles r WHERE r.rolname = current_user) THEN
        RAISE EXCEPTION 'step % of run % is an approval gate: only a gate decision releases it',
            NEW.step_id, NEW.run_id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER sluice_gate_step_guard BEFORE UPDATE OF status ON sluice_run_steps
    FOR EACH ROW EXECUTE FUNCTION sluice_gate_step_guard();

-- Turns "NAME=VALUE" strings into the gate's typed inputs (spec:
-- [{name, type, default}]).  Returns NULL with why set on a bad one.
CREATE FUNCTION sluice_gate_inputs(p_spec jsonb, p_inputs jsonb, OUT result jsonb, OUT why text)
LANGUAGE plpgsql IMMUTABLE SET search_path = public, pg_catalog AS $$
DECLARE
    s text; n text; v text; t text;
BEGIN
    result := '{}'::jsonb;
    FOR s IN SELECT jsonb_array_elements_text(coalesce(p_inputs, '[]'::jsonb)) LOOP
        IF position('=' IN s) = 0 THEN
            why := format('input ''%s'' is not NAME=VALUE', s);
            result := NULL;
            RETURN;
        END IF;
        n := split_part(s, '=', 1);
        v := substr(s, length(n) + 2);
        SELECT e->>'type' INTO t FROM jsonb_array_elements(p_spec) e WHERE e->>'name' = n LIMIT 1;
        IF t IS NULL THEN
            why := format('this gate has no input ''%s''', n);
            result := NULL;
            RETURN;
        ELSIF t LIKE 'int%' THEN
            IF v !~ '^[+-]?[0-9]{1,18}$' THEN
                why := format('input ''%s'' must be an int, got ''%s''', n, left(v, 60));
                result := NULL;
                RETURN;
            END IF;
            result := result || jsonb_build_object(n, v::bigint);
        ELSIF t LIKE 'bool%' THEN
            IF v NOT IN ('true', 'false') THEN
                why := format('input ''%s'' must be true or false, got ''%s''', n, left(v, 60));
                result := NULL;
                RETURN;
            END IF;
            result := result || jsonb_build_object(n, v::boolean);
        ELSE
            result := result || jsonb_build_object(n, v);
        END IF;
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION sluice_gate_inputs(jsonb, jsonb) FROM PUBLIC;

-- The gate's final inputs: defaults, then what was supplied; missing names
-- the inputs without a default that have no value (NULL if none).
CREATE FUNCTION sluice_gate_final(p_spec jsonb, p_supplied jsonb, OUT result jsonb, OUT missing text)
LANGUAGE sql IMMUTABLE SET search_path = public, pg_catalog AS $$
    SELECT coalesce((SELECT jsonb_object_agg(s->>'name', s->'default')
                       FROM jsonb_array_elements(p_spec) s WHERE s ? 'default'), '{}'::jsonb)
           || p_supplied,
           (SELECT string_agg(s->>'name', ', ') FROM jsonb_array_elements(p_spec) s
             WHERE NOT s ? 'default' AND NOT p_supplied ? (s->>'name'))
$$;
REVOKE ALL ON FUNCTION sluice_gate_final(jsonb, jsonb) FROM PUBLIC;

-- The decision transaction: lock the gate, check the principal (approver,
-- self-approval, an earlier decision), the gate (open) and the inputs,
-- count, release or reject, and append the decision or the refusal.
-- p_override (break-glass) skips the approver and self-approval checks
-- and an approval releases the gate at once.  Internal: no role may
-- execute it; sluice_gate_decide and sluice_gate_breakglass call it.
CREATE FUNCTION sluice_gate_decision(p_run text, p_gate text, p_name text, p_method text,
                                     p_address text, p_approve boolean, p_comment text,
                                     p_inputs jsonb, p_override boolean,
                                     OUT refused boolean, OUT closed boolean, OUT approvals integer,
                                     OUT required integer, OUT message text,
                                     OUT audit_seq bigint, OUT audit_hash text)
LANGUAGE plpgsql SET search_path = public, pg_catalog AS $$
DECLARE
    g sluice_gates;
    why text;
    earlier text;
    supplied jsonb;
    merged jsonb;
    fin jsonb;
    missing text;
    decision text := CASE WHEN p_approve THEN 'approve' ELSE 'reject' END;
BEGIN
    refused := false; closed := false; approvals := 0; required := 0;
    IF p_name IS NULL OR p_name = '' OR p_method IS NULL OR p_method = '' THEN
        RAISE EXCEPTION 'a gate decision needs a principal and how it was authenticated';
    END IF;
    SELECT * INTO g FROM sluice_gates WHERE run_id = p_run AND gate_id = p_gate FOR UPDATE;
    IF NOT FOUND THEN
        why := format('gate ''%s'' of run %s is not open (no such run or gate, or the run has not '
                      'reached it)', p_gate, p_run);
    ELSE
        required := g.required;
        IF g.status <> 'open' THEN
            why := format('gate ''%s'' of run %s is not open: it was %s', p_gate, p_run, g.status);
        ELSIF NOT p_override AND NOT p_name = ANY (g.approvers) THEN
            why := format('%s is not an approver of gate ''%s''', p_name, p_gate);
        ELSIF NOT p_override AND NOT g.allow_self AND g.triggered_by = p_name THEN
            why := format('%s triggered run %s and gate ''%s'' does not allow self-approval',
                          p_name, p_run, p_gate);
        END IF;
    END IF;
    IF why IS NULL THEN
        SELECT a.decision INTO earlier FROM sluice_audit a WHERE a.run_id = p_run
           AND a.gate_id = p_gate AND a.actor = p_name AND a.decision IN ('approve', 'reject')
         LIMIT 1;
        IF earlier IS NOT NULL THEN
            why := format('%s already decided at gate ''%s'' (%s)', p_name, p_gate, earlier);
        ELSIF NOT p_approve AND jsonb_array_length(coalesce(p_inputs, '[]'::jsonb)) > 0 THEN
            why := 'inputs are given with an approval, not a rejection';
        ELSE
            SELECT i.result, i.why INTO supplied, why FROM sluice_gate_inputs(g.input_spec, p_inputs) i;
        END IF;
    END IF;
    IF why IS NULL AND p_approve THEN
        SELECT count(*) + 1 INTO approvals FROM sluice_audit a
         WHERE a.run_id = p_run AND a.gate_id = p_gate AND a.decision = 'approve';
        merged := g.inputs || supplied;
        IF approvals >= required OR p_override THEN
            SELECT f.result, f.missing INTO fin, missing FROM sluice_gate_final(g.input_spec, merged) f;
            IF missing IS NOT NULL THEN
                why := format('approving now would release the gate, but input(s) %s have no value: '
                              'supply them with --input NAME=VALUE', missing);
            END IF;
        END IF;
    END IF;
    IF why IS NOT NULL THEN
        SELECT a.seq, a.hash INTO audit_seq, audit_hash
          FROM sluice_audit_append_v2(p_run, p_gate, p_name, p_method, p_address, 'refused',
                                      p_comment, supplied, why) a;
        refused := true;
        message := why;
        RETURN;
    END IF;
    SELECT a.seq, a.hash INTO audit_seq, audit_hash
      FROM sluice_audit_append_v2(p_run, p_gate, p_name, p_method, p_address, decision,
                                  p_comment, CASE WHEN p_approve THEN supplied END, NULL) a;
    IF p_approve THEN
        UPDATE sluice_gates SET inputs = merged WHERE run_id = p_run AND gate_id = p_gate;
        IF fin IS NOT NULL THEN
            closed := true;
            UPDATE sluice_gates SET status = 'approved', decided_at = now(), inputs = fin
             WHERE run_id = p_run AND gate_id = p_gate;
            UPDATE sluice_run_steps SET status = 'succeeded', outputs = fin, finished_at = now()
             WHERE run_id = p_run AND step_id = p_gate AND status = 'waiting';
        END IF;
        message := format('%s approved gate ''%s'' of run %s (%s of %s)%s%s', p_name, p_gate, p_run,
                          approvals, required,
                          CASE WHEN p_override THEN ', break-glass' ELSE '' END,
                          CASE WHEN closed THEN ': the gate is released' ELSE '' END);
    ELSE
        closed := true;
        UPDATE sluice_gates SET status = 'rejected', decided_at = now()
         WHERE run_id = p_run AND gate_id = p_gate;
        UPDATE sluice_run_steps SET status = 'failed', finished_at = now(),
               error = format('rejected by %s: %s', p_name, coalesce(p_comment, ''))
         WHERE run_id = p_run AND step_id = p_gate AND status = 'waiting';
        message := format('%s rejected gate ''%s'' of run %s: the run fails', p_name, p_gate, p_run);
    END IF;
    IF closed THEN
        PERFORM pg_notify('sluice_gates', p_run);
    END IF;
END $$;
REVOKE ALL ON FUNCTION sluice_gate_decision(text, text, text, text, text, boolean, text, jsonb, boolean)
    FROM PUBLIC;

-- What the API server calls for an authenticated principal.  Trusts its
-- caller for who the principal is: only sluice_api may execute it.
CREATE FUNCTION sluice_gate_decide(p_run text, p_gate text, p_name text, p_method text,
                                   p_address text, p_approve boolean, p_comment text, p_inputs jsonb,
                                   OUT refused boolean, OUT closed boolean, OUT approvals integer,
                                   OUT required integer, OUT message text,
                                   OUT audit_seq bigint, OUT audit_hash text)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_catalog AS $$
    SELECT * FROM sluice_gate_decision(p_run, p_gate, p_name, p_method, p_address, p_approve,
                                       p_comment, p_inputs, false)
$$;
REVOKE ALL ON FUNCTION sluice_gate_decide(text, text, text, text, text, boolean, text, jsonb) FROM PUBLIC;

-- Break-glass: the principal is the database login (session_user), proven
-- by PostgreSQL; recorded with method 'break-glass'.  One decision closes
-- the gate.  Only sluice_breakglass may execute it.
CREATE FUNCTION sluice_gate_breakglass(p_run text, p_gate text, p_approve boolean, p_comment text,
                                       p_inputs jsonb,
                                       OUT refused boolean, OUT closed boolean, OUT approvals integer,
                                       OUT required integer, OUT message text,
                                       OUT audit_seq bigint, OUT audit_hash text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_catalog AS $$
BEGIN
    IF p_comment IS NULL OR btrim(p_comment) = '' THEN
        RAISE EXCEPTION 'a break-glass decision needs a comment saying why';
    END IF;
    SELECT * INTO refused, closed, approvals, required, message, audit_seq, audit_hash
      FROM sluice_gate_decision(p_run, p_gate, session_user::text, 'break-glass',
                                coalesce(host(inet_client_addr()), 'local'), p_approve, p_comment,
                                p_inputs, true);
END $$;
REVOKE ALL ON FUNCTION sluice_gate_breakglass(text, text, boolean, text, jsonb) FROM PUBLIC;

-- Closes one open gate past its deadline as its on_timeout says (an
-- approval that lacks inputs rejects).  The scheduler's; closed is false
-- if the gate was not open and due.
CREATE FUNCTION sluice_gate_time_out(p_run text, p_gate text,
                                     OUT closed boolean, OUT outcome text,
                                     OUT audit_seq bigint, OUT audit_hash text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_catalog AS $$
DECLARE
    g sluice_gates;
    fin jsonb;
    missing text;
    approve boolean;
BEGIN
    closed := false;
    SELECT * INTO g FROM sluice_gates WHERE run_id = p_run AND gate_id = p_gate AND status = 'open'
       AND deadline <= now() FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    approve := g.on_timeout = 'approve';
    IF approve THEN
        SELECT f.result, f.missing INTO fin, missing FROM sluice_gate_final(g.input_spec, g.inputs) f;
        approve := missing IS NULL;
    END IF;
    outcome := CASE WHEN approve THEN 'approve' ELSE 'reject' END;
    SELECT a.seq, a.hash INTO audit_seq, audit_hash
      FROM sluice_audit_append_v2(p_run, p_gate, 'sluice-scheduler', 'scheduler', NULL,
                                  'timeout-' || outcome,
                                  CASE WHEN missing IS NOT NULL THEN
                                      format('approving now would release the gate, but input(s) %s '
                                             'have no value: supply them with --input NAME=VALUE',
                                             missing) END,
                                  NULL, NULL) a;
    UPDATE sluice_gates SET status = 'timed_out', decided_at = now()
     WHERE run_id = p_run AND gate_id = p_gate;
    IF approve THEN
        UPDATE sluice_run_steps SET status = 'succeeded', outputs = fin, finished_at = now()
         WHERE run_id = p_run AND step_id = p_gate AND status = 'waiting';
    ELSE
        UPDATE sluice_run_steps SET status = 'failed', error = 'approval timed out', finished_at = now()
         WHERE run_id = p_run AND step_id = p_gate AND status = 'waiting';
    END IF;
    PERFORM pg_notify('sluice_gates', p_run);
    closed := true;
END $$;
REVOKE ALL ON FUNCTION sluice_gate_time_out(text, text) FROM PUBLIC;

-- Cancels the open gates of a run that is ending (cancelled or failed).
-- Cancelling never releases anything, so the scheduler, the API and
-- operators may all call it.
CREATE FUNCTION sluice_gates_cancel(p_run text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_catalog AS $$
DECLARE
    n integer;
BEGIN
    UPDATE sluice_gates SET status = 'cancelled', decided_at = now()
     WHERE run_id = p_run AND status = 'open';
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
REVOKE ALL ON FUNCTION sluice_gates_cancel(text) FROM PUBLIC;

-- ---- roles -----------------------------------------------------------------

-- What each runtime role may do, one row per GRANT.  Later migrations add
-- rows for their own tables; sluice_setup_roles() applies them all.
CREATE TABLE sluice_grants (
    role        text NOT NULL CHECK (role IN ('worker', 'scheduler', 'api', 'operator', 'breakglass')),
    privileges  text NOT NULL,   -- e.g. 'SELECT, INSERT'
    object      text NOT NULL,   -- e.g. 'TABLE sluice_jobs', 'FUNCTION sluice_gates_cancel(text)'
    PRIMARY KEY (role, object)
);
INSERT INTO sluice_grants (role, privileges, object) VALUES
    -- the worker records outcomes and reads what it must not run again
    ('worker', 'SELECT', 'TABLE sluice_schema_migrations'),
    ('worker', 'SELECT, INSERT, UPDATE', 'TABLE sluice_jobs'),
    ('worker', 'SELECT, INSERT', 'TABLE sluice_job_attempts'),
    ('worker', 'SELECT', 'TABLE sluice_cancellations'),
    -- the scheduler drives runs; gates only open, time out or cancel
    ('scheduler', 'SELECT', 'TABLE sluice_schema_migrations'),
    ('scheduler', 'SELECT, INSERT, UPDATE', 'TABLE sluice_runs'),
    ('scheduler', 'SELECT, INSERT, UPDATE', 'TABLE sluice_run_steps'),
    ('scheduler', 'SELECT, INSERT, UPDATE', 'TABLE sluice_schedules'),
    ('scheduler', 'SELECT, INSERT', 'TABLE sluice_gates'),
    ('scheduler', 'SELECT, INSERT', 'TABLE sluice_cancellations'),
    ('scheduler', 'SELECT', 'TABLE sluice_jobs'),
    ('scheduler', 'SELECT', 'TABLE sluice_audit'),
    ('scheduler', 'EXECUTE', 'FUNCTION sluice_gate_time_out(text, text)'),
    ('scheduler', 'EXECUTE', 'FUNCTION sluice_gates_cancel(text)'),
    ('scheduler', 'EXECUTE', 'FUNCTION sluice_audit_sign(bigint, text, text)'),
    -- the API server reads everything, starts and cancels runs, decides
    ('api', 'SELECT', 'TABLE sluice_schema_migrations'),
    ('api', 'SELECT', 'TABLE sluice_jobs'),
    ('api', 'SELECT', 'TABLE sluice_job_attempts'),
    ('api', 'SELECT', 'TABLE sluice_job_history'),
    ('api', 'SELECT, INSERT', 'TABLE sluice_cancellations'),
    ('api', 'SELECT, INSERT, UPDATE', 'TABLE sluice_runs'),
    ('api', 'SELECT, INSERT, UPDATE', 'TABLE sluice_run_steps'),
    ('api', 'SELECT', 'TABLE sluice_gates'),
    ('api', 'SELECT', 'TABLE sluice_audit'),
    ('api', 'EXECUTE', 'FUNCTION sluice_gate_decide(text, text, text, text, text, boolean, text, jsonb)'),
    ('api', 'EXECUTE', 'FUNCTION sluice_gates_cancel(text)'),
    ('api', 'EXECUTE', 'FUNCTION sluice_audit_sign(bigint, text, text)'),
    -- an operator's CLI: read, cancel, retry dead jobs, verify the audit
    ('operator', 'SELECT', 'TABLE sluice_schema_migrations'),
    ('operator', 'SELECT, UPDATE', 'TABLE sluice_jobs'),
    ('operator', 'SELECT', 'TABLE sluice_job_attempts'),
    ('operator', 'SELECT', 'TABLE sluice_job_history'),
    ('operator', 'SELECT, INSERT', 'TABLE sluice_cancellations'),
    ('operator', 'SELECT, UPDATE', 'TABLE sluice_runs'),
    ('operator', 'SELECT, UPDATE', 'TABLE sluice_run_steps'),
    ('operator', 'SELECT', 'TABLE sluice_gates'),
    ('operator', 'SELECT', 'TABLE sluice_audit'),
    ('operator', 'SELECT', 'TABLE sluice_schedules'),
    ('operator', 'EXECUTE', 'FUNCTION sluice_gates_cancel(text)'),
    -- break-glass: decide a gate from the database, signed by its own key
    ('breakglass', 'SELECT', 'TABLE sluice_schema_migrations'),
    ('breakglass', 'SELECT', 'TABLE sluice_runs'),
    ('breakglass', 'SELECT', 'TABLE sluice_gates'),
    ('breakglass', 'SELECT', 'TABLE sluice_audit'),
    ('breakglass', 'EXECUTE', 'FUNCTION sluice_gate_breakglass(text, text, boolean, text, jsonb)'),
    ('breakglass', 'EXECUTE', 'FUNCTION sluice_audit_sign(bigint, text, text)');

-- Creates the group roles sluice_worker, sluice_scheduler, sluice_api,
-- sluice_operator and sluice_breakglass (NOLOGIN) when p_create and they
-- do not exist, and applies sluice_grants to those that exist (`sluice
-- migrate` calls it after every upgrade, so new tables get their grants).  Login roles are then
-- made members (`GRANT sluice_api TO api_login`, or `sluice migrate
-- --grant api=api_login`).  Runs with the caller's rights (CREATEROLE to
-- create roles; ownership of the objects to grant): EXECUTE is revoked
-- from PUBLIC.  Idempotent.
CREATE FUNCTION sluice_setup_roles(p_create boolean) RETURNS integer
LANGUAGE plpgsql SET search_path = public, pg_catalog AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(7236833929497834357);
    FOR r IN SELECT DISTINCT role FROM sluice_grants LOOP
        IF p_create AND NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sluice_' || r.role) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', 'sluice_' || r.role);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;   -- created meanwhile from another database of the cluster
            END;
        END IF;
    END LOOP;
    FOR r IN SELECT g.role, g.privileges, g.object FROM sluice_grants g
              WHERE EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sluice_' || g.role)
              ORDER BY g.role, g.object LOOP
        EXECUTE format('GRANT %s ON %s TO %I', r.privileges, r.object, 'sluice_' || r.role);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;
REVOKE ALL ON FUNCTION sluice_setup_roles(boolean) FROM PUBLIC;
