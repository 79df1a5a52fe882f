"""The embedded PostgreSQL on real server binaries: first start, reuse by a second
instance, restart after a SIGKILLed postmaster, stop and start again, the socket dir
for long paths, the root-only fallback location; and the binary lookup on a fake tree."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from supervisor.node.postgres import (
    ALT_ROOT,
    EmbeddedPostgres,
    PostgresNotFound,
    find_bindir,
)


def _fetch(dsn: str, query: str) -> object:
    async def run() -> object:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval(query)
        finally:
            await conn.close()
    return asyncio.run(run())


def _exec(dsn: str, *statements: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()
    asyncio.run(run())


def _children(pid: int) -> list[int]:
    """The pids whose parent is `pid` (the postmaster's backends)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid):
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (its parent need not reap it here) is dead."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait_dead(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            raise TimeoutError(f"pid {pid} still alive")
        time.sleep(0.05)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="tgd-", dir="/tmp"))
    # mkdtemp makes it 0700: as root, the server's user could not reach it.
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def server(data_dir: Path) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(data_dir)
    try:
        yield pg
    finally:
        pg.kill()


def test_first_start_initializes_and_answers(server: EmbeddedPostgres) -> None:
    dsn = server.start()
    assert server.owned and server.dsn == dsn
    assert dsn == f"postgresql://triggerd@/triggerd?host={server.cluster_dir}&port=5432"
    assert _fetch(dsn, "SELECT 1") == 1
    assert _fetch(dsn, "SHOW listen_addresses") == ""
    assert _fetch(dsn, "SHOW fsync") == "on"
    assert _fetch(dsn, "SELECT current_database()") == "triggerd"
    info = server.cluster_dir.stat()
    assert stat.S_IMODE(info.st_mode) == 0o700
    if os.geteuid() == 0:
        assert info.st_uid != 0
    server.stop()
    assert not (server.cluster_dir / "postmaster.pid").exists()
    server.stop()  # idempotent


def test_second_instance_reuses_running_server(
    server: EmbeddedPostgres, data_dir: Path
) -> None:
    dsn = server.start()
    second = EmbeddedPostgres(data_dir)
    assert second.start() == dsn
    assert not second.owned
    second.stop()
    assert _fetch(dsn, "SELECT 1") == 1
    assert server.owned


def test_start_after_sigkill_of_postmaster(server: EmbeddedPostgres, data_dir: Path) -> None:
    dsn = server.start()
    _exec(dsn, "CREATE TABLE survivor (n int)", "INSERT INTO survivor VALUES (42)")
    cluster = server.cluster_dir
    pid = int((cluster / "postmaster.pid").read_text().split()[0])
    backends = _children(pid)
    os.kill(pid, signal.SIGKILL)
    for child in backends:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
    _wait_dead(pid)
    for child in backends:
        _wait_dead(child)
    assert (cluster / "postmaster.pid").exists()

    again = EmbeddedPostgres(data_dir)
    try:
        assert again.start() == dsn
        assert again.owned
        assert _fetch(dsn, "SELECT n FROM survivor") == 42
    finally:
        again.stop()


def test_stop_then_start_and_kill_then_restart(server: EmbeddedPostgres) -> None:
    dsn = server.start()
    server.stop()
    assert not server.owned
    assert server.start() == dsn and server.owned
    assert _fetch(dsn, "SELECT 1") == 1
    server.kill()
    with pytest.raises(OSError):
        _fetch(dsn, "SELECT 1")
    server.restart_server()
    assert server.dsn == dsn and server.owned
    assert _fetch(dsn, "SELECT 1") == 1


def test_long_path_puts_socket_in_private_tmp_dir(data_dir: Path) -> None:
    pg = EmbeddedPostgres(data_dir / ("d" * 60) / ("e" * 40), database="other db", port=5433)
    digest = hashlib.sha256(str(pg.cluster_dir).encode()).hexdigest()[:12]
    socket_dir = Path("/tmp") / f"triggerd-{digest}"
    try:
        dsn = pg.start()
        assert dsn == f"postgresql://triggerd@/other%20db?host={socket_dir}&port=5433"
        assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
        assert _fetch(dsn, "SELECT current_database()") == "other db"
    finally:
        pg.kill()
        shutil.rmtree(socket_dir, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="the fallback location is for root only")
def test_root_unreachable_data_dir_uses_var_lib(data_dir: Path) -> None:
    os.chmod(data_dir, 0o700)  # like a checkout under /root
    pg = EmbeddedPostgres(data_dir / "var")
    cluster = pg.cluster_dir
    try:
        assert cluster.parent.parent == ALT_ROOT and cluster.name == "pg"
        assert str(cluster) in (data_dir / "var" / "pg-location").read_text()
        assert _fetch(pg.start(), "SELECT 1") == 1
    finally:
        pg.kill()
        shutil.rmtree(cluster.parent, ignore_errors=True)


def _stubs(directory: Path, names: tuple[str, ...] = ("initdb", "pg_ctl", "postgres")) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_text("#!/bin/sh\n")
        (directory / name).chmod(0o755)
    return directory


def test_find_bindir_lookup_order(tmp_path: Path) -> None:
    def find(*path: Path) -> Path:
        search = os.pathsep.join(str(p) for p in path)
        return find_bindir(search_path=search, root=tmp_path, wheel=False)

    partial = _stubs(tmp_path / "path/partial", ("initdb", "pg_ctl"))
    with pytest.raises(PostgresNotFound):
        find(partial)
    local = _stubs(tmp_path / "usr/local/pgsql/bin")
    assert find(partial) == local
    for version in ("9.6", "16", "14", "notaversion"):
        _stubs(tmp_path / f"usr/lib/postgresql/{version}/bin")
    assert find(partial) == tmp_path / "usr/lib/postgresql/16/bin"
    from_config = _stubs(tmp_path / "opt/pg/bin")
    (partial / "pg_config").write_text(f"#!/bin/sh\necho {from_config}\n")
    (partial / "pg_config").chmod(0o755)
    assert find(partial) == from_config
    on_path = _stubs(tmp_path / "path/full")
    assert find(partial, on_path) == on_path
    links = tmp_path / "path/links"
    links.mkdir()
    for name in ("initdb", "pg_ctl", "postgres"):
        (links / name).symlink_to(from_config / name)
    assert find(links) == from_config  # the real directory, not the one of symlinks


def test_not_found_message_is_one_actionable_line(tmp_path: Path) -> None:
    with pytest.raises(PostgresNotFound) as caught:
        find_bindir(search_path=str(tmp_path), root=tmp_path, wheel=False)
    message = str(caught.value)
    assert "\n" not in message
    assert "apt-get install postgresql" in message and "DATABASE_URL" in message


def test_last_user_stops_a_server_left_by_a_dead_node(
    server: EmbeddedPostgres, data_dir: Path
) -> None:
    dsn = server.start()
    survivor = EmbeddedPostgres(data_dir)
    survivor.start()
    assert not survivor.owned
    assert server._users is not None
    server._users.close()  # what the kernel does for a node killed with SIGKILL
    server._users = None
    server._owned = False
    survivor.stop()
    with pytest.raises(OSError):
        _fetch(dsn, "SELECT 1")
