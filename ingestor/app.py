"""The aiohttp application and HttpAcceptor, the process that serves it.

HttpAcceptor is the last child of the ingest subtree, so it stops first: the
listening socket closes, requests under way finish (their events reach the
writer, which is still running), then the writer drains. Restart: permanent.
With `reuse_port` its socket sets SO_REUSEPORT: other processes of this user that set
it too listen on the same port, and the kernel spreads new connections among them.
"""

from __future__ import annotations

import logging
import resource

from aiohttp import web

from ingestor import (
    routes_console,
    routes_console_api,
    routes_deliveries,
    routes_docs,
    routes_endpoints,
    routes_events,
    routes_health,
    routes_inbound,
    routes_inbox,
    routes_keys,
    routes_meta,
    routes_metrics,
    routes_monitoring,
    routes_node,
    routes_sources,
)
from ingestor.context import Ingest
from ingestor.http import BODY_TIMEOUT, DEFAULT_BODY_TIMEOUT, errors
from ingestor.routes_events import INGEST
from ingestor.routes_inbound import SOURCES
from ingestor.server import GuardedRunner
from ingestor.source_store import SourceStore
from ingestor.timing import timing
from ingestor.validation import MAX_BATCH_BYTES
from supervisor import Resident

log = logging.getLogger(__name__)


API_ROUTES = (routes_events.routes, routes_keys.routes, routes_inbox.routes,
              routes_endpoints.routes, routes_deliveries.routes, routes_metrics.routes,
              routes_meta.routes, routes_sources.routes, routes_inbound.routes,
              routes_monitoring.routes, routes_docs.routes)
NODE_ROUTES = (routes_health.routes, routes_node.routes, routes_console.routes,
               routes_console_api.routes)


def create_app(ingest: Ingest, *, api: bool = True,
               body_timeout: float = DEFAULT_BODY_TIMEOUT) -> web.Application:
    """The whole HTTP API, or (api=False, a node without the ingest role) only the node's
    own endpoints: health, metrics and the dashboard."""
    # timing first (outermost): it sees the status `errors` answers with.
    app = web.Application(middlewares=[timing, errors],
                          client_max_size=MAX_BATCH_BYTES + 64 * 1024)
    app[INGEST] = ingest
    app[SOURCES] = SourceStore(ingest.pool)
    app[BODY_TIMEOUT] = body_timeout
    for table in (API_ROUTES if api else ()) + NODE_ROUTES:
        app.router.add_routes(table)
    return app


class HttpAcceptor(Resident):
    def __init__(self, app: web.Application, host: str, port: int,
                 shutdown_timeout: float = 10.0, *, keepalive_timeout: float = 15.0,
                 max_connections: int = 4096, reuse_port: bool = False) -> None:
        super().__init__(name="HttpAcceptor")
        self._app = app
        self._host = host
        self._port = port
        self._shutdown_timeout = shutdown_timeout
        self._keepalive_timeout = keepalive_timeout
        self._max_connections = max_connections
        self._reuse_port = reuse_port
        self._runner: web.AppRunner | None = None

    async def init(self) -> None:
        _allow_descriptors(self._max_connections + 256)
        self._runner = GuardedRunner(self._app, access_log=None,
                                     shutdown_timeout=self._shutdown_timeout,
                                     handle_signals=False,
                                     keepalive_timeout=self._keepalive_timeout,
                                     max_connections=self._max_connections)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, reuse_address=True,
                           reuse_port=self._reuse_port or None)
        await site.start()
        log.info("listening on http://%s:%d%s", self._host, self._port,
                 " (shared: SO_REUSEPORT)" if self._reuse_port else "")

    async def terminate(self, reason: BaseException | None) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def _allow_descriptors(wanted: int) -> None:
    """Raises the process's open-file limit toward `wanted` (up to the hard limit), so
    the connection cap, not the descriptor limit, is what a flood of connections meets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        log.info("open-file limit raised from %d to %d", soft, target)
    if target < wanted:
        log.warning("open-file limit %d is below the connection cap %d + 256: lower "
                    "TRIGGERD_HTTP_MAX_CONNECTIONS or raise LimitNOFILE", hard, wanted - 256)
