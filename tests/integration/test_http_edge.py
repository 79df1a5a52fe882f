"""The HTTP edge against malformed, greedy and slow clients: protocol errors answered in
JSON, a cap on open connections, and a deadline for a request's head."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest

from supervisor.node.tree import Node
from tests.conftest import node_config


@pytest.fixture
async def edge(database_url: str) -> AsyncIterator[Node]:
    running = Node(node_config(database_url, http_keepalive_timeout=1.0,
                               http_max_connections=40))
    await running.root.start()
    yield running
    await running.root.stop(10)


async def _exchange(port: int, raw: bytes,
                    timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


MALFORMED = {
    "nul in a header": b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "too many headers": b"GET /health/live HTTP/1.1\r\nHost: x\r\n"
                        + b"".join(b"X-%d: v\r\n" % i for i in range(8000)) + b"\r\n",
    "an oversized line": b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "a bad content-length": b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Length: x1\r\n\r\n",
    "two content-lengths": b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                           b"Content-Length: 2\r\n\r\nab",
    "not http at all": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
    "a bad method": b"G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("case", MALFORMED)
async def test_protocol_errors_are_json(edge: Node, case: str,
                                        caplog: pytest.LogCaptureFixture) -> None:
    status, headers, body = await _exchange(edge.config.port, MALFORMED[case])
    assert 400 <= status < 500, (status, body)
    assert headers["content-type"].startswith("application/json"), headers
    assert "error" in json.loads(body)
    assert not [r for r in caplog.records if r.exc_info or r.levelname == "ERROR"]


async def test_connections_over_the_cap_are_refused_at_once(edge: Node) -> None:
    port = edge.config.port
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(40)]
    try:
        await asyncio.sleep(0.05)
        status, _, body = await _exchange(port, b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 503 and json.loads(body) == {"error": "Too many connections"}
    finally:
        for _, writer in idle:
            writer.close()
    await asyncio.sleep(0.2)
    status, _, _ = await _exchange(port, b"GET /health/live HTTP/1.1\r\nHost: x\r\n"
                                         b"Connection: close\r\n\r\n")
    assert status == 200


async def _trickle(port: int) -> float:
    """Sends a request head a byte at a time; returns how long the node kept it open."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        for byte in b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            writer.write(bytes([byte]))
            await writer.drain()
            if await _closed(reader, 0.25):
                break
    except ConnectionError:
        pass
    finally:
        writer.close()
    return time.monotonic() - started


async def _closed(reader: asyncio.StreamReader, wait: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), wait) == b""
    except TimeoutError:
        return False


async def test_a_trickled_request_head_is_cut_and_others_are_served(edge: Node) -> None:
    port = edge.config.port
    slow = [asyncio.create_task(_trickle(port)) for _ in range(30)]
    await asyncio.sleep(0.3)
    latencies = []
    for _ in range(5):  # an ordinary client meanwhile, on connections of its own
        started = time.monotonic()
        status, _, _ = await _exchange(port, b"GET /health/live HTTP/1.1\r\nHost: x\r\n"
                                             b"Connection: close\r\n\r\n")
        latencies.append(time.monotonic() - started)
        assert status == 200
    held = await asyncio.gather(*slow)
    assert max(held) < 4.0, held  # keep-alive timeout 1 s: the head had 1 s to arrive
    assert max(latencies) < 1.0, latencies


async def test_a_thousand_slow_connections_hold_nothing(database_url: str) -> None:
    node = Node(node_config(database_url, http_keepalive_timeout=2.0))
    await node.root.start()
    port = node.config.port
    slow: list[asyncio.StreamWriter] = []
    try:
        for _ in range(1000):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /api/events HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            slow.append(writer)
        latencies = []
        for _ in range(20):
            started = time.monotonic()
            status, _, _ = await _exchange(port, b"GET /health/live HTTP/1.1\r\nHost: x\r\n"
                                                 b"Connection: close\r\n\r\n")
            latencies.append(time.monotonic() - started)
            assert status == 200
        assert sorted(latencies)[10] < 0.1, latencies  # the median: served at once
        await asyncio.sleep(2.5)  # past the deadline for a request head: all cut off
        assert len(node.root.child("ingest").child("http")._runner.server.connections) == 0
    finally:
        for writer in slow:
            writer.close()
        await node.root.stop(10)
