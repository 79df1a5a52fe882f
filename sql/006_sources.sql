-- Sources: an organization's inbound provider webhooks (Stripe, GitHub, ...), each with
-- an unguessable ingest token, its secrets (newest first; more than one is valid at
-- once during a rotation) and, for the `hmac` and `none` kinds, its scheme as data.
CREATE TABLE sources (
    id           uuid PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name         text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('stripe', 'github', 'shopify', 'slack',
                                               'standard-webhooks', 'hmac', 'none')),
    token        text NOT NULL UNIQUE,
    secrets      text[] NOT NULL,
    settings     jsonb,
    tolerance_s  integer NOT NULL CHECK (tolerance_s > 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sources_org ON sources (org_id, created_at, id);

-- The latest refused requests of each source (time, reason, the headers that matter;
-- never the body), kept bounded by the statement that adds one.
CREATE TABLE source_rejections (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_id  uuid NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    at         timestamptz NOT NULL DEFAULT now(),
    reason     text NOT NULL,
    message    text NOT NULL,
    headers    jsonb NOT NULL
);
CREATE INDEX source_rejections_latest ON source_rejections (source_id, id DESC);

-- Where an event came from: its source and the provider's own id for it. Added
-- without defaults: no rewrite of the existing rows.
ALTER TABLE events ADD COLUMN source_id uuid;
ALTER TABLE events ADD COLUMN provider_id text;
