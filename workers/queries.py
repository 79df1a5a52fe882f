"""The SQL the workers run, as static constants.

Each query starts with its purpose and what each $n is.
"""

from triggerd_sql.routing import type_matches

# Bounds the next statements of the transaction (SET LOCAL takes no parameter;
# set_config(..., true) is its parameterised form). $1 milliseconds, as text.
SET_STATEMENT_TIMEOUT = "SELECT set_config('statement_timeout', $1, true)"

# What routing does with the events it claimed (`claimed`: id, org_id, type, seq,
# payload, headers): marks them routed and creates one delivery per matching enabled
# endpoint, carrying the event's seq (an ordered endpoint's order) and the endpoint's
# priority. An endpoint matches by event type, then by its filter, compiled when it was
# written (ingestor/filters.py) to a jsonpath predicate over the payload with the event's
# type and source headers as the variables $"type" and $"headers" (built only for an
# endpoint that has a filter); PostgreSQL evaluates it here, and a payload it cannot
# match (silent: true) is simply not matched. With `$FILTERED` false the filters are
# not evaluated: every endpoint the type matches gets a delivery (see ROUTE_UNFILTERED).
# A crash before commit leaves the events unrouted, so routing may commit
# asynchronously (synchronous_commit off) without risking a loss. Returns the events
# routed and the deliveries created.
_FANOUT = """
routed AS (
    -- = ANY(ARRAY(...)): primary-key look-ups, never a join against the whole table
    UPDATE events SET routed_at = now(), routing_note = $NOTE
    WHERE events.id = ANY (ARRAY(SELECT id FROM claimed))
    RETURNING events.id
),
fanout AS (
    INSERT INTO deliveries (event_id, endpoint_id, org_id, event_seq, priority)
    SELECT claimed.id, endpoint.id, claimed.org_id, claimed.seq, endpoint.priority
    FROM claimed
    JOIN endpoints AS endpoint ON endpoint.org_id = claimed.org_id AND endpoint.enabled
    WHERE """ + type_matches("endpoint.event_types", "claimed.type") + """
      AND CASE WHEN endpoint.filter_path IS NULL OR NOT $FILTERED THEN true
               ELSE coalesce(jsonb_path_match(
                        claimed.payload, endpoint.filter_path,
                        jsonb_build_object('type', claimed.type,
                                           'headers', coalesce(claimed.headers, '{}')),
                        true), false) END
    ORDER BY claimed.seq
    ON CONFLICT (event_id, endpoint_id) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM routed) AS events, (SELECT count(*) FROM fanout) AS deliveries
"""
_CLAIMED = """
    SELECT id, org_id, type, seq, payload, headers
    FROM events
"""

# Routes a batch of unrouted events in one statement: claims them in acceptance order
# over the events_unrouted partial index (SKIP LOCKED, so pollers on several nodes never
# take the same event), leaving out the organizations routed one event at a time (whose
# filters took too long: workers/router.py), then as _FANOUT with filters.
# $1 batch size, $2 organizations left out.
ROUTE_EVENTS = ("WITH claimed AS (" + _CLAIMED + """
    WHERE routed_at IS NULL AND org_id <> ALL ($2::uuid[])
    ORDER BY seq
    LIMIT $1
    FOR UPDATE SKIP LOCKED
),""" + _FANOUT).replace("$NOTE", "NULL").replace("$FILTERED", "true")

# Locks the next unrouted event, to be routed alone (in the transaction that routes it).
# $1 organizations to take it from (NULL: any), $2 organizations to leave out.
# Returns its id and organization, or no row.
NEXT_EVENT = """
SELECT id, org_id FROM events
WHERE routed_at IS NULL AND ($1::uuid[] IS NULL OR org_id = ANY ($1::uuid[]))
  AND org_id <> ALL ($2::uuid[])
ORDER BY seq
LIMIT 1
FOR UPDATE SKIP LOCKED
"""

# Routes one event, locked by NEXT_EVENT, as _FANOUT with filters. $1 event id.
ROUTE_ONE = ("WITH claimed AS (" + _CLAIMED + " WHERE id = $1 AND routed_at IS NULL),"
             + _FANOUT).replace("$NOTE", "NULL").replace("$FILTERED", "true")

# Routes one event whose filters could not be evaluated within the routing budget to
# every endpoint its type matches (its filters are not evaluated: a delivery too many
# rather than one lost), and says so on the event. $1 event id, $2 the note.
ROUTE_UNFILTERED = ("WITH claimed AS (" + _CLAIMED + " WHERE id = $1 AND routed_at IS NULL),"
                    + _FANOUT).replace("$NOTE", "$2::text").replace("$FILTERED", "false")

# The endpoints a claim treats apart: disabled, paused or breaker open (nothing goes),
# ordered or breaker half-open (only the head goes: `open_for_one`). Usually none or a
# few; endpoints_held indexes them (sql/008; deleted endpoints have no open deliveries
# left). A paused endpoint's deliveries keep being routed to it and wait, unclaimed.
# No parameters.
HELD_ENDPOINTS = """
SELECT id, enabled AND paused_at IS NULL AND coalesce(breaker_open_until <= now(), true)
           AS open_for_one
FROM endpoints
WHERE deleted_at IS NULL
  AND (NOT enabled OR paused_at IS NOT NULL OR ordered OR breaker_cooldown_s IS NOT NULL)
"""

# Claims due deliveries for this node's free workers and leases them (locked_until), so
# no other node takes them until the lease ends. Each claim draws a new lease_token:
# only an outcome carrying it may settle the delivery. The attempt is counted here.
# Priority orders an organization's own deliveries, never one organization before
# another: after the longest-waiting share (below), `due` takes each organization's
# best candidate in turn (its rank by priority, then due time), so an organization that
# sets every endpoint to 10 is served beside the others, not ahead of them.
# `prioritized` walks deliveries_due_priority one level at a time, highest first
# (PRIORITIES, 10 .. 1), each level in due order; its outer LIMIT stops the walk once
# enough rows are found, so lower levels are read only when the higher ones run short.
# `oldest` is an ordered walk of deliveries_due (due time only), whatever the priority:
# $10 of the claim go to the longest-waiting due deliveries (`due`; the Poller makes
# that one in five over its claims), so a low priority is delayed under a backlog,
# never starved.
# `prioritized` stops after $1 * 4 rows, `oldest` after $10 * 4 (it only serves the
# share). The held endpoints are excluded by a parameter
# array, which the planner estimates well (computing them in the same statement makes it
# sort the whole queue instead).
# `heads` takes, for each endpoint open for one attempt, its oldest undelivered
# delivery in acceptance order (event_seq), if it is due, not already in flight, and no
# event accepted before it is still unrouted (that event's delivery may have to go
# first; the check reads the organization's entries of events_unrouted before it: only
# its own events can be delivered to its endpoints).
# The lease follows the endpoint's own timeout (timeout_s, at most the node's maximum):
# the timeout plus a margin of the timeout itself, between 1 and 15 s.
# $1 how many (free workers), $2 the node's request timeout (an endpoint without its
# own), $3 this node's name, $4 held endpoint ids (and those at their cap on this node),
# $5 those of them open for one attempt, $6 endpoints this node already holds attempts
# for, $7 the room each has left, $8 the per-endpoint cap (the room of any other
# endpoint), $9 the node's maximum request timeout, $10 how many of the claim go to the
# longest-waiting.
CLAIM_DELIVERIES = """
WITH prioritized AS (
    SELECT due.*
    FROM generate_series(10, 1, -1) AS level (priority)
    CROSS JOIN LATERAL (
        SELECT delivery.id, delivery.priority, delivery.next_attempt_at, delivery.event_id,
               delivery.endpoint_id, delivery.org_id
        FROM deliveries AS delivery
        WHERE delivery.priority = level.priority
          AND delivery.status IN ('pending', 'failed') AND delivery.next_attempt_at <= now()
          AND delivery.endpoint_id <> ALL ($4::uuid[])
        ORDER BY delivery.next_attempt_at, delivery.event_id
        LIMIT $1 * 4
        FOR UPDATE OF delivery SKIP LOCKED
    ) AS due
    LIMIT $1 * 4
),
oldest AS (
    SELECT delivery.id, delivery.priority, delivery.next_attempt_at, delivery.event_id,
           delivery.endpoint_id, delivery.org_id
    FROM deliveries AS delivery
    WHERE delivery.status IN ('pending', 'failed') AND delivery.next_attempt_at <= now()
      AND delivery.endpoint_id <> ALL ($4::uuid[])
    ORDER BY delivery.next_attempt_at, delivery.event_id
    LIMIT $10 * 4
    FOR UPDATE OF delivery SKIP LOCKED
),
candidates AS (
    SELECT * FROM prioritized UNION SELECT * FROM oldest
),
regular AS (
    -- At most each endpoint's room on this node (its cap less the attempts this node
    -- already holds for it), so nothing is claimed only to be handed back; rows locked
    -- above and not taken are released when the statement ends.
    SELECT ranked.id, ranked.priority, ranked.next_attempt_at, ranked.event_id, ranked.org_id
    FROM (SELECT candidate.*, row_number() OVER (
              PARTITION BY candidate.endpoint_id
              ORDER BY candidate.priority DESC, candidate.next_attempt_at,
                       candidate.event_id) AS nth
          FROM candidates AS candidate) AS ranked
    LEFT JOIN unnest($6::uuid[], $7::int[]) AS busy (endpoint_id, room)
        ON busy.endpoint_id = ranked.endpoint_id
    WHERE ranked.nth <= coalesce(busy.room, $8)
),
heads AS (
    SELECT delivery.id, delivery.priority, delivery.next_attempt_at, delivery.event_id,
           delivery.org_id
    FROM unnest($5::uuid[]) AS held (id)
    CROSS JOIN LATERAL (
        SELECT id, status, next_attempt_at, event_seq FROM deliveries
        WHERE endpoint_id = held.id AND status IN ('pending', 'in_flight', 'failed')
        ORDER BY event_seq NULLS FIRST, event_id
        LIMIT 1
    ) AS head
    JOIN deliveries AS delivery ON delivery.id = head.id
    WHERE head.status <> 'in_flight' AND head.next_attempt_at <= now()
      -- re-checked on the row as locked: another node may have claimed it since our
      -- snapshot (head's own columns are not re-read once the lock is taken)
      AND delivery.status IN ('pending', 'failed')
      AND NOT EXISTS (SELECT 1 FROM events AS earlier
                      WHERE earlier.routed_at IS NULL AND earlier.seq < head.event_seq
                        AND earlier.org_id = delivery.org_id)
    FOR UPDATE OF delivery SKIP LOCKED
),
due AS (
    SELECT id FROM (
        SELECT eligible.*,
               row_number() OVER (ORDER BY next_attempt_at, event_id) AS waited,
               row_number() OVER (PARTITION BY org_id
                                  ORDER BY priority DESC, next_attempt_at, event_id) AS turn
        FROM (SELECT * FROM regular UNION ALL SELECT * FROM heads) AS eligible
    ) AS candidate
    ORDER BY candidate.waited <= $10 DESC, turn, priority DESC, next_attempt_at, event_id
    LIMIT $1
)
UPDATE deliveries AS delivery
SET status = 'in_flight', attempts = delivery.attempts + 1,
    locked_until = now() + make_interval(secs => timeout.s + least(15, greatest(1, timeout.s))),
    locked_by = $3, lease_token = gen_random_uuid(), updated_at = now()
FROM due, events AS event, endpoints AS endpoint,
     LATERAL (SELECT least(coalesce(endpoint.timeout_s, $2::float8), $9::float8) AS s)
         AS timeout
WHERE delivery.id = due.id AND event.id = delivery.event_id
  AND endpoint.id = delivery.endpoint_id AND endpoint.deleted_at IS NULL
RETURNING delivery.id, delivery.event_id::text AS event_id,
          delivery.endpoint_id::text AS endpoint_id, delivery.org_id::text AS org_id,
          delivery.attempts, delivery.lease_token, event.type,
          event.payload::text AS payload, event.created_at, endpoint.url,
          endpoint.secret, endpoint.rate_limit_per_second, timeout.s AS timeout_s,
          endpoint.headers::text AS headers, endpoint.success_statuses,
          CASE WHEN endpoint.previous_secret_until > now() THEN endpoint.previous_secret END
              AS previous_secret
"""

# Records outcomes of a batch of attempts, fenced by lease: a delivery changes only
# while it is in flight under the very claim the outcome was made for (a lease that
# expired and was rescued, a delivery cancelled since, or a write applied twice match
# no row). An interrupted attempt counts a rescue; at $2 rescues it is a dead letter.
# $1 delivery ids, $2 the rescue bound, $3 lease tokens, $4 new statuses, $5 next attempt
# times, $6 response statuses, $7 errors, $8 attempts to refund (0/1: an attempt deferred
# or interrupted spends nothing), $9 rescues to count (0/1: an interrupted attempt).
# Returns each delivery changed, with its new status and its event.
FINISH_DELIVERIES = """
UPDATE deliveries AS delivery
SET status = CASE WHEN outcome.rescue = 1 AND delivery.rescues + 1 >= $2 THEN 'dead_letter'
                  ELSE outcome.status END,
    next_attempt_at = coalesce(outcome.next_at, delivery.next_attempt_at),
    response_status = coalesce(outcome.response_status, delivery.response_status),
    last_error = CASE WHEN outcome.rescue = 1 AND delivery.rescues + 1 >= $2
                      THEN 'rescued ' || (delivery.rescues + 1) || ' times: its attempts '
                           || 'never completed (' || coalesce(outcome.error, '') || ')'
                      ELSE outcome.error END,
    delivered_at = CASE WHEN outcome.status = 'delivered' THEN now() END,
    attempts = delivery.attempts - outcome.refund,
    rescues = delivery.rescues + outcome.rescue,
    locked_until = NULL, locked_by = NULL, lease_token = NULL, updated_at = now()
FROM unnest($1::bigint[], $3::uuid[], $4::text[], $5::timestamptz[], $6::int[], $7::text[],
            $8::int[], $9::int[])
     AS outcome (id, token, status, next_at, response_status, error, refund, rescue)
WHERE delivery.id = outcome.id AND delivery.status = 'in_flight'
  AND delivery.lease_token = outcome.token
RETURNING delivery.id, delivery.status, delivery.event_id
"""

# Stores attempts, with what the monitoring API groups by (delivery_attempts_org).
# A success's latency runs from the event's acceptance to now (the outcome's recording),
# both read on PostgreSQL's clock, so no skew between the node and the database enters.
# An attempt without an organization (a job built without it) takes its delivery's: a
# primary-key look-up, made only then (coalesce evaluates lazily).
# $1 delivery ids, $2 attempt numbers, $3 response statuses, $4 durations (ms),
# $5 errors, $6 response bodies (cut to 4 KiB), $7 organization ids (or NULLs),
# $8 endpoint ids, $9 event types, $10 the events' acceptance times for successes (NULL
# for a failed attempt: it has no latency).
INSERT_ATTEMPTS = """
INSERT INTO delivery_attempts (delivery_id, attempt, response_status, duration_ms, error,
                               response_body, org_id, endpoint_id, event_type, latency_ms)
SELECT a.delivery_id, a.attempt, a.response_status, a.duration_ms, a.error, a.response_body,
       coalesce(a.org_id, (SELECT org_id FROM deliveries WHERE id = a.delivery_id)),
       a.endpoint_id, a.event_type,
       CASE WHEN a.accepted_at IS NOT NULL
            THEN greatest(0, extract(epoch FROM now() - a.accepted_at) * 1000)::float8 END
FROM unnest($1::bigint[], $2::int[], $3::int[], $4::float8[], $5::text[], $6::text[],
            $7::uuid[], $8::uuid[], $9::text[], $10::timestamptz[])
     AS a (delivery_id, attempt, response_status, duration_ms, error, response_body, org_id,
           endpoint_id, event_type, accepted_at)
"""

# Folds a batch's outcomes into each endpoint's health. $1 endpoint ids, $2 whether the
# batch's last outcome was a success, $3 failures after the last success (or all).
# Returns the state the breaker decision needs.
ENDPOINT_HEALTH = """
UPDATE endpoints AS endpoint
SET last_success_at = CASE WHEN u.success THEN now() ELSE endpoint.last_success_at END,
    consecutive_failures = CASE WHEN u.success THEN u.failures
                                ELSE endpoint.consecutive_failures + u.failures END
FROM unnest($1::uuid[], $2::bool[], $3::int[]) AS u (id, success, failures)
WHERE endpoint.id = u.id
RETURNING endpoint.id::text AS id, endpoint.url, endpoint.consecutive_failures,
          endpoint.breaker_cooldown_s, endpoint.breaker_open_until <= now() AS breaker_due,
          u.success
"""

# Opens (cooldown > 0) or closes (cooldown NULL) breakers. $1 endpoint ids, $2 cooldown
# seconds or NULL.
SET_BREAKERS = """
UPDATE endpoints AS endpoint
SET breaker_cooldown_s = u.cooldown,
    breaker_open_until = now() + make_interval(secs => u.cooldown),
    consecutive_failures = CASE WHEN u.cooldown IS NULL THEN 0
                                ELSE endpoint.consecutive_failures END,
    updated_at = now()
FROM unnest($1::uuid[], $2::int[]) AS u (id, cooldown)
WHERE endpoint.id = u.id
"""

# Holds the waiting deliveries of endpoints whose breaker opened until it may close:
# no attempt is spent on them meanwhile. $1 endpoint ids.
HOLD_DELIVERIES = """
UPDATE deliveries AS delivery
SET next_attempt_at = greatest(delivery.next_attempt_at, endpoint.breaker_open_until)
FROM endpoints AS endpoint
WHERE endpoint.id = ANY($1::uuid[]) AND delivery.endpoint_id = endpoint.id
  AND delivery.status IN ('pending', 'failed')
"""

# Disables endpoints. $1 endpoint ids, $2 reasons. Returns the ids newly disabled.
DISABLE_ENDPOINTS = """
UPDATE endpoints AS endpoint
SET enabled = false, disabled_reason = u.reason, disabled_at = now(), updated_at = now()
FROM unnest($1::uuid[], $2::text[]) AS u (id, reason)
WHERE endpoint.id = u.id AND endpoint.enabled
RETURNING endpoint.id::text AS id, endpoint.url, endpoint.disabled_reason
"""

# Settles events whose deliveries are all final (the function of sql/004: it locks the
# events first, so concurrent writers settle exactly). $1 event ids. Returns how many
# events changed.
SETTLE_EVENTS = "SELECT triggerd_settle_events($1::uuid[])"

# Returns expired leases (their node died mid-attempt, or could not record the outcome)
# to the queue, refunding the attempt: the receiver was not at fault. Each rescue is
# counted; at $2 rescues the delivery is a dead letter instead (an attempt that kills or
# hangs its node must not come back forever). Clearing lease_token fences off a late
# outcome of the expired lease. $1 batch size, $2 the rescue bound.
# Returns each delivery moved, with its new status and its event.
RESCUE_LEASES = """
WITH expired AS (
    SELECT id FROM deliveries
    WHERE status = 'in_flight' AND locked_until < now()
    ORDER BY locked_until
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE deliveries AS delivery
SET status = CASE WHEN delivery.rescues + 1 >= $2 THEN 'dead_letter'
                  WHEN delivery.attempts > 1 THEN 'failed' ELSE 'pending' END,
    attempts = delivery.attempts - 1, rescues = delivery.rescues + 1, next_attempt_at = now(),
    locked_until = NULL, locked_by = NULL, lease_token = NULL, updated_at = now(),
    last_error = CASE WHEN delivery.rescues + 1 >= $2
                      THEN 'rescued ' || (delivery.rescues + 1) || ' times: its attempts never '
                           || 'completed (the node delivering it stopped or hung each time)'
                      ELSE 'lease expired: the node delivering it stopped' END
FROM expired
WHERE delivery.id = expired.id
RETURNING delivery.id, delivery.status, delivery.event_id
"""

# Ends the undelivered deliveries of disabled endpoints (dead letters, with the reason)
# and of deleted ones (cancelled: a routing statement that ran as the endpoint was
# deleted may have added one), in bounded batches. A paused endpoint is enabled: its
# deliveries wait for it, never ended here. $1 batch size.
# Returns the event of each delivery moved, and whether it was cancelled.
END_HELD_DELIVERIES = """
WITH doomed AS (
    SELECT delivery.id
    FROM deliveries AS delivery
    JOIN endpoints AS endpoint ON endpoint.id = delivery.endpoint_id
    WHERE NOT endpoint.enabled AND delivery.status IN ('pending', 'failed')
    LIMIT $1
    FOR UPDATE OF delivery SKIP LOCKED
)
UPDATE deliveries AS delivery
SET status = CASE WHEN endpoint.deleted_at IS NULL THEN 'dead_letter' ELSE 'cancelled' END,
    next_attempt_at = now(), updated_at = now(),
    last_error = CASE WHEN endpoint.deleted_at IS NULL
                      THEN 'endpoint disabled: ' || coalesce(endpoint.disabled_reason, 'disabled')
                      ELSE 'endpoint deleted' END
FROM doomed, endpoints AS endpoint
WHERE delivery.id = doomed.id AND endpoint.id = delivery.endpoint_id
RETURNING delivery.event_id, delivery.status = 'cancelled' AS cancelled
"""

# Endpoints without a success for too long, that have been failing. The clock runs
# from the last success (or the creation) or, when later, the last resume, and stands
# still while the endpoint is paused: a pause never counts as an outage (greatest()
# passes over a NULL resumed_at). $1 seconds.
STALE_ENDPOINTS = """
SELECT id::text AS id FROM endpoints
WHERE enabled AND paused_at IS NULL AND consecutive_failures > 0
  AND greatest(coalesce(last_success_at, created_at), resumed_at)
      < now() - make_interval(secs => $1)
LIMIT 100
"""

# Retention: deletes a bounded batch of routed events older than the cutoff whose
# deliveries are all final (or that have none); their deliveries and attempts go with
# them (ON DELETE CASCADE). Event ids are UUIDv7, so "older than" is a primary-key range.
# $1 the cutoff id (the smallest UUIDv7 of the cutoff millisecond), $2 batch size.
# Returns how many were deleted.
PRUNE_EVENTS = """
WITH doomed AS (
    SELECT event.id
    FROM events AS event
    WHERE event.id < $1 AND event.routed_at IS NOT NULL
      AND NOT EXISTS (
          SELECT 1 FROM deliveries AS delivery
          WHERE delivery.event_id = event.id
            AND delivery.status IN ('pending', 'in_flight', 'failed'))
    ORDER BY event.id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
DELETE FROM events WHERE id = ANY (ARRAY(SELECT id FROM doomed))
"""
