"""The SQL behind the monitoring routes (delivery performance and alerts), as static
constants.

Each query starts with its purpose and what each $n is. Every statement is scoped by
organization. An attempt counts as a success when it carries a latency: the node
records one exactly for the attempts it classified as delivered (a 2xx, within the
timeout, among the endpoint's success statuses).
"""

# Bounds the statement that follows it in the same transaction (SET LOCAL cannot take a
# parameter; set_config(..., true) is its parameterised form). $1 milliseconds, as text.
STATEMENT_TIMEOUT = "SELECT set_config('statement_timeout', $1, true)"

# Delivery performance of the organization's attempts in a range, per endpoint and per
# event type, from one read of the delivery_attempts_org index range: its latest $3
# attempts at most (`recent`, walked newest first, so a cap keeps the latest), grouped
# twice. Only the $4 largest groups of each kind are kept, and only those endpoints are
# looked up for their url. Each group: attempts, successes, percentiles (p50, p95, p99)
# of the request's duration over all its attempts and of the latency (acceptance to
# answer) over its successes (NULL without one). A last row (`dimension` 'total') says
# how many attempts were read and when.
# $1 organization id, $2 range (an interval back from now), $3 the cap on attempts
# read, $4 the most groups of each kind returned.
PERFORMANCE = """
WITH recent AS MATERIALIZED (
    SELECT endpoint_id, event_type, duration_ms, latency_ms
    FROM delivery_attempts
    WHERE org_id = $1 AND created_at >= now() - $2::interval
    ORDER BY created_at DESC
    LIMIT $3
), per_endpoint AS (
    SELECT endpoint_id, count(*) AS attempts, count(latency_ms) AS delivered,
           percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY duration_ms)
               AS duration,
           percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms)
               AS latency
    FROM recent WHERE endpoint_id IS NOT NULL
    GROUP BY endpoint_id
    ORDER BY attempts DESC, endpoint_id
    LIMIT $4
), per_type AS (
    SELECT event_type, count(*) AS attempts, count(latency_ms) AS delivered,
           percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY duration_ms)
               AS duration,
           percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms)
               AS latency
    FROM recent WHERE event_type IS NOT NULL
    GROUP BY event_type
    ORDER BY attempts DESC, event_type
    LIMIT $4
)
SELECT 'endpoint' AS dimension, g.endpoint_id::text AS key, endpoint.url, g.attempts,
       g.delivered, g.duration, g.latency, NULL::timestamptz AS at
FROM per_endpoint AS g
LEFT JOIN endpoints AS endpoint ON endpoint.id = g.endpoint_id AND endpoint.org_id = $1
UNION ALL
SELECT 'event_type', g.event_type, NULL, g.attempts, g.delivered, g.duration, g.latency,
       NULL
FROM per_type AS g
UNION ALL
SELECT 'total', NULL, NULL, (SELECT count(*) FROM recent), NULL, NULL, NULL, now()
"""

# The organization's alerts, newest first, keyset-paginated on id over alerts_org.
# $1 organization id, $2 cursor (the last id seen) or NULL, $3 page size + 1 (the extra
# row says whether there is a next page).
ALERTS = """
SELECT id, kind, endpoint_id, message, status, error, created_at
FROM alerts
WHERE org_id = $1 AND ($2::bigint IS NULL OR id < $2)
ORDER BY id DESC
LIMIT $3
"""
