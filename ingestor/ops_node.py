"""Read operations on the whole node's queues, across organizations, for operators (the
command line's `status`; the list of nodes is `nodes.list_nodes`).

Both statements are the bounded ones /metrics runs (ingestor/queries_node.py): each
walks a partial index of waiting rows or held endpoints, never the delivered history.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ingestor import queries_node as q
from ingestor.ops_db import Db, connection
from ingestor.shapes import show

ENDPOINTS_READ = 10_000  # held endpoints counted at most (as /metrics)
_COUNT = show(minimum=0)


@dataclass(frozen=True, slots=True)
class NodeQueue:
    """Every organization's queues, read in one go."""

    pending: int = field(metadata=_COUNT)
    in_flight: int = field(metadata=_COUNT)
    failed: int = field(metadata=_COUNT)
    dead_letter: int = field(metadata=_COUNT)
    due: int = field(metadata=show(minimum=0, description=(
        "Pending or failed deliveries whose next attempt is due now.")))
    unrouted: int = field(metadata=show(minimum=0, description="Events not yet routed."))
    oldest_pending_age_s: float = field(metadata=show(minimum=0, description=(
        "Age of the oldest pending or failed delivery; 0 without one.")))
    endpoints_disabled: int = field(metadata=_COUNT)
    endpoints_paused: int = field(metadata=_COUNT)
    breakers_open: int = field(metadata=_COUNT)
    breakers_half_open: int = field(metadata=_COUNT)
    endpoints_read: int = field(metadata=show(minimum=0, description=(
        "Held endpoints counted: at ENDPOINTS_READ the counts stop growing.")))


async def node_queue(db: Db) -> NodeQueue:
    """The node-wide queue depths, oldest waiting age and held endpoint counts."""
    async with connection(db) as conn:
        row = await conn.fetchrow(q.QUEUE_STATE)
        held = await conn.fetchrow(q.ENDPOINT_STATES, ENDPOINTS_READ)
    return NodeQueue(
        pending=row["pending"], in_flight=row["in_flight"], failed=row["failed"],
        dead_letter=row["dead_letter"], due=row["due"], unrouted=row["unrouted"],
        oldest_pending_age_s=round(row["oldest_age_s"], 3),
        endpoints_disabled=held["disabled"], endpoints_paused=held["paused"],
        breakers_open=held["breaker_open"], breakers_half_open=held["breaker_half_open"],
        endpoints_read=held["read"])
