"""Logging for the node: JSON lines in production, human lines in a terminal.

A line carries its record's fields besides the message: what the call passed with
`extra=` (the ids of what it is about: `event_id`, `delivery_id`, `endpoint_id`,
`org_id`; an attempt's `response_status`, `error`, `duration_ms`) and `node`, the name
of the node whose tree logged it. The node sets NODE in the context its tree runs in
(supervisor/node/tree.py), so every task below the root carries it; `NodeField`
stamps it on each record. JSON puts the fields beside the message; the text format
appends them compactly as key=value, ids first.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from typing import Any

import orjson

# The node whose task is logging (its name, host:pid:port); None outside a node's tree.
NODE: ContextVar[str | None] = ContextVar("triggerd_node", default=None)

# What every LogRecord has: anything else on a record came with `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}
# The order the text format shows fields in; the others follow in the order given.
_FIRST = ("org_id", "endpoint_id", "event_id", "delivery_id", "attempt")
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class NodeField(logging.Filter):
    """Stamps `node` (from NODE) on records that do not carry one already."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "node"):
            node = NODE.get()
            if node is not None:
                record.__dict__["node"] = node
        return True


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's own fields (from `extra=` and NodeField), those set to None left out."""
    return {key: value for key, value in record.__dict__.items()
            if key not in _STANDARD and value is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the record's fields, and
    the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in fields(record).items():
            entry.setdefault(key, value)  # a field never hides the line's own keys
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """A human line: time, level, logger and message, then the fields as key=value."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        found = fields(record)
        if not found:
            return line
        order = [k for k in _FIRST if k in found] + [k for k in found if k not in _FIRST]
        return line + "  " + " ".join(f"{key}={_compact(found[key])}" for key in order)


def _compact(value: object) -> str:
    text = f"{value:.1f}" if isinstance(value, float) else str(value)
    return repr(text) if not text or any(c.isspace() or c in "='\"" for c in text) else text


def handler(fmt: str = "auto", stream: Any = None) -> logging.Handler:
    """A handler writing to `stream` (stderr) in `fmt`: json, text, or auto (text on a
    terminal), stamping each record with its node."""
    out = sys.stderr if stream is None else stream
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    made = logging.StreamHandler(out)
    made.setFormatter(JsonFormatter() if use_json else TextFormatter())
    made.addFilter(NodeField())
    return made


def setup(fmt: str = "auto", level: str = "INFO") -> None:
    root = logging.getLogger()
    root.handlers[:] = [handler(fmt)]
    root.setLevel(level.upper())
