"""`triggerd endpoints list|create|pause|resume|enable|disable|delete|rotate-secret`:
an operator acting for one organization, through ingestor.ops_endpoints.

Every endpoint command names the organization (`--org-id`): the endpoint must be that
organization's (else not found, exit 3), so an operator's mistyped id never reaches
another organization's endpoint. `create` validates its options as the API validates a
body (endpoint_input.parse_endpoint); the signing secret is printed by `create` and
`rotate-secret` only.
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from ingestor import ops_endpoints as ops
from ingestor.endpoint_input import parse_endpoint
from ingestor.endpoint_spec import spec_from
from ingestor.errors import Invalid
from supervisor.node.cli_output import Command, Context, leaf, operator, record, records, uuid_arg

COLUMNS = ("id", "url", "event_types", "priority", "enabled", "paused", "breaker", "created_at")


def add(commands: Any) -> None:
    group = commands.add_parser("endpoints", help="an organization's endpoints")
    endpoints = group.add_subparsers(dest="endpoints_command", required=True)
    listing = leaf(endpoints, "list", list_endpoints, "the organization's endpoints")
    listing.add_argument("--org-id", type=uuid_arg, required=True)
    create = leaf(endpoints, "create", create_endpoint, "a new endpoint; prints its secret")
    create.add_argument("--org-id", type=uuid_arg, required=True)
    create.add_argument("--url", required=True)
    create.add_argument("--event-types", help="comma-separated (default: every type)")
    create.add_argument("--filter", help="a filter document, as JSON")
    create.add_argument("--priority", type=int)
    create.add_argument("--description")
    create.add_argument("--rate-limit", type=int, dest="rate_limit_per_second")
    create.add_argument("--timeout", type=float, dest="timeout_s", help="seconds")
    create.add_argument("--header", action="append", metavar="NAME:VALUE",
                        help="a header sent with each delivery (repeatable)")
    create.add_argument("--success-statuses", help="comma-separated, e.g. 200,202")
    create.add_argument("--ordered", action="store_true", default=None)
    create.add_argument("--paused", action="store_true", default=None)
    actions: dict[str, tuple[Command, str]] = {
        "pause": (pause, "pause: its deliveries wait, none is attempted"),
        "resume": (resume, "resume: its waiting deliveries go, in order"),
        "enable": (enable, "enable it and close its breaker"),
        "disable": (disable, "disable: its undelivered deliveries become dead letters"),
        "delete": (delete, "delete: its undelivered deliveries are cancelled"),
        "rotate-secret": (rotate, "a new signing secret (the old one signs for 24 h)"),
    }
    for name, (run, help_) in actions.items():
        action = leaf(endpoints, name, run, help_)
        action.add_argument("--org-id", type=uuid_arg, required=True)
        action.add_argument("endpoint_id", type=uuid_arg, metavar="ENDPOINT_ID")
        if name == "disable":
            action.add_argument("--reason", help="recorded with it (default: who disabled it)")


async def list_endpoints(ctx: Context, args: argparse.Namespace) -> None:
    records(ctx, await ops.list_endpoints(ctx.db, args.org_id), COLUMNS, "endpoints")


def _body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"url": args.url}
    if args.event_types is not None:
        body["event_types"] = [t.strip() for t in args.event_types.split(",") if t.strip()]
    if args.filter is not None:
        try:
            body["filter"] = orjson.loads(args.filter)
        except orjson.JSONDecodeError as exc:
            raise Invalid(f"--filter is not JSON: {exc}") from None
    if args.header:
        pairs = [h.partition(":") for h in args.header]
        if any(not sep for _, sep, _ in pairs):
            raise Invalid("--header must be NAME:VALUE")
        body["headers"] = {name.strip(): value.strip() for name, _, value in pairs}
    if args.success_statuses is not None:
        try:
            body["success_statuses"] = [int(v) for v in args.success_statuses.split(",")]
        except ValueError:
            raise Invalid("--success-statuses must be status codes, e.g. 200,202") from None
    for name in ("priority", "description", "rate_limit_per_second", "timeout_s", "ordered",
                 "paused"):
        if getattr(args, name) is not None:
            body[name] = getattr(args, name)
    return body


async def create_endpoint(ctx: Context, args: argparse.Namespace) -> None:
    fields = parse_endpoint(_body(args), partial=False,
                            max_timeout=ctx.config.max_request_timeout)
    record(ctx, await ops.create_endpoint(ctx.db, args.org_id, spec_from(fields),
                                          by=operator(),
                                          allow_private=ctx.config.allow_private_targets))


async def pause(ctx: Context, args: argparse.Namespace) -> None:
    record(ctx, await ops.pause_endpoint(ctx.db, args.org_id, args.endpoint_id,
                                         by=operator()))


async def resume(ctx: Context, args: argparse.Namespace) -> None:
    record(ctx, await ops.resume_endpoint(ctx.db, args.org_id, args.endpoint_id))


async def enable(ctx: Context, args: argparse.Namespace) -> None:
    record(ctx, await ops.enable_endpoint(ctx.db, args.org_id, args.endpoint_id))


async def disable(ctx: Context, args: argparse.Namespace) -> None:
    reason = args.reason or f"disabled by {operator()}"
    record(ctx, await ops.disable_endpoint(ctx.db, args.org_id, args.endpoint_id, reason))


async def delete(ctx: Context, args: argparse.Namespace) -> None:
    record(ctx, await ops.delete_endpoint(ctx.db, args.org_id, args.endpoint_id))


async def rotate(ctx: Context, args: argparse.Namespace) -> None:
    record(ctx, await ops.rotate_endpoint_secret(ctx.db, args.org_id, args.endpoint_id))
