"""Payload filters through the API only, as a user would: endpoints with filters, mixed
events, a receiver path per endpoint recording what arrives; test-filter's answers; a
source's headers matched; refusals naming the place of the fault; other organizations."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any

import asyncpg

from tests.conftest import Api
from tests.integration.delivery_helpers import new_endpoint
from tests.integration.test_delivery import endpoint, running, wait_statuses
from tests.integration.test_sources import send, source
from tests.receiver import Receiver, receiver

FILTERS: dict[str, Any] = {
    "big": {"data": {"amount": {"$gte": 1000}, "currency": {"$in": ["usd", "eur"]}}},
    "vip": {"$or": [{"data": {"customer": {"tier": "gold"}}},
                    {"data": {"customer": {"tags": {"$in": ["vip"]}}}}]},
    "not_test": {"$not": {"data": {"test": True}}, "type": {"$startsWith": "order."}},
    "has_coupon": {"data": {"coupon": {"$exist": True}}},
    "exact": {"data": {"n": {"$eq": 18446744073709551616}}},
}
EVENTS: list[tuple[str, dict[str, Any], set[str]]] = [
    ("order.created", {"amount": 1500, "currency": "usd"}, {"big", "not_test"}),
    ("order.created", {"amount": 999, "currency": "usd"}, {"not_test"}),
    ("order.created", {"amount": 5000, "currency": "gbp", "test": True}, set()),
    ("order.created", {"amount": "5000", "currency": "usd"}, {"not_test"}),  # a string
    ("invoice.paid", {"customer": {"tier": "gold"}, "amount": 10}, {"vip"}),
    ("invoice.paid", {"customer": {"tags": ["new", "vip"]}}, {"vip"}),
    ("order.paid", {"coupon": None, "test": False}, {"not_test", "has_coupon"}),
    ("order.paid", {"n": 18446744073709551616}, {"not_test", "exact"}),
    ("order.paid", {"n": 18446744073709551617}, {"not_test"}),
    ("misc", {"amount": 1e400, "currency": "eur", "customer": None}, {"big"}),
]


async def _post_raw(api: Api, key: str, body: str) -> str:
    status, answer, _ = await api.call("POST", "/api/events", key, data=body,
                                       headers={"Content-Type": "application/json"})
    assert status == 202, answer
    return str(answer["id"])


def _arrived(rx: Receiver, name: str) -> list[str]:
    return sorted(json.loads(r.body)["id"] for r in rx.at(f"/{name}"))


async def test_each_endpoint_receives_exactly_what_its_filter_matches(
        database_url: str, db: asyncpg.Connection) -> None:
    async with receiver() as rx, running(database_url) as (_, api):
        key = await api.new_org()
        for name, flt in FILTERS.items():
            ep = await endpoint(api, key, rx.url(f"/{name}"), filter=flt)
            assert ep["filter"] == flt
        await endpoint(api, key, rx.url("/all"))
        want: dict[str, list[str]] = {name: [] for name in (*FILTERS, "all")}
        for type_, payload, matches in EVENTS:
            body = json.dumps({"type": type_, "payload": payload}).replace("Infinity", "1e400")
            event_id = await _post_raw(api, key, body)
            for name in (*matches, "all"):
                want[name].append(event_id)
        expected = sum(len(ids) for ids in want.values())
        await wait_statuses(db, {"delivered"}, expected)
        await asyncio.sleep(0.2)  # nothing more arrives
        for name, ids in want.items():
            assert _arrived(rx, name) == sorted(ids), name


async def test_test_filter_says_whether_and_why_not(api: Api) -> None:
    key = await api.new_org()
    ep = await new_endpoint(api, key, event_types=["order.*"], filter=FILTERS["big"])
    path = f"/api/endpoints/{ep['id']}/test-filter"
    status, yes, _ = await api.call("POST", path, key, json={"event": {
        "type": "order.created", "payload": {"amount": 1000, "currency": "eur"}}})
    assert status == 200, yes
    assert yes["matches"] and yes["type_matches"] and yes["filter_matches"]
    assert yes["reason"] is None
    _, no, _ = await api.call("POST", path, key, json={"event": {
        "type": "order.created", "payload": {"amount": 10, "currency": "eur"}}})
    assert not no["matches"] and no["type_matches"] and no["filter_matches"] is False
    assert "data.amount" in no["reason"], no
    failed = [c for c in no["conditions"] if not c["matched"]]
    assert [c["field"] for c in failed] == ["data.amount"], no
    _, wrong_type, _ = await api.call("POST", path, key, json={"event": {
        "type": "invoice.paid", "payload": {"amount": 5000, "currency": "usd"}}})
    assert not wrong_type["matches"] and not wrong_type["type_matches"]
    assert "event_types" in wrong_type["reason"]
    # a filter tried before it is saved
    _, tried, _ = await api.call("POST", path, key, json={
        "event": {"type": "order.created", "payload": {"amount": 10}},
        "filter": {"data": {"amount": {"$lt": 100}}}})
    assert tried["matches"] and tried["filter_tested"]
    _, shown, _ = await api.call("GET", f"/api/endpoints/{ep['id']}", key)
    assert shown["filter"] == FILTERS["big"]  # unchanged
    # another organization's endpoint is not found
    other = await api.new_org("other")
    status, _, _ = await api.call("POST", path, other, json={"event": {
        "type": "order.created", "payload": {}}})
    assert status == 404


async def test_bad_filters_are_400s_naming_the_place(api: Api) -> None:
    key = await api.new_org()
    ep = await new_endpoint(api, key)
    for flt, place in [
        ({"data": {"amount": {"$gte": [1]}}}, "filter.data.amount.$gte"),
        ({"data": {"amount": {"$foo": 1}}}, "filter.data.amount.$foo"),
        ({"$or": []}, "filter.$or"),
        ({"$or": [{"data": {"a": 1}}, 5]}, "filter.$or[1]"),
        ({"data": {"tags": ["a"]}}, "filter.data.tags"),
        ({"data": {"s": "nul\u0000"}}, "filter.data.s"),
        ([1], "filter"),
        ("x", "filter"),
    ]:
        for method, url in (("POST", "/api/endpoints"), ("PATCH", f"/api/endpoints/{ep['id']}")):
            fields: dict[str, Any] = {"filter": flt}
            if method == "POST":
                fields["url"] = "https://93.184.216.34/hook"
            status, body, _ = await api.call(method, url, key, json=fields)
            assert status == 400, (flt, body)
            assert body["error"].startswith(place), (flt, body)
    deep: dict[str, Any] = {"x": 1}
    for _ in range(20):
        deep = {"d": deep}
    status, body, _ = await api.call("PATCH", f"/api/endpoints/{ep['id']}", key,
                                     json={"filter": {"data": deep}})
    assert status == 400 and "filter" in body["error"], body
    status, body, _ = await api.call("POST", f"/api/endpoints/{ep['id']}/test-filter", key,
                                     json={"event": {"type": "t", "payload": {}},
                                           "filter": {"$nope": 1}})
    assert status == 400 and body["error"].startswith("filter.$nope"), body
    for bad in ({}, {"event": 5}, {"event": {"type": "t"}},
                {"event": {"type": "t", "payload": {}, "headers": {"a": 1}}},
                {"event": {"type": "t", "payload": {}, "extra": 1}}):
        status, body, _ = await api.call("POST", f"/api/endpoints/{ep['id']}/test-filter",
                                         key, json=bad)
        assert status == 400 and "error" in body, (bad, body)


async def test_a_filter_changed_or_cleared_applies_to_the_next_events(
        database_url: str, db: asyncpg.Connection) -> None:
    async with receiver() as rx, running(database_url) as (_, api):
        key = await api.new_org()
        ep = await endpoint(api, key, rx.url("/f"), filter={"data": {"n": 1}})
        first = await _post_raw(api, key, '{"type": "t", "payload": {"n": 1}}')
        await _post_raw(api, key, '{"type": "t", "payload": {"n": 2}}')
        await wait_statuses(db, {"delivered"}, 1)
        status, body, _ = await api.call("PATCH", f"/api/endpoints/{ep['id']}", key,
                                         json={"filter": None})
        assert status == 200 and body["filter"] is None
        third = await _post_raw(api, key, '{"type": "t", "payload": {"n": 3}}')
        await wait_statuses(db, {"delivered"}, 2)
        assert _arrived(rx, "f") == sorted([first, third])


async def test_a_source_event_matches_on_its_headers(database_url: str,
                                                     db: asyncpg.Connection) -> None:
    secret = "s3cret"
    async with receiver() as rx, running(database_url) as (_, api):
        key = await api.new_org()
        src = await source(api, key, "github", secret=secret)
        await endpoint(api, key, rx.url("/pushes"),
                       filter={"headers": {"x-github-event": "push"}})
        ids = []
        for event, delivery in (("push", "d-1"), ("issues", "d-2")):
            body = json.dumps({"action": "x", "ref": "main"}).encode()
            signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            status, answer = await send(api, src, body, {
                "X-GitHub-Event": event, "X-GitHub-Delivery": delivery,
                "X-Hub-Signature-256": signature})
            assert status == 200, answer
            ids.append(answer["id"])
        await wait_statuses(db, {"delivered"}, 1)
        await asyncio.sleep(0.2)
        assert _arrived(rx, "pushes") == [ids[0]]
        _, event, _ = await api.call("GET", f"/api/events/{ids[0]}", key)
        assert event["headers"]["x-github-event"] == "push"
        assert "x-hub-signature-256" not in event["headers"]  # never the signature
