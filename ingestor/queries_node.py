"""The SQL behind /metrics and /dashboard, as static constants.

Unlike the API's queries these are node-wide: they read every organization's rows, so
they are only run for the metrics scrape and the admin-protected dashboard. Each query
starts with its purpose and what each $n is.
"""

# The delivery and event queues in one statement; no parameters. Each part walks its
# own partial index (deliveries_due, deliveries_leased, deliveries_dead,
# events_unrouted), so delivered rows, the bulk of the table, are never read.
QUEUE_STATE = """
WITH waiting AS (
    SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE next_attempt_at <= now()) AS due,
           min(created_at) AS oldest
    FROM deliveries WHERE status IN ('pending', 'failed')
)
SELECT waiting.pending, waiting.failed, waiting.due,
       (SELECT count(*) FROM deliveries WHERE status = 'in_flight') AS in_flight,
       (SELECT count(*) FROM deliveries WHERE status = 'dead_letter') AS dead_letter,
       (SELECT count(*) FROM events WHERE routed_at IS NULL) AS unrouted,
       coalesce(extract(epoch FROM now() - waiting.oldest), 0)::float8 AS oldest_age_s
FROM waiting
"""

# The latest dead letters across organizations, most recently dead first.
# $1 how many. Sorts the dead letters found through deliveries_dead (per organization,
# so there is no cross-organization order to walk); fine for a page an operator opens.
RECENT_DEAD_LETTERS = """
SELECT d.id, o.name AS org_name, ep.url, d.last_error, d.updated_at
FROM deliveries d
JOIN endpoints ep ON ep.id = d.endpoint_id
JOIN organizations o ON o.id = d.org_id
WHERE d.status = 'dead_letter'
ORDER BY d.updated_at DESC, d.id DESC
LIMIT $1
"""

# Endpoints that are disabled or whose breaker is open (or half-open), across
# organizations, deleted ones left out. $1 how many. The predicate implies
# endpoints_held's (breaker_cooldown_s and breaker_open_until are set and cleared
# together), so that small index is used.
ENDPOINTS_HELD = """
SELECT ep.id, o.name AS org_name, ep.url, ep.enabled, ep.disabled_reason,
       ep.consecutive_failures, ep.breaker_open_until,
       CASE WHEN ep.breaker_open_until IS NULL THEN 'closed'
            WHEN ep.breaker_open_until > now() THEN 'open'
            ELSE 'half_open' END AS breaker
FROM endpoints ep JOIN organizations o ON o.id = ep.org_id
WHERE ep.deleted_at IS NULL AND (NOT ep.enabled OR ep.breaker_cooldown_s IS NOT NULL)
ORDER BY ep.updated_at DESC
LIMIT $1
"""

# Endpoints by state, across organizations, deleted ones left out: disabled, and of the
# enabled ones, paused and breaker open or half-open (an endpoint may be both paused and
# tripped). $1 the most endpoints read. The predicate implies endpoints_held's (sql/008),
# so only that small index's rows are read, and at most $1 of them: past that (an
# unusual number of disabled endpoints) the counts stop growing. `read` tells.
ENDPOINT_STATES = """
WITH held AS (
    SELECT enabled, paused_at IS NOT NULL AS paused, breaker_open_until
    FROM endpoints
    WHERE deleted_at IS NULL
      AND (NOT enabled OR paused_at IS NOT NULL OR breaker_cooldown_s IS NOT NULL)
    LIMIT $1
)
SELECT count(*) FILTER (WHERE NOT enabled) AS disabled,
       count(*) FILTER (WHERE enabled AND paused) AS paused,
       count(*) FILTER (WHERE enabled AND breaker_open_until > now()) AS breaker_open,
       count(*) FILTER (WHERE enabled AND breaker_open_until <= now()) AS breaker_half_open,
       count(*) AS read
FROM held
"""
