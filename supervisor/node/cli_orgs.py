"""`triggerd orgs list` and `triggerd keys create|list|revoke`: organizations and their
API keys, through ingestor.ops_orgs. A key is printed only by the command that makes it."""

from __future__ import annotations

import argparse
from typing import Any

from ingestor import ops_orgs
from ingestor.errors import Invalid
from supervisor.node.cli_output import Context, leaf, record, records, uuid_arg
from supervisor.node.config import TIERS, parse_tier_limits

ORG_COLUMNS = ("organization_id", "organization_name", "tier", "active_keys", "created_at")


def add(commands: Any) -> None:
    orgs = commands.add_parser("orgs", help="organizations").add_subparsers(
        dest="orgs_command", required=True)
    listing = leaf(orgs, "list", list_orgs, "every organization, oldest first")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--cursor", help="a next_cursor from a previous page")
    keys = commands.add_parser("keys", help="API keys").add_subparsers(
        dest="keys_command", required=True)
    create = leaf(keys, "create", create_key,
                  "a new organization and its key (--org), or another key (--org-id)")
    whose = create.add_mutually_exclusive_group(required=True)
    whose.add_argument("--org", help="name of a new organization")
    whose.add_argument("--org-id", type=uuid_arg, help="an existing organization")
    create.add_argument("--tier", choices=TIERS, help="a new organization's tier (free)")
    listing = leaf(keys, "list", list_keys, "an organization's live keys, by public id")
    listing.add_argument("--org-id", type=uuid_arg, required=True)
    revoke = leaf(keys, "revoke", revoke_key, "revoke one key (idempotent)")
    revoke.add_argument("--org-id", type=uuid_arg, required=True)
    revoke.add_argument("--key-id", required=True, help="key_ and 16 hex digits")


def _limits(ctx: Context) -> dict[str, int]:
    return parse_tier_limits(ctx.config.tier_limits)


async def list_orgs(ctx: Context, args: argparse.Namespace) -> None:
    page = await ops_orgs.list_organizations(ctx.db, _limits(ctx), limit=args.limit,
                                             cursor=args.cursor)
    records(ctx, page.items, ORG_COLUMNS, "organizations", page)


async def create_key(ctx: Context, args: argparse.Namespace) -> None:
    if args.org is not None:
        record(ctx, await ops_orgs.create_organization(ctx.db, args.org, args.tier or "free",
                                                       _limits(ctx)))
        return
    if args.tier is not None:
        raise Invalid("--tier is a new organization's (--org); an existing one keeps its tier")
    await ops_orgs.get_organization(ctx.db, args.org_id, _limits(ctx))  # NotFound
    record(ctx, await ops_orgs.create_key(ctx.db, args.org_id))


async def list_keys(ctx: Context, args: argparse.Namespace) -> None:
    await ops_orgs.get_organization(ctx.db, args.org_id, _limits(ctx))  # NotFound
    records(ctx, await ops_orgs.list_keys(ctx.db, args.org_id),
            ("key_id", "created_at", "revoked_at"), "keys")


async def revoke_key(ctx: Context, args: argparse.Namespace) -> None:
    record(ctx, await ops_orgs.revoke_key(ctx.db, args.org_id, args.key_id))
