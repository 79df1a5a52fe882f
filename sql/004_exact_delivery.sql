-- Fenced leases, bounded rescues, cancelled deliveries and exact settlement.

-- A claim's token: unique per claim, so an outcome settles its delivery only while the
-- lease it was made under is still the current one (a late outcome of a rescued or
-- cancelled delivery changes nothing). `rescues` counts leases that expired or attempts
-- that were interrupted; past a bound the delivery becomes a dead letter.
ALTER TABLE deliveries ADD COLUMN lease_token uuid;
ALTER TABLE deliveries ADD COLUMN rescues integer NOT NULL DEFAULT 0;

-- 'cancelled': the endpoint was deleted before the delivery was made. Widening a CHECK
-- needs no scan of the existing rows (they all satisfy the wider one), hence NOT VALID.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'in_flight', 'failed', 'delivered', 'dead_letter', 'cancelled'))
    NOT VALID;
ALTER TABLE events DROP CONSTRAINT events_status_check;
ALTER TABLE events ADD CONSTRAINT events_status_check
    CHECK (status IN ('pending', 'delivered', 'failed', 'acknowledged', 'cancelled'))
    NOT VALID;

-- A deleted endpoint stays as a row (its deliveries still name it) without its secrets;
-- the API no longer shows it.
ALTER TABLE endpoints ADD COLUMN deleted_at timestamptz;

DROP INDEX endpoints_held;
CREATE INDEX endpoints_held ON endpoints (id)
    WHERE deleted_at IS NULL AND (NOT enabled OR ordered OR breaker_cooldown_s IS NOT NULL);

-- Settles events whose deliveries are all final: 'failed' when one is a dead letter,
-- else 'delivered' when one was delivered, else (every endpoint deleted) 'cancelled'.
-- Returns how many events changed.
--
-- Exact under concurrency: the events are locked first (in id order, so two settlers
-- never deadlock), and their deliveries are read by the next statement, whose snapshot
-- is taken once the locks are held. Of two transactions finishing an event's last two
-- deliveries at once, the one that locks second sees the other's committed delivery.
CREATE FUNCTION triggerd_settle_events(event_ids uuid[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    changed integer;
BEGIN
    PERFORM 1 FROM events WHERE id = ANY (event_ids) ORDER BY id FOR NO KEY UPDATE;
    UPDATE events AS event
    SET status = settled.status
    FROM (
        SELECT event_id,
               CASE WHEN bool_or(status = 'dead_letter') THEN 'failed'
                    WHEN bool_or(status = 'delivered') THEN 'delivered'
                    ELSE 'cancelled' END AS status
        FROM deliveries
        WHERE event_id = ANY (event_ids)
        GROUP BY event_id
        HAVING bool_and(status IN ('delivered', 'dead_letter', 'cancelled'))
    ) AS settled
    WHERE event.id = settled.event_id AND event.acknowledged_at IS NULL
      AND event.status <> settled.status;
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END
$$;
