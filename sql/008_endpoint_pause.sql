-- Paused endpoints: events are still routed to them, and their deliveries wait; none is
-- claimed (no attempt spent, nothing sent) until the endpoint is resumed, which drains
-- them in order. Unlike a disabled endpoint's, a paused one's deliveries never become
-- dead letters. `paused_by`: who paused it (a key id, or an operator's name).
ALTER TABLE endpoints ADD COLUMN paused_at timestamptz;
ALTER TABLE endpoints ADD COLUMN paused_by text;

-- When it was last resumed. The auto-disable clock (TRIGGERD_DISABLE_AFTER) runs from
-- the later of its last success and this, and stands still while it is paused, so a
-- pause never counts as an outage of the receiver.
ALTER TABLE endpoints ADD COLUMN resumed_at timestamptz;

-- The endpoints the delivery claim treats apart now include the paused ones.
DROP INDEX endpoints_held;
CREATE INDEX endpoints_held ON endpoints (id)
    WHERE deleted_at IS NULL
      AND (NOT enabled OR paused_at IS NOT NULL OR ordered OR breaker_cooldown_s IS NOT NULL);
