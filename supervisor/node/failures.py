"""Startup failures, each as one line: the setting, what is wrong with it, and the fix.

`StartupError(message, code)` is what `triggerd serve` prints (no traceback) before it
exits with `code`: 2 (CONFIG) when nothing changes until an operator changes a setting
or the filesystem, 1 (OTHER) when the same start may work later (a port in use,
PostgreSQL unreachable) or the cause is not known. `explain()` turns whatever a start
raised into one; the helpers word the failures the preflight checks meet.
"""

from __future__ import annotations

import errno
import re
import socket
import sys
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import asyncpg

from supervisor.node.config import ConfigError
from supervisor.node.postgres import EmbeddedPostgresError, PostgresNotFound

CONFIG = 2
OTHER = 1
_STARTING = re.compile(r"^while \S+ was starting child '([^']+)'$")
_USE_A_HOST = "set TRIGGERD_HOST to an address of this host (127.0.0.1, or 0.0.0.0 for all)"


class StartupError(Exception):
    """A start that cannot go on; `str()` is the one line to print."""

    def __init__(self, message: str, code: int = OTHER) -> None:
        super().__init__(" ".join(message.split()))
        self.code = code

    def __repr__(self) -> str:
        return f"StartupError({str(self)!r}, code={self.code})"


def report(exc: StartupError) -> int:
    """Prints the one line on stderr; returns the exit code."""
    label = "configuration error" if exc.code == CONFIG else "cannot start"
    print(f"triggerd: {label}: {exc}", file=sys.stderr, flush=True)
    return exc.code


def where(dsn: str) -> str:
    """host:port/database of a DATABASE_URL, never its user or password."""
    try:
        parts = urlsplit(dsn)
        query = parse_qs(parts.query)
        host = parts.hostname or query.get("host", ["localhost"])[0]
        port = parts.port or query.get("port", ["5432"])[0]
        return f"{host}:{port}{parts.path or '/'}"
    except ValueError:
        return "the address in DATABASE_URL"


def host_error(exc: OSError, host: str) -> StartupError:
    return StartupError(f"TRIGGERD_HOST: cannot listen on {host!r}, which is neither an IP "
                        f"address nor a name this host resolves ({exc.strerror or exc}); "
                        f"{_USE_A_HOST}", CONFIG)


def listen_error(exc: OSError, host: str, port: int) -> StartupError:
    if isinstance(exc, socket.gaierror):
        return host_error(exc, host)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return StartupError(f"PORT: {address} is already in use by another process; stop it, "
                            "or set PORT (or --port) to a free port")
    if exc.errno == errno.EADDRNOTAVAIL:
        return StartupError(f"TRIGGERD_HOST: {host} is not an address of this host; "
                            f"{_USE_A_HOST}", CONFIG)
    if exc.errno == errno.EACCES:
        return StartupError(f"PORT: listening on {address} is not permitted (ports below "
                            "1024 need privileges); set PORT to 1024 or above", CONFIG)
    return StartupError(f"TRIGGERD_HOST/PORT: cannot listen on {address}: {exc.strerror or exc}")


def database_error(exc: BaseException, dsn: str) -> StartupError | None:
    """A connection failure that waiting will not cure, else None (keep waiting)."""
    at = where(dsn)
    if isinstance(exc, (ValueError, TypeError, UnicodeError)) and not isinstance(exc, OSError):
        return StartupError(f"DATABASE_URL is malformed ({_first_line(exc)}); expected "
                            "postgresql://USER:PASSWORD@HOST:5432/DATABASE", CONFIG)
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return StartupError(f"DATABASE_URL: the database in {at} does not exist; create it "
                            "(createdb) or fix the name in DATABASE_URL", CONFIG)
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return StartupError(f"DATABASE_URL: PostgreSQL at {at} refused the login "
                            f"({_first_line(exc)}); fix the user or password in DATABASE_URL "
                            "(or the server's pg_hba.conf)", CONFIG)
    if isinstance(exc, (OSError, TimeoutError, asyncpg.CannotConnectNowError,
                        asyncpg.TooManyConnectionsError, asyncpg.ConnectionDoesNotExistError)):
        return None
    return StartupError(f"DATABASE_URL: PostgreSQL at {at} refused the connection: "
                        f"{_first_line(exc)}")


def unreachable(exc: BaseException, dsn: str, waited: float) -> StartupError:
    return StartupError(f"DATABASE_URL: cannot reach PostgreSQL at {where(dsn)} within "
                        f"{waited:.0f}s ({_first_line(exc) or type(exc).__name__}); start it, "
                        "fix the host and port in DATABASE_URL, or give it longer with "
                        "TRIGGERD_DB_CONNECT_TIMEOUT")


def data_dir_error(exc: OSError, data_dir: str) -> StartupError:
    return StartupError(f"TRIGGERD_DATA_DIR: cannot use {data_dir} for the embedded PostgreSQL "
                        f"({exc.strerror or exc}); make it a directory this user can write, "
                        "choose another TRIGGERD_DATA_DIR, or set DATABASE_URL", CONFIG)


def explain(exc: BaseException, host: str, port: int) -> StartupError:
    """One line for whatever the start of the node raised."""
    child = _child_path(exc)
    for cause in _chain(exc):
        if isinstance(cause, StartupError):
            return cause
        if isinstance(cause, ConfigError):
            return StartupError(str(cause), CONFIG)
        if isinstance(cause, PostgresNotFound):
            return StartupError(str(cause))
        if isinstance(cause, EmbeddedPostgresError):
            return StartupError(f"embedded PostgreSQL: {_first_line(cause)}")
        if isinstance(cause, OSError) and child.endswith("http"):
            return listen_error(cause, host, port)
    detail = _first_line(exc) or "no detail"
    return StartupError(f"{child or 'the node'} failed to start: {type(exc).__name__}: {detail} "
                        "(TRIGGERD_LOG_LEVEL=DEBUG logs the traceback)")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _child_path(exc: BaseException) -> str:
    """"ingest/http" from the notes the supervisors add while starting children."""
    found = [m.group(1) for note in getattr(exc, "__notes__", ())
             if (m := _STARTING.match(note))]
    return "/".join(reversed(found))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
