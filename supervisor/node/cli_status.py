"""`triggerd status` (the nodes from their heartbeat rows, the node-wide queues and the
held endpoints: ingestor.nodes and ops_node, both bounded) and `triggerd config check`
(the configuration as `serve` would load and validate it, secrets masked)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from ingestor import nodes, ops_node
from ingestor.shapes import to_json
from supervisor.node.cli_output import Context, dumps, leaf, table
from supervisor.node.config import Config, env_name

MASK = "****"
NODES_SHOWN = 100


def add(commands: Any) -> None:
    leaf(commands, "status", status, "nodes, queues, held endpoints")
    config = commands.add_parser("config", help="the configuration").add_subparsers(
        dest="config_command", required=True)
    check = leaf(config, "check", None, "validate it as serve would; print the "
                 "effective settings, secrets masked")
    check.set_defaults(offline=check_config)


async def status(ctx: Context, args: argparse.Namespace) -> None:
    found = await nodes.list_nodes(ctx.db, limit=NODES_SHOWN)
    queue = await ops_node.node_queue(ctx.db)
    if ctx.json:
        print(dumps({"nodes": found, "queue": queue}), file=ctx.out)
        return
    table(ctx.out, ("node", "state", "roles", "last seen", "version", "restarts"),
          ([n.name, "alive" if n.alive else "stale", n.roles, f"{n.seen_ago_s:.1f}s ago",
            n.version, sum((n.stats.get("restarts") or {}).values())] for n in found))
    if not found:
        print("(no node has a heartbeat row)", file=ctx.out)
    print(file=ctx.out)
    table(ctx.out, ("queue", "value"), to_json(queue).items())


def mask_dsn(url: str | None) -> str | None:
    """A DATABASE_URL without its password (in the address or as a parameter)."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:{MASK}@{host}" if ":" in user else netloc
    query = "&".join(f"{k}={MASK}" if k == "password" else item
                     for item in parts.query.split("&") if item
                     for k in [item.partition("=")[0]])
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def mask_webhook(url: str | None) -> str | None:
    """An alert webhook URL without its credentials, path or query (a chat service's
    webhook carries its token in the path)."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return MASK
    userinfo = f"{MASK}@" if "@" in parts.netloc else ""
    rest = f"/{MASK}" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{userinfo}{host}{port}{rest}"


def effective(config: Config) -> dict[str, Any]:
    """Every setting by its variable's name, secrets masked."""
    shown: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name == "admin_token":
            value = None if value is None else MASK
        elif f.name == "database_url":
            value = mask_dsn(value)
        elif f.name == "alert_webhook_url":
            value = mask_webhook(value)
        elif isinstance(value, frozenset):
            value = sorted(value)
        shown[env_name(f.name)] = value if isinstance(value, bool | int | float | list
                                                      ) or value is None else str(value)
    return shown


def check_config(config: Config, args: argparse.Namespace) -> int:
    """Prints the effective settings; a configuration that does not load never gets
    here (cli.main reports it, exit 2)."""
    settings = effective(config)
    if getattr(args, "json", False):
        print(orjson.dumps({"valid": True, "settings": settings},
                           option=orjson.OPT_INDENT_2).decode())
    else:
        table(sys.stdout, ("setting", "value"), settings.items())
    return 0
