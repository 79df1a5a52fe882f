"""The SQL of the alerts table (sql/007): the Alerter records, the Pruner deletes.

Each query starts with its purpose and what each $n is.
"""

# Records a batch of alerts with what became of each. The organization is the
# endpoint's: an alert about an endpoint unknown here (or an id that names none) stores
# nothing. $1 endpoint ids, $2 kinds, $3 messages, $4 statuses (sent | failed |
# not_configured | coalesced), $5 errors (NULL unless failed), $6 when each was raised.
# Returns how many rows were stored.
INSERT_ALERTS = """
WITH stored AS (
    INSERT INTO alerts (org_id, endpoint_id, kind, message, status, error, created_at)
    SELECT endpoint.org_id, endpoint.id, a.kind, a.message, a.status, a.error, a.raised_at
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                $6::timestamptz[]) AS a (endpoint_id, kind, message, status, error, raised_at)
    JOIN endpoints AS endpoint ON endpoint.id = a.endpoint_id
    RETURNING 1
)
SELECT count(*) FROM stored
"""

# Retention: deletes a bounded batch of the oldest alerts raised before the cutoff,
# walking alerts_created. $1 the cutoff time, $2 batch size.
PRUNE_ALERTS = """
DELETE FROM alerts
WHERE id = ANY (ARRAY(SELECT id FROM alerts WHERE created_at < $1
                      ORDER BY created_at LIMIT $2))
"""
