"""`triggerd events show|replay` (ingestor.ops_events) and `triggerd tail`: deliveries as
they happen (ingestor.ops_deliveries.deliveries_after and deliveries_by_ids).

`tail` starts at the newest delivery and polls every POLL_S: the deliveries made since
the last id seen (a primary-key range), and those it follows until they settle (by id,
at most MAX_FOLLOWED), printing one line each time one appears or changes status.
`--count` and `--seconds` stop it; Ctrl-C too (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from ingestor import ops_deliveries, ops_events
from ingestor.records import DELIVERY_STATUSES, Delivery
from supervisor.node.cli_output import Context, cell, dumps, leaf, record, uuid_arg

POLL_S = 0.5
MAX_FOLLOWED = 1000
OPEN = frozenset({"pending", "in_flight", "failed"})


def add(commands: Any) -> None:
    events = commands.add_parser("events", help="stored events").add_subparsers(
        dest="events_command", required=True)
    show = leaf(events, "show", show_event, "an event with its deliveries")
    show.add_argument("event_id", type=uuid_arg, metavar="EVENT_ID")
    show.add_argument("--org-id", type=uuid_arg, required=True)
    replay = leaf(events, "replay", replay_event, "deliver an event again: a new cycle of "
                  "attempts for its delivery to one endpoint, or to all")
    replay.add_argument("event_id", type=uuid_arg, metavar="EVENT_ID")
    replay.add_argument("--org-id", type=uuid_arg, required=True)
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--endpoint-id", type=uuid_arg)
    which.add_argument("--all", action="store_true", help="every endpoint it was routed to")
    tail = leaf(commands, "tail", follow, "print deliveries as they happen")
    tail.add_argument("--org-id", type=uuid_arg)
    tail.add_argument("--endpoint-id", type=uuid_arg)
    tail.add_argument("--status", choices=DELIVERY_STATUSES, help="only lines in this status")
    tail.add_argument("--count", type=int, help="stop after this many lines")
    tail.add_argument("--seconds", type=float, help="stop after this long")


async def show_event(ctx: Context, args: argparse.Namespace) -> None:
    record(ctx, await ops_events.get_event(ctx.db, args.org_id, args.event_id))


async def replay_event(ctx: Context, args: argparse.Namespace) -> None:
    record(ctx, await ops_events.replay_event(ctx.db, args.org_id, args.event_id,
                                              args.endpoint_id))


def _line(ctx: Context, delivery: Delivery) -> str:
    if ctx.json:
        return dumps(delivery, indent=False)
    d = delivery
    return (f"{cell(d.updated_at)}  {d.id:>8}  {d.status:<11}  {d.attempts:>2}  "
            f"{cell(d.response_status):>3}  {d.event_type}  {d.endpoint_id}  "
            f"{cell(d.last_error)}")


class Follower:
    """What a tail has seen: the last id, and the status of each delivery it follows."""

    def __init__(self, ctx: Context, args: argparse.Namespace, after: int) -> None:
        self.ctx, self.args, self.after = ctx, args, after
        self.followed: dict[int, str] = {}

    async def poll(self) -> list[Delivery]:
        """The deliveries that appeared or changed status since the last poll."""
        db, org = self.ctx.db, self.args.org_id
        seen = list(await ops_deliveries.deliveries_by_ids(db, org, list(self.followed))
                    ) if self.followed else []
        changed = [d for d in seen if d.status != self.followed[d.id]]
        for gone in set(self.followed) - {d.id for d in seen}:
            del self.followed[gone]
        while True:
            new = await ops_deliveries.deliveries_after(db, org, self.after,
                                                        endpoint_id=self.args.endpoint_id)
            changed.extend(new)
            if new:
                self.after = new[-1].id
            if len(new) < 500:
                break
        for d in changed:
            if d.status in OPEN and (d.id in self.followed or
                                     len(self.followed) < MAX_FOLLOWED):
                self.followed[d.id] = d.status
            else:
                self.followed.pop(d.id, None)
        status = self.args.status
        return [d for d in changed if status is None or d.status == status]


async def follow(ctx: Context, args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop_at = None if args.seconds is None else loop.time() + args.seconds
    follower = Follower(ctx, args, await ops_deliveries.latest_delivery_id(ctx.db))
    printed = 0
    while True:
        started = loop.time()
        for delivery in await follower.poll():
            print(_line(ctx, delivery), file=ctx.out, flush=True)
            printed += 1
            if args.count is not None and printed >= args.count:
                return
        if stop_at is not None and loop.time() >= stop_at:
            return
        pause = POLL_S - (loop.time() - started)
        if stop_at is not None:
            pause = min(pause, stop_at - loop.time())
        await asyncio.sleep(max(0.0, pause))
