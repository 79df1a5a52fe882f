"""The suite's child processes (nodes, baselines, receiver) and its PostgreSQL.

Every child is a direct `python -m ...` subprocess (no shell), so its pid is the one whose
resident memory is sampled. Its output goes to `<log dir>/<name>.log`; a child that dies
or never gets ready raises `ChildFailed` with the tail of that log.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

from benchmarks.cpu import tree_cpu
from supervisor.node.migrate import migrate
from supervisor.node.postgres import EmbeddedPostgres

REPO = Path(__file__).resolve().parents[1]


class ChildFailed(RuntimeError):
    """A child process exited or did not get ready; the message carries its log's tail."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dsn_for(dsn: str, database: str) -> str:
    """The same server, another database."""
    return urlunsplit(urlsplit(dsn)._replace(path="/" + database))


def rss_mb(pid: int) -> float | None:
    """Resident memory of `pid` (VmRSS), in MiB; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    log_path: Path
    port: int | None = None
    env: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Child({self.name}, pid={self.pid}, port={self.port})"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mb(self) -> float | None:
        return rss_mb(self.pid)

    def cpu_s(self) -> float | None:
        """CPU seconds the child (and any process it started) has used so far."""
        return tree_cpu(self.pid)

    def alive(self) -> bool:
        return self.process.returncode is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def failed(self, what: str) -> ChildFailed:
        code = self.process.returncode
        state = "running" if code is None else f"exit {code}"
        return ChildFailed(f"{self.name} ({state}) {what}; log {self.log_path}:\n{self.log_tail()}")

    async def stop(self, timeout: float = 20.0) -> None:
        if not self.alive():
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()

    async def wait_http(self, path: str = "/", timeout: float = 30.0) -> None:
        """Until GET `path` answers at all (any status)."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while time.monotonic() < deadline:
                if not self.alive():
                    raise self.failed("exited while starting")
                try:
                    async with session.get(self.url + path) as resp:
                        await resp.read()
                        return
                except (TimeoutError, aiohttp.ClientError, OSError):
                    await asyncio.sleep(0.05)
        raise self.failed(f"did not answer on {self.url}{path} within {timeout:.0f} s")

    async def wait_log(self, text: str, timeout: float = 30.0) -> None:
        """Until `text` appears in the child's output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise self.failed("exited while starting")
            try:
                if text in self.log_path.read_text(errors="replace"):
                    return
            except OSError:
                pass
            await asyncio.sleep(0.05)
        raise self.failed(f"did not log {text!r} within {timeout:.0f} s")


class Children:
    """Spawns children into one log directory and stops whichever are left."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: list[Child] = []

    async def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None,
                    port: int | None = None) -> Child:
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, *args, cwd=REPO, env=full_env, stdin=asyncio.subprocess.DEVNULL,
                stdout=log, stderr=asyncio.subprocess.STDOUT)
        child = Child(name, process, log_path, port, env or {})
        self.running.append(child)
        return child

    async def node(self, name: str, dsn: str, roles: str, **env: str) -> Child:
        """A triggerd node (`python -m supervisor.node.cli serve`) on DATABASE_URL `dsn`."""
        port = free_port()
        child = await self.spawn(name, ["-m", "supervisor.node.cli", "serve"], {
            "DATABASE_URL": dsn, "PORT": str(port), "TRIGGERD_ROLES": roles,
            "TRIGGERD_LOG_FORMAT": "json", **env}, port)
        if "ingest" in roles.split(","):
            await child.wait_http("/health/live")
        else:
            await child.wait_log("node up")
        return child

    async def server(self, name: str, module: str, *args: str) -> Child:
        """A baseline or the receiver: `python -m benchmarks.<module> --port P ...`."""
        port = free_port()
        child = await self.spawn(name, ["-m", f"benchmarks.{module}", "--port", str(port),
                                        *args], port=port)
        await child.wait_http("/_stats" if module == "receiver" else "/")
        return child

    async def stop(self, child: Child) -> None:
        await child.stop()
        if child in self.running:
            self.running.remove(child)

    async def stop_all(self) -> None:
        await asyncio.gather(*(child.stop() for child in self.running))
        self.running.clear()


class Postgres:
    """The suite's own PostgreSQL (the embedded code) in a temporary directory, with one
    freshly migrated database per measurement."""

    def __init__(self) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="tgd-bench-", dir="/tmp"))
        self.data_dir.chmod(0o755)  # the server runs as another user when we are root
        self.server = EmbeddedPostgres(self.data_dir, database="postgres")
        self.dsn = ""

    def __repr__(self) -> str:
        return f"Postgres({self.data_dir})"

    async def start(self) -> str:
        self.dsn = await asyncio.to_thread(self.server.start)
        return self.dsn

    async def database(self, name: str, migrated: bool = True) -> str:
        admin = await asyncpg.connect(self.dsn)
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            await admin.execute(f"CREATE DATABASE {name}")
        finally:
            await admin.close()
        dsn = self.dsn_of(name)
        if migrated:
            conn = await asyncpg.connect(dsn)
            try:
                await migrate(conn)
            finally:
                await conn.close()
        return dsn

    def dsn_of(self, name: str) -> str:
        return dsn_for(self.dsn, name)

    def postmaster_pid(self) -> int | None:
        """The running postmaster's pid (first line of postmaster.pid), or None."""
        try:
            return int((self.server.cluster_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def cpu_s(self) -> float | None:
        """CPU seconds used so far by the postmaster and its children (benchmarks.cpu)."""
        pid = self.postmaster_pid()
        return None if pid is None else tree_cpu(pid)

    async def version(self) -> str:
        conn = await asyncpg.connect(self.dsn)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    async def kill(self) -> None:
        await asyncio.to_thread(self.server.kill)

    async def restart(self) -> None:
        await asyncio.to_thread(self.server.restart_server)

    async def stop(self) -> None:
        try:
            await asyncio.to_thread(self.server.stop)
        finally:
            shutil.rmtree(self.data_dir, ignore_errors=True)
