"""App factory for development with autoreload:

    .venv/bin/adev runserver supervisor/node/dev.py --app-factory create_app --port 4000

aiohttp-devtools serves the app itself; the node's tree (database, writer, processing,
maintenance) starts with the app and stops with it, configured from the environment.
"""

from __future__ import annotations

from aiohttp import web

from ingestor.app import create_app as create_ingest_app
from supervisor.node import config as configuration
from supervisor.node import logs
from supervisor.node.tree import Node


def create_app() -> web.Application:
    config = configuration.load()
    logs.setup("text", config.log_level)
    node = Node(config, serve_http=False)
    app = create_ingest_app(node.ingest)

    async def start(_: web.Application) -> None:
        await node.root.start()

    async def stop(_: web.Application) -> None:
        await node.root.stop(config.shutdown_timeout * 3)

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app
