-- Node heartbeats: one row per running node, refreshed every TRIGGERD_HEARTBEAT_INTERVAL
-- by its Heartbeat (supervisor/node/heartbeat.py) and deleted when it stops cleanly. A
-- node is alive while seen within 3 of its own intervals (`interval_s`, so a reader needs
-- no configuration of its own; ingestor/nodes.py); a killed node's row goes stale, and
-- rows not seen for a day are deleted. `stats` holds what the node reported at its last
-- beat: restarts per supervisor, degraded, delivery pool size and busy workers, the
-- writer's queue, the result writer's backlog, database pool use.
CREATE TABLE nodes (
    name        text PRIMARY KEY,               -- host:pid:port
    roles       text[] NOT NULL,
    version     text NOT NULL,
    pid         integer NOT NULL,
    host        text NOT NULL,
    started_at  timestamptz NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT now(),
    interval_s  real NOT NULL CHECK (interval_s > 0),
    stats       jsonb NOT NULL DEFAULT '{}'
);
