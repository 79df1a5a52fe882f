"""`triggerd postgres` as real processes: the embedded PostgreSQL of a data dir run as a
service of its own (triggerd-postgres.service), reused by a node on the same data dir
and still up after that node stops; SIGTERM stops the server and exits 0."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from supervisor.node import pgsystem
from tests.conftest import free_port
from tests.notify import NotifySocket

ROOT = Path(__file__).resolve().parents[2]
_SYSTEMD = {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "DATABASE_URL", "PORT"}


class Process:
    """`triggerd <command>` in a process of its own; its stderr collected line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def spawn(cls, env: dict[str, str], *args: str) -> Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "supervisor.node.cli", *args, cwd=ROOT, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    async def stop(self, timeout: float = 60.0) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()
        await self._reader
        return code


def _environ(data_dir: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in _SYSTEMD and not k.startswith("TRIGGERD_")}
    return {**env, "TRIGGERD_LOG_FORMAT": "text", "TRIGGERD_DATA_DIR": str(data_dir),
            **settings}


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="tgd-pgsvc-", dir="/tmp"))
    path.chmod(0o755)  # the server runs as another user when we are root
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def notify_sockets() -> Iterator[tuple[NotifySocket, NotifySocket]]:
    service, node = NotifySocket(), NotifySocket()
    yield service, node
    service.close()
    node.close()


async def _accepts(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError):
        return False
    try:
        return bool(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


async def _until_gone(pid: int, cluster: Path, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while pgsystem.postmaster_alive(pid, cluster):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


@pytest.mark.slow
async def test_a_node_reuses_the_service_and_leaves_it_up(
    data_dir: Path, notify_sockets: tuple[NotifySocket, NotifySocket]
) -> None:
    service_socket, node_socket = notify_sockets
    service = await Process.spawn(
        _environ(data_dir, **service_socket.environ(watchdog_usec=1_000_000)), "postgres")
    try:
        ready = (await service_socket.wait_for("READY", "1", timeout=120))[0]
        status = ready.fields()["STATUS"]
        cluster = data_dir / "pg"
        pid = int((cluster / "postmaster.pid").read_text().split("\n", 1)[0])
        dsn = status.rsplit(", ", 1)[1]
        assert status.startswith(f"ready: PostgreSQL pid {pid} of {cluster}, postgresql://")
        assert f"host={cluster}" in dsn and await _accepts(dsn)
        await service_socket.wait_for("WATCHDOG", "1", count=2, timeout=10)

        node = await Process.spawn(_environ(data_dir, PORT=str(free_port()),
                                            TRIGGERD_ROLES="ingest", **node_socket.environ()),
                                   "serve")
        await node_socket.wait_for("READY", "1", timeout=60)
        assert await node.stop() == 0
        assert any("reusing the PostgreSQL already running" in line for line in node.lines)
        # The node was not the last user: the server is the same one, and answers.
        assert pgsystem.postmaster_alive(pid, cluster) and await _accepts(dsn)
        assert service.proc.returncode is None
    finally:
        code = await service.stop()
    assert code == 0, service.lines
    assert await _until_gone(pid, cluster)
    assert service_socket.with_field("STOPPING", "1")
    assert not any("Traceback" in line for line in service.lines)


@pytest.mark.slow
async def test_sigterm_stops_the_server_even_with_a_node_on_it(
    data_dir: Path, notify_sockets: tuple[NotifySocket, NotifySocket]
) -> None:
    service_socket, node_socket = notify_sockets
    service = await Process.spawn(_environ(data_dir, **service_socket.environ()), "postgres")
    await service_socket.wait_for("READY", "1", timeout=120)
    cluster = data_dir / "pg"
    pid = int((cluster / "postmaster.pid").read_text().split("\n", 1)[0])
    node = await Process.spawn(_environ(data_dir, PORT=str(free_port()),
                                        TRIGGERD_ROLES="ingest", **node_socket.environ()),
                               "serve")
    try:
        await node_socket.wait_for("READY", "1", timeout=60)
        assert await service.stop() == 0, service.lines
        assert await _until_gone(pid, cluster)  # stopped under the node, as systemd would
    finally:
        await node.stop()


async def test_refuses_when_database_url_is_set(data_dir: Path) -> None:
    service = await Process.spawn(
        _environ(data_dir, DATABASE_URL="postgresql://triggerd@127.0.0.1:1/triggerd"),
        "postgres")
    await asyncio.wait_for(service.proc.wait(), 30)
    assert await service.stop() == 2
    assert service.lines == [
        "triggerd: configuration error: DATABASE_URL is set, so no node uses the embedded "
        "PostgreSQL: unset it for `triggerd postgres`, or do not run it"]
