"""`triggerd serve`: one node process, in a terminal or under systemd (Type=notify).

Start: the preflight checks (listen address, data dir), then the database (the embedded
PostgreSQL, started here and stopped on the way out, or DATABASE_URL, waited for) and
its migrations, then the tree. Each phase is a `STATUS=` line: starting, starting the
embedded PostgreSQL / waiting for PostgreSQL, migrating, starting the tree, then
`READY=1` with "ready: listening on http://HOST:PORT". A start that fails is one line on
stderr and exit code 2 (configuration) or 1 (anything else); see failures.py.

Signals: SIGTERM and SIGINT stop gracefully (STATUS=stopping, STOPPING=1), also during
the start; SIGHUP reloads (reload.py; RELOADING=1, then READY=1) and never stops the
node. While it runs, the Watchdog pings systemd and keeps STATUS= current. When the
root supervisor gives up, the process exits 1 and systemd restarts it.
The CLI imports this module only to serve: it is what loads the webhook packages.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

from supervisor.node import failures, logs, preflight, sdnotify, sharers
from supervisor.node.config import Config
from supervisor.node.failures import StartupError
from supervisor.node.reload import Reloader
from supervisor.node.tree import Node
from supervisor.node.watchdog import TreeHealth, Watchdog

log = logging.getLogger("triggerd")
T = TypeVar("T")


class Signals:
    """What the process was asked to do: stop, or reload (SIGHUPs in a burst coalesce)."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.reload = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop.set)
        loop.add_signal_handler(signal.SIGINT, self.stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload.set)

    def __repr__(self) -> str:
        return f"Signals(stop={self.stop.is_set()}, reload={self.reload.is_set()})"


async def serve(config: Config, load: Callable[[], Config]) -> int:
    """Runs a node until a stop signal (exit 0) or until its root supervisor gives up (1)."""
    signals = Signals()
    sdnotify.status("starting")
    database = preflight.Database(config, sdnotify.status)
    try:
        node = await _start(config, database, signals)
        return 0 if node is None else await _run(node, config, load, signals)
    except StartupError as exc:
        sdnotify.status(f"failed: {exc}")
        return failures.report(exc)
    finally:
        await database.close()


async def _start(config: Config, database: preflight.Database, signals: Signals) -> Node | None:
    """The started node, or None when a stop signal came first."""
    try:
        await preflight.check_listen(config.host, config.port, reuse_port=config.reuse_port)
        dsn = await _unless_stopped(database.open(), signals.stop)
        if dsn is None:
            return None
        if config.reuse_port:
            await sharers.check(dsn, config.host, config.port)
        # The database is up and migrated: the tree's Database child only opens its pool.
        node = Node(config.replace(database_url=dsn, migrate=False))
        sdnotify.status("starting the tree")
        return await _unless_stopped(_started(node), signals.stop)
    except Exception as exc:
        log.debug("the node failed to start", exc_info=exc)
        raise failures.explain(exc, config.host, config.port) from None


async def _started(node: Node) -> Node:
    await node.root.start()
    return node


async def _run(node: Node, config: Config, load: Callable[[], Config], signals: Signals) -> int:
    # Start-up objects live as long as the node: keep them out of every collection, and
    # collect the young generation less often (request handling allocates in bursts).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    logs.NODE.set(node.name)  # the lines below (and the watchdog's) name the node too
    ready = (f"ready: listening on {listen_address(config)} "
             f"(roles {','.join(sorted(config.roles))})")
    sdnotify.status(ready, "READY=1")
    log.info("node up: %s", ready)
    watchdog = Watchdog(TreeHealth(node.root, config.stuck_after),
                        sdnotify.watchdog_period(), ready)
    watchdog.start()
    reloader = Reloader(node, config, load)
    exited = asyncio.Event()
    node.root.add_exit_callback(lambda _: exited.set())
    try:
        while not (signals.stop.is_set() or exited.is_set()):
            await _first(signals.stop, signals.reload, exited)
            if signals.reload.is_set() and not signals.stop.is_set():
                signals.reload.clear()
                sdnotify.reloading()
                await reloader.reload()
                sdnotify.status(ready, "READY=1")
                watchdog.show_ready(ready)
    finally:
        watchdog.stop()
        sdnotify.status("stopping", "STOPPING=1")
    if node.root.done:
        log.critical("node supervisor gave up: %s; exiting", node.root.exit_reason())
        return 1
    log.info("stopping")
    await node.root.stop(config.shutdown_timeout * 3 + 45)
    log.info("stopped")
    return 0


def listen_address(config: Config) -> str:
    host = f"[{config.host}]" if ":" in config.host else config.host
    return f"http://{host}:{config.port}"


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def _unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """`work`'s result, or None when `stop` was set first (`work` is then cancelled)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((task, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if not task.done():
        task.cancel()
        await asyncio.wait((task,))
        log.info("stopped while starting")
        return None
    return task.result()
