"""Bytes that are not what the API expects get a JSON 4xx, never a 500; payloads are
stored and read back exactly as sent."""

from __future__ import annotations

import asyncio
import json

import pytest

from supervisor.node.tree import Node
from tests.conftest import Api
from tests.integration.delivery_helpers import new_endpoint


async def _raw(port: int, head: bytes, body: bytes = b"") -> tuple[int, dict[str, object]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        length = b"Content-Length: %d\r\n" % len(body) if body else b""
        writer.write(head + length + b"Connection: close\r\n\r\n" + body)
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(payload)


@pytest.mark.parametrize("header", [
    b"X-API-Key: tgd_\xff\xfe", b"X-API-Key: tgd_\xc3\xa9", b"Authorization: Bearer \xc3\xa9",
    b"Authorization: Bearer \xff", b"X-API-Key: " + b"k" * 8000,
])
async def test_keys_that_are_not_ascii_are_refused_as_json(node: Node, header: bytes) -> None:
    status, body = await _raw(node.config.port,
                              b"GET /api/keys HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n")
    assert status == 401 and "error" in body


async def test_admin_token_bytes_are_refused_as_json(database_url: str) -> None:
    from tests.conftest import node_config

    running = Node(node_config(database_url, admin_token="s3cret"))
    await running.root.start()
    try:
        for token in (b"\xc3\xa9", b"\xff\xfe", b"s3cret\xff"):
            status, body = await _raw(
                running.config.port,
                b"POST /api/keys/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                b"\r\nAuthorization: Bearer " + token + b"\r\n", b'{"organization_name": "x"}')
            assert status == 401 and "error" in body
    finally:
        await running.root.stop(10)


async def test_idempotency_key_that_is_not_utf8(node: Node, api: Api) -> None:
    key = await api.new_org()
    status, body = await _raw(
        node.config.port,
        b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"X-API-Key: " + key.encode() + b"\r\nIdempotency-Key: k\xff\xfe\r\n",
        b'{"type": "t", "payload": {}}')
    assert status == 400 and "Idempotency-Key" in str(body["error"])


async def test_path_values_out_of_range(api: Api) -> None:
    key = await api.new_org()
    status, body, _ = await api.call("GET", "/api/deliveries/" + "9" * 5000, key)
    assert status == 400, body
    endpoint = await new_endpoint(api, key)
    for since in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1969-12-31"):
        status, body, _ = await api.call("POST", f"/api/endpoints/{endpoint['id']}/recover",
                                         key, json={"since": since})
        assert status == 400, (since, body)


@pytest.mark.parametrize("literal", [
    "18446744073709551616", "-18446744073709551617", "123456789012345678901234567890.5",
    "0.10000000000000000001", "1e400", "19.99", "1.5e-7",
])
async def test_numbers_come_back_as_sent(api: Api, literal: str) -> None:
    key = await api.new_org()
    raw = '{"type": "t", "payload": {"n": ' + literal + "}}"
    status, body, _ = await api.call("POST", "/api/events", key, data=raw,
                                     headers={"Content-Type": "application/json"})
    assert status == 202, body
    async with api.request("GET", f"/api/events/{body['id']}",
                           headers={"X-API-Key": key}) as resp:
        stored = json.loads(await resp.read(), parse_float=str, parse_int=str)
    from decimal import Decimal
    assert Decimal(stored["payload"]["n"]) == Decimal(literal)


async def test_a_backslash_u_text_is_not_a_nul(api: Api) -> None:
    key = await api.new_org()
    status, body, _ = await api.call("POST", "/api/events", key,
                                     json={"type": "t", "payload": {"s": "\\u0000"}})
    assert status == 202, body
    _, event, _ = await api.call("GET", f"/api/events/{body['id']}", key)
    assert event["payload"] == {"s": "\\u0000"}
    status, body, _ = await api.call("POST", "/api/events", key,
                                     json={"type": "t", "payload": {"s": "\x00"}})
    assert status == 400 and "NUL" in str(body["error"])


@pytest.mark.parametrize("levels", [129, 300, 1100])
async def test_deep_nesting_is_a_400_for_events_and_batch_items(api: Api, levels: int) -> None:
    key = await api.new_org()
    payload = '{"a": ' + "[" * levels + "]" * levels + "}"
    single = '{"type": "t", "payload": ' + payload + "}"
    batch = '{"events": [' + single + "]}"
    for path, raw in (("/api/events", single), ("/api/events/batch", batch)):
        status, body, _ = await api.call("POST", path, key, data=raw,
                                         headers={"Content-Type": "application/json"})
        assert status == 400, (path, body)
