"""The SQL the ingest side runs, as static constants.

Each query starts with its purpose and what each $n is.
"""

# Group commit: one flush of accepted events in one statement.
# $1 ids, $2 organization ids, $3 types, $4 payloads (JSON text), $5 dedup ids (NULL = none),
# $6 source ids and $7 provider ids (NULL for an event not from a source).
# Returns the ids inserted; a row missing from the result hit the dedup index, whose
# ON CONFLICT waits for a concurrent writer of the same key to commit first.
INSERT_EVENTS = """
INSERT INTO events (id, org_id, type, payload, dedup_id, source_id, provider_id, headers)
SELECT batch.id, batch.org_id, batch.type, batch.payload::jsonb, batch.dedup_id,
       batch.source_id, batch.provider_id, batch.headers::jsonb
FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::uuid[],
            $7::text[], $8::text[])
     AS batch (id, org_id, type, payload, dedup_id, source_id, provider_id, headers)
ON CONFLICT (org_id, dedup_id) WHERE dedup_id IS NOT NULL DO NOTHING
RETURNING id
"""

# The stored ids behind dedup conflicts; runs after INSERT_EVENTS in a new snapshot so
# rows committed by other nodes during that insert are visible.
# $1 organization ids, $2 dedup ids (pairwise).
EXISTING_DEDUP = """
SELECT wanted.org_id, wanted.dedup_id, events.id
FROM unnest($1::uuid[], $2::text[]) AS wanted (org_id, dedup_id)
JOIN events ON events.org_id = wanted.org_id AND events.dedup_id = wanted.dedup_id
"""

# After a flush lost its connection once the INSERT may have been sent: ends the backend
# that ran it, so that it cannot commit after we look. True when no such backend is left
# (it exited within $2 ms, or was already gone); false when it is still running. A pid
# equal to this session's own means the original backend is long gone (PostgreSQL
# restarted and reused the number), so it is left out rather than terminated.
# $1 the pid of the connection that ran the INSERT, $2 how long to wait for it to exit (ms).
END_BACKEND = """
SELECT coalesce(bool_and(pg_terminate_backend(pid, $2)), true)
FROM pg_stat_activity
WHERE pid = $1 AND pid <> pg_backend_pid()
"""

# Which of a flush's events are stored; run after END_BACKEND, in a snapshot of its own.
# $1 the flush's event ids.
STORED_EVENTS = "SELECT id FROM events WHERE id = ANY($1::uuid[])"

# Creates an organization. $1 id, $2 name, $3 tier.
INSERT_ORG = """
INSERT INTO organizations (id, name, tier) VALUES ($1, $2, $3)
RETURNING id, name, tier, created_at
"""

# Stores a new key's digest. $1 digest, $2 organization id.
INSERT_KEY = "INSERT INTO api_keys (key_hash, org_id) VALUES ($1, $2)"

# Authenticates a key. $1 digest.
ORG_BY_KEY = """
SELECT o.id, o.name, o.tier
FROM api_keys k JOIN organizations o ON o.id = k.org_id
WHERE k.key_hash = $1 AND k.revoked_at IS NULL
"""

# Revokes every live key of an organization (rotation). $1 organization id.
REVOKE_KEYS = """
UPDATE api_keys SET revoked_at = now() WHERE org_id = $1 AND revoked_at IS NULL
"""

# The caller's organization and its live key count. $1 organization id.
ORG_SUMMARY = """
SELECT o.id, o.name, o.tier, o.created_at,
       (SELECT count(*) FROM api_keys k WHERE k.org_id = o.id AND k.revoked_at IS NULL)
           AS active_keys
FROM organizations o WHERE o.id = $1
"""

# One event of an organization. $1 event id, $2 organization id.
EVENT_BY_ID = """
SELECT id, type, payload::text AS payload, dedup_id, status, created_at, acknowledged_at,
       source_id, provider_id, headers::text AS headers, routing_note
FROM events WHERE id = $1 AND org_id = $2
"""

# The inbox: unacknowledged events newest first, keyset-paginated over events_inbox.
# $1 organization id, $2 status or NULL, $3 type or NULL, $4 cursor (last id seen) or
# NULL, $5 page size + 1 (the extra row says whether there is a next page).
INBOX = """
SELECT id, type, payload::text AS payload, dedup_id, status, created_at
FROM events
WHERE org_id = $1 AND acknowledged_at IS NULL
  AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR type = $3)
  AND ($4::uuid IS NULL OR id < $4)
ORDER BY id DESC
LIMIT $5
"""

# Acknowledges events of one organization; idempotent (a second ack keeps the first time).
# $1 event ids, $2 organization id. Returns the ids that exist for that organization.
ACK = """
UPDATE events
SET acknowledged_at = coalesce(acknowledged_at, now()), status = 'acknowledged'
WHERE id = ANY($1::uuid[]) AND org_id = $2
RETURNING id
"""
