"""The `triggerd` command: serve and migrate here; the operator's commands on the
database (status, orgs, keys, endpoints, deliveries, dlq, events, tail, config check)
in cli_*.py, each over the operations layer (ingestor.ops_*).

A mistake in the configuration, or a start that cannot succeed, is one line on stderr
and exit code 2 (configuration) or 1 (anything else), never a traceback; a refusal of
an operation is one line too, exit 2 (invalid), 3 (not found) or 4 (conflict), see
cli_output.py; `serve` itself lives in serve.py.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import importlib.metadata
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NoReturn

import asyncpg

from ingestor.errors import ApiError
from supervisor.node import (
    cli_deliveries,
    cli_endpoints,
    cli_events,
    cli_orgs,
    cli_output,
    cli_status,
    cli_systemd,
    failures,
    logs,
    preflight,
)
from supervisor.node import config as configuration
from supervisor.node.cli_output import Command, Context
from supervisor.node.config import Config, ConfigError
from supervisor.node.failures import StartupError
from supervisor.node.postgres import EmbeddedPostgresError, PostgresNotFound


def _version() -> str:
    try:
        return importlib.metadata.version("triggerd")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class _Parser(argparse.ArgumentParser):
    """Usage mistakes in one line on stderr, exit 2 (every subcommand's parser too)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"triggerd: {self.prog.removeprefix('triggerd ')}: {message} "
                     "(see --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="triggerd", description="Webhook ingestion and delivery.")
    parser.add_argument("--version", action="version", version=f"triggerd {_version()}")
    parser.add_argument("--config", type=Path, help="TOML file (environment variables win)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run a node")
    serve.add_argument("--host", help="address to listen on (TRIGGERD_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (PORT, default 4000)")
    serve.add_argument("--roles", help="comma-separated subset of ingest,process,deliver")
    serve.add_argument("--reuse-port", dest="reuse_port", action="store_true", default=None,
                       help="share PORT with other triggerd processes started so "
                            "(SO_REUSEPORT; TRIGGERD_REUSE_PORT=true)")
    serve.add_argument("--no-migrate", dest="migrate", action="store_false", default=None,
                       help="do not apply pending migrations on start")
    migrate = commands.add_parser("migrate", help="apply pending migrations and exit")
    for sub in (serve, migrate):
        sub.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                         help="TOML file (environment variables win)")
    for module in (cli_status, cli_orgs, cli_endpoints, cli_deliveries, cli_events,
                   cli_systemd):
        module.add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        # Until the event loop takes it over: SIGHUP reloads, it never kills the node.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    overrides = {k: getattr(args, k, None)
                 for k in ("host", "port", "roles", "migrate", "reuse_port")}

    def load() -> Config:
        return configuration.load(args.config, **overrides)

    try:
        config = load()
    except ConfigError as exc:
        return failures.report(StartupError(str(exc), failures.CONFIG))
    operator_command = args.command not in ("serve", "migrate")
    # An operator's command prints its result and at most one line of refusal; its
    # logging only says more when asked to (DEBUG).
    quiet = operator_command and config.log_level.upper() != "DEBUG"
    logs.setup(config.log_format, "ERROR" if quiet else config.log_level)
    if args.command == "serve":
        from supervisor.node.serve import serve  # loads the webhook packages

        faulthandler.enable()  # a node killed by systemd's watchdog shows where it hung
        return _run(lambda: serve(config, load))
    if getattr(args, "offline", None) is not None:
        return int(args.offline(config, args))
    run: Command = args.run if args.command != "migrate" else _migrate
    try:
        return _run(lambda: with_database(
            config, lambda pool: run(Context(pool, config, args.json, sys.stdout), args)))
    except StartupError as exc:
        return failures.report(exc)
    except ApiError as exc:
        return cli_output.refused(exc)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        # e.g. a statement past TRIGGERD_STATEMENT_TIMEOUT, or the connection lost
        print(f"triggerd: the database failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return cli_output.FAILURE
    except KeyboardInterrupt:
        return 0 if args.command == "tail" else 130


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
            # stderr: the output of a command may be a JSON document
            print(f"applied: {', '.join(database.applied)}", file=sys.stderr)
        settings = {"application_name": "triggerd-cli",
                    "statement_timeout": str(int(config.statement_timeout * 1000))}
        async with asyncpg.create_pool(dsn, min_size=1, max_size=2,
                                       server_settings=settings) as pool:
            await work(pool)
    except (PostgresNotFound, EmbeddedPostgresError) as exc:
        raise failures.explain(exc, config.host, config.port) from None
    finally:
        await database.close()
    return 0


async def _migrate(ctx: Context, args: argparse.Namespace) -> None:
    print("schema is up to date")


if __name__ == "__main__":
    sys.exit(main())
