-- Sign-in's share of the node (same schema on SQLite and PostgreSQL).
--
-- auth_nonces.failed_tries: the signature checks that asked the chain (a contract wallet's
-- ERC-1271 or ERC-6492 check, or the eth_getCode that finds a plain signature is not the
-- wallet's) with this nonce. Taken by one guarded UPDATE before each check; at
-- auth.tries_per_nonce the nonce is spent. A check that succeeds spends the nonce, so in
-- effect it counts failures.
ALTER TABLE auth_nonces ADD COLUMN failed_tries BIGINT NOT NULL DEFAULT 0;
