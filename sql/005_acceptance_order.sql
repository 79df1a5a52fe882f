-- Acceptance order across nodes: `seq` is drawn from one sequence inside the inserting
-- transaction, so an event whose 202 was answered before another was sent has the
-- smaller seq, whatever node took either (ids are drawn before the commit, on each
-- node's clock, and do not order events across nodes). No sequence cache: cached
-- values would be handed out per connection, out of order.
CREATE SEQUENCE events_seq AS bigint CACHE 1;

-- Added without a default, then given one: no rewrite of the existing rows.
ALTER TABLE events ADD COLUMN seq bigint;
ALTER TABLE events ALTER COLUMN seq SET DEFAULT nextval('events_seq');
ALTER SEQUENCE events_seq OWNED BY events.seq;

-- Events still waiting to be routed get theirs in id order.
UPDATE events SET seq = ordered.seq
FROM (SELECT id, nextval('events_seq') AS seq
      FROM (SELECT id FROM events WHERE routed_at IS NULL ORDER BY id) AS waiting) AS ordered
WHERE events.id = ordered.id;

-- The event queue, in acceptance order.
DROP INDEX events_unrouted;
CREATE INDEX events_unrouted ON events (seq) WHERE routed_at IS NULL;

-- A delivery carries its event's seq, so an ordered endpoint's head is found in
-- acceptance order. Deliveries made before this migration have none and go first.
ALTER TABLE deliveries ADD COLUMN event_seq bigint;
DROP INDEX deliveries_endpoint_open;
CREATE INDEX deliveries_endpoint_open ON deliveries (endpoint_id, event_seq NULLS FIRST, event_id)
    WHERE status IN ('pending', 'in_flight', 'failed');
