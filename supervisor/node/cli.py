"""The `triggerd` command: serve, migrate, keys create."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import asyncpg

from supervisor.node import config as configuration
from supervisor.node import logs
from supervisor.node.config import Config, ConfigError
from supervisor.node.migrate import migrate
from supervisor.node.postgres import EmbeddedPostgres, EmbeddedPostgresError, PostgresNotFound
from supervisor.node.sdnotify import notify

log = logging.getLogger("triggerd")
T = TypeVar("T")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="triggerd", description="Webhook ingestion and delivery.")
    parser.add_argument("--config", type=Path, help="TOML file (environment variables win)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run a node")
    serve.add_argument("--host", help="address to listen on (TRIGGERD_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (PORT, default 4000)")
    serve.add_argument("--roles", help="comma-separated subset of ingest,process,deliver")
    serve.add_argument("--no-migrate", dest="migrate", action="store_false", default=None,
                       help="do not apply pending migrations on start")
    commands.add_parser("migrate", help="apply pending migrations and exit")
    keys = commands.add_parser("keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="create an organization and print its key")
    create.add_argument("--org", required=True, help="organization name")
    create.add_argument("--tier", default="free", choices=["free", "pro", "business", "enterprise"])
    for sub in (serve, commands.choices["migrate"], keys):
        sub.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                         help="TOML file (environment variables win)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        overrides = {k: getattr(args, k, None) for k in ("host", "port", "roles", "migrate")}
        config = configuration.load(args.config, **overrides)
    except ConfigError as exc:
        print(f"triggerd: configuration error: {exc}", file=sys.stderr)
        return 2
    logs.setup(config.log_format, config.log_level)
    try:
        if args.command == "serve":
            return _run(lambda: serve(config))
        if args.command == "migrate":
            return _run(lambda: with_database(config, _migrate))
        return _run(lambda: with_database(config, lambda pool: _create_key(pool, args.org, args.tier)))
    except (PostgresNotFound, EmbeddedPostgresError) as exc:
        print(f"triggerd: {exc}", file=sys.stderr)
        return 1


def _run(main_coro: Callable[[], Awaitable[int]]) -> int:
    try:
        import uvloop
        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main_coro())  # type: ignore[arg-type]


async def serve(config: Config) -> int:
    from supervisor.node.tree import Node  # the webhook packages load only to serve

    node = Node(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    exited = loop.create_future()
    node.root.add_exit_callback(lambda _: None if exited.done() else exited.set_result(None))
    await node.root.start()
    # Start-up objects live as long as the node: keep them out of every collection, and
    # collect the young generation less often (request handling allocates in bursts).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    notify("READY=1")
    log.info("node up: roles=%s port=%d", ",".join(sorted(config.roles)), config.port)
    await asyncio.wait([asyncio.ensure_future(stop.wait()), exited],
                       return_when=asyncio.FIRST_COMPLETED)
    notify("STOPPING=1")
    if node.root.done:
        log.critical("node supervisor gave up: %s; exiting", node.root.exit_reason())
        return 1
    log.info("stopping")
    await node.root.stop(config.shutdown_timeout * 3 + 45)
    log.info("stopped")
    return 0


async def with_database(config: Config, work: Callable[[asyncpg.Pool], Awaitable[None]]) -> int:
    """Runs `work` on a migrated database: DATABASE_URL, or the embedded one."""
    embedded = None if config.database_url else EmbeddedPostgres(config.data_dir)
    dsn = config.database_url if embedded is None else await asyncio.to_thread(embedded.start)
    try:
        async with asyncpg.create_pool(dsn, min_size=1, max_size=2) as pool:
            async with pool.acquire() as conn:
                applied = await migrate(conn)
            if applied:
                print(f"applied: {', '.join(applied)}")
            await work(pool)
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
    return 0


async def _migrate(pool: asyncpg.Pool) -> None:
    print("schema is up to date")


async def _create_key(pool: asyncpg.Pool, org: str, tier: str) -> None:
    from ingestor.auth import KeyStore

    key, created, _ = await KeyStore(lambda: pool).create_org(org, tier)
    print(f"organization_id: {created.id}\ntier: {created.tier}\napi_key: {key}")


if __name__ == "__main__":
    sys.exit(main())
