"""Several `triggerd serve --reuse-port` processes on one port, as real processes.

Two processes on one port and one data dir (the embedded PostgreSQL) start at the same
moment and both become ready; fresh connections land on both (each scrape of /metrics
names the node that answered, and the ingest requests counted by the two add up to
those sent); events posted through the shared port are stored once and delivered once
to a real receiver; the first stopped (SIGTERM, exit 0) leaves the second serving on
the PostgreSQL it started, and stopping the second stops PostgreSQL. Without
--reuse-port, or against a process that does not share the port, or one that is no node
of this database, the second start is one line and exit 1.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from supervisor.node.postgres import EmbeddedPostgres
from tests.conftest import TEMPLATE, dsn_for, free_port
from tests.integration.test_operations import ROOT, Node, _environ
from tests.receiver import Receiver, receiver

pytestmark = pytest.mark.slow

EVENTS = 60
NODE_INFO = re.compile(r'^triggerd_node_info\{node="([^"]+)"\} 1\.0$', re.M)
INGEST_2XX = re.compile(r'^triggerd_http_request_seconds_count\{route_group="ingest",'
                        r'status_class="2xx"\} ([0-9.e+]+)$', re.M)


async def spawn(env: dict[str, str], *serve_args: str) -> Node:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "supervisor.node.cli", "serve", *serve_args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    return Node(proc)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="tgd-rp-", dir="/tmp"))
    path.chmod(0o755)  # the server runs as another user when we are root
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def fresh() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that opens a new connection for every request: the kernel picks the
    process of each one."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


def _postmaster(data_dir: Path) -> int | None:
    try:
        pid = int((data_dir / "pg" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


async def _scrape_each(http: aiohttp.ClientSession, url: str,
                       names: set[str]) -> dict[str, float]:
    """The ingest 2xx count of each node in `names`, each from a scrape it answered."""
    counts: dict[str, float] = {}
    for _ in range(200):
        async with http.get(url + "/metrics") as resp:
            text = await resp.text()
        node = NODE_INFO.search(text)
        assert node is not None, text[:500]
        found = INGEST_2XX.search(text)
        counts[node.group(1)] = float(found.group(1)) if found else 0.0
        if set(counts) == names:
            return counts
    raise AssertionError(f"the kernel never chose all of {names}: {counts}")


async def _status(data_dir: Path, env: dict[str, str]) -> dict[str, object]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "supervisor.node.cli", "--json", "status", cwd=ROOT,
        env={**env, "TRIGGERD_DATA_DIR": str(data_dir)}, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    return dict(json.loads(out))


async def _post_events(http: aiohttp.ClientSession, url: str, key: str,
                       count: int, tag: str) -> list[str]:
    ids = []
    for i in range(count):
        async with http.post(url + "/api/events", headers={"X-API-Key": key}, json={
                "type": "order.created", "payload": {"n": i}, "dedup_id": f"{tag}-{i}"}) as resp:
            assert resp.status == 202, await resp.text()
            ids.append((await resp.json())["id"])
    return ids


async def _setup_org(http: aiohttp.ClientSession, url: str, hooks: Receiver) -> str:
    async with http.post(url + "/api/keys/generate",
                         json={"organization_name": "shared", "tier": "enterprise"}) as resp:
        assert resp.status == 201, await resp.text()
        key = str((await resp.json())["api_key"])
    async with http.post(url + "/api/endpoints", headers={"X-API-Key": key},
                         json={"url": hooks.url("/hooks")}) as resp:
        assert resp.status == 201, await resp.text()
    return key


@pytest.mark.timeout(240)
async def test_two_processes_share_one_port_and_one_embedded_postgres(
        data_dir: Path, fresh: aiohttp.ClientSession) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = _environ(PORT=str(port), TRIGGERD_DATA_DIR=str(data_dir),
                   TRIGGERD_ROLES="ingest,process,deliver", TRIGGERD_SHUTDOWN_TIMEOUT="2s",
                   TRIGGERD_ALLOW_PRIVATE_TARGETS="true", TRIGGERD_HEARTBEAT_INTERVAL="1s")
    # At the same moment, on a data dir that holds no cluster yet: one of them creates
    # and starts it (under the start lock), the other reuses it. One by the flag, one
    # by the setting.
    first, second = await asyncio.gather(
        spawn(env, "--reuse-port"), spawn({**env, "TRIGGERD_REUSE_PORT": "true"}))
    try:
        await asyncio.gather(first.wait_for_line("node up", 120),
                             second.wait_for_line("node up", 120))
        status = await _status(data_dir, env)
        nodes = {str(n["name"]) for n in status["nodes"]  # type: ignore[attr-defined]
                 if n["alive"]}
        assert len(nodes) == 2 and all(name.endswith(f":{port}") for name in nodes), status
        assert {int(n.split(":")[1]) for n in nodes} == {first.proc.pid, second.proc.pid}

        async with receiver() as hooks:
            key = await _setup_org(fresh, url, hooks)
            ids = await _post_events(fresh, url, key, EVENTS, "shared")
            counts = await _scrape_each(fresh, url, nodes)
            assert all(n > 0 for n in counts.values()), counts  # both took requests
            assert sum(counts.values()) == EVENTS, counts
            await hooks.wait_for(lambda: len(hooks.at("/hooks")) >= EVENTS, 60)
            await asyncio.sleep(1.0)  # a duplicate would come now
            got = [r.headers["webhook-id"] for r in hooks.at("/hooks")]
            assert sorted(got) == sorted(ids)  # each once
            async with fresh.get(url + "/api/inbox?limit=1000",
                                 headers={"X-API-Key": key}) as resp:
                inbox = [e["id"] for e in (await resp.json())["events"]]
            assert sorted(inbox) == sorted(ids)  # stored once each

            postmaster = _postmaster(data_dir)
            assert postmaster is not None
            assert await first.stop() == 0
            for _ in range(10):  # every fresh connection now reaches the second
                async with fresh.get(url + "/health/ready") as resp:
                    assert resp.status == 200
            later = await _post_events(fresh, url, key, 1, "after")
            await hooks.wait_for(lambda: len(hooks.at("/hooks")) == EVENTS + 1, 30)
            assert hooks.at("/hooks")[-1].headers["webhook-id"] == later[0]
            assert _postmaster(data_dir) == postmaster  # still the same server
        assert await second.stop() == 0
        deadline = time.monotonic() + 15
        while _postmaster(data_dir) is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert _postmaster(data_dir) is None
    finally:
        for node in (first, second):
            if node.proc.returncode is None:
                await node.stop()
    for node in (first, second):
        assert not any("Traceback" in line for line in node.lines), node.lines


async def _other_database(pg: EmbeddedPostgres) -> str:
    name = f"rp_other_{os.getpid()}"
    admin = await asyncpg.connect(dsn_for(pg.dsn, "postgres"))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    finally:
        await admin.close()
    return dsn_for(pg.dsn, name)


def _held(reuse_port: bool) -> tuple[socket.socket, int]:
    sock = socket.socket()
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock, int(sock.getsockname()[1])


@pytest.mark.parametrize(("first", "second", "line"), [
    ("node", "", "PORT: 127.0.0.1:{port} is already in use by another process; stop it"),
    ("shared node", "", "PORT: 127.0.0.1:{port} is already in use by another process"),
    ("socket", "--reuse-port", "PORT: 127.0.0.1:{port} is already in use by a process "
                               "that does not share it"),
    ("shared socket", "--reuse-port", "PORT: 127.0.0.1:{port} is shared (SO_REUSEPORT) with "
                                      "pid {pid} (python"),
    ("other database", "--reuse-port", "PORT: 127.0.0.1:{port} is shared (SO_REUSEPORT) with "
                                       "pid {pid} (python"),
])
async def test_a_second_process_that_may_not_share_the_port_is_one_line_and_exit_1(
        first: str, second: str, line: str, database_url: str,
        pg_server: EmbeddedPostgres) -> None:
    env = _environ(DATABASE_URL=database_url, TRIGGERD_SHUTDOWN_TIMEOUT="2s")
    holder: Node | None = None
    sock: socket.socket | None = None
    try:
        if first.endswith("socket"):
            sock, port = _held(reuse_port=first == "shared socket")
            pid = os.getpid()
        else:
            port = free_port()
            database = await _other_database(pg_server) if first == "other database" \
                else database_url
            holder = await spawn({**env, "PORT": str(port), "DATABASE_URL": database},
                                 *(["--reuse-port"] if first != "node" else []))
            await holder.wait_for_line("node up", 60)
            pid = holder.proc.pid
        refused = await spawn({**env, "PORT": str(port)}, *filter(None, [second]))
        assert await refused.exit_code(30) == 1, refused.lines
        assert len(refused.lines) == 1, refused.lines
        assert refused.lines[0].startswith(
            "triggerd: cannot start: " + line.format(port=port, pid=pid)), refused.lines
        if holder is not None:  # it was left alone
            assert holder.proc.returncode is None
    finally:
        if sock is not None:
            sock.close()
        if holder is not None:
            assert await holder.stop() == 0
