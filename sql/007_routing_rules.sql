-- Routing rules: payload filters, priorities, per-endpoint delivery settings,
-- dead-letter review, and what the monitoring API reads. Every column is added without
-- a volatile default: no rewrite of the existing rows.

-- An endpoint's filter as written (`filter`) and as PostgreSQL evaluates it in the
-- routing statement (`filter_path`, compiled once when it is written); its priority
-- (1 lowest .. 10 highest); its own request timeout (NULL: the node's); static
-- headers sent with each webhook ({"Name": "value"}); the 2xx statuses that count as
-- a success (NULL: any 2xx).
ALTER TABLE endpoints ADD COLUMN filter jsonb;
ALTER TABLE endpoints ADD COLUMN filter_path jsonpath;
ALTER TABLE endpoints ADD COLUMN priority smallint NOT NULL DEFAULT 5
    CHECK (priority BETWEEN 1 AND 10);
ALTER TABLE endpoints ADD COLUMN timeout_s real CHECK (timeout_s > 0);
ALTER TABLE endpoints ADD COLUMN headers jsonb;
ALTER TABLE endpoints ADD COLUMN success_statuses smallint[];

-- A delivery carries its endpoint's priority, so the claim finds the highest first by
-- an index walk per level; `resolved_*`: a dead letter reviewed by a person (the key's
-- id, when, and a note), without being sent again.
ALTER TABLE deliveries ADD COLUMN priority smallint NOT NULL DEFAULT 5;
ALTER TABLE deliveries ADD COLUMN resolved_at timestamptz;
ALTER TABLE deliveries ADD COLUMN resolved_by text;
ALTER TABLE deliveries ADD COLUMN resolution_note text;

-- The delivery queue by priority, then due time, beside deliveries_due (due time
-- only): the claim walks this one level by level, highest first, and deliveries_due
-- for the longest-waiting share of every claim.
CREATE INDEX deliveries_due_priority ON deliveries (priority, next_attempt_at, event_id)
    WHERE status IN ('pending', 'failed');

-- Attempts carry what the monitoring API groups by, so its queries read one index
-- range of the organization's recent attempts and join nothing: the organization, the
-- endpoint, the event type, and for a success the time from the event's acceptance to
-- the receiver's answer. Attempts recorded before this migration have none.
ALTER TABLE delivery_attempts ADD COLUMN org_id uuid;
ALTER TABLE delivery_attempts ADD COLUMN endpoint_id uuid;
ALTER TABLE delivery_attempts ADD COLUMN event_type text;
ALTER TABLE delivery_attempts ADD COLUMN latency_ms double precision;
CREATE INDEX delivery_attempts_org ON delivery_attempts (org_id, created_at)
    WHERE org_id IS NOT NULL;

-- Events from a source keep the request headers that matter (the provider's event
-- name, its delivery id, ...), so filters can match on them. NULL for other events.
ALTER TABLE events ADD COLUMN headers jsonb;

-- Why an event was routed otherwise than by its endpoints' filters (they could not be
-- evaluated within the routing budget); NULL for every other event.
ALTER TABLE events ADD COLUMN routing_note text;

-- The alerts the node raised about an organization's endpoints, and whether the alert
-- hook took each one: `sent`, `failed` (with the error), `not_configured` (no hook),
-- `coalesced` (counted into a later message).
CREATE TABLE alerts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id       uuid NOT NULL,
    endpoint_id  uuid,
    kind         text NOT NULL,
    message      text NOT NULL,
    status       text NOT NULL CHECK (status IN ('sent', 'failed', 'not_configured',
                                                  'coalesced', 'pending')),
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alerts_org ON alerts (org_id, id DESC);
CREATE INDEX alerts_created ON alerts (created_at);
