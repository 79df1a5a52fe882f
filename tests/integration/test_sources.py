"""Sources end to end on a real node: each kind signed by the provider's own library
(stripe, slack_sdk, standardwebhooks) or by its documented vector (GitHub), every
invalid case answered 401 and recorded, duplicates answered 200 and stored once, Slack's
handshake, isolation between organizations, and an event followed to an endpoint."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from slack_sdk.signature import SignatureVerifier
from standardwebhooks.webhooks import Webhook
from stripe import WebhookSignature

from tests.conftest import Api
from tests.integration.test_delivery import endpoint, running
from tests.receiver import receiver

GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_VECTOR = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


async def source(api: Api, key: str, kind: str, **fields: Any) -> dict[str, Any]:
    status, body, _ = await api.call("POST", "/api/sources", key,
                                     json={"name": f"my {kind}", "kind": kind, **fields})
    assert status == 201, body
    assert body["ingest_path"] == f"/in/{body['ingest_url'].rsplit('/', 1)[1]}"
    return body


async def send(api: Api, src: dict[str, Any], body: bytes,
               headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with api.request("POST", src["ingest_path"], data=body,
                           headers={"Content-Type": "application/json", **headers}) as resp:
        return resp.status, json.loads(await resp.read())


def stripe_header(body: bytes, secret: str, at: int | None = None) -> dict[str, str]:
    t = int(time.time()) if at is None else at
    v1 = WebhookSignature._compute_signature(f"{t}.{body.decode()}", secret)
    return {"Stripe-Signature": f"t={t},v1={v1}"}


async def rejections(api: Api, key: str, src: dict[str, Any]) -> list[dict[str, Any]]:
    for _ in range(50):  # recorded beside the answer
        status, body, _ = await api.call("GET", f"/api/sources/{src['id']}/rejections", key)
        assert status == 200, body
        if body["rejections"]:
            return list(body["rejections"])
        await __import__("asyncio").sleep(0.05)
    return []


async def test_stripe_valid_invalid_and_duplicates(api: Api, db: asyncpg.Connection) -> None:
    key = await api.new_org()
    src = await source(api, key, "stripe", secret="whsec_test_secret")
    body = b'{"id": "evt_1", "type": "invoice.paid", "data": {"amount": 12.50}}'
    WebhookSignature.verify_header(body.decode(), stripe_header(body, "whsec_test_secret")[
        "Stripe-Signature"], "whsec_test_secret", 300)  # the library agrees with itself
    status, first = await send(api, src, body, stripe_header(body, "whsec_test_secret"))
    assert status == 200 and first["status"] == "accepted", first
    status, again = await send(api, src, body, stripe_header(body, "whsec_test_secret"))
    assert status == 200 and again == {"id": first["id"], "status": "duplicate"}
    assert await db.fetchval("SELECT count(*) FROM events") == 1
    _, event, _ = await api.call("GET", f"/api/events/{first['id']}", key)
    assert event["type"] == "invoice.paid" and event["source_id"] == src["id"]
    assert event["provider_id"] == "evt_1" and event["payload"]["data"]["amount"] == 12.50
    stale = int(time.time()) - 301
    cases = [
        (stripe_header(body, "whsec_wrong"), "signature does not match"),
        (stripe_header(body, "whsec_test_secret", stale), "timestamp older than 300 s"),
        ({}, "missing Stripe-Signature header"),
        ({"Stripe-Signature": "t=1,v0=abc"}, "no v1= in Stripe-Signature"),
    ]
    for headers, reason in cases:
        status, answer = await send(api, src, body, headers)
        assert (status, answer["error"]) == (401, reason), (headers, answer)
    tampered = body.replace(b"12.50", b"12.51")
    status, answer = await send(api, src, tampered, stripe_header(body, "whsec_test_secret"))
    assert (status, answer["error"]) == (401, "signature does not match")
    recorded = await rejections(api, key, src)
    assert {r["reason"] for r in recorded} <= {"bad_signature", "stale_timestamp",
                                               "missing_signature", "malformed_signature"}
    assert all("Stripe-Signature" in r["headers"] or r["reason"] == "missing_signature"
               for r in recorded)
    assert await db.fetchval("SELECT count(*) FROM events") == 1


async def test_stripe_rotation_keeps_both_secrets(api: Api) -> None:
    key = await api.new_org()
    src = await source(api, key, "stripe", secret="whsec_old")
    status, rotated, _ = await api.call("POST", f"/api/sources/{src['id']}/rotate-secret", key,
                                        json={"secret": "whsec_new"})
    assert status == 200 and rotated["secret"] == "whsec_new" and rotated["secret_count"] == 2
    for n, secret in enumerate(("whsec_old", "whsec_new")):
        body = json.dumps({"id": f"evt_{n}", "type": "a.b"}).encode()
        status, answer = await send(api, src, body, stripe_header(body, secret))
        assert status == 200, answer
    await api.call("POST", f"/api/sources/{src['id']}/rotate-secret", key, json={})
    body = b'{"id": "evt_9", "type": "a.b"}'
    status, _ = await send(api, src, body, stripe_header(body, "whsec_old"))
    assert status == 401  # two rotations later


async def test_github_documented_vector(api: Api) -> None:
    key = await api.new_org()
    src = await source(api, key, "github", secret=GITHUB_SECRET)
    assert hmac.new(GITHUB_SECRET.encode(), b"Hello, World!",
                    hashlib.sha256).hexdigest() == GITHUB_VECTOR
    body = b'{"action": "opened", "issue": {"number": 1}}'
    signature = "sha256=" + hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-GitHub-Event": "issues", "X-GitHub-Delivery": "d-1",
               "X-Hub-Signature-256": signature}
    status, answer = await send(api, src, body, headers)
    assert status == 200, answer
    _, event, _ = await api.call("GET", f"/api/events/{answer['id']}", key)
    assert event["type"] == "issues.opened" and event["provider_id"] == "d-1"
    # the vector itself: verified (not 401), then refused as a body that is not JSON
    status, answer = await send(api, src, b"Hello, World!", {
        **headers, "X-Hub-Signature-256": f"sha256={GITHUB_VECTOR}"})
    assert status == 400 and answer["error"].startswith("body is not JSON")
    status, answer = await send(api, src, body + b" ", headers)
    assert status == 401 and answer["error"] == "signature does not match"
    status, answer = await send(api, src, body, {"X-GitHub-Event": "issues"})
    assert status == 401 and answer["error"] == "missing X-Hub-Signature-256 header"


async def test_shopify(api: Api) -> None:
    key = await api.new_org()
    src = await source(api, key, "shopify", secret="shpss_abc")
    body = b'{"id": 820982911946154508, "total": "10.00"}'
    digest = base64.b64encode(hmac.new(b"shpss_abc", body, hashlib.sha256).digest()).decode()
    headers = {"X-Shopify-Hmac-Sha256": digest, "X-Shopify-Topic": "orders/create",
               "X-Shopify-Webhook-Id": "w-1"}
    status, answer = await send(api, src, body, headers)
    assert status == 200, answer
    _, event, _ = await api.call("GET", f"/api/events/{answer['id']}", key)
    assert event["type"] == "orders/create" and event["payload"]["id"] == 820982911946154508
    status, answer = await send(api, src, body, {**headers, "X-Shopify-Hmac-Sha256": "AAAA"})
    assert status == 401


async def test_slack_signed_by_slack_sdk_and_handshake(api: Api) -> None:
    key = await api.new_org()
    src = await source(api, key, "slack", secret="8f742231b10e8888abcd99yyyzzz85a5")
    signer = SignatureVerifier(src["secret"])

    def signed(body: bytes, at: int) -> dict[str, str]:
        return {"X-Slack-Request-Timestamp": str(at),
                "X-Slack-Signature": str(signer.generate_signature(timestamp=str(at),
                                                                   body=body))}
    now = int(time.time())
    hello = b'{"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}'  # noqa: E501
    status, answer = await send(api, src, hello, signed(hello, now))
    assert (status, answer) == (200, {"challenge": json.loads(hello)["challenge"]})
    body = b'{"type": "event_callback", "event_id": "Ev1", "event": {"type": "app_mention"}}'
    assert signer.is_valid(body, str(now), signed(body, now)["X-Slack-Signature"])
    status, answer = await send(api, src, body, signed(body, now))
    assert status == 200, answer
    _, event, _ = await api.call("GET", f"/api/events/{answer['id']}", key)
    assert event["type"] == "app_mention" and event["provider_id"] == "Ev1"
    for at, error in ((now - 301, "timestamp older than 300 s"),
                      (now + 301, "timestamp more than 300 s ahead")):
        status, answer = await send(api, src, body, signed(body, at))
        assert (status, answer["error"]) == (401, error)
    status, answer = await send(api, src, hello, {"X-Slack-Signature": "v0=00"})
    assert (status, answer["error"]) == (401, "missing signature timestamp")


async def test_standard_webhooks_and_isolation(api: Api) -> None:
    key, other = await api.new_org("a"), await api.new_org("b")
    src = await source(api, key, "standard-webhooks")
    signer = Webhook(src["secret"])
    body = '{"type": "user.created", "data": {"id": 1}}'
    now = datetime.now(UTC)

    def signed(msg_id: str, at: datetime, data: str = body) -> dict[str, str]:
        return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
                "webhook-signature": signer.sign(msg_id, at, data)}
    status, answer = await send(api, src, body.encode(), signed("msg_1", now))
    assert status == 200, answer
    status, again = await send(api, src, body.encode(), signed("msg_1", now))
    assert status == 200 and again["status"] == "duplicate"
    for at in (now - timedelta(seconds=400), now + timedelta(seconds=400)):
        status, _ = await send(api, src, body.encode(), signed("msg_2", at))
        assert status == 401
    status, _ = await send(api, src, body.encode(), {**signed("msg_3", now),
                                                     "webhook-id": "msg_4"})
    assert status == 401
    status, _, _ = await api.call("GET", f"/api/sources/{src['id']}", other)
    assert status == 404
    status, listed, _ = await api.call("GET", "/api/sources", other)
    assert listed["sources"] == []
    status, _, _ = await api.call("GET", f"/api/events/{answer['id']}", other)
    assert status == 404
    status, _, _ = await api.call("DELETE", f"/api/sources/{src['id']}", other)
    assert status == 404
    status, _, _ = await api.call("DELETE", f"/api/sources/{src['id']}", key)
    assert status == 200
    status, _ = await send(api, src, body.encode(), signed("msg_5", now))
    assert status == 404


async def test_hmac_as_data_and_none_needs_the_operator(api: Api) -> None:
    key = await api.new_org()
    settings = {"header": "X-Sig", "prefix": "sha512=", "algorithm": "sha512",
                "key_encoding": "base64", "digest_encoding": "base64",
                "template": "{timestamp}:{body}", "timestamp": {"header": "X-Ts"},
                "type_from": {"path": "kind"}, "id_from": {"header": "X-Id"}}
    src = await source(api, key, "hmac", settings=settings)
    raw_key = base64.b64decode(src["secret"])
    body, at = b'{"kind": "thing.done"}', str(int(time.time()))
    digest = hmac.new(raw_key, f"{at}:".encode() + body, hashlib.sha512).digest()
    headers = {"X-Sig": "sha512=" + base64.b64encode(digest).decode(), "X-Ts": at,
               "X-Id": "i-1"}
    status, answer = await send(api, src, body, headers)
    assert status == 200, answer
    _, event, _ = await api.call("GET", f"/api/events/{answer['id']}", key)
    assert event["type"] == "thing.done" and event["provider_id"] == "i-1"
    status, answer = await send(api, src, body, {**headers, "X-Ts": str(int(at) + 1)})
    assert status == 401
    status, bad, _ = await api.call("POST", "/api/sources", key, json={
        "name": "x", "kind": "hmac", "settings": {"header": "X", "template": "{id}{body}"}})
    assert status == 400, bad
    status, bad, _ = await api.call("POST", "/api/sources", key,
                                    json={"name": "x", "kind": "none"})
    assert status == 403, bad


async def test_events_from_a_source_are_delivered(database_url: str) -> None:
    async with receiver() as rx, running(database_url, allow_unverified_sources=True) \
            as (_, api):
        key = await api.new_org()
        ep = await endpoint(api, key, rx.url("/hook"), event_types=["invoice.*"])
        src = await source(api, key, "stripe")
        body = b'{"id": "evt_42", "type": "invoice.paid", "amount": 100000000000000000001}'
        status, answer = await send(api, src, body, stripe_header(body, src["secret"]))
        assert status == 200, answer
        await rx.wait_for(lambda: len(rx.at("/hook")) == 1)
        got = rx.at("/hook")[0]
        Webhook(ep["secret"]).verify(got.body, got.headers)
        delivered = json.loads(got.body)
        assert delivered["type"] == "invoice.paid" and delivered["id"] == answer["id"]
        assert delivered["data"] == json.loads(body)
        open_src = await source(api, key, "none", settings={"type_from": {"path": "type"}})
        status, answer = await send(api, open_src, b'{"type": "invoice.x"}', {})
        assert status == 200, answer
        await rx.wait_for(lambda: len(rx.at("/hook")) == 2)
