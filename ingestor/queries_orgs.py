"""The SQL behind the operations on organizations and keys (ingestor.ops_orgs) that
ingestor/queries.py does not already hold, as static constants.

Each query starts with its purpose and what each $n is. LIST_ORGANIZATIONS is the one
statement that reads across organizations: a bounded primary-key range, for operators.
"""

# Organizations oldest first (their ids are UUIDv7), keyset-paginated on the primary
# key, with their live key counts. $1 cursor (the last id seen) or NULL, $2 page size + 1
# (the extra row says whether there is a next page).
LIST_ORGANIZATIONS = """
SELECT o.id, o.name, o.tier, o.created_at,
       (SELECT count(*) FROM api_keys k WHERE k.org_id = o.id AND k.revoked_at IS NULL)
           AS active_keys
FROM organizations o
WHERE $1::uuid IS NULL OR o.id > $1
ORDER BY o.id
LIMIT $2
"""

# An organization's live keys, newest first, over api_keys_org. $1 organization id.
LIST_KEYS = """
SELECT key_hash, created_at, revoked_at FROM api_keys
WHERE org_id = $1 AND revoked_at IS NULL
ORDER BY created_at DESC, key_hash
"""

# Revokes a key of an organization by its public id, the first 8 bytes of its digest:
# the digests from $2 to $3 (those bytes followed by 24 zero bytes, then by 24 0xff
# bytes), a primary-key range. Idempotent: a revoked key keeps its first revocation
# time. $1 organization id, $2 and $3 the range. Returns the keys found (none: unknown,
# or another organization's).
REVOKE_KEY = """
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE key_hash BETWEEN $2 AND $3 AND org_id = $1
RETURNING key_hash, created_at, revoked_at
"""
