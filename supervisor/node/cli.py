"""The `triggerd` command: serve, migrate, keys create.

A mistake in the configuration, or a start that cannot succeed, is one line on stderr
and exit code 2 (configuration) or 1 (anything else), never a traceback; `serve` itself
lives in serve.py.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from supervisor.node import config as configuration
from supervisor.node import failures, logs, preflight
from supervisor.node.config import Config, ConfigError
from supervisor.node.failures import StartupError
from supervisor.node.postgres import EmbeddedPostgresError, PostgresNotFound


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
    if args.command == "serve":
        # Until the event loop takes it over: SIGHUP reloads, it never kills the node.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    overrides = {k: getattr(args, k, None) for k in ("host", "port", "roles", "migrate")}

    def load() -> Config:
        return configuration.load(args.config, **overrides)

    try:
        config = load()
    except ConfigError as exc:
        return failures.report(StartupError(str(exc), failures.CONFIG))
    logs.setup(config.log_format, config.log_level)
    if args.command == "serve":
        from supervisor.node.serve import serve  # loads the webhook packages

        faulthandler.enable()  # a node killed by systemd's watchdog shows where it hung
        return _run(lambda: serve(config, load))
    try:
        if args.command == "migrate":
            return _run(lambda: with_database(config, _migrate))
        return _run(lambda: with_database(config, lambda pool: _create_key(pool, args.org,
                                                                            args.tier)))
    except StartupError as exc:
        return failures.report(exc)


def _run(main_coro: Callable[[], Awaitable[int]]) -> int:
    try:
        import uvloop
        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main_coro())  # type: ignore[arg-type]


async def with_database(config: Config, work: Callable[[asyncpg.Pool], Awaitable[None]]) -> int:
    """Runs `work` on a migrated database: DATABASE_URL, or the embedded one."""
    database = preflight.Database(config.replace(migrate=True), lambda _: None)
    try:
        dsn = await database.open()
        if database.applied:
            print(f"applied: {', '.join(database.applied)}")
        async with asyncpg.create_pool(dsn, min_size=1, max_size=2) as pool:
            await work(pool)
    except (PostgresNotFound, EmbeddedPostgresError) as exc:
        raise failures.explain(exc, config.host, config.port) from None
    finally:
        await database.close()
    return 0


async def _migrate(pool: asyncpg.Pool) -> None:
    print("schema is up to date")


async def _create_key(pool: asyncpg.Pool, org: str, tier: str) -> None:
    from ingestor.auth import KeyStore

    key, created = await KeyStore(lambda: pool).create_org(org, tier)
    print(f"organization_id: {created.id}\ntier: {created.tier}\napi_key: {key}")


if __name__ == "__main__":
    sys.exit(main())
