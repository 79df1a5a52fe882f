-- Queue samples: the waiting deliveries (pending or failed) once a minute, written by
-- one node of the fleet (workers/sampler.py) and kept 2 days, so the console charts the
-- queue's last hour whenever its page was opened. `org_id` NULL = the whole fleet;
-- otherwise one of the organizations with the most waiting that minute (1,000 at most).
-- `scope` is `org_id` with a sentinel for NULL, so the fleet's row has a key too.
CREATE TABLE queue_samples (
    minute            timestamptz NOT NULL,          -- its start, on PostgreSQL's clock
    org_id            uuid,
    scope             uuid NOT NULL GENERATED ALWAYS AS
                          (coalesce(org_id, '00000000-0000-0000-0000-000000000000')) STORED,
    depth             bigint NOT NULL,               -- waiting: pending or failed
    due               bigint NOT NULL,               -- of which due now
    oldest_due_age_s  real NOT NULL,                 -- the oldest due one's age, 0 if none
    PRIMARY KEY (minute, scope)
);
-- One organization's (or the fleet's) last hour.
CREATE INDEX queue_samples_scope ON queue_samples (scope, minute);
