"""`triggerd deliveries list|show|retry` and `triggerd dlq list|retry|recover|resolve`,
through ingestor.ops_deliveries and ops_endpoints.

Lists and bulk actions name the organization (`--org-id`). A command on one delivery by
its id (`deliveries show|retry`, `dlq retry ID`, `dlq resolve`) takes `--org-id` to
check that the delivery is that organization's, and without it acts on the delivery
whatever its organization (delivery ids are unique across the node, as in log lines).
A review is recorded as by `cli:<unix user>`.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from ingestor import ops_deliveries as ops
from ingestor import ops_endpoints
from ingestor.errors import Invalid
from ingestor.ops_deliveries import DeadLetterFilter, DeliveryFilter
from ingestor.records import DELIVERY_STATUSES
from supervisor.node.cli_output import (
    Context,
    leaf,
    operator,
    record,
    records,
    time_arg,
    uuid_arg,
)

COLUMNS = ("id", "event_type", "endpoint_id", "status", "attempts", "response_status",
           "last_error", "created_at")
DLQ_COLUMNS = ("id", "event_type", "endpoint_id", "attempts", "last_error", "updated_at",
               "resolved_by")


def _page(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--cursor", help="a next_cursor from a previous page")


def _dead_filter(parser: argparse.ArgumentParser, org_required: bool = True) -> None:
    parser.add_argument("--org-id", type=uuid_arg, required=org_required)
    parser.add_argument("--endpoint-id", type=uuid_arg)
    parser.add_argument("--event-type")
    parser.add_argument("--since", type=time_arg, help="dead at or after (RFC 3339)")
    parser.add_argument("--until", type=time_arg, help="dead before (RFC 3339)")
    reviewed = parser.add_mutually_exclusive_group()
    reviewed.add_argument("--resolved", action="store_true", default=None,
                          help="only those resolved (reviewed)")
    reviewed.add_argument("--unresolved", dest="resolved", action="store_false",
                          help="only those not resolved")


def add(commands: Any) -> None:
    deliveries = commands.add_parser("deliveries", help="deliveries").add_subparsers(
        dest="deliveries_command", required=True)
    listing = leaf(deliveries, "list", list_deliveries, "an organization's, newest first")
    listing.add_argument("--org-id", type=uuid_arg, required=True)
    listing.add_argument("--status", choices=DELIVERY_STATUSES)
    listing.add_argument("--endpoint-id", type=uuid_arg)
    listing.add_argument("--event-type")
    _page(listing)
    for name, run, help_ in (("show", show, "one delivery with every attempt"),
                             ("retry", retry, "re-queue a failed or dead delivery")):
        one = leaf(deliveries, name, run, help_)
        one.add_argument("delivery_id", type=int, metavar="DELIVERY_ID")
        one.add_argument("--org-id", type=uuid_arg)
    dlq = commands.add_parser("dlq", help="dead letters").add_subparsers(
        dest="dlq_command", required=True)
    listing = leaf(dlq, "list", list_dead, "dead letters, most recently dead first")
    _dead_filter(listing)
    _page(listing)
    bulk = leaf(dlq, "retry", retry_dead, "re-queue one dead letter (ID), or every one the "
                "filters select (--org-id and filters)")
    bulk.add_argument("delivery_id", type=int, nargs="?", metavar="DELIVERY_ID")
    _dead_filter(bulk, org_required=False)
    recover = leaf(dlq, "recover", recover_endpoint, "re-queue an endpoint's failed and "
                   "dead deliveries created in [--since, --until)")
    recover.add_argument("--org-id", type=uuid_arg, required=True)
    recover.add_argument("--endpoint-id", type=uuid_arg, required=True)
    recover.add_argument("--since", type=time_arg, required=True)
    recover.add_argument("--until", type=time_arg)
    resolve = leaf(dlq, "resolve", resolve_dead, "mark a dead letter reviewed, not sent again")
    resolve.add_argument("delivery_id", type=int, metavar="DELIVERY_ID")
    resolve.add_argument("--note")
    resolve.add_argument("--org-id", type=uuid_arg)


async def list_deliveries(ctx: Context, args: argparse.Namespace) -> None:
    selected = DeliveryFilter(args.status, args.endpoint_id, args.event_type)
    page = await ops.list_deliveries(ctx.db, args.org_id, selected, limit=args.limit,
                                     cursor=args.cursor)
    records(ctx, page.items, COLUMNS, "deliveries", page)


async def show(ctx: Context, args: argparse.Namespace) -> None:
    record(ctx, await ops.get_delivery(ctx.db, args.org_id, args.delivery_id))


async def retry(ctx: Context, args: argparse.Namespace) -> None:
    record(ctx, await ops.retry_delivery(ctx.db, args.org_id, args.delivery_id))


def _selected(args: argparse.Namespace) -> DeadLetterFilter:
    return DeadLetterFilter(args.resolved, args.endpoint_id, args.event_type, args.since,
                            args.until)


async def list_dead(ctx: Context, args: argparse.Namespace) -> None:
    page = await ops.list_dead_letters(ctx.db, args.org_id, _selected(args), limit=args.limit,
                                       cursor=args.cursor)
    records(ctx, page.items, DLQ_COLUMNS, "deliveries", page)  # as the API names them


async def retry_dead(ctx: Context, args: argparse.Namespace) -> None:
    if args.delivery_id is None:
        if args.org_id is None:
            raise Invalid("a bulk retry needs --org-id (or give one DELIVERY_ID)")
        record(ctx, await ops.retry_dead_letters(ctx.db, args.org_id, _selected(args)))
        return
    if _selected(args) != DeadLetterFilter():
        raise Invalid("give a DELIVERY_ID or filters, not both")
    record(ctx, await ops.retry_delivery(ctx.db, args.org_id, args.delivery_id))


async def recover_endpoint(ctx: Context, args: argparse.Namespace) -> None:
    if args.since >= (args.until or datetime.now(UTC)):
        raise Invalid("--since must be before --until (which defaults to now)")
    record(ctx, await ops_endpoints.recover_endpoint(ctx.db, args.org_id, args.endpoint_id,
                                                     args.since, args.until))


async def resolve_dead(ctx: Context, args: argparse.Namespace) -> None:
    record(ctx, await ops.resolve_dead_letter(ctx.db, args.org_id, args.delivery_id,
                                              by=operator(), note=args.note))
