"""`triggerd systemd-unit` (print a unit for this installed binary: systemd_unit.py) and
`triggerd postgres` (the embedded PostgreSQL as a service: pgservice.py)."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from supervisor.node import logs, pgservice, systemd_unit
from supervisor.node.config import ROLES, Config
from supervisor.node.systemd_unit import UnitSpec

_USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,30}")


def add(commands: Any) -> None:
    unit = commands.add_parser(
        "systemd-unit", help="print a systemd unit that runs this binary",
        description="Prints triggerd.service (default), the template triggerd@.service "
                    "(--template) or triggerd-postgres.service (--postgres-service).")
    kind = unit.add_mutually_exclusive_group()
    kind.add_argument("--template", action="store_true",
                      help="triggerd@.service: several processes on one host (--reuse-port)")
    kind.add_argument("--postgres-service", action="store_true",
                      help="triggerd-postgres.service: the embedded PostgreSQL on its own")
    unit.add_argument("--postgres", action="store_true",
                      help="the node runs on triggerd-postgres.service (Requires=, After=)")
    unit.add_argument("--roles", type=_roles, help="serve --roles for every process")
    unit.add_argument("--binary", type=_binary, help="the executable (default: this one)")
    unit.add_argument("--user", type=_user, default=systemd_unit.DEFAULT_USER,
                      help="the user the units run as (default triggerd)")
    unit.set_defaults(offline=print_unit)
    postgres = commands.add_parser(
        "postgres", help="run the embedded PostgreSQL of TRIGGERD_DATA_DIR as a service")
    postgres.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                          help="TOML file (environment variables win)")
    postgres.set_defaults(offline=run_postgres)


def print_unit(config: Config, args: argparse.Namespace) -> int:
    if args.postgres_service and (args.roles or args.postgres):
        print("triggerd: systemd-unit: --postgres-service takes neither --roles nor "
              "--postgres", file=sys.stderr)
        return 2
    kind: systemd_unit.Kind = ("template" if args.template
                               else "postgres" if args.postgres_service else "node")
    spec = UnitSpec(kind, args.binary or installed_binary(), args.roles, args.user,
                    args.postgres)
    sys.stdout.write(systemd_unit.render(spec))
    return 0


def run_postgres(config: Config, args: argparse.Namespace) -> int:
    logs.setup(config.log_format, config.log_level)  # a service logs as serve does
    return pgservice.run(config)


def installed_binary() -> str:
    """The absolute path of the running triggerd: the single-file binary itself when
    frozen, else the `triggerd` script this runs as, else the one on PATH."""
    if getattr(sys, "frozen", False):
        return os.path.abspath(sys.executable)
    argv0 = sys.argv[0]
    if Path(argv0).name == "triggerd" and os.access(argv0, os.X_OK):
        return os.path.abspath(argv0)
    return shutil.which("triggerd") or systemd_unit.DEFAULT_BINARY


def _roles(raw: str) -> str:
    roles = [role.strip() for role in raw.split(",") if role.strip()]
    if not roles or not set(roles) <= ROLES:
        raise argparse.ArgumentTypeError(
            f"{raw!r}: expected a comma-separated subset of {','.join(sorted(ROLES))}")
    return ",".join(roles)


def _binary(raw: str) -> str:
    if not os.path.isabs(raw) or "\n" in raw:
        raise argparse.ArgumentTypeError(f"{raw!r}: give an absolute path")
    return raw


def _user(raw: str) -> str:
    if not _USER_NAME.fullmatch(raw):
        raise argparse.ArgumentTypeError(f"{raw!r}: not a valid user name")
    return raw
