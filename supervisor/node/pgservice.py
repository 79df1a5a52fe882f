"""`triggerd postgres`: the embedded PostgreSQL of TRIGGERD_DATA_DIR as a service.

Several nodes on one host (triggerd@.service) share one embedded server; started by
one of them it would live in that node's cgroup and die when that node stops. Run
here instead (triggerd-postgres.service), it lives in a unit of its own: the nodes
on the same data dir reuse it, and never stop it, because this process holds the
server's "user" flock for as long as it runs (see postgres.py).

Under systemd (Type=notify): `READY=1` with a STATUS= line naming the socket, a
WATCHDOG=1 ping at half of WatchdogSec= while the postmaster is alive. SIGTERM or
SIGINT stops the server (fast shutdown, whoever still uses it) and exits 0; SIGHUP
makes the server reload its configuration; a postmaster that dies exits 1 (systemd
restarts the unit). A start that fails is one line, exit 2 or 1 as for serve.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from supervisor.node import failures, pgsystem, preflight, sdnotify
from supervisor.node.config import Config
from supervisor.node.failures import StartupError
from supervisor.node.postgres import EmbeddedPostgres, EmbeddedPostgresError, PostgresNotFound

log = logging.getLogger("triggerd")

CHECK_EVERY_S = 2.0
STOP_WAIT_S = 60.0


def run(config: Config) -> int:
    """Runs the server until SIGTERM/SIGINT (0), or until it dies (1)."""
    stop = threading.Event()
    reload = threading.Event()

    def on_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    def on_reload(signum: int, frame: FrameType | None) -> None:
        reload.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_reload)
    try:
        server, pid = _start(config)
    except StartupError as exc:
        sdnotify.status(f"failed: {exc}")
        return failures.report(exc)
    try:
        return _serve(server, pid, stop, reload)
    finally:
        sdnotify.status("stopping", "STOPPING=1")
        _stop(server, pid)


def _start(config: Config) -> tuple[EmbeddedPostgres, int]:
    if config.database_url is not None:
        raise StartupError("DATABASE_URL is set, so no node uses the embedded PostgreSQL: "
                           "unset it for `triggerd postgres`, or do not run it",
                           failures.CONFIG)
    preflight.check_data_dir(config.data_dir)
    server = EmbeddedPostgres(config.data_dir)
    sdnotify.status(f"starting the embedded PostgreSQL in {config.data_dir}")
    try:
        dsn = server.start()
        pid = _postmaster(server.cluster_dir)
    except (PostgresNotFound, EmbeddedPostgresError) as exc:
        with contextlib.suppress(OSError, EmbeddedPostgresError):
            server.stop()  # what a half-done start left running
        raise failures.explain(exc, config.host, config.port) from None
    except OSError as exc:
        raise failures.data_dir_error(exc, str(config.data_dir)) from None
    ready = f"ready: PostgreSQL pid {pid} of {server.cluster_dir}, {dsn}"
    sdnotify.status(ready, "READY=1")
    log.info("embedded PostgreSQL %s", ready)
    return server, pid


def _serve(server: EmbeddedPostgres, pid: int, stop: threading.Event,
           reload: threading.Event) -> int:
    period = sdnotify.watchdog_period()
    every = min(CHECK_EVERY_S, period) if period else CHECK_EVERY_S
    while not stop.wait(every):
        if not pgsystem.postmaster_alive(pid, server.cluster_dir):
            message = (f"the embedded PostgreSQL (pid {pid}) exited; see "
                       f"{server.cluster_dir / 'server.log'}")
            sdnotify.status(f"failed: {message}")
            print(f"triggerd: {message}", file=sys.stderr, flush=True)
            return failures.OTHER
        if reload.is_set():
            reload.clear()
            os.kill(pid, signal.SIGHUP)
            log.info("embedded PostgreSQL asked to reload its configuration")
        if period:
            sdnotify.notify("WATCHDOG=1")
    return 0


def _stop(server: EmbeddedPostgres, pid: int) -> None:
    """Stops the server even while nodes still use it: they wait for it to come back."""
    try:
        server.stop()  # releases our flock; stops the server if no node holds one
        if pgsystem.postmaster_alive(pid, server.cluster_dir):
            os.kill(pid, signal.SIGINT)  # PostgreSQL's fast shutdown
            deadline = time.monotonic() + STOP_WAIT_S
            while (pgsystem.postmaster_alive(pid, server.cluster_dir)
                   and time.monotonic() < deadline):
                time.sleep(0.1)
    except (OSError, EmbeddedPostgresError) as exc:
        print(f"triggerd: stopping the embedded PostgreSQL failed: {exc}", file=sys.stderr)
    else:
        log.info("embedded PostgreSQL stopped: %s", server.cluster_dir)


def _postmaster(cluster: Path) -> int:
    try:
        return int((cluster / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError) as exc:
        raise EmbeddedPostgresError(f"no postmaster.pid in {cluster} after the start") from exc
