"""The SQL behind the console (ingestor/routes_console.py), as static constants.

Sessions and the audit trail (sql/010), and the console's reads. A read that crosses
organizations runs under a statement timeout (console_ops.bounded) and reads a capped
index range: the console never holds the queue up, whatever the tables hold.
"""

# A new session. $1 the SHA-256 of its id; $2 organization (NULL: operator); $3 the key's
# hash; $4 who; $5 the CSRF token; $6 idle seconds; $7 absolute seconds.
CREATE_SESSION = """
INSERT INTO console_sessions (id_hash, org_id, key_hash, who, csrf, expires_at, ends_at)
VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), now() + make_interval(secs => $7))
"""

# A live session, its idle expiry pushed forward (written at most once a minute, so a
# polling page does not rewrite its row every few seconds). $1 the id's hash; $2 idle
# seconds. A tenant's session ends with its key: a revoked key finds nothing.
TOUCH_SESSION = """
WITH live AS (
    SELECT s.id_hash, s.org_id, s.who, s.csrf, s.seen_at
    FROM console_sessions s
    WHERE s.id_hash = $1 AND s.expires_at > now() AND s.ends_at > now()
      AND (s.key_hash IS NULL OR EXISTS (
          SELECT 1 FROM api_keys k WHERE k.key_hash = s.key_hash AND k.revoked_at IS NULL))
), touched AS (
    UPDATE console_sessions s
    SET seen_at = now(), expires_at = least(s.ends_at, now() + make_interval(secs => $2))
    FROM live WHERE s.id_hash = live.id_hash AND live.seen_at < now() - interval '1 minute'
)
SELECT org_id, who, csrf FROM live
"""

# $1 the id's hash.
DELETE_SESSION = "DELETE FROM console_sessions WHERE id_hash = $1"

# Expired sessions, $1 at most per statement (console_sessions_expiry).
PRUNE_SESSIONS = """
DELETE FROM console_sessions WHERE id_hash IN (
    SELECT id_hash FROM console_sessions WHERE expires_at <= now() OR ends_at <= now()
    LIMIT $1)
"""

# One audited action. $1 organization (or NULL); $2 who; $3 action; $4 target; $5 detail.
AUDIT = """
INSERT INTO console_audit (org_id, who, action, target, detail) VALUES ($1, $2, $3, $4, $5)
"""

# The audit trail, newest first. $1 organization (NULL: every one, for operators); $2 how
# many. Per organization through console_audit_org; across them by the primary key.
AUDIT_TRAIL = """
SELECT a.id, a.at, a.org_id, o.name AS org_name, a.who, a.action, a.target, a.detail
FROM console_audit a LEFT JOIN organizations o ON o.id = a.org_id
WHERE $1::uuid IS NULL OR a.org_id = $1
ORDER BY a.id DESC
LIMIT $2
"""

# Organizations an operator may pick, by name. $1 how many.
ORGANIZATIONS = "SELECT id, name FROM organizations ORDER BY name, id LIMIT $1"

# Endpoints with their last hour: attempts, successes (an attempt with a latency),
# p99 duration, and their due backlog (at most $3 counted each, through
# deliveries_endpoint_open). $1 organization (NULL: across organizations, ENDPOINTS
# only); $2 how many endpoints; $3 the backlog cap; $4 the attempts read at most: one
# capped range of delivery_attempts_recent (ENDPOINTS) or of delivery_attempts_org
# (ORG_ENDPOINTS), whatever the organization's share of the hour.
_ENDPOINTS = """
WITH listed AS (
    SELECT ep.*, o.name AS org_name
    FROM endpoints ep JOIN organizations o ON o.id = ep.org_id
    WHERE ep.deleted_at IS NULL AND ($1::uuid IS NULL OR ep.org_id = $1)
    ORDER BY ep.created_at DESC, ep.id
    LIMIT $2
), recent AS (
    SELECT a.endpoint_id, a.latency_ms, a.duration_ms
    FROM delivery_attempts a
    WHERE a.created_at >= now() - interval '1 hour' AND {attempts_of}
    LIMIT $4
), stats AS (
    SELECT endpoint_id, count(*) AS attempts, count(latency_ms) AS successes,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) AS p99_ms
    FROM recent GROUP BY endpoint_id
)
SELECT l.id, l.org_id, l.org_name, l.url, l.description, l.enabled, l.disabled_reason,
       l.paused_at, l.paused_by, l.consecutive_failures, l.breaker_open_until,
       CASE WHEN l.breaker_open_until IS NULL THEN 'closed'
            WHEN l.breaker_open_until > now() THEN 'open' ELSE 'half_open' END AS breaker,
       coalesce(s.attempts, 0) AS attempts, coalesce(s.successes, 0) AS successes, s.p99_ms,
       (SELECT count(*) FROM (
            SELECT 1 FROM deliveries d
            WHERE d.endpoint_id = l.id AND d.status IN ('pending', 'failed')
              AND d.next_attempt_at <= now()
            LIMIT $3) due) AS due
FROM listed l LEFT JOIN stats s ON s.endpoint_id = l.id
ORDER BY l.created_at DESC, l.id
"""
ENDPOINTS = _ENDPOINTS.format(attempts_of="$1::uuid IS NULL")
ORG_ENDPOINTS = _ENDPOINTS.format(attempts_of="a.org_id = $1")

# An endpoint's latest attempts, newest first, among its organization's latest $5
# attempts of the last 7 days (one capped range of delivery_attempts_org: attempts
# have no index by endpoint). $1 endpoint; $2 its organization; $3 how many; the
# response body cut to $4 characters.
ENDPOINT_ATTEMPTS = """
SELECT delivery_id, attempt, response_status, duration_ms, error,
       left(response_body, $4) AS response_excerpt, event_type, created_at
FROM (SELECT * FROM delivery_attempts a
      WHERE a.org_id = $2 AND a.created_at >= now() - interval '7 days'
      ORDER BY a.created_at DESC
      LIMIT $5) latest
WHERE endpoint_id = $1
ORDER BY created_at DESC
LIMIT $3
"""

# Dead letters, most recently dead first, in pages. $1 organization (NULL: across
# organizations); $2 endpoint; $3 exact event type; $4, $5 dead in [since, until); $6 a
# substring of the last error (case-insensitive); $7, $8 the previous page's last
# (updated_at, id); $9 how many. The page is chosen first, through deliveries_dead (per
# organization in its order); only its rows look up their event and endpoint, so the
# events table is never joined whole.
DEAD_LETTERS = """
WITH page AS (
    SELECT d.id, d.org_id, d.endpoint_id, d.event_id, d.attempts, d.response_status,
           d.last_error, d.updated_at, d.resolved_at, d.resolved_by, d.resolution_note
    FROM deliveries d
    WHERE d.status = 'dead_letter' AND ($1::uuid IS NULL OR d.org_id = $1)
      AND ($2::uuid IS NULL OR d.endpoint_id = $2)
      AND ($3::text IS NULL OR (SELECT e.type FROM events e WHERE e.id = d.event_id) = $3)
      AND ($4::timestamptz IS NULL OR d.updated_at >= $4)
      AND ($5::timestamptz IS NULL OR d.updated_at < $5)
      AND ($6::text IS NULL OR strpos(lower(d.last_error), lower($6)) > 0)
      AND ($7::timestamptz IS NULL OR (d.updated_at, d.id) < ($7, $8))
    ORDER BY d.updated_at DESC, d.id DESC
    LIMIT $9
)
SELECT p.id, p.org_id, o.name AS org_name, p.endpoint_id, ep.url,
       (SELECT e.type FROM events e WHERE e.id = p.event_id) AS event_type,
       p.attempts, p.response_status, p.last_error, p.updated_at, p.resolved_at,
       p.resolved_by, p.resolution_note
FROM page p
JOIN endpoints ep ON ep.id = p.endpoint_id
JOIN organizations o ON o.id = p.org_id
ORDER BY p.updated_at DESC, p.id DESC
"""

# Events accepted per minute since $1 (a UUIDv7 floor: ids are time-ordered, so this is
# one range of the primary key), at most $2 read whoever's they are (events have no
# index by organization and time); of them, those of organization $3 (NULL: all).
# `scanned` tells whether the cap was reached.
INGEST_PER_MINUTE = """
WITH recent AS (SELECT created_at, org_id FROM events WHERE id >= $1 LIMIT $2)
SELECT date_trunc('minute', created_at) AS minute,
       count(*) FILTER (WHERE $3::uuid IS NULL OR org_id = $3) AS events,
       count(*) AS scanned
FROM recent GROUP BY 1 ORDER BY 1
"""

# Attempts per minute since $1 by outcome, with p50/p99 of their duration and of the
# delivered ones' ingest-to-delivered latency; at most $2 read. Across organizations
# (delivery_attempts_recent).
_ATTEMPTS_SELECT = """
SELECT date_trunc('minute', created_at) AS minute,
       count(latency_ms) AS delivered,
       count(*) FILTER (WHERE latency_ms IS NULL AND response_status IS NOT NULL) AS http_error,
       count(*) FILTER (WHERE latency_ms IS NULL AND response_status IS NULL) AS failed,
       percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY duration_ms) AS duration,
       percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY latency_ms) AS latency
"""
ATTEMPTS_PER_MINUTE = _ATTEMPTS_SELECT + """
FROM (SELECT created_at, latency_ms, response_status, duration_ms FROM delivery_attempts
      WHERE created_at >= $1 LIMIT $2) recent
GROUP BY 1 ORDER BY 1
"""
# The same for one organization, $3 (delivery_attempts_org).
ORG_ATTEMPTS_PER_MINUTE = _ATTEMPTS_SELECT + """
FROM (SELECT created_at, latency_ms, response_status, duration_ms FROM delivery_attempts
      WHERE org_id = $3 AND created_at >= $1 LIMIT $2) recent
GROUP BY 1 ORDER BY 1
"""

# The oldest due delivery's age in seconds, across organizations (deliveries_due).
OLDEST_DUE = """
SELECT coalesce(extract(epoch FROM now() - min(next_attempt_at)), 0)::float8 AS age_s
FROM deliveries WHERE status IN ('pending', 'failed') AND next_attempt_at <= now()
"""

# The organization of an endpoint (not deleted) in scope. $1 endpoint; $2 organization
# (NULL: any).
ENDPOINT_ORG = """
SELECT org_id FROM endpoints
WHERE id = $1 AND deleted_at IS NULL AND ($2::uuid IS NULL OR org_id = $2)
"""

# The organization of a delivery in scope. $1 delivery; $2 organization (NULL: any).
DELIVERY_ORG = "SELECT org_id FROM deliveries WHERE id = $1 AND ($2::uuid IS NULL OR org_id = $2)"

# The queue's samples since $2 (sql/011, written once a minute by workers/sampler.py),
# oldest first, 120 at most (an hour has 60). $1 organization (NULL: the fleet). Walks
# the fleet's rows of queue_samples_scope (a minute with a fleet row was sampled) and
# looks up the organization's own row beside each: an organization without one had
# nothing waiting that minute (or was not among the busiest sampled). Nothing of the
# fleet's counts is returned for an organization.
QUEUE_SAMPLES = """
SELECT f.minute, coalesce(s.depth, 0) AS depth, coalesce(s.due, 0) AS due,
       coalesce(s.oldest_due_age_s, 0)::float8 AS oldest_due_age_s
FROM queue_samples f
LEFT JOIN queue_samples s
       ON s.minute = f.minute
      AND s.scope = coalesce($1::uuid, '00000000-0000-0000-0000-000000000000')
      AND s.minute >= $2  -- redundant, so both sides read one range of the scope index
WHERE f.scope = '00000000-0000-0000-0000-000000000000' AND f.minute >= $2
ORDER BY f.minute
LIMIT 120
"""
