-- Identity: user accounts, refresh tokens (stored only as hashes) and the issuer's signing keys.
-- Instants are microseconds since the Unix epoch, like recipes.published_us.

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL,           -- as typed (display form)
    username_key  TEXT NOT NULL UNIQUE,    -- User::username_key: case-insensitive uniqueness and lookup
    email         TEXT NOT NULL UNIQUE,    -- lower-cased by the domain before it gets here
    given_name    TEXT,
    password_hash TEXT NOT NULL,           -- PHC string
    created_us    INTEGER NOT NULL
) STRICT;

-- One row per refresh token ever issued (until purged a day after expiry). `used` and `revoked` are
-- 0/1 flags; a token can be consumed only while both are 0.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    family_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    issued_us  INTEGER NOT NULL,
    expires_us INTEGER NOT NULL,
    used       INTEGER NOT NULL DEFAULT 0 CHECK (used IN (0, 1)),
    revoked    INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
) STRICT;

-- revoke_family touches every token of a session.
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
-- The purge of long-expired tokens runs on every insert; without this it would scan the table.
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_us);

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY NOT NULL,
    private_pem TEXT NOT NULL,             -- PKCS#8 PEM
    created_us  INTEGER NOT NULL,
    retired_us  INTEGER                    -- NULL while the key still signs
) STRICT;
