-- The console's sessions and its audit trail (ingestor/console_sessions.py).
-- A session row is keyed by the SHA-256 of the random id its cookie carries (a read of
-- the table gives no usable cookie); every node shares the table, so a session opened on
-- one node is honoured by all. `org_id` NULL = an operator (the admin token); otherwise
-- the organization whose key signed in, `key_hash` that key (revoking it ends the
-- session). `csrf` is the session's synchronizer token for state-changing actions.
-- A session ends at `expires_at` (idle expiry, pushed forward as it is used) or at
-- `ends_at` (absolute), whichever comes first; expired rows are deleted in batches.
CREATE TABLE console_sessions (
    id_hash     bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    org_id      uuid REFERENCES organizations (id) ON DELETE CASCADE,
    key_hash    bytea,
    who         text NOT NULL,              -- 'operator' or the key id (key_ + 16 hex)
    csrf        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

-- Every action taken from the console: who (the key id or 'operator'), when, on what,
-- and its outcome; read newest first, per organization or across them.
CREATE TABLE console_audit (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    org_id      uuid,                        -- the organization acted on, when known
    who         text NOT NULL,
    action      text NOT NULL,
    target      text,
    detail      text
);
CREATE INDEX console_audit_org ON console_audit (org_id, id DESC);
