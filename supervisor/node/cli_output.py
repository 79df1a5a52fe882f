"""What every operator command shares: its context (the pool, the configuration, the
output mode), the options every command takes, and how results and refusals are shown.

A result is a record of the operations layer (ingestor.records), shown as an aligned
table for people or, with `--json`, as the same JSON the API renders (shapes.to_json):
one document per command, one line per record for `tail`. A refusal is one line on
stderr and an exit code: 2 for a bad argument (ingestor.errors.Invalid), 3 not found,
4 conflict; 1 is any other failure (the database unreachable), 2 also a usage or
configuration mistake.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from uuid import UUID

import orjson

from ingestor.endpoint_input import parse_time
from ingestor.errors import ApiError
from ingestor.records import Page
from ingestor.shapes import to_json
from supervisor.node.config import Config

OK, FAILURE, USAGE, NOT_FOUND, CONFLICT = 0, 1, 2, 3, 4
_BY_STATUS = {404: NOT_FOUND, 409: CONFLICT}


@dataclass(frozen=True, slots=True)
class Context:
    """What a command runs with: the database pool, the configuration, the output."""

    db: Any  # asyncpg.Pool
    config: Config
    json: bool
    out: TextIO


Command = Callable[[Context, argparse.Namespace], Awaitable[None]]


def common() -> argparse.ArgumentParser:
    """The options every command takes, also after its name."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print JSON (the API's shapes) instead of a table")
    parent.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                        help="TOML file (environment variables win)")
    return parent


def leaf(group: Any, name: str, run: Command | None, help_: str, **kwargs: Any
         ) -> argparse.ArgumentParser:
    """A command that runs `run` on the database (None: one that sets `offline`, a
    function of the configuration run without a database)."""
    parser: argparse.ArgumentParser = group.add_parser(name, help=help_, parents=[common()],
                                                       **kwargs)
    parser.set_defaults(run=run)
    return parser


def uuid_arg(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {raw!r}") from None


def time_arg(raw: str) -> datetime:
    try:
        return parse_time(raw, "time")
    except ApiError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def operator() -> str:
    """Who acts, as recorded beside a change: `cli:<unix user>`."""
    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):
        return f"cli:uid {os.getuid()}"


def refused(exc: ApiError) -> int:
    """The refusal's one line on stderr; its exit code."""
    extra = "".join(f"; {k}: {v}" for k, v in exc.extra.items())
    print(f"triggerd: {exc.message}{extra}", file=sys.stderr, flush=True)
    return _BY_STATUS.get(exc.status, USAGE if exc.status == 400 else FAILURE)


def dumps(value: Any, *, indent: bool = True) -> str:
    option = orjson.OPT_INDENT_2 if indent else 0
    return orjson.dumps(to_json(value), option=option).decode()


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, list | tuple):
        return ",".join(cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    if isinstance(value, orjson.Fragment):  # a stored JSON text, as it is
        return orjson.dumps(value).decode()
    return str(value)


def table(out: TextIO, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Aligned columns under an upper-case header; the last column is not padded."""
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(header)]
    for row in [[h.upper() for h in header], *cells]:
        padded = [v.ljust(w) for v, w in zip(row[:-1], widths[:-1], strict=True)]
        print("  ".join([*padded, row[-1]]).rstrip(), file=out)


def records(ctx: Context, items: Sequence[Any], columns: Sequence[str], wrap: str,
            page: Page[Any] | None = None) -> None:
    """A list: `{wrap: [...]}` in JSON (a page's with its `next_cursor`, as the API
    answers it), a table of `columns` else."""
    next_cursor = None if page is None else page.next_cursor
    if ctx.json:
        document: dict[str, Any] = {wrap: list(items)}
        if page is not None:
            document["next_cursor"] = next_cursor
        print(dumps(document), file=ctx.out)
        return
    shown = [to_json(item) for item in items]
    table(ctx.out, columns, ([row.get(c) for c in columns] for row in shown))
    if next_cursor is not None:
        print(f"(more: --cursor {next_cursor})", file=ctx.out)


def record(ctx: Context, item: Any) -> None:
    """One record: its JSON, or its fields one a line (a list of records as a table)."""
    if ctx.json:
        print(dumps(item), file=ctx.out)
        return
    shown = to_json(item)
    nested = {k: v for k, v in shown.items()
              if isinstance(v, list) and v and isinstance(v[0], dict)}
    table(ctx.out, ("field", "value"),
          ([k, v] for k, v in shown.items() if k not in nested))
    for name, rows in nested.items():
        print(f"\n{name}:", file=ctx.out)
        columns = list(rows[0])
        table(ctx.out, columns, ([row.get(c) for c in columns] for row in rows))
