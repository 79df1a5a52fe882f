"""The sources the ingest route looks up by token, cached briefly, and the record of
what it refuses: a bounded list per source in PostgreSQL and a Prometheus counter by
kind and reason.

A token's answer (a source, or none) is cached for `ttl` seconds (1 s by default), so
a verified request costs no query of its own and a deleted source or a rotated secret
takes effect on every node within that time. Rejection writes run beside the answer
(a 401 never waits for one) and at most `per_second` per source, so a flood of bad
requests costs the database nothing more; the counter counts every one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg
import orjson
from prometheus_client import Counter

from ingestor import queries_sources as q
from ingestor.source_kinds import Source, kind_parts
from ingestor.source_schemes import secret_key
from supervisor.throttle import Throttle
from triggerd_sql.faults import is_transient

log = logging.getLogger(__name__)

KEPT_REJECTIONS = 100
SOURCE_REJECTED = Counter(
    "triggerd_source_rejected",
    "Requests to a source's ingest URL refused, by kind and reason (missing_signature, "
    "malformed_signature, bad_signature, missing_timestamp, malformed_timestamp, "
    "stale_timestamp, future_timestamp, missing_id, invalid_body)", ["kind", "reason"])
SOURCE_ACCEPTED = Counter(
    "triggerd_source_events", "Verified source requests, by kind and outcome (committed, "
    "duplicate, handshake)", ["kind", "outcome"])
_CACHE_SIZE = 10_000
_FAILED = Throttle(10.0)
# Headers worth showing with a rejection, beside the kind's own; never the body.
_SHOWN = ("Content-Type", "Content-Length", "User-Agent")
_MAX_HEADER = 300


def load(row: Any) -> Source:
    """A Source from a SOURCE_BY_TOKEN row."""
    settings = None if row["settings"] is None else orjson.loads(row["settings"])
    scheme, extract = kind_parts(row["kind"], settings)
    encoding = "raw" if scheme is None else scheme.key_encoding
    return Source(row["id"], row["org_id"], row["tier"], row["kind"], scheme, extract,
                  tuple(secret_key(s, encoding) for s in row["secrets"]), row["tolerance_s"])


# Headers a source's event keeps for filters (headers.<name>, lower case), beside the
# kind's type, id and timestamp headers: what providers say about the event, never a
# signature.
_KEPT = {"github": ("X-GitHub-Event", "X-GitHub-Delivery", "X-GitHub-Hook-ID",
                    "X-GitHub-Hook-Installation-Target-Type",
                    "X-GitHub-Hook-Installation-Target-ID"),
         "shopify": ("X-Shopify-Topic", "X-Shopify-Shop-Domain", "X-Shopify-Webhook-Id",
                     "X-Shopify-API-Version", "X-Shopify-Triggered-At"),
         "slack": ("X-Slack-Retry-Num", "X-Slack-Retry-Reason"),
         "standard-webhooks": ("webhook-id", "webhook-timestamp")}


def kept_headers(source: Source, headers: Mapping[str, str]) -> str:
    """The request headers a source's event keeps (names in lower case, values cut
    short, bytes that are not text replaced), as JSON text."""
    names = ["Content-Type", "User-Agent", *_KEPT.get(source.kind, ())]
    scheme = source.scheme
    if scheme is not None:
        names += [f.header for f in (scheme.timestamp, scheme.signed_id)
                  if f is not None and f.header is not None]
    names += [f.header for f in (*source.extract.types, source.extract.id)
              if f is not None and f.header is not None]
    kept = {name.lower(): _text(headers[name][:_MAX_HEADER])
            for name in dict.fromkeys(names) if name in headers}
    return orjson.dumps(kept).decode()


def _text(value: str) -> str:
    # aiohttp keeps header bytes that are not UTF-8 as surrogates; jsonb holds no NUL
    raw = value.encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "replace").replace("\x00", "\ufffd")


def shown_headers(source: Source, headers: Mapping[str, str]) -> dict[str, str]:
    """The request headers that matter to a rejection, each cut short."""
    names = list(_SHOWN)
    scheme = source.scheme
    if scheme is not None:
        names.append(scheme.header)
        names += [f.header for f in (scheme.timestamp, scheme.signed_id)
                  if f is not None and f.header is not None]
    names += [f.header for f in (*source.extract.types, source.extract.id)
              if f is not None and f.header is not None]
    return {name: headers[name][:_MAX_HEADER] for name in dict.fromkeys(names)
            if name in headers}


class SourceStore:
    def __init__(self, pool: Callable[[], asyncpg.Pool], ttl: float = 1.0,
                 per_second: int = 10) -> None:
        self._pool = pool
        self._ttl = ttl
        self._per_second = per_second
        self._cache: dict[str, tuple[float, Source | None]] = {}
        self._written: dict[Any, tuple[int, int]] = {}  # source id -> (second, count)
        self._tasks: set[asyncio.Task[None]] = set()

    async def find(self, token: str) -> Source | None:
        now = time.monotonic()
        cached = self._cache.get(token)
        if cached is not None and cached[0] > now:
            return cached[1]
        row = await self._pool().fetchrow(q.SOURCE_BY_TOKEN, token)
        source = None if row is None else load(row)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()  # bounded; live tokens come back in one query each
        self._cache[token] = (now + self._ttl, source)
        return source

    def forget(self, token: str) -> None:
        """Drops a token's cached answer on this node (a change made here)."""
        self._cache.pop(token, None)

    def reject(self, source: Source, reason: str, message: str,
               headers: Mapping[str, str]) -> None:
        """Counts a refused request and records it, unless this second's quota of the
        source's records is spent."""
        SOURCE_REJECTED.labels(source.kind, reason).inc()
        second = int(time.monotonic())
        last, count = self._written.get(source.id, (second, 0))
        count = count + 1 if last == second else 1
        if len(self._written) >= _CACHE_SIZE:
            self._written.clear()
        self._written[source.id] = (second, count)
        if count > self._per_second:
            return
        task = asyncio.create_task(self._record(source, reason, message,
                                                shown_headers(source, headers)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, source: Source, reason: str, message: str,
                      headers: dict[str, str]) -> None:
        try:
            await self._pool().execute(q.INSERT_REJECTION, source.id, reason, message,
                                       orjson.dumps(headers).decode(), KEPT_REJECTIONS)
        except Exception as exc:  # classified: a lost record of a refusal, counted anyway
            if not is_transient(exc) and not isinstance(exc, asyncpg.ForeignKeyViolationError):
                log.error("recording a rejection of source %s failed: %r", source.id, exc)
            else:
                _FAILED.log(log, logging.WARNING, "rejection of source %s not recorded: %r",
                            source.id, exc)
