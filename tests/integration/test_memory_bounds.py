"""Memory stays bounded under floods a stranger can send without an account: made-up
API keys, well-formed or not, and requests with made-up dedup ids are not kept."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import Api, free_port
from tests.integration.test_durability import _wait_ready

ROOT = Path(__file__).resolve().parents[2]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _random_key(well_formed: bool) -> str:
    if well_formed:
        return "tgd_" + base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    return "x" * 20 + os.urandom(2000).hex()  # 4 KB of garbage


async def _flood(session: aiohttp.ClientSession, url: str, count: int) -> None:
    async def one(i: int) -> None:
        async with session.get(url, headers={"X-API-Key": _random_key(i % 2 == 0)}) as resp:
            assert resp.status == 401, await resp.text()

    for start in range(0, count, 64):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + 64))))


@pytest.mark.slow
async def test_a_flood_of_made_up_keys_leaves_memory_flat(database_url: str) -> None:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "PORT": str(port),
           "TRIGGERD_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "supervisor.node.cli", "serve"], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL)
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(f"http://127.0.0.1:{port}", session)
            await _wait_ready(api, proc)
            url = api.base + "/api/keys"
            await _flood(session, url, 5_000)  # warm: caches, pools, allocator arenas
            before = _rss_kib(proc.pid)
            await _flood(session, url, 30_000)
            grown = _rss_kib(proc.pid) - before
        assert grown < 10 * 1024, f"RSS grew by {grown} KiB"
    finally:
        proc.terminate()
        proc.wait(10)
