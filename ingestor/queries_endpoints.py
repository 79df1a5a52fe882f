"""The SQL behind the endpoint operations (ingestor.ops_endpoints), as static constants.

Each query starts with its purpose and what each $n is. Every statement is scoped by
organization, so another organization's endpoint is simply not found. A statement on
one endpoint by id that reads "$2 organization id or NULL" takes NULL for an operator
acting across organizations (the console, the command line), never from the API.
"""

from triggerd_sql.routing import type_matches

# What the API shows of an endpoint (never its secrets). `breaker` is computed here so
# it uses the database clock, the one the deliverer sets breaker_open_until with.
ENDPOINT_COLUMNS = """
id, url, event_types, description, rate_limit_per_second, ordered, is_default, enabled,
disabled_reason, disabled_at, last_success_at, breaker_open_until, filter::text AS filter,
priority, timeout_s::float8 AS timeout_s, headers::text AS headers, success_statuses,
paused_at, paused_by,
CASE WHEN breaker_open_until IS NULL THEN 'closed'
     WHEN breaker_open_until > now() THEN 'open'
     ELSE 'half_open' END AS breaker,
created_at, updated_at
"""

# Creates an endpoint. $1 id, $2 organization id, $3 url, $4 event types (NULL = all),
# $5 description, $6 rate limit per second or NULL, $7 ordered, $8 signing secret,
# $9 filter as written (JSON text) or NULL, $10 its compiled jsonpath, $11 priority,
# $12 timeout in seconds or NULL, $13 headers (JSON text) or NULL, $14 success statuses,
# $15 created paused, $16 who pauses it (when $15).
INSERT_ENDPOINT = """
INSERT INTO endpoints (id, org_id, url, event_types, description, rate_limit_per_second,
                       ordered, secret, filter, filter_path, priority, timeout_s, headers,
                       success_statuses, paused_at, paused_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonpath, $11, $12, $13::jsonb,
        $14::smallint[], CASE WHEN $15::boolean THEN now() END,
        CASE WHEN $15::boolean THEN $16::text END)
RETURNING secret, """ + ENDPOINT_COLUMNS

# Sets the organization's default endpoint (every event type): creates it, or changes
# the url of the existing one. $1 id if created, $2 organization id, $3 url, $4 secret
# if created. `xmax = 0` holds only for a freshly inserted row version, so `created`
# tells an insert from the ON CONFLICT update.
UPSERT_DEFAULT_ENDPOINT = """
INSERT INTO endpoints (id, org_id, url, is_default, secret)
VALUES ($1, $2, $3, true, $4)
ON CONFLICT (org_id) WHERE is_default
DO UPDATE SET url = EXCLUDED.url, updated_at = now()
RETURNING (xmax = 0) AS created, secret, """ + ENDPOINT_COLUMNS

# An organization's endpoints, oldest first (deleted ones are gone from the API).
# $1 organization id.
LIST_ENDPOINTS = "SELECT " + ENDPOINT_COLUMNS + """
FROM endpoints WHERE org_id = $1 AND deleted_at IS NULL ORDER BY created_at, id
"""

# One endpoint. $1 endpoint id, $2 organization id or NULL.
ENDPOINT_BY_ID = "SELECT " + ENDPOINT_COLUMNS + """
FROM endpoints
WHERE id = $1 AND ($2::uuid IS NULL OR org_id = $2) AND deleted_at IS NULL
"""

# Changes the fields named in $3 and leaves the others as they are, so a null given
# by the client clears a field while an absent one keeps it.
# $1 endpoint id, $2 organization id, $3 names of the fields given, $4 url,
# $5 event types, $6 description, $7 rate limit per second, $8 ordered, $9 filter (JSON
# text), $10 its jsonpath, $11 priority, $12 timeout, $13 headers (JSON text),
# $14 success statuses, $15 paused, $16 who pauses it. Pausing a paused endpoint keeps
# when and by whom it was first paused; resuming one restarts its auto-disable clock
# (resumed_at). On the right of SET, every column still holds its old value.
UPDATE_ENDPOINT = """
UPDATE endpoints SET
    url = CASE WHEN 'url' = ANY($3::text[]) THEN $4::text ELSE url END,
    event_types = CASE WHEN 'event_types' = ANY($3::text[]) THEN $5::text[]
                       ELSE event_types END,
    description = CASE WHEN 'description' = ANY($3::text[]) THEN $6::text
                       ELSE description END,
    rate_limit_per_second = CASE WHEN 'rate_limit_per_second' = ANY($3::text[])
                                 THEN $7::integer ELSE rate_limit_per_second END,
    ordered = CASE WHEN 'ordered' = ANY($3::text[]) THEN $8::boolean ELSE ordered END,
    filter = CASE WHEN 'filter' = ANY($3::text[]) THEN $9::jsonb ELSE filter END,
    filter_path = CASE WHEN 'filter' = ANY($3::text[]) THEN $10::jsonpath
                       ELSE filter_path END,
    priority = CASE WHEN 'priority' = ANY($3::text[]) THEN $11::smallint ELSE priority END,
    timeout_s = CASE WHEN 'timeout_s' = ANY($3::text[]) THEN $12::real ELSE timeout_s END,
    headers = CASE WHEN 'headers' = ANY($3::text[]) THEN $13::jsonb ELSE headers END,
    success_statuses = CASE WHEN 'success_statuses' = ANY($3::text[])
                            THEN $14::smallint[] ELSE success_statuses END,
    paused_at = CASE WHEN 'paused' <> ALL($3::text[]) THEN paused_at
                     WHEN $15::boolean THEN coalesce(paused_at, now()) END,
    paused_by = CASE WHEN 'paused' <> ALL($3::text[]) THEN paused_by
                     WHEN $15::boolean THEN coalesce(paused_by, $16::text) END,
    resumed_at = CASE WHEN 'paused' = ANY($3::text[]) AND NOT $15::boolean
                           AND paused_at IS NOT NULL THEN now() ELSE resumed_at END,
    updated_at = now()
WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL
RETURNING """ + ENDPOINT_COLUMNS

# Deletes an endpoint. The row stays, without its secrets and hidden from the API, so
# its deliveries keep naming it; its undelivered deliveries, those in flight included,
# are cancelled (clearing lease_token fences off their late outcomes), up to $3 of them
# here so the statement stays short; the Rescuer cancels the rest in batches, and any
# that routing added as this ran.
# $1 endpoint id, $2 organization id, $3 most deliveries cancelled here. Returns no row
# for an unknown endpoint, else the events of the cancelled deliveries (to settle).
DELETE_ENDPOINT = """
WITH gone AS (
    UPDATE endpoints
    SET deleted_at = now(), enabled = false, is_default = false, secret = '',
        previous_secret = NULL, previous_secret_until = NULL, updated_at = now()
    WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL
    RETURNING id
), cancelled AS (
    UPDATE deliveries AS d
    SET status = 'cancelled', last_error = 'endpoint deleted', next_attempt_at = now(),
        locked_until = NULL, locked_by = NULL, lease_token = NULL, updated_at = now()
    WHERE d.id IN (SELECT open.id FROM deliveries AS open, gone
                   WHERE open.endpoint_id = gone.id
                     AND open.status IN ('pending', 'in_flight', 'failed')
                   LIMIT $3)
      AND d.status IN ('pending', 'in_flight', 'failed')
    RETURNING d.event_id
)
SELECT ARRAY(SELECT DISTINCT event_id FROM cancelled ORDER BY event_id) AS events
FROM gone
"""

# Settles events whose deliveries are all final (sql/004's function, which locks the
# events first so concurrent settlers agree). $1 event ids.
SETTLE_EVENTS = "SELECT triggerd_settle_events($1::uuid[])"

# Rotates the signing secret: the old one keeps signing beside the new one for 24 h.
# $1 endpoint id, $2 organization id, $3 new secret. On the right of SET, `secret` is
# still the old value.
ROTATE_SECRET = """
UPDATE endpoints
SET previous_secret = secret, previous_secret_until = now() + interval '24 hours',
    secret = $3, updated_at = now()
WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL
RETURNING secret, previous_secret_until, """ + ENDPOINT_COLUMNS

# Enables an endpoint, closes its breaker and restarts its auto-disable clock; a paused
# endpoint stays paused. $1 endpoint id, $2 organization id or NULL.
ENABLE_ENDPOINT = """
UPDATE endpoints
SET enabled = true, disabled_reason = NULL, disabled_at = NULL, consecutive_failures = 0,
    breaker_open_until = NULL, breaker_cooldown_s = NULL, last_success_at = now(),
    updated_at = now()
WHERE id = $1 AND ($2::uuid IS NULL OR org_id = $2) AND deleted_at IS NULL
RETURNING """ + ENDPOINT_COLUMNS

# Disables an endpoint, as the node does after TRIGGERD_DISABLE_AFTER: it receives
# nothing, and the Rescuer makes its undelivered deliveries dead letters. Disabling a
# disabled endpoint keeps its first reason. $1 endpoint id, $2 organization id or
# NULL, $3 the reason.
DISABLE_ENDPOINT = """
UPDATE endpoints
SET enabled = false,
    disabled_reason = CASE WHEN enabled THEN $3::text ELSE disabled_reason END,
    disabled_at = CASE WHEN enabled THEN now() ELSE disabled_at END,
    updated_at = CASE WHEN enabled THEN now() ELSE updated_at END
WHERE id = $1 AND ($2::uuid IS NULL OR org_id = $2) AND deleted_at IS NULL
RETURNING """ + ENDPOINT_COLUMNS

# Pauses an endpoint: its deliveries are still routed to it and wait, and the claim
# (workers/queries.py HELD_ENDPOINTS) takes none of them. Idempotent: pausing a paused
# endpoint changes nothing (the first pause's time and author stand).
# $1 endpoint id, $2 organization id or NULL, $3 who pauses it.
PAUSE_ENDPOINT = """
UPDATE endpoints
SET paused_at = coalesce(paused_at, now()), paused_by = coalesce(paused_by, $3::text),
    updated_at = CASE WHEN paused_at IS NULL THEN now() ELSE updated_at END
WHERE id = $1 AND ($2::uuid IS NULL OR org_id = $2) AND deleted_at IS NULL
RETURNING """ + ENDPOINT_COLUMNS

# Resumes an endpoint: the claim takes its waiting deliveries again, in their order.
# Its auto-disable clock restarts now (resumed_at): the time it spent paused never
# counts against the receiver. Idempotent: resuming an endpoint that is not paused
# changes nothing. A disabled endpoint stays disabled (enable it too).
# $1 endpoint id, $2 organization id or NULL.
RESUME_ENDPOINT = """
UPDATE endpoints
SET paused_at = NULL, paused_by = NULL,
    resumed_at = CASE WHEN paused_at IS NOT NULL THEN now() ELSE resumed_at END,
    updated_at = CASE WHEN paused_at IS NOT NULL THEN now() ELSE updated_at END
WHERE id = $1 AND ($2::uuid IS NULL OR org_id = $2) AND deleted_at IS NULL
RETURNING """ + ENDPOINT_COLUMNS

# Re-queues one batch of an enabled endpoint's failed and dead deliveries created in
# [$3, $4). $1 endpoint id, $2 organization id, $3 since, $4 until (NULL = now),
# $5 batch size, $6 only rows last updated before this time (NULL on the first batch:
# later batches skip rows this recover already re-queued and that failed again since).
# Returns no row for an unknown endpoint; `enabled` false means nothing was touched.
RECOVER_BATCH = """
WITH target AS (
    SELECT id, enabled FROM endpoints WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL
), batch AS (
    SELECT d.id
    FROM deliveries d JOIN target ON d.endpoint_id = target.id AND target.enabled
    WHERE d.status IN ('failed', 'dead_letter')
      AND d.created_at >= $3 AND d.created_at < coalesce($4::timestamptz, now())
      AND ($6::timestamptz IS NULL OR d.updated_at < $6)
    LIMIT $5
), requeued AS (
    -- The status test is repeated here: it is re-checked on a row that changed
    -- (e.g. was claimed) between the batch's snapshot and this update.
    UPDATE deliveries d
    SET status = 'pending', attempts = 0, next_attempt_at = now(), last_error = NULL,
        updated_at = now(), resolved_at = NULL, resolved_by = NULL, resolution_note = NULL
    FROM batch
    WHERE d.id = batch.id AND d.status IN ('failed', 'dead_letter')
    RETURNING d.id
)
SELECT target.enabled, (SELECT count(*) FROM requeued) AS requeued, now() AS started
FROM target
"""

# Gives one batch of an endpoint's undelivered deliveries its (new) priority, so the
# claim orders them by it. $1 endpoint id, $2 organization id, $3 priority, $4 batch size.
# Returns how many changed (a short batch is the last).
REPRIORITIZE_BATCH = """
UPDATE deliveries AS d SET priority = $3
WHERE d.id IN (SELECT open.id FROM deliveries AS open
               WHERE open.endpoint_id = $1 AND open.org_id = $2
                 AND open.status IN ('pending', 'in_flight', 'failed')
                 AND open.priority <> $3
               LIMIT $4)
"""

# Whether an event of type $2 passes an endpoint's event_types, by the test the
# routing statement makes (triggerd_sql.routing). $1 endpoint id, $2 the type,
# $3 organization id. No row for an unknown endpoint.
TYPE_MATCHES = """
SELECT event_types, filter::text AS filter,
       """ + type_matches("event_types", "$2") + """ AS type_matches
FROM endpoints WHERE id = $1 AND org_id = $3 AND deleted_at IS NULL
"""
