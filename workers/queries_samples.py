"""The SQL of the queue sampler (workers/sampler.py, sql/011), as static constants."""

# The fleet's sentinel scope in queue_samples (org_id NULL).
FLEET = "00000000-0000-0000-0000-000000000000"

# One node of the fleet samples a minute: the lock is held until the transaction ends,
# and a node that does not get it skips the tick. $1 the lock's key.
TRY_LOCK = "SELECT pg_try_advisory_xact_lock($1)"

# Whether the current minute (PostgreSQL's clock) has its fleet row already: a primary
# key look-up, so ticking several times a minute costs one sample per minute.
SAMPLED = f"""
SELECT EXISTS (SELECT 1 FROM queue_samples
               WHERE minute = date_trunc('minute', now()) AND scope = '{FLEET}')
"""

# The current minute's samples: the fleet's row and one per organization among the $1
# with the most waiting. `waiting` has the predicate of the deliveries_due partial index,
# so it reads the waiting rows only, never the delivered history. A minute already
# written is left as it is.
# Returns the rows written.
SAMPLE = """
WITH waiting AS (
    SELECT org_id, next_attempt_at
    FROM deliveries WHERE status IN ('pending', 'failed')
), per_org AS (
    SELECT org_id, count(*) AS depth,
           count(*) FILTER (WHERE next_attempt_at <= now()) AS due,
           coalesce(extract(epoch FROM now() - min(next_attempt_at)
                             FILTER (WHERE next_attempt_at <= now())), 0) AS oldest
    FROM waiting GROUP BY org_id
), busiest AS (
    SELECT * FROM per_org ORDER BY depth DESC, org_id LIMIT $1
), sampled AS (
    SELECT NULL::uuid AS org_id, coalesce(sum(depth), 0) AS depth,
           coalesce(sum(due), 0) AS due, coalesce(max(oldest), 0) AS oldest
    FROM per_org
    UNION ALL
    SELECT org_id, depth, due, oldest FROM busiest
)
INSERT INTO queue_samples (minute, org_id, depth, due, oldest_due_age_s)
SELECT date_trunc('minute', now()), org_id, depth, due, oldest FROM sampled
ON CONFLICT DO NOTHING
"""

# Samples older than $1, at most $2 of them, oldest first (the primary key's order).
PRUNE_SAMPLES = """
DELETE FROM queue_samples
WHERE (minute, scope) IN (SELECT minute, scope FROM queue_samples
                          WHERE minute < now() - $1::interval ORDER BY minute LIMIT $2)
"""
