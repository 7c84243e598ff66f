-- 012: the web pages' sessions (server/session.h) and the OIDC sign-ins
-- under way (server/oidc.h).
--
-- A session cookie is a random secret; only its SHA-256 (hex) is stored,
-- so a copy of this table signs nobody in.  The row says who the session
-- is (principal, how it was proven, groups, scopes), carries the CSRF
-- token of its forms and a one-time message for the next page (flash),
-- and ends at expires_at or after the idle timeout since last_seen.
CREATE TABLE sluice_web_sessions (
    id_hash     text PRIMARY KEY,            -- hex SHA-256 of the cookie value
    principal   text NOT NULL,
    method      text NOT NULL,               -- web-token:ID, web-oidc:ISS#SUB, web-proxy:HEADER
    groups      text[] NOT NULL DEFAULT '{}',
    scopes      integer NOT NULL,            -- server/tokens.h scope bits
    csrf        text NOT NULL,               -- the forms' token (random, per session)
    address     text,                        -- where it signed in from
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    flash       text,                        -- shown once on the next page
    flash_class text
);
CREATE INDEX sluice_web_sessions_expiry ON sluice_web_sessions (expires_at);

-- An OIDC authorization request in flight: found again by its state when
-- the identity provider redirects back, bound to the browser's pre-session
-- cookie, used once.
CREATE TABLE sluice_web_oidc (
    state_hash  text PRIMARY KEY,            -- hex SHA-256 of state
    pre_hash    text NOT NULL,               -- hex SHA-256 of the sluice_pre cookie
    nonce       text NOT NULL,
    verifier    text NOT NULL,               -- PKCE code_verifier
    next        text NOT NULL,
    expires_at  timestamptz NOT NULL
);

INSERT INTO sluice_grants (role, privileges, object) VALUES
    ('api', 'SELECT, INSERT, UPDATE, DELETE', 'TABLE sluice_web_sessions'),
    ('api', 'SELECT, INSERT, DELETE', 'TABLE sluice_web_oidc');
