"""What "the database is away" means, decided once for every component.

`is_transient(exc)` is the one test. True: the failure says nothing about the data and
the same work may succeed later - retry it, or answer 503 with Retry-After. False: a
bug or a permanent refusal of this row or request - isolate it, log it at ERROR with
its ids, count it, and never retry it for minutes.

Transient:
- OSError (refused, reset, unreachable; the node's own "database is restarting") and
  TimeoutError (a client-side statement or acquire timeout);
- PostgreSQL errors of the classes 08 connection exception, 53 insufficient resources
  (too many connections, disk full, out of memory) and 57 operator intervention (admin
  or crash shutdown, cannot connect now, statement_timeout's query_canceled), and the
  states 40001 serialization failure, 40P01 deadlock, 55P03 lock timeout, 25P03 idle in
  transaction timeout;
- asyncpg's InterfaceError about a closed or closing connection or pool, or a pending
  cancellation (after a client-side timeout);
- asyncpg's InternalClientError: it reports the client's protocol state going out of
  step, which happens when the server vanishes mid-message (seen during restarts).
  The connection is discarded and a fresh one works; a retry is bounded by its caller.

Everything else is not: constraint violations, bad data (asyncpg's DataError and
PostgreSQL's class 22), undefined objects, syntax errors, "another operation is in
progress" (a bug of ours).
"""

from __future__ import annotations

import asyncpg

_CLASSES = ("08", "53", "57")
_STATES = frozenset({"40001", "40P01", "55P03", "25P03"})
_CLOSED = ("closed", "closing", "cancelling", "not initialized")


def is_transient(exc: BaseException) -> bool:
    """True when `exc` means the database is (momentarily) away, not that the work is bad."""
    if isinstance(exc, (OSError, TimeoutError, asyncpg.InternalClientError)):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        return state[:2] in _CLASSES or state in _STATES
    if isinstance(exc, asyncpg.InterfaceError) and not isinstance(exc, asyncpg.DataError):
        message = str(exc)
        return any(word in message for word in _CLOSED)
    return False
