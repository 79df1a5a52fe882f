"""The Deliverer against real aiohttp receivers on 127.0.0.1, verified with the
reference Standard Webhooks library."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.conftest import free_port
from workers.deliverer import BODY_LIMIT, VERSION, Deliverer, Job
from workers.signing import sign

PAYLOAD = '{"order": 42, "items": [1, 2],  "note": "caf\\u00e9"}'
CREATED = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


@dataclass
class Seen:
    """What a receiver got: one (path, headers, body) per request."""

    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)


def receiver(seen: Seen) -> web.Application:
    async def record(request: web.Request) -> None:
        seen.requests.append((request.path, dict(request.headers), await request.read()))

    async def ok(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(text="thanks")

    async def no_content(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=204)

    async def fail(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=500, text="x" * 3 * BODY_LIMIT)

    async def gone(request: web.Request) -> web.Response:
        return web.Response(status=410, text="endpoint removed")

    async def throttle(request: web.Request) -> web.Response:
        return web.Response(status=429, headers={"Retry-After": "7"})

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/ok"})

    async def slow(request: web.Request) -> web.Response:
        await record(request)
        try:
            await asyncio.wait_for(seen.release.wait(), 5)
        except TimeoutError:
            pass
        return web.Response(text="late")

    app = web.Application()
    for path, handler in [("/ok", ok), ("/no-content", no_content), ("/fail", fail),
                          ("/gone", gone), ("/throttle", throttle), ("/redirect", redirect),
                          ("/slow", slow)]:
        app.router.add_post(path, handler)
    return app


@pytest.fixture
async def seen() -> AsyncIterator[Seen]:
    state = Seen()
    yield state
    state.release.set()


@pytest.fixture
async def server(seen: Seen) -> AsyncIterator[TestServer]:
    srv = TestServer(receiver(seen), host="127.0.0.1")
    await srv.start_server()
    yield srv
    seen.release.set()
    await srv.close()


async def started(**kwargs: object) -> Deliverer:
    deliverer = Deliverer(timeout=0.5, **kwargs)  # type: ignore[arg-type]
    await deliverer.start()
    return deliverer


@pytest.fixture
async def deliverer() -> AsyncIterator[Deliverer]:
    process = await started(allow_private=True)
    yield process
    await process.stop(2)


@pytest.fixture
async def guarded() -> AsyncIterator[Deliverer]:
    process = await started(allow_private=False)
    yield process
    await process.stop(2)


def job(url: str, *secrets: str, attempt: int = 1) -> Job:
    return Job(delivery_id=1, event_id="01J0000000000000000000TEST", event_type="order.created",
               payload=PAYLOAD, created_at=CREATED, endpoint_id="ep_1", url=url,
               secrets=secrets or (new_secret(),), attempt=attempt)


async def test_signed_body_and_headers(server: TestServer, seen: Seen,
                                       deliverer: Deliverer) -> None:
    secret = new_secret()
    outcome = await deliverer.deliver(job(str(server.make_url("/ok")), secret, attempt=3))
    assert (outcome.kind, outcome.status, outcome.error, outcome.body) == (
        "delivered", 200, None, "thanks")
    assert outcome.ok and not outcome.gone and outcome.duration_ms > 0
    [(_, headers, body)] = seen.requests
    assert Webhook(secret).verify(body, headers) == orjson.loads(body)
    assert orjson.loads(body) == {"id": "01J0000000000000000000TEST", "type": "order.created",
                                  "data": orjson.loads(PAYLOAD),
                                  "timestamp": "2024-05-01T12:00:00.123456Z"}
    assert PAYLOAD.encode() in body  # embedded as stored, not re-serialised
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == f"triggerd/{VERSION}"
    assert headers["webhook-id"] == headers["x-event-id"] == "01J0000000000000000000TEST"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5
    assert headers["webhook-signature"] == sign(secret, "01J0000000000000000000TEST",
                                                int(headers["webhook-timestamp"]), body)
    assert headers["x-event-type"] == "order.created"
    assert headers["x-delivery-attempt"] == "3"
    assert "Cookie" not in headers


async def test_rotation_signs_with_both_secrets_current_first(
        server: TestServer, seen: Seen, deliverer: Deliverer) -> None:
    current, previous = new_secret(), new_secret()
    outcome = await deliverer.deliver(job(str(server.make_url("/ok")), current, previous))
    assert outcome.ok
    [(_, headers, body)] = seen.requests
    Webhook(current).verify(body, headers)
    Webhook(previous).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    first, second = headers["webhook-signature"].split(" ")
    timestamp = int(headers["webhook-timestamp"])
    assert first == sign(current, "01J0000000000000000000TEST", timestamp, body)
    assert second == sign(previous, "01J0000000000000000000TEST", timestamp, body)


async def test_naive_and_offset_timestamps_are_sent_in_utc(
        server: TestServer, seen: Seen, deliverer: Deliverer) -> None:
    url = str(server.make_url("/ok"))
    plus_two = timezone(timedelta(hours=2))
    await deliverer.deliver(replace(job(url), created_at=datetime(2024, 5, 1, 14, 0, 0,
                                                                  tzinfo=plus_two)))
    await deliverer.deliver(replace(job(url), created_at=datetime(2024, 5, 1, 12, 0, 0)))
    stamps = [orjson.loads(body)["timestamp"] for _, _, body in seen.requests]
    assert stamps == ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z"]


async def test_204_is_delivered(server: TestServer, deliverer: Deliverer) -> None:
    outcome = await deliverer.deliver(job(str(server.make_url("/no-content"))))
    assert (outcome.kind, outcome.status, outcome.body) == ("delivered", 204, "")


async def test_500_keeps_the_first_4_kib_of_the_body(server: TestServer,
                                                     deliverer: Deliverer) -> None:
    outcome = await deliverer.deliver(job(str(server.make_url("/fail"))))
    assert (outcome.kind, outcome.status, outcome.error) == ("http_error", 500, "HTTP 500")
    assert outcome.body == "x" * BODY_LIMIT
    assert not outcome.ok


async def test_410_is_gone(server: TestServer, deliverer: Deliverer) -> None:
    outcome = await deliverer.deliver(job(str(server.make_url("/gone"))))
    assert (outcome.kind, outcome.status, outcome.gone) == ("http_error", 410, True)
    assert outcome.body == "endpoint removed"


async def test_429_reports_retry_after(server: TestServer, deliverer: Deliverer) -> None:
    outcome = await deliverer.deliver(job(str(server.make_url("/throttle"))))
    assert (outcome.kind, outcome.status, outcome.retry_after) == ("http_error", 429, 7.0)


async def test_redirect_is_not_followed(server: TestServer, seen: Seen,
                                        deliverer: Deliverer) -> None:
    outcome = await deliverer.deliver(job(str(server.make_url("/redirect"))))
    assert (outcome.kind, outcome.status) == ("http_error", 302)
    assert outcome.error == "HTTP 302 (redirect to /ok not followed)"
    assert seen.requests == []


async def test_slow_receiver_times_out(server: TestServer, seen: Seen,
                                       deliverer: Deliverer) -> None:
    started_at = time.perf_counter()
    outcome = await deliverer.deliver(job(str(server.make_url("/slow"))))
    assert (outcome.kind, outcome.status, outcome.error) == (
        "timeout", None, "timed out after 0.5s")
    assert 0.4 < time.perf_counter() - started_at < 2
    assert len(seen.requests) == 1


async def test_closed_port_is_a_connect_error(deliverer: Deliverer) -> None:
    outcome = await deliverer.deliver(job(f"http://127.0.0.1:{free_port()}/hook"))
    assert (outcome.kind, outcome.status, outcome.error) == (
        "connect_error", None, "connection refused")


async def test_unknown_host_is_a_connect_error(guarded: Deliverer) -> None:
    outcome = await guarded.deliver(job("http://no-such-host.invalid/hook"))
    assert outcome.kind == "connect_error"
    assert outcome.error is not None and outcome.error.startswith(
        "cannot resolve no-such-host.invalid")


@pytest.mark.parametrize("url", ["not a url", "ftp://example.com/x", "http:///path"])
async def test_bad_url_is_an_error(deliverer: Deliverer, url: str) -> None:
    outcome = await deliverer.deliver(job(url))
    assert outcome.kind == "error" and outcome.error is not None


async def test_bad_secret_is_an_error(server: TestServer, seen: Seen,
                                      deliverer: Deliverer) -> None:
    outcome = await deliverer.deliver(job(str(server.make_url("/ok")), "whsec_!!"))
    assert outcome.kind == "error" and seen.requests == []


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "[::ffff:127.0.0.1]"])
async def test_private_literal_is_blocked(server: TestServer, seen: Seen,
                                          guarded: Deliverer, host: str) -> None:
    outcome = await guarded.deliver(job(f"http://{host}:{server.port}/ok"))
    assert (outcome.kind, outcome.status) == ("blocked", None)
    assert outcome.error is not None and outcome.error.endswith(
        "is a private address; set TRIGGERD_ALLOW_PRIVATE_TARGETS=true to allow it")
    assert seen.requests == []


async def test_name_resolving_to_loopback_is_blocked(server: TestServer, seen: Seen,
                                                     guarded: Deliverer) -> None:
    outcome = await guarded.deliver(job(f"http://localhost:{server.port}/ok"))
    assert (outcome.kind, outcome.status) == ("blocked", None)
    assert outcome.error is not None
    # localhost is refused by name (RFC 6761); other names by what they resolve to
    # (tests/unit/workers/test_netguard.py)
    assert outcome.error.startswith("target localhost is a loopback name")
    assert "TRIGGERD_ALLOW_PRIVATE_TARGETS=true" in outcome.error
    assert seen.requests == []


async def test_private_targets_allowed_when_configured(server: TestServer, seen: Seen,
                                                       deliverer: Deliverer) -> None:
    for host in ("127.0.0.1", "localhost"):
        outcome = await deliverer.deliver(job(f"http://{host}:{server.port}/ok"))
        assert outcome.kind == "delivered"
    assert len(seen.requests) == 2


async def test_concurrent_deliveries_share_the_session(server: TestServer, seen: Seen,
                                                       deliverer: Deliverer) -> None:
    url = str(server.make_url("/ok"))
    outcomes = await asyncio.gather(*(deliverer.deliver(job(url)) for _ in range(50)))
    assert all(o.ok for o in outcomes) and len(seen.requests) == 50


async def test_stop_lets_an_attempt_in_flight_finish(server: TestServer, seen: Seen) -> None:
    process = await started(allow_private=True)
    attempt = asyncio.create_task(process.deliver(job(str(server.make_url("/ok")))))
    await asyncio.sleep(0)
    await process.stop(2)
    assert (await attempt).ok
    late = await process.deliver(job(str(server.make_url("/ok"))))
    assert (late.kind, late.error) == ("error", "DelivererStopped: the deliverer is not running")


async def test_cancellation_propagates(server: TestServer, deliverer: Deliverer) -> None:
    attempt = asyncio.create_task(deliverer.deliver(job(str(server.make_url("/slow")))))
    await asyncio.sleep(0.1)
    attempt.cancel()
    with pytest.raises(asyncio.CancelledError):
        await attempt
