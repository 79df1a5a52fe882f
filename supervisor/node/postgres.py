"""The embedded PostgreSQL a node starts when no DATABASE_URL is set.

`EmbeddedPostgres(data_dir).start()` finds the server binaries (`find_bindir`), creates a
cluster in `data_dir/pg` on first use, starts it and returns an asyncpg DSN. Every method
blocks: the Database actor calls them through `asyncio.to_thread`.

- No TCP at all (`listen_addresses = ''`): clients use the unix socket (mode 0700) in the
  cluster directory (0700, owned by the server's user), which is why `--auth=trust` is
  acceptable. When `<cluster>/.s.PGSQL.<port>` would exceed the 107-byte socket path
  limit, the socket goes to `/tmp/triggerd-<sha256(cluster)[:12]>` (created 0700 and
  checked to be a real directory owned by the server's user).
- A server already answering on the cluster (another node on the same data dir, or one
  left from before) is reused. Each user holds a shared flock on `pg.users`; `stop()`
  stops the server only when no other process holds it (the last user out). A stale
  `postmaster.pid` (dead, zombie or unrelated pid) is removed before starting.
- As root, PostgreSQL runs as the cluster's existing owner, else the `triggerd` user, else
  `postgres`, else a newly created `triggerd` system user. When that user cannot traverse
  to the data dir (a checkout under /root), the cluster lives in
  `/var/lib/triggerd/<sha256(data_dir)[:16]>/pg` and `data_dir/pg-location` says so.
- Starts of one cluster are serialized across processes by an flock on `pg.lock` beside it.
  The server log is `<cluster>/server.log` (rotated once past 10 MiB, at start).
- An error's first line says what failed and where (the server log); the lines after
  it quote the log. The tools run without $PG* and without systemd's $NOTIFY_SOCKET.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import importlib.util
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import quote

import asyncpg

from supervisor.node import pgsystem
from supervisor.node.pgsystem import ServerUser

log = logging.getLogger(__name__)

SUPERUSER = "triggerd"
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
ALT_ROOT = Path("/var/lib/triggerd")
SOCKET_PATH_MAX = 107
SYSTEMD_ENV = frozenset({"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS",
                         "LISTEN_PID", "LISTEN_FDNAMES"})
START_TIMEOUT_S = 60
LOG_ROTATE_BYTES = 10 * 1024 * 1024
NOT_FOUND_MESSAGE = (
    "no PostgreSQL server binaries found (looked on PATH, pg_config --bindir, "
    "/usr/lib/postgresql/*/bin, /usr/local/pgsql/bin and the pgserver package): install "
    "them with 'apt-get install postgresql' or 'pip install triggerd[embedded]', "
    "or set DATABASE_URL"
)
SETTINGS = """\
# Written by triggerd at every start; put your own settings in postgresql.auto.conf.
listen_addresses = ''
unix_socket_directories = '{socket_dir}'
unix_socket_permissions = 0700
port = {port}
max_connections = 200
shared_buffers = 128MB
fsync = on
# No JIT: its code goes to memory made executable, which systemd's MemoryDenyWriteExecute=
# forbids (see scripts/triggerd.service); triggerd's statements are short anyway.
jit = off
"""


class PostgresNotFound(RuntimeError):
    """No directory holds initdb, pg_ctl and postgres; the message says what to install."""


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be set up, started or stopped."""


def find_bindir(*, search_path: str | None = None, root: Path = Path("/"),
                wheel: bool = True) -> Path:
    """The first directory holding initdb, pg_ctl and postgres.

    Order: PATH, `pg_config --bindir`, `/usr/lib/postgresql/*/bin` (highest version
    first), `/usr/local/pgsql/bin`, the pgserver wheel. The keywords exist for tests.
    """
    for candidate in _candidate_bindirs(search_path, root, wheel):
        if _has_server(candidate):
            return candidate
    raise PostgresNotFound(NOT_FOUND_MESSAGE)


def _candidate_bindirs(search_path: str | None, root: Path, wheel: bool) -> Iterator[Path]:
    path = os.environ.get("PATH", "") if search_path is None else search_path
    for entry in filter(None, path.split(os.pathsep)):
        if _has_server(Path(entry)):
            # /usr/local/bin may hold only symlinks; the real directory has the client tools.
            real = Path(os.path.realpath(Path(entry) / "initdb")).parent
            yield real if _has_server(real) else Path(entry)
    pg_config = shutil.which("pg_config", path=path)
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                 timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            yield Path(out)
    yield from sorted(root.glob("usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    yield root / "usr/local/pgsql/bin"
    spec = importlib.util.find_spec("pgserver") if wheel else None
    for location in (spec.submodule_search_locations or []) if spec else []:
        yield Path(location) / "pginstall" / "bin"


def _has_server(directory: Path) -> bool:
    # os.access first: it never raises, and is_file() does on an unreadable PATH entry.
    return all(os.access(directory / name, os.X_OK) and (directory / name).is_file()
               for name in SERVER_BINARIES)


def _version_key(bindir: Path) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in bindir.parent.name.split("."))
    except ValueError:
        return (-1,)


@dataclass(frozen=True, slots=True)
class _Address:
    socket_dir: Path
    port: int


@dataclass(frozen=True, slots=True)
class _Layout:
    bindir: Path
    cluster: Path
    user: ServerUser | None  # None: run as ourselves (we are not root)


class EmbeddedPostgres:
    """One PostgreSQL cluster under a node's data dir, reused when already running."""

    def __init__(self, data_dir: Path, *, database: str = "triggerd", port: int = 5432) -> None:
        if not database or len(database.encode()) > 63 or "\x00" in database:
            raise ValueError(f"database name must be 1..63 bytes, got {database!r}")
        if not 0 < port < 65536:
            raise ValueError(f"port must be 1..65535, got {port}")
        self.data_dir = Path(data_dir).resolve()
        self.database = database
        self.port = port
        self._layout: _Layout | None = None
        self._address: _Address | None = None
        self._owned = False
        self._users: IO[str] | None = None

    def __repr__(self) -> str:
        return f"EmbeddedPostgres(data_dir={self.data_dir}, owned={self._owned})"

    @property
    def dsn(self) -> str:
        if self._address is None:
            raise EmbeddedPostgresError("the embedded PostgreSQL has not been started")
        return _dsn(self._address, self.database)

    @property
    def owned(self) -> bool:
        return self._owned

    @property
    def cluster_dir(self) -> Path:
        return self._prepare().cluster

    def start(self) -> str:
        """Start (or reuse) the server and create the database; returns the DSN."""
        layout = self._prepare()
        with open(layout.cluster.parent / "pg.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            address = self._reuse_running(layout)
            if address is None:
                if not (layout.cluster / "PG_VERSION").exists():
                    self._initdb(layout)
                address = self._write_settings(layout)
                self._pg_ctl_start(layout)
            if self._users is None:
                self._users = open(layout.cluster.parent / "pg.users", "a")
                fcntl.flock(self._users, fcntl.LOCK_SH)
        self._address = address
        self._ensure_database(layout, address)
        return self.dsn

    def stop(self) -> None:
        """Stop the server (fast shutdown) unless another process still uses it; idempotent.

        Every user holds a shared flock on `pg.users`; the last one out stops the server,
        so a server left behind by a SIGKILLed node is stopped by the node that reused it.
        """
        users, self._users = self._users, None
        if users is None and not self._owned:
            return
        layout = self._prepare()
        with open(layout.cluster.parent / "pg.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            last = True
            if users is not None:
                try:
                    fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    last = False
                users.close()
            if last:
                self._pg_ctl_stop(layout, "fast")
                log.info("embedded PostgreSQL stopped: %s", layout.cluster)
        self._owned = False

    def kill(self) -> None:
        """Stop the server at once, owned or not: simulates a crash or an outage."""
        self._pg_ctl_stop(self._prepare(), "immediate")
        self._owned = False

    def restart_server(self) -> None:
        """Start again after stop() or kill(); the DSN stays the same."""
        before = self._address
        self.start()
        if before is not None and self._address != before:
            raise EmbeddedPostgresError(f"server came back at {self._address}, not {before}")

    def _prepare(self) -> _Layout:
        if self._layout is None:
            bindir = find_bindir()
            self.data_dir.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                user, cluster = self._locate_as_root()
            else:
                user, cluster = None, self.data_dir / "pg"
            if cluster.parent != self.data_dir:
                pgsystem.make_private_dir(cluster.parent, user)
            pgsystem.make_private_dir(cluster, user)
            self._layout = _Layout(bindir, cluster, user)
        return self._layout

    def _locate_as_root(self) -> tuple[ServerUser, Path]:
        primary = self.data_dir / "pg"
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
        alternate = ALT_ROOT / digest / "pg"
        try:
            user = (pgsystem.cluster_owner(primary) or pgsystem.cluster_owner(alternate)
                    or pgsystem.service_user())
        except (OSError, subprocess.SubprocessError, KeyError) as exc:
            raise EmbeddedPostgresError(
                f"PostgreSQL cannot run as root and creating the system user "
                f"{pgsystem.SERVICE_USER!r} failed ({exc}); create it, run triggerd as "
                "another user, or set DATABASE_URL") from exc
        if pgsystem.can_traverse(user, self.data_dir):
            return user, primary
        (self.data_dir / "pg-location").write_text(
            f"The embedded PostgreSQL cluster of this data dir is {alternate}\n"
            f"(user {user.name} cannot traverse to {self.data_dir}).\n")
        log.info("user %s cannot reach %s; the embedded PostgreSQL cluster lives in %s",
                 user.name, self.data_dir, alternate)
        return user, alternate

    def _socket_dir(self, layout: _Layout) -> Path:
        if len(f"{layout.cluster}/.s.PGSQL.{self.port}".encode()) <= SOCKET_PATH_MAX:
            return layout.cluster
        try:
            short = pgsystem.short_socket_dir(layout.cluster, layout.user)
        except OSError as exc:
            raise EmbeddedPostgresError(
                f"the socket path under {layout.cluster} is too long and no private "
                f"socket dir could be made ({exc}); use a shorter TRIGGERD_DATA_DIR") from exc
        log.info("socket path under %s is too long; the socket lives in %s",
                 layout.cluster, short)
        return short

    def _reuse_running(self, layout: _Layout) -> _Address | None:
        """The address of a server already answering on the cluster, else None.

        A stale postmaster.pid is removed on the way, so that pg_ctl start can succeed.
        """
        pidfile = layout.cluster / "postmaster.pid"
        found = _read_pidfile(pidfile)
        if found is None:
            return None  # no server, or one too early in its start to have a socket
        pid, address = found
        if pgsystem.postmaster_alive(pid, layout.cluster):
            if self._owned and address == self._address:
                return address
            if self._wait_accepting(pid, layout, address):
                self._owned = False
                log.info("reusing the PostgreSQL already running on %s (pid %d)",
                         layout.cluster, pid)
                return address
            if pgsystem.postmaster_alive(pid, layout.cluster):
                raise EmbeddedPostgresError(
                    f"PostgreSQL pid {pid} holds {layout.cluster} but does not answer on "
                    f"{address.socket_dir}:{address.port}{self._log_tail(layout)}")
        log.warning("removing stale %s (pid %d is not its postmaster)", pidfile, pid)
        # postgres takes a dead postmaster's pid for a live one while it is a zombie.
        socket_lock = address.socket_dir / f".s.PGSQL.{address.port}.lock"
        try:
            if socket_lock.read_text().split("\n", 1)[0].strip() == str(pid):
                socket_lock.unlink()
        except (OSError, UnicodeDecodeError):
            pass  # no lock left, or not ours to judge: postgres will say
        pidfile.unlink(missing_ok=True)
        return None

    def _wait_accepting(self, pid: int, layout: _Layout, address: _Address) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and pgsystem.postmaster_alive(pid, layout.cluster):
            if _probe(address) == "accepting":
                return True
            time.sleep(0.2)
        return False

    def _initdb(self, layout: _Layout) -> None:
        if any(layout.cluster.iterdir()):
            raise EmbeddedPostgresError(
                f"{layout.cluster} is not empty but holds no PostgreSQL cluster (no "
                "PG_VERSION); move it away or choose another TRIGGERD_DATA_DIR")
        log.info("creating the embedded PostgreSQL cluster in %s", layout.cluster)
        done = self._run(layout, "initdb", "-D", str(layout.cluster), "-U", SUPERUSER,
                         "-E", "UTF8", "--locale=C", "--auth=trust", timeout=180)
        if done.returncode != 0:
            raise EmbeddedPostgresError(
                f"initdb failed in {layout.cluster} (exit {done.returncode}: "
                f"{pgsystem.tail(done.stdout + done.stderr, 1)})\n"
                f"{pgsystem.tail(done.stdout + done.stderr)}")
        with open(layout.cluster / "postgresql.conf", "a") as conf:
            conf.write("\ninclude_if_exists = 'triggerd.conf'\n")

    def _write_settings(self, layout: _Layout) -> _Address:
        address = _Address(self._socket_dir(layout), self.port)
        # Double quotes keep a path with spaces or commas one list entry.
        escaped = str(address.socket_dir).replace("'", "''")
        path = layout.cluster / "triggerd.conf"
        path.write_text(SETTINGS.format(socket_dir=f'"{escaped}"', port=self.port))
        if layout.user is not None:
            os.chown(path, layout.user.uid, layout.user.gid)
        logfile = layout.cluster / "server.log"
        if logfile.exists() and logfile.stat().st_size > LOG_ROTATE_BYTES:
            logfile.replace(layout.cluster / "server.log.1")
        return address

    def _pg_ctl_start(self, layout: _Layout) -> None:
        logfile = layout.cluster / "server.log"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            offset = logfile.stat().st_size if logfile.exists() else 0
            done = self._run(layout, "pg_ctl", "start", "-D", str(layout.cluster), "-w", "-s",
                             "-t", str(START_TIMEOUT_S), "-l", str(logfile),
                             timeout=START_TIMEOUT_S + 15)
            if done.returncode == 0:
                self._owned = True
                log.info("embedded PostgreSQL started: %s", layout.cluster)
                return
            # Backends of a SIGKILLed postmaster hold its shared memory for a moment.
            if ("still in use" in pgsystem.read_tail(logfile, since=offset)
                    and time.monotonic() < deadline):
                time.sleep(0.5)
                continue
            raise EmbeddedPostgresError(
                f"PostgreSQL did not start in {layout.cluster} (pg_ctl exit "
                f"{done.returncode}: {_one_line(done.stdout + done.stderr)})"
                f"{self._log_tail(layout)}")

    def _pg_ctl_stop(self, layout: _Layout, mode: str) -> None:
        pidfile = layout.cluster / "postmaster.pid"
        found = _read_pidfile(pidfile)
        if found is None or not pgsystem.postmaster_alive(found[0], layout.cluster):
            return  # not running (a crashed postmaster's pid file goes at the next start)
        done = self._run(layout, "pg_ctl", "stop", "-D", str(layout.cluster), "-m", mode,
                         "-w", "-s", "-t", str(START_TIMEOUT_S), timeout=START_TIMEOUT_S + 15)
        if done.returncode != 0 and pidfile.exists():
            raise EmbeddedPostgresError(
                f"pg_ctl stop -m {mode} failed in {layout.cluster} (exit {done.returncode}: "
                f"{_one_line(done.stdout + done.stderr)}){self._log_tail(layout)}")

    def _ensure_database(self, layout: _Layout, address: _Address) -> None:
        try:
            asyncio.run(_create_database(_dsn(address, "postgres"), self.database))
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            raise EmbeddedPostgresError(
                f"cannot create database {self.database!r} on the embedded PostgreSQL: "
                f"{exc}{self._log_tail(layout)}") from exc

    def _run(self, layout: _Layout, program: str, *args: str,
             timeout: float) -> subprocess.CompletedProcess[str]:
        # Not PG*: they would redirect the tools. Not systemd's: a postgres built with
        # systemd support would tell our service manager it is READY.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("PG") and k not in SYSTEMD_ENV}
        user = layout.user
        if user is not None:
            env.update(HOME="/", USER=user.name, LOGNAME=user.name)
        try:
            return subprocess.run(
                [str(layout.bindir / program), *args], cwd="/", env=env, capture_output=True,
                text=True, timeout=timeout, user=user.uid if user else None,
                group=user.gid if user else None, extra_groups=[] if user else None)
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedPostgresError(
                f"{program} took longer than {timeout:.0f} s{self._log_tail(layout)}") from exc

    def _log_tail(self, layout: _Layout) -> str:
        """"; see <server.log>" then its last lines: the first line of an error says
        where to look, the rest shows it."""
        logfile = layout.cluster / "server.log"
        text = pgsystem.read_tail(logfile)
        return f"; see {logfile}\n--- last lines of {logfile} ---\n{text}" if text else ""


def _one_line(output: str) -> str:
    return " ".join(output.split())


def _dsn(address: _Address, database: str) -> str:
    host = quote(str(address.socket_dir), safe="/")
    return (f"postgresql://{SUPERUSER}@/{quote(database, safe='')}"
            f"?host={host}&port={address.port}")


def _read_pidfile(pidfile: Path) -> tuple[int, _Address] | None:
    """The postmaster's pid and socket address from postmaster.pid, if complete."""
    try:
        lines = pidfile.read_text().splitlines()
        return int(lines[0]), _Address(Path(lines[4].strip()), int(lines[3]))
    except (OSError, UnicodeDecodeError, IndexError, ValueError):
        return None


async def _create_database(admin_dsn: str, database: str) -> None:
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            return
        quoted = '"' + database.replace('"', '""') + '"'
        try:
            await conn.execute(f"CREATE DATABASE {quoted}")
            log.info("created database %s", database)
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            pass  # another node created it between our check and our CREATE
    finally:
        await conn.close()


def _probe(address: _Address) -> str:
    """'accepting', 'rejecting' (starting up or shutting down) or 'down'."""
    async def connect() -> None:
        conn = await asyncpg.connect(_dsn(address, "postgres"), timeout=2)
        await conn.close()
    try:
        asyncio.run(connect())
    except asyncpg.CannotConnectNowError:
        return "rejecting"
    except asyncpg.PostgresError:
        return "accepting"  # it answered, if only to refuse us
    except (OSError, TimeoutError):
        return "down"
    return "accepting"
