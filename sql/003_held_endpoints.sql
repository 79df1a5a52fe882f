-- The endpoints the delivery claim must treat apart (disabled, ordered, breaker tripped):
-- usually none or a few, found without scanning the whole table.
CREATE INDEX endpoints_held ON endpoints (id)
    WHERE NOT enabled OR ordered OR breaker_cooldown_s IS NOT NULL;
