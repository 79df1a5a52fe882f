"""The SQL behind the delivery, dead-letter, event and metrics operations, as static
constants.

Each query starts with its purpose and what each $n is. Every statement is scoped by
organization; one that reads "$2 organization id or NULL" (a statement on one delivery
by id) takes NULL for an operator acting across organizations (the console,
the command line), never from the API. An attempt counts as a success when the
receiver answered 2xx.
"""

# What the API shows of a delivery; `d` is deliveries and `e` its event.
DELIVERY_COLUMNS = """
d.id, d.event_id, d.endpoint_id, e.type AS event_type, d.status, d.attempts,
d.response_status, d.last_error, d.next_attempt_at, d.delivered_at, d.created_at,
d.updated_at, d.resolved_at, d.resolved_by, d.resolution_note
"""

# Deliveries newest first, keyset-paginated on id over deliveries_org.
# $1 organization id, $2 status or NULL, $3 endpoint id or NULL, $4 event type or NULL,
# $5 cursor (last id seen) or NULL, $6 page size + 1 (the extra row says whether there
# is a next page).
LIST_DELIVERIES = "SELECT " + DELIVERY_COLUMNS + """
FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE d.org_id = $1
  AND ($2::text IS NULL OR d.status = $2)
  AND ($3::uuid IS NULL OR d.endpoint_id = $3)
  AND ($4::text IS NULL OR e.type = $4)
  AND ($5::bigint IS NULL OR d.id < $5)
ORDER BY d.id DESC
LIMIT $6
"""

# One delivery. $1 delivery id, $2 organization id or NULL.
DELIVERY_BY_ID = "SELECT " + DELIVERY_COLUMNS + """
FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE d.id = $1 AND ($2::uuid IS NULL OR d.org_id = $2)
"""

# A delivery's attempts in order. $1 delivery id (already checked to be the caller's).
ATTEMPTS = """
SELECT attempt, response_status, duration_ms, error, response_body, created_at
FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt, id
"""

# Makes a failed or dead delivery due now; a dead one gets a fresh set of attempts and
# loses its review (resolved_*). $1 delivery id, $2 organization id or NULL. Returns no
# row for an unknown delivery, else its status before, whether its endpoint is enabled,
# and whether it was re-queued. The row lock makes the status read and the change one
# step against the result writer.
RETRY_DELIVERY = """
WITH target AS (
    SELECT d.id, d.status, ep.enabled
    FROM deliveries d JOIN endpoints ep ON ep.id = d.endpoint_id
    WHERE d.id = $1 AND ($2::uuid IS NULL OR d.org_id = $2)
    FOR UPDATE OF d
), retried AS (
    UPDATE deliveries d
    SET status = 'pending', next_attempt_at = now(), updated_at = now(),
        attempts = CASE WHEN d.status = 'dead_letter' THEN 0 ELSE d.attempts END,
        resolved_at = NULL, resolved_by = NULL, resolution_note = NULL
    FROM target
    WHERE d.id = target.id AND target.enabled AND target.status IN ('failed', 'dead_letter')
    RETURNING d.id
)
SELECT target.status, target.enabled, EXISTS (SELECT 1 FROM retried) AS retried
FROM target
"""

# One event's deliveries, one per endpoint. $1 event id, $2 organization id.
EVENT_DELIVERIES = """
SELECT d.endpoint_id, ep.url, d.status, d.attempts, d.response_status, d.last_error,
       d.next_attempt_at, d.delivered_at
FROM deliveries d JOIN endpoints ep ON ep.id = d.endpoint_id
WHERE d.event_id = $1 AND d.org_id = $2
ORDER BY d.id
"""

# The organization's queue, reading only bounded index ranges, never its whole history:
# - `open`: its undelivered deliveries, through its endpoints' deliveries_endpoint_open
#   ranges (the queue stays small: settled rows leave the index), and whether their
#   endpoint is paused (`paused`: those waiting for it to be resumed);
# - `recent`: its latest $2 deliveries by id (deliveries_org), for `completed` and for
#   the last hour's attempts (delivery_attempts_delivery);
# - `dead`: its dead letters through deliveries_dead.
# Each part stops at $2 rows, so a huge backlog costs at most that. $1 organization id,
# $2 the cap.
QUEUE_HEALTH = """
WITH open AS (
    -- LATERAL: one index range per endpoint, whatever the planner thinks of the table
    SELECT d.status, d.next_attempt_at, d.created_at, ep.paused_at IS NOT NULL AS paused
    FROM endpoints AS ep
    CROSS JOIN LATERAL (
        SELECT status, next_attempt_at, created_at FROM deliveries
        WHERE endpoint_id = ep.id AND status IN ('pending', 'in_flight', 'failed')
        LIMIT $2
    ) AS d
    WHERE ep.org_id = $1
    LIMIT $2
), queue AS (
    SELECT count(*) FILTER (WHERE status = 'pending' AND next_attempt_at <= now()) AS waiting,
           count(*) FILTER (WHERE status = 'in_flight') AS active,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status IN ('pending', 'failed')
                              AND next_attempt_at > now()) AS delayed,
           count(*) AS depth,
           count(*) FILTER (WHERE paused AND status IN ('pending', 'failed')) AS paused,
           min(created_at) FILTER (WHERE status IN ('pending', 'failed')) AS oldest
    FROM open
), recent AS (
    SELECT id, status FROM deliveries WHERE org_id = $1 ORDER BY id DESC LIMIT $2
), last_hour AS (
    SELECT count(*) AS attempts,
           count(*) FILTER (WHERE a.response_status IS NULL
                              OR a.response_status NOT BETWEEN 200 AND 299) AS failures
    FROM recent
    CROSS JOIN LATERAL (
        SELECT response_status FROM delivery_attempts
        WHERE delivery_id = recent.id AND created_at > now() - interval '1 hour'
    ) AS a
)
SELECT queue.*, last_hour.*, now() AS at,
       (SELECT count(*) FROM recent WHERE status = 'delivered') AS completed,
       (SELECT count(*) FROM (SELECT 1 FROM deliveries
                              WHERE org_id = $1 AND status = 'dead_letter' LIMIT $2) AS d)
           AS dead_letter,
       coalesce(extract(epoch FROM now() - queue.oldest), 0)::float8 AS oldest_age_s
FROM queue, last_hour
"""

# Totals over the deliveries created in the range, with the latency percentiles of
# their successful attempts. $1 organization id, $2 range (an interval back from now).
DELIVERY_STATS = """
WITH scoped AS (
    SELECT id, status, attempts FROM deliveries
    WHERE org_id = $1 AND created_at >= now() - $2::interval
)
SELECT count(*) AS total,
       count(*) FILTER (WHERE status = 'delivered') AS delivered,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'dead_letter') AS dead_letter,
       count(*) FILTER (WHERE status IN ('pending', 'in_flight')) AS pending,
       coalesce(avg(attempts), 0)::float8 AS avg_attempts,
       (SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY a.duration_ms)
        FROM delivery_attempts a JOIN scoped s ON s.id = a.delivery_id
        WHERE a.response_status BETWEEN 200 AND 299) AS latency
FROM scoped
"""

# The same deliveries per event type, largest first.
# $1 organization id, $2 range (an interval back from now), $3 most types returned.
DELIVERY_STATS_BY_TYPE = """
SELECT e.type AS event_type, count(*) AS total,
       count(*) FILTER (WHERE d.status = 'delivered') AS delivered,
       count(*) FILTER (WHERE d.status = 'dead_letter') AS dead_letter
FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE d.org_id = $1 AND d.created_at >= now() - $2::interval
GROUP BY e.type
ORDER BY total DESC, e.type
LIMIT $3
"""

# The latest failed attempts, newest first, walking delivery_attempts_recent.
# $1 organization id, $2 how many.
RECENT_FAILURES = """
SELECT a.delivery_id, d.event_id, e.type AS event_type, d.endpoint_id, ep.url,
       a.attempt, a.response_status, a.error, a.created_at
FROM delivery_attempts a
JOIN deliveries d ON d.id = a.delivery_id
JOIN events e ON e.id = d.event_id
JOIN endpoints ep ON ep.id = d.endpoint_id
WHERE d.org_id = $1
  AND (a.response_status IS NULL OR a.response_status NOT BETWEEN 200 AND 299)
ORDER BY a.created_at DESC, a.id DESC
LIMIT $2
"""

# Which of the organization's dead letters a dead-letter filter selects, from where a
# page or a batch starts; `d` is deliveries and `e` its event. The time bounds and the
# position are ranges on updated_at (the time it became dead) written with coalesce,
# not `$n IS NULL OR`, so they bound the deliveries_dead index scan in a generic plan
# too; the other tests apply to the rows of that range as they are read.
# $1 organization id, $2 resolved (true: reviewed only, false: not reviewed only, NULL:
# both), $3 endpoint id or NULL, $4 event type or NULL, $5 since (dead at or after) or
# NULL, $6 until (dead before) or NULL, $7 the position's updated_at (NULL: from the
# newest), $8 the position's id (the row at the position itself is excluded).
DEAD_LETTER_MATCH = """
d.org_id = $1 AND d.status = 'dead_letter'
  AND d.updated_at >= coalesce($5::timestamptz, '-infinity')
  AND d.updated_at < coalesce($6::timestamptz, 'infinity')
  AND d.updated_at <= coalesce($7::timestamptz, 'infinity')
  AND ($7::timestamptz IS NULL OR (d.updated_at, d.id) < ($7, $8::bigint))
  AND ($2::boolean IS NULL OR (d.resolved_at IS NOT NULL) = $2)
  AND ($3::uuid IS NULL OR d.endpoint_id = $3)
  AND ($4::text IS NULL OR e.type = $4)
"""

# A page of dead letters, most recently dead first, keyset-paginated over
# deliveries_dead. $1 to $8 as in DEAD_LETTER_MATCH ($7, $8: the cursor), $9 page
# size + 1.
DEAD_LETTERS = "SELECT " + DELIVERY_COLUMNS + """
FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE """ + DEAD_LETTER_MATCH + """
ORDER BY d.updated_at DESC, d.id DESC
LIMIT $9
"""

# Marks a dead letter reviewed without sending it again. Its updated_at (when it
# became dead) is kept, so it keeps its place in the dead-letter queue. $1 delivery id,
# $2 organization id or NULL, $3 who reviews it (a key id, or an operator's name), $4 the
# note or NULL. Returns no row for an unknown delivery; else its status and review before
# (`was_*`) and, when it was resolved now, the delivery (else its columns are NULL). The
# row lock orders this against a concurrent retry or resolve of the same delivery.
RESOLVE_DEAD_LETTER = """
WITH target AS (
    SELECT d.id, d.status, d.resolved_at, d.resolved_by
    FROM deliveries d
    WHERE d.id = $1 AND ($2::uuid IS NULL OR d.org_id = $2)
    FOR UPDATE OF d
), resolved AS (
    UPDATE deliveries d
    SET resolved_at = now(), resolved_by = $3, resolution_note = $4
    FROM target
    WHERE d.id = target.id AND target.status = 'dead_letter' AND target.resolved_at IS NULL
    RETURNING d.*
)
SELECT target.status AS was_status, target.resolved_at AS was_resolved_at,
       target.resolved_by AS was_resolved_by, shown.*
FROM target
LEFT JOIN (SELECT """ + DELIVERY_COLUMNS + """
           FROM resolved d JOIN events e ON e.id = d.event_id) AS shown ON true
"""

# Re-queues one batch of the dead letters a filter selects, the most recently dead
# first: each becomes pending, due now, with a fresh set of attempts and no review.
# Those whose endpoint is disabled or deleted are passed over and counted as skipped.
# $1 to $8 as in DEAD_LETTER_MATCH ($7, $8: where the previous batch ended), $9 batch
# size. Returns how many rows the batch read (fewer than $9: the last batch), re-queued
# and skipped, and the position of its oldest row (`at`, `id`; NULL when it read none).
# A re-queued row leaves deliveries_dead and the walk only goes down from the position,
# so a row is never read twice in one run, even one that dies again meanwhile.
RETRY_DEAD_LETTERS = """
WITH batch AS (
    SELECT d.id, d.updated_at, ep.enabled AND ep.deleted_at IS NULL AS retriable
    FROM deliveries d
    JOIN events e ON e.id = d.event_id
    JOIN endpoints ep ON ep.id = d.endpoint_id
    WHERE """ + DEAD_LETTER_MATCH + """
    ORDER BY d.updated_at DESC, d.id DESC
    LIMIT $9
    -- A row another statement is changing right now (a retry, a recover, a resolve) is
    -- left to it and passed over rather than waited for: no waits, no deadlocks.
    FOR UPDATE OF d SKIP LOCKED
), requeued AS (
    -- The status test is repeated: a row re-queued by a statement that committed
    -- after this one's snapshot is re-read once locked, and not re-queued twice.
    UPDATE deliveries d
    SET status = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now(),
        resolved_at = NULL, resolved_by = NULL, resolution_note = NULL
    FROM batch
    WHERE d.id = batch.id AND d.org_id = $1 AND batch.retriable
      AND d.status = 'dead_letter'
    RETURNING d.id
), oldest AS (
    SELECT updated_at, id FROM batch ORDER BY updated_at, id LIMIT 1
)
SELECT (SELECT count(*) FROM batch) AS scanned,
       (SELECT count(*) FROM requeued) AS requeued,
       (SELECT count(*) FROM batch WHERE NOT retriable) AS skipped,
       oldest.updated_at AS at, oldest.id
FROM (SELECT) AS one LEFT JOIN oldest ON true
"""

# Replays an event: its deliveries (to one endpoint, or to every endpoint it was routed
# to) start a new cycle of attempts. The (event, endpoint) row itself is re-queued,
# never a second one (the pair is unique): pending, due now, attempts from 0, its
# outcome and review cleared. Only a settled delivery (delivered or dead_letter) of an
# enabled endpoint is replayed; the others are reported as they are. $1 event id,
# $2 organization id, $3 endpoint id or NULL (all). No row: no such event of the
# organization; one row with a NULL id: an event without a matching delivery; else a
# row per matching delivery, with its status before and whether it was replayed. The
# row locks order this against the result writer and a concurrent retry.
REPLAY_EVENT = """
WITH event AS (
    SELECT id FROM events WHERE id = $1 AND org_id = $2
), target AS (
    SELECT d.id, d.endpoint_id, d.status, ep.enabled AND ep.deleted_at IS NULL AS open
    FROM deliveries d JOIN endpoints ep ON ep.id = d.endpoint_id
    WHERE d.event_id = $1 AND d.org_id = $2 AND ($3::uuid IS NULL OR d.endpoint_id = $3)
    FOR UPDATE OF d
), replayed AS (
    UPDATE deliveries d
    SET status = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now(),
        response_status = NULL, last_error = NULL, delivered_at = NULL, rescues = 0,
        resolved_at = NULL, resolved_by = NULL, resolution_note = NULL
    FROM target
    WHERE d.id = target.id AND target.open AND target.status IN ('delivered', 'dead_letter')
    RETURNING d.id
)
SELECT target.id, target.endpoint_id, target.status, target.open,
       replayed.id IS NOT NULL AS replayed
FROM event
LEFT JOIN target ON true
LEFT JOIN replayed ON replayed.id = target.id
ORDER BY target.id
"""

# The newest delivery id (0 without one), where following deliveries starts: the end
# of the primary key, no parameters.
LATEST_DELIVERY_ID = "SELECT coalesce(max(id), 0) FROM deliveries"

# Deliveries made after a position, oldest first, for following them as they are made
# (the command line's tail): a range of the primary key (or of deliveries_org for one
# organization) from $1, so each poll reads only the rows new since the last.
# $1 the last id seen, $2 organization id or NULL (every organization, an operator),
# $3 endpoint id or NULL, $4 how many.
DELIVERIES_AFTER = "SELECT " + DELIVERY_COLUMNS + """
FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE d.id > $1 AND ($2::uuid IS NULL OR d.org_id = $2)
  AND ($3::uuid IS NULL OR d.endpoint_id = $3)
ORDER BY d.id
LIMIT $4
"""

# Some deliveries by id (those a tail still follows until they settle), by the primary
# key. $1 delivery ids, $2 organization id or NULL.
DELIVERIES_BY_IDS = "SELECT " + DELIVERY_COLUMNS + """
FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE d.id = ANY ($1::bigint[]) AND ($2::uuid IS NULL OR d.org_id = $2)
ORDER BY d.id
"""
