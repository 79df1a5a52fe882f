"""Test fixtures: one real PostgreSQL per session (started by the embedded code),
migrated once into a template; every test that needs a database gets a fresh
copy (CREATE DATABASE ... TEMPLATE), and in-process nodes on free ports."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest

from supervisor.node.config import Config
from supervisor.node.migrate import migrate
from supervisor.node.postgres import EmbeddedPostgres

# The real-browser fixtures `browser` and `browser_page` (tests/browser.py).
pytest_plugins = ("tests.browser",)

TEMPLATE = "triggerd_template"
_counter = itertools.count()


def dsn_for(dsn: str, database: str) -> str:
    """The same server, another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _build_template(dsn: str) -> None:
    admin = await asyncpg.connect(dsn_for(dsn, "postgres"))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        await admin.execute(f"CREATE DATABASE {TEMPLATE}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(dsn_for(dsn, TEMPLATE))
    try:
        await migrate(conn)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    data_dir = Path(tempfile.mkdtemp(prefix="tgd-", dir="/tmp"))
    data_dir.chmod(0o755)  # the server runs as another user when we are root
    server = EmbeddedPostgres(data_dir)
    try:
        dsn = server.start()
        asyncio.run(_build_template(dsn))
        yield server
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
async def database_url(pg_server: EmbeddedPostgres) -> AsyncIterator[str]:
    """A freshly migrated database of its own for one test."""
    name = f"t_{os.getpid()}_{next(_counter)}"
    admin = await asyncpg.connect(dsn_for(pg_server.dsn, "postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    finally:
        await admin.close()
    yield dsn_for(pg_server.dsn, name)
    admin = await asyncpg.connect(dsn_for(pg_server.dsn, "postgres"))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


def node_config(database_url: str, **changes: object) -> Config:
    return Config(database_url=database_url, port=free_port(), roles=frozenset({"ingest"}),
                  shutdown_timeout=2.0).replace(**changes)


class Api:
    """A client for one running node."""

    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        self.base = base
        self.session = session

    def request(self, method: str, path: str,
                **kwargs: object) -> aiohttp.client._RequestContextManager:
        return self.session.request(method, self.base + path, **kwargs)  # type: ignore[arg-type]

    async def call(self, method: str, path: str, key: str | None = None,
                   **kwargs: object) -> tuple[int, dict[str, object], aiohttp.ClientResponse]:
        headers = dict(kwargs.pop("headers", {}) or {})  # type: ignore[call-overload]
        if key is not None:
            headers["X-API-Key"] = key
        async with self.request(method, path, headers=headers, **kwargs) as resp:
            body = await resp.json(content_type=None)
            return resp.status, body, resp

    async def new_org(self, name: str = "acme", tier: str = "enterprise") -> str:
        status, body, _ = await self.call("POST", "/api/keys/generate",
                                          json={"organization_name": name, "tier": tier})
        assert status == 201, body
        return str(body["api_key"])


@pytest.fixture
async def node(database_url: str) -> AsyncIterator[object]:
    from supervisor.node.tree import Node

    running = Node(node_config(database_url))
    await running.root.start()
    yield running
    await running.root.stop(10)


@pytest.fixture
async def api(node: object) -> AsyncIterator[Api]:
    port = node.config.port  # type: ignore[attr-defined]
    async with aiohttp.ClientSession() as session:
        yield Api(f"http://127.0.0.1:{port}", session)


@pytest.fixture
async def own_server() -> AsyncIterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own, which it may stop and start."""
    data_dir = Path(tempfile.mkdtemp(prefix="tgd-own-", dir="/tmp"))
    data_dir.chmod(0o755)  # the server runs as another user when we are root
    server = EmbeddedPostgres(data_dir)
    try:
        dsn = await asyncio.to_thread(server.start)
        conn = await asyncpg.connect(dsn)
        await migrate(conn)
        await conn.close()
        yield server
    finally:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(data_dir, ignore_errors=True)
