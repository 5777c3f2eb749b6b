-- Per-sign-in records of an external identity provider (Auth0), keyed by the access token's digest:
-- what lets a sign-out sending only the bearer revoke the provider's refresh token, and `me` answer
-- without calling the provider. The refresh token is stored sealed (encrypted), never in the clear.
CREATE TABLE provider_sessions (
    session_key          TEXT PRIMARY KEY NOT NULL,
    user_id              TEXT NOT NULL,
    sealed_refresh_token TEXT,
    username             TEXT NOT NULL,
    email                TEXT NOT NULL,
    given_name           TEXT,
    created_us           INTEGER NOT NULL,
    expires_us           INTEGER NOT NULL
) STRICT;

-- Expired records are purged on every put.
CREATE INDEX provider_sessions_by_expiry ON provider_sessions (expires_us);
