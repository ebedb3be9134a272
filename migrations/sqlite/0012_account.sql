-- Sign-In with Ethereum (same schema on SQLite and PostgreSQL).
--
-- auth_nonces: each nonce POST /v1/auth/nonce hands out, single-use and short-lived.
-- POST /v1/auth/verify spends it by setting used_at (one UPDATE guarded by
-- used_at IS NULL and expires_at, so two concurrent verifies cannot both win). Rows past
-- their expiry are deleted as new nonces are issued.
CREATE TABLE auth_nonces (
    nonce       TEXT   PRIMARY KEY,
    issued_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX auth_nonces_expiry ON auth_nonces (expires_at);

