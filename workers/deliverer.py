"""Deliverer: one delivery attempt on the wire -- a signed POST to an endpoint.

The Deliverer owns the node's one aiohttp ClientSession: a bounded connection pool with
keep-alive, a DNS cache, a resolver that applies the SSRF guard (workers/netguard.py)
and no cookie jar. The delivery pool's workers call `deliver(job)` concurrently; it
makes one attempt, never raises (except CancelledError) and classifies the attempt:

  delivered      a 2xx status within the timeout (one of the endpoint's
                 success_statuses when it has them)
  http_error     any other status; redirects are not followed, so a 3xx lands here
  timeout        no status line within the endpoint's timeout_s, or the node's
                 `timeout` (connect included)
  connect_error  no HTTP answer: DNS failure, refused, reset, TLS failure, or the
                 connection closed before a status line
  blocked        the target is inside the node's network (TRIGGERD_ALLOW_PRIVATE_TARGETS)
  error          anything else: a malformed URL, response or secret

Once a status line has arrived the status decides, even if reading the (at most 4 KiB
kept) body then fails. Messages: none, it is called directly. Restart: permanent.
terminate() lets attempts in flight finish (up to `timeout`) before closing the session,
so its child spec's shutdown should be longer than the request timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

import aiohttp
import orjson
from multidict import CIMultiDict
from yarl import URL

from supervisor import Resident
from workers.netguard import BlockedTarget, GuardedResolver, check_literal
from workers.schedule import parse_retry_after
from workers.signing import signature_header

try:
    VERSION = importlib.metadata.version("triggerd")
except importlib.metadata.PackageNotFoundError:
    VERSION = "0"

BODY_LIMIT = 4096
DNS_CACHE_TTL_S = 30


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed delivery, as the poller hands it over."""

    delivery_id: int
    event_id: str
    event_type: str
    payload: str  # the event's payload as JSON text
    created_at: datetime
    endpoint_id: str
    url: str
    secrets: tuple[str, ...] = field(repr=False)  # current first, then the previous one
    attempt: int  # this attempt's number, 1-based
    lease: UUID | None = field(default=None, repr=False)  # the claim's token (its fence)
    org_id: str | None = None
    timeout: float | None = None  # the endpoint's own request timeout; None: the node's
    headers: tuple[tuple[str, str], ...] = ()  # the endpoint's static headers
    success_statuses: frozenset[int] | None = None  # the 2xx that count; None: any 2xx


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to; `kind` is one of the kinds in the module docstring."""

    job: Job
    kind: str
    status: int | None
    duration_ms: float
    error: str | None
    body: str | None  # the response body, cut to 4 KiB
    retry_after: float | None  # seconds, from a Retry-After header
    answered_at: float | None = None  # when the status line came (Unix time); None: never

    @property
    def ok(self) -> bool:
        return self.kind == "delivered"

    @property
    def gone(self) -> bool:
        return self.status == 410


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes
    retry_after: float | None
    location: str | None


class DelivererStopped(RuntimeError):
    """deliver() was called while the session is not open."""


def render_body(job: Job) -> bytes:
    """The webhook body; the stored payload text is embedded as is, not re-parsed."""
    created = job.created_at
    created = (created.replace(tzinfo=UTC) if created.tzinfo is None
               else created.astimezone(UTC))
    document = {"id": job.event_id, "type": job.event_type,
                "data": orjson.Fragment(job.payload), "timestamp": created}
    return orjson.dumps(document, option=orjson.OPT_UTC_Z)


class Deliverer(Resident):
    """Owns the outbound HTTP session; `deliver()` makes one signed attempt."""

    def __init__(self, *, timeout: float = 15.0, max_timeout: float | None = None,
                 allow_private: bool = False, user_agent: str = f"triggerd/{VERSION}",
                 max_connections: int = 200, max_per_host: int = 50,
                 name: str | None = None) -> None:
        super().__init__(name=name)
        if timeout <= 0:
            raise ValueError(f"{self.name}: timeout must be > 0, got {timeout}")
        if max_connections < 1 or max_per_host < 1:
            raise ValueError(f"{self.name}: connection limits must be >= 1")
        self.timeout = timeout  # an endpoint without a timeout of its own
        # The longest an endpoint's own timeout may make an attempt (and terminate wait).
        self.max_timeout = max(max_timeout or timeout, timeout)
        self.allow_private = allow_private
        self.user_agent = user_agent
        self.max_connections = max_connections
        self.max_per_host = max_per_host
        self._session: aiohttp.ClientSession | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def init(self) -> None:
        resolver = aiohttp.DefaultResolver()
        connector = aiohttp.TCPConnector(
            limit=self.max_connections, limit_per_host=self.max_per_host,
            ttl_dns_cache=DNS_CACHE_TTL_S,
            resolver=resolver if self.allow_private else GuardedResolver(resolver))
        self._session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=self.timeout))

    def timeout_of(self, job: Job) -> float:
        """The attempt's timeout: the endpoint's own, up to the maximum, or the node's."""
        return self.timeout if job.timeout is None else min(job.timeout, self.max_timeout)

    async def terminate(self, reason: BaseException | None) -> None:
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.max_timeout):
                    await self._idle.wait()
        finally:
            session, self._session = self._session, None
            if session is not None:
                await session.close()

    async def deliver(self, job: Job) -> Outcome:
        """Makes one attempt and classifies it; raises only CancelledError."""
        started = time.perf_counter()
        self._in_flight += 1
        self._idle.clear()
        try:
            answer = await self._post(job)
        except Exception as exc:  # every failure of an attempt is classified into an Outcome
            kind, error = self._classify(exc, self.timeout_of(job))
            return Outcome(job, kind, None, _ms_since(started), error, None, None)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()
        return _outcome(job, answer, _ms_since(started), time.time())

    async def _post(self, job: Job) -> _Answer:
        session = self._session
        if session is None or session.closed:
            raise DelivererStopped("the deliverer is not running")
        url = URL(job.url)
        if url.scheme not in ("http", "https") or not url.host:
            raise aiohttp.InvalidURL(job.url)
        if not self.allow_private:
            check_literal(url.host)
        body = render_body(job)
        headers = self._headers(job, body, int(time.time()))
        async with session.post(url, data=body, headers=headers, allow_redirects=False,
                                timeout=aiohttp.ClientTimeout(total=self.timeout_of(job))
                                ) as resp:
            content = await _read_head(resp)
            return _Answer(resp.status, content,
                           parse_retry_after(resp.headers.get("Retry-After"), time.time()),
                           resp.headers.get("Location"))

    def _headers(self, job: Job, body: bytes, timestamp: int) -> CIMultiDict[str]:
        # The endpoint's static headers first; ours then replace any of the same name
        # (whatever its case), so none can override the signature (the API refuses
        # those names too).
        headers: CIMultiDict[str] = CIMultiDict(job.headers)
        headers.update({
            "content-type": "application/json",
            "user-agent": self.user_agent,
            "webhook-id": job.event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(job.secrets, job.event_id, timestamp, body),
            "x-event-id": job.event_id,
            "x-event-type": job.event_type,
            "x-delivery-attempt": str(job.attempt),
        })
        return headers

    def _classify(self, exc: Exception, timeout: float) -> tuple[str, str]:
        if isinstance(exc, aiohttp.ClientConnectorError):
            if isinstance(exc.os_error, BlockedTarget):
                return "blocked", str(exc.os_error)
            return "connect_error", _connect_reason(exc)
        if isinstance(exc, BlockedTarget):
            return "blocked", str(exc)
        if isinstance(exc, TimeoutError):
            return "timeout", f"timed out after {timeout:g}s"
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return "connect_error", "the server closed the connection without answering"
        if isinstance(exc, aiohttp.ClientConnectionError):
            return "connect_error", f"connection failed: {exc}"
        if isinstance(exc, aiohttp.InvalidURL):
            return "error", f"invalid URL: {exc}"
        if isinstance(exc, aiohttp.ClientResponseError):
            return "error", f"malformed HTTP response: {exc.message}"
        return "error", f"{type(exc).__name__}: {exc}"


async def _read_head(resp: aiohttp.ClientResponse) -> bytes:
    """Up to BODY_LIMIT bytes of the body; the rest is never downloaded (the connection
    is then closed rather than reused)."""
    content = bytearray()
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        while len(content) < BODY_LIMIT:
            chunk = await resp.content.read(BODY_LIMIT - len(content))
            if not chunk:
                break
            content += chunk
    return bytes(content)


def _connect_reason(exc: aiohttp.ClientConnectorError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve {exc.host}: {exc.os_error.strerror or exc.os_error}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS with {exc.host} failed: {getattr(exc, 'certificate_error', exc.os_error)}"
    if isinstance(exc.os_error, ConnectionRefusedError):
        return "connection refused"
    return f"cannot connect to {exc.host}:{exc.port}: {exc.os_error.strerror or exc.os_error}"


def _outcome(job: Job, answer: _Answer, duration_ms: float, answered_at: float) -> Outcome:
    status = answer.status
    accepted = job.success_statuses
    if 200 <= status < 300 and (accepted is None or status in accepted):
        kind, error = "delivered", None
    elif 200 <= status < 300:
        kind, error = "http_error", f"HTTP {status} (not one of the endpoint's success_statuses)"
    elif 300 <= status < 400:
        where = f" to {answer.location}" if answer.location else ""
        kind, error = "http_error", f"HTTP {status} (redirect{where} not followed)"
    else:
        kind, error = "http_error", f"HTTP {status}"
    body = safe_text(answer.body.decode("utf-8", errors="replace"))
    return Outcome(job, kind, status, duration_ms, error, body, answer.retry_after,
                   answered_at)


def safe_text(text: str) -> str:
    """`text` as PostgreSQL's text type takes it: a NUL (which it refuses) becomes
    U+FFFD, like the bytes that were not UTF-8."""
    return text.replace("\x00", "\ufffd")


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
