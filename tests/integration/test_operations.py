"""Operations on real node processes, with a real notify socket bound by the test:
STATUS= lines and watchdog pings, SIGHUP reloading without stopping, and each startup
mistake as one line on stderr with its exit code (2 configuration, 1 otherwise). And in
process: a reload points the Alerter at the new webhook, a refused one changes nothing."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from supervisor.node.config import Config, ConfigError
from supervisor.node.postgres import EmbeddedPostgres
from supervisor.node.reload import Reloader
from supervisor.node.tree import Node as TreeNode
from tests.conftest import dsn_for, free_port
from tests.notify import NotifySocket
from tests.receiver import receiver
from workers.alerter import Alert, Alerter

ROOT = Path(__file__).resolve().parents[2]
_OURS = {"DATABASE_URL", "PORT", "POOL_SIZE", "DISABLE_WEBHOOK_DELIVERY", "NOTIFY_SOCKET",
         "WATCHDOG_USEC", "WATCHDOG_PID"}


def _environ(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _OURS and not k.startswith("TRIGGERD_")}
    return {**env, "TRIGGERD_LOG_FORMAT": "text", "TRIGGERD_ROLES": "ingest", **settings}


class Node:
    """`triggerd serve` in a process of its own; its stderr is collected line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def spawn(cls, env: dict[str, str], *args: str) -> Node:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "supervisor.node.cli", *args, "serve", cwd=ROOT, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    async def wait_for_line(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.lines if text in line]
            if found:
                return found[0]
            assert self.proc.returncode is None, f"node exited: {self.lines}"
            await asyncio.sleep(0.02)
        raise TimeoutError(f"no {text!r} in {self.lines}")

    async def exit_code(self, timeout: float = 15.0) -> int:
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()
        await self._reader
        return code

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await self.exit_code()


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    yield sock
    sock.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="tgd-ops-", dir="/tmp"))
    path.chmod(0o755)  # the server runs as another user when we are root
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
async def test_status_lines_and_watchdog_pings_at_half_the_interval(
    data_dir: Path, notify_socket: NotifySocket
) -> None:
    port = free_port()
    node = await Node.spawn(_environ(TRIGGERD_DATA_DIR=str(data_dir), PORT=str(port),
                                     **notify_socket.environ(watchdog_usec=1_000_000)))
    try:
        await notify_socket.wait_for("READY", "1", timeout=15)
        pings = await notify_socket.wait_for("WATCHDOG", "1", count=7, timeout=10)
    finally:
        assert await node.stop() == 0
    ready = f"ready: listening on http://127.0.0.1:{port} (roles ingest)"
    assert notify_socket.statuses() == [
        "starting", f"starting the embedded PostgreSQL in {data_dir}", "migrating",
        "starting the tree", ready, "stopping"]
    assert notify_socket.with_field("STOPPING", "1")
    gaps = [b.at - a.at for a, b in itertools.pairwise(pings)]
    assert 0.4 < statistics.median(gaps) < 0.6, gaps
    # Every message is the node's own (systemd's NotifyAccess=main); PostgreSQL, which
    # would say READY=1 itself, never saw the socket.
    assert {m.pid for m in notify_socket.received()} == {node.proc.pid}
    assert not (data_dir / "pg" / "postmaster.pid").exists()  # stopped with the node
    assert not any("Traceback" in line for line in node.lines)


@pytest.mark.slow
async def test_sighup_reloads_the_log_level_and_the_node_keeps_serving(
    database_url: str, notify_socket: NotifySocket, http: aiohttp.ClientSession,
    tmp_path: Path
) -> None:
    settings = tmp_path / "triggerd.toml"
    settings.write_text('log_level = "WARNING"\n')
    port = free_port()
    node = await Node.spawn(_environ(DATABASE_URL=database_url, PORT=str(port),
                                     **notify_socket.environ()), "--config", str(settings))
    live = f"http://127.0.0.1:{port}/health/live"
    try:
        await notify_socket.wait_for("READY", "1", timeout=15)
        assert not any("node up" in line for line in node.lines)  # INFO is off

        settings.write_text('log_level = "INFO"\n')
        node.proc.send_signal(signal.SIGHUP)
        await node.wait_for_line("configuration reloaded: TRIGGERD_LOG_LEVEL WARNING -> INFO")
        await notify_socket.wait_for("READY", "1", count=2)
        assert notify_socket.with_field("RELOADING", "1")
        async with http.get(live) as resp:
            assert resp.status == 200

        settings.write_text('log_level = "LOUD"\n')
        node.proc.send_signal(signal.SIGHUP)
        await node.wait_for_line("reload refused, keeping the running configuration: "
                                 "TRIGGERD_LOG_LEVEL must be one of")
        async with http.get(live) as resp:
            assert resp.status == 200

        settings.write_text('log_level = "INFO"\npool_size = 7\n')
        node.proc.send_signal(signal.SIGHUP)
        await node.wait_for_line("POOL_SIZE changed; applied at the next start only")
        await node.wait_for_line("configuration reloaded: nothing to change")  # still INFO
        assert node.proc.returncode is None
    finally:
        assert await node.stop() == 0
    assert not any("Traceback" in line for line in node.lines)


async def _taken_port() -> tuple[socket.socket, int]:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    return taken, taken.getsockname()[1]


def _mistake(case: str, tmp_path: Path, pg: EmbeddedPostgres) -> tuple[dict[str, str], list[str]]:
    """The environment and flags of one startup mistake."""
    unreachable = f"postgresql://triggerd@127.0.0.1:{free_port()}/triggerd"
    base = {"PORT": str(free_port()), "DATABASE_URL": unreachable,
            "TRIGGERD_DB_CONNECT_TIMEOUT": "1s"}
    (tmp_path / "file").write_text("")
    (tmp_path / "bad.toml").write_text("port = \n")
    (tmp_path / "typed.toml").write_text("retention = true\n")
    no_db: dict[str, str] = {k: v for k, v in base.items() if k != "DATABASE_URL"}
    cases: dict[str, tuple[dict[str, str], list[str]]] = {
        "log_level": ({**base, "TRIGGERD_LOG_LEVEL": "LOUD"}, []),
        "host_syntax": ({**base, "TRIGGERD_HOST": "300.1.1.1", "TRIGGERD_ADMIN_TOKEN": "t"}, []),
        "host_elsewhere": ({**base, "TRIGGERD_HOST": "192.0.2.1", "TRIGGERD_ADMIN_TOKEN": "t"},
                           []),
        "host_without_token": ({**base, "TRIGGERD_HOST": "0.0.0.0"}, []),
        "malformed_url": ({**base, "DATABASE_URL": "mysql://app@db/queue"}, []),
        "bad_url_port": ({**base, "DATABASE_URL": "postgresql://app@db:fivefour/queue"}, []),
        "unreachable": (base, []),
        "missing_database": ({**base, "DATABASE_URL": dsn_for(pg.dsn, "no_such_db")}, []),
        "data_dir_under_a_file": ({**no_db, "TRIGGERD_DATA_DIR": str(tmp_path / "file" / "d")},
                                  []),
        "data_dir_unwritable": ({**no_db, "TRIGGERD_DATA_DIR": "/sys/kernel/triggerd"}, []),
        "bad_toml": (base, ["--config", str(tmp_path / "bad.toml")]),
        "toml_type": (base, ["--config", str(tmp_path / "typed.toml")]),
        "port_not_a_number": ({**base, "PORT": "http"}, []),
    }
    return cases[case]


@pytest.mark.slow
@pytest.mark.parametrize(("case", "code", "line"), [
    ("log_level", 2, "configuration error: TRIGGERD_LOG_LEVEL must be one of"),
    ("host_syntax", 2, "configuration error: TRIGGERD_HOST: cannot listen on '300.1.1.1'"),
    ("host_elsewhere", 2, "configuration error: TRIGGERD_HOST: 192.0.2.1 is not an address"),
    ("host_without_token", 2, "configuration error: TRIGGERD_HOST=0.0.0.0 serves other "
                              "machines: set TRIGGERD_ADMIN_TOKEN"),
    ("port_in_use", 1, "cannot start: PORT: 127.0.0.1:{port} is already in use"),
    ("malformed_url", 2, "configuration error: DATABASE_URL is malformed"),
    ("bad_url_port", 2, "configuration error: DATABASE_URL is malformed"),
    ("unreachable", 1, "cannot start: DATABASE_URL: cannot reach PostgreSQL at 127.0.0.1:"),
    ("missing_database", 2, "configuration error: DATABASE_URL: the database in"),
    ("data_dir_under_a_file", 2, "configuration error: TRIGGERD_DATA_DIR: cannot use"),
    ("data_dir_unwritable", 2, "configuration error: TRIGGERD_DATA_DIR: cannot use"),
    ("bad_toml", 2, "configuration error: cannot read config file"),
    ("toml_type", 2, "configuration error: TRIGGERD_RETENTION: expected a number of seconds"),
    ("port_not_a_number", 2, "configuration error: PORT: not a whole number: 'http'"),
])
async def test_each_startup_mistake_is_one_line_and_its_exit_code(
    case: str, code: int, line: str, tmp_path: Path, pg_server: EmbeddedPostgres
) -> None:
    taken = None
    if case == "port_in_use":
        taken, port = await _taken_port()
        env, args = _mistake("log_level", tmp_path, pg_server)
        env = {**env, "PORT": str(port)}
        del env["TRIGGERD_LOG_LEVEL"]
        line = line.format(port=port)
    else:
        env, args = _mistake(case, tmp_path, pg_server)
    try:
        node = await Node.spawn(_environ(**env), *args)
        assert await node.exit_code() == code, node.lines
    finally:
        if taken is not None:
            taken.close()
    assert not any("Traceback" in text for text in node.lines), node.lines
    assert node.lines[-1].startswith(f"triggerd: {line}"), node.lines
    if case != "unreachable":  # which first logs that it is still waiting
        assert len(node.lines) == 1, node.lines


async def test_reload_points_the_alerter_at_the_new_webhook(node: TreeNode) -> None:
    async with receiver() as hooks:
        new = node.config.replace(alert_webhook_url=hooks.url("/alerts"))
        answers: list[Config | ConfigError] = [new]

        def load() -> Config:
            if isinstance(answers[-1], ConfigError):
                raise answers[-1]
            return answers[-1]

        reloader = Reloader(node, node.config, load)
        before = node.child("maintenance", "alerter", Alerter)
        assert before is not None
        assert await reloader.reload()
        await hooks.wait_for(lambda: node.child("maintenance", "alerter", Alerter)
                             not in (None, before), timeout=5)
        node.alert(Alert.disabled("e1", "https://example.com/hook", "410 Gone"))
        await hooks.wait_for(lambda: bool(hooks.at("/alerts")), timeout=5)
        assert b"endpoint e1 (https://example.com/hook) disabled" in hooks.at("/alerts")[0].body
        assert node.config.alert_webhook_url == new.alert_webhook_url

        answers.append(ConfigError("TRIGGERD_LOG_LEVEL must be one of ..."))
        assert not await reloader.reload()
        assert reloader.running.alert_webhook_url == new.alert_webhook_url
