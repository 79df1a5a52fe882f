-- Endpoints (where webhooks go), deliveries (one per event and endpoint: the delivery
-- queue) and the attempts made for each delivery.

CREATE TABLE endpoints (
    id                    uuid PRIMARY KEY,
    org_id                uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    url                   text NOT NULL,
    event_types           text[],            -- NULL = every type; 'order.*' = a prefix
    description           text,
    rate_limit_per_second integer CHECK (rate_limit_per_second > 0),
    ordered               boolean NOT NULL DEFAULT false,
    is_default            boolean NOT NULL DEFAULT false,  -- set by POST /api/webhook/config
    secret                text NOT NULL,
    previous_secret       text,              -- still signs beside `secret` until it expires
    previous_secret_until timestamptz,
    enabled               boolean NOT NULL DEFAULT true,
    disabled_reason       text,
    disabled_at           timestamptz,
    last_success_at       timestamptz,
    consecutive_failures  integer NOT NULL DEFAULT 0,
    breaker_open_until    timestamptz,       -- NULL = closed
    breaker_cooldown_s    integer,           -- doubles on each failed probe, capped
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX endpoints_org ON endpoints (org_id);
CREATE UNIQUE INDEX endpoints_one_default ON endpoints (org_id) WHERE is_default;

CREATE TABLE deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    endpoint_id     uuid NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    org_id          uuid NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'in_flight', 'failed', 'delivered', 'dead_letter')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz,             -- the lease of an in_flight delivery
    locked_by       text,
    response_status integer,
    last_error      text,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, endpoint_id)
);
-- The delivery queue: only rows waiting for an attempt, in claim order.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, event_id)
    WHERE status IN ('pending', 'failed');
-- Leases to rescue when their holder died.
CREATE INDEX deliveries_leased ON deliveries (locked_until) WHERE status = 'in_flight';
-- An ordered endpoint's head: its oldest undelivered event.
CREATE INDEX deliveries_endpoint_open ON deliveries (endpoint_id, event_id)
    WHERE status IN ('pending', 'in_flight', 'failed');
CREATE INDEX deliveries_org ON deliveries (org_id, id DESC);
CREATE INDEX deliveries_dead ON deliveries (org_id, updated_at DESC) WHERE status = 'dead_letter';

CREATE TABLE delivery_attempts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id     bigint NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt         integer NOT NULL,
    response_status integer,
    duration_ms     double precision NOT NULL,
    error           text,
    response_body   text,                    -- cut to 4 KiB
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, attempt);
CREATE INDEX delivery_attempts_recent ON delivery_attempts (created_at);

-- Wakes the pollers (LISTEN triggerd_work) when events are committed: one notification
-- per statement, so a group-commit flush of a thousand rows sends one.
CREATE FUNCTION triggerd_notify_work() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('triggerd_work', TG_TABLE_NAME);
    RETURN NULL;
END
$$;
CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION triggerd_notify_work();
