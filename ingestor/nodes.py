"""The nodes that run against this database, from their heartbeat rows (sql/009).

Each node's Heartbeat (supervisor/node/heartbeat.py) refreshes its row every few
seconds and deletes it on a clean stop. `list_nodes` is for operators (the CLI's
`status`, the console's nodes page): a node is alive while seen within ALIVE_BEATS of
its own heartbeat intervals, judged on PostgreSQL's clock (the one `seen_at` is
written with), so no clock of the reader's enters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

ALIVE_BEATS = 3

# The nodes, alive first, then by name. $1 how many; $2 the beats a node may miss and
# still count as alive. The table holds a row per node that ran in the last day.
LIST_NODES = """
SELECT name, roles, version, pid, host, started_at, seen_at, interval_s, stats::text AS stats,
       greatest(0, extract(epoch FROM now() - seen_at))::float8 AS seen_ago_s,
       seen_at >= now() - make_interval(secs => $2 * interval_s) AS alive
FROM nodes
ORDER BY alive DESC, name
LIMIT $1
"""


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One node as its last heartbeat left it."""

    name: str  # host:pid:port
    roles: tuple[str, ...]
    version: str
    pid: int
    host: str
    started_at: datetime
    seen_at: datetime
    seen_ago_s: float
    interval_s: float
    alive: bool
    # restarts (per supervisor), degraded, pool {size, busy}, writer_queue,
    # results_backlog, db_pool {max, open, idle}: None for a part the node does not run
    stats: dict[str, Any]


async def list_nodes(db: asyncpg.Pool | asyncpg.Connection, *,
                     limit: int = 1000) -> list[NodeStatus]:
    """The nodes with a heartbeat row, alive ones first, at most `limit`."""
    rows = await db.fetch(LIST_NODES, limit, ALIVE_BEATS)
    return [NodeStatus(name=r["name"], roles=tuple(r["roles"]), version=r["version"],
                       pid=r["pid"], host=r["host"], started_at=r["started_at"],
                       seen_at=r["seen_at"], seen_ago_s=r["seen_ago_s"],
                       interval_s=r["interval_s"], alive=r["alive"],
                       stats=orjson.loads(r["stats"])) for r in rows]
