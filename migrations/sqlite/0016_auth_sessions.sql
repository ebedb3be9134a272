-- Account sessions (same schema on SQLite and PostgreSQL): what the account page's cookie
-- names. Membership tokens are short-lived (auth.token_secs) and renewed from a live
-- session (POST /v1/auth/refresh), so ending a session stops its tokens within one token
-- lifetime. A session is stored, never its secret: id_hash is the SHA-256 of the cookie's
-- value. csrf: the token the page sends in X-CSRF-Token with every change the cookie
-- authorizes. ended_at: signed out, or ended by a revoke, refund or move of the wallet.
-- Expired and ended rows are deleted as new sessions are made.
CREATE TABLE auth_sessions (
    id_hash     BLOB   PRIMARY KEY,
    wallet      BLOB   NOT NULL,
    csrf        TEXT    NOT NULL,
    auth_time   BIGINT  NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    ended_at    BIGINT
);
CREATE INDEX auth_sessions_wallet ON auth_sessions (wallet);
CREATE INDEX auth_sessions_expires_at ON auth_sessions (expires_at);
