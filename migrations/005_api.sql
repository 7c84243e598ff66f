-- 005: the API server's state: API tokens (only a hash of each token is
-- stored; the token itself is shown once, by `sluice token create`) and
-- the Idempotency-Key of each job enqueued through POST /v1/queues/Q/jobs.

CREATE TABLE sluice_api_tokens (
    id           text PRIMARY KEY,            -- public part of the token (16 hex digits)
    user_name    text NOT NULL,               -- the principal the token proves
    scopes       text[] NOT NULL,             -- enqueue, trigger, approve, read, admin
    hash         text NOT NULL,               -- SHA-256 (hex) of the whole token
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,                 -- NULL: never
    revoked_at   timestamptz,                 -- set by `sluice token revoke`
    last_used_at timestamptz
);

CREATE TABLE sluice_api_idempotency (
    principal  text NOT NULL,                 -- keys are per authenticated user
    key        text NOT NULL,                 -- the Idempotency-Key header
    job_id     text NOT NULL,
    queue      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key)
);
