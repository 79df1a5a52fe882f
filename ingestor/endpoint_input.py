"""Validation of endpoint fields (routing rules and delivery settings included) and
recover windows, with messages a client can act on."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from ingestor import patterns
from ingestor.errors import ApiError
from ingestor.filters import parse_filter
from ingestor.netguard import TargetRefused, check_host

MAX_URL = 2048
MAX_DESCRIPTION = 1000
MAX_TYPE = 255
MAX_EVENT_TYPES = 100
MAX_RATE = 100_000
MIN_PRIORITY, DEFAULT_PRIORITY, MAX_PRIORITY = 1, 5, 10  # as sql/007 checks them
MIN_TIMEOUT = 0.5
DEFAULT_MAX_TIMEOUT = 60.0  # TRIGGERD_MAX_REQUEST_TIMEOUT's default
MAX_HEADERS = 20
MAX_STATUSES = 100
# Headers an endpoint may not set: those that sign and describe the webhook, and those
# that frame the request or the connection.
RESERVED_HEADERS = frozenset({
    "webhook-id", "webhook-timestamp", "webhook-signature", "x-event-id", "x-event-type",
    "x-delivery-attempt", "content-type", "content-length", "content-encoding",
    "transfer-encoding", "host", "connection", "keep-alive", "upgrade", "te", "trailer",
    "expect", "user-agent"})
RESERVED_PREFIXES = ("proxy-", "webhook-", "x-event-")


def parse_url(value: Any, name: str = "url") -> str:
    """An http or https URL with a host (patterns.HTTP_URL and more)."""
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"{name} is required and must be a string")
    if len(value) > MAX_URL:
        raise ApiError(400, f"{name} must be at most {MAX_URL} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ApiError(400, f"{name} must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise ApiError(400, f"{name} is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ApiError(400, f"{name} must be an http or https URL")
    if not parts.hostname:
        raise ApiError(400, f"{name} must have a host")
    return value


async def guard_url(url: str, allow_private: bool, name: str = "url") -> None:
    """The SSRF guard: 400 for a target inside the node's network unless allowed."""
    if allow_private:
        return
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        await check_host(parts.hostname or "", port)
    except TargetRefused as exc:
        raise ApiError(400, f"{name}: {exc}") from None


def _event_type(item: Any, index: int) -> str:
    where = f"event_types[{index}]"
    if not isinstance(item, str) or not 1 <= len(item) <= MAX_TYPE:
        raise ApiError(400, f"{where} must be a string of 1 to {MAX_TYPE} characters")
    if not patterns.matches(patterns.EVENT_FILTER, item):
        if "*" in item:
            raise ApiError(400, f"{where}: '*' is only allowed as a '.*' suffix (e.g. "
                                "'order.*') or alone")
        raise ApiError(400, f"{where} must not contain spaces or NUL")
    return item


def parse_event_types(value: Any) -> list[str] | None:
    """None (every type), or exact types and 'prefix.*' patterns; a '*' entry means all."""
    if value is None:
        return None
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_EVENT_TYPES:
        raise ApiError(400, f"event_types must be null (all types) or a list of 1 to "
                            f"{MAX_EVENT_TYPES} types or 'prefix.*' patterns")
    types = list(dict.fromkeys(_event_type(item, i) for i, item in enumerate(value)))
    return None if "*" in types else types  # every item checked, even beside a '*'


def parse_description(value: Any) -> str | None:
    if value is None:
        return None
    if (not isinstance(value, str) or len(value) > MAX_DESCRIPTION
            or not patterns.matches(patterns.NO_NUL, value)):
        raise ApiError(400, f"description must be null or a string of at most "
                            f"{MAX_DESCRIPTION} characters")
    return value


def parse_rate(value: Any) -> int | None:
    """null, or an integer in range; like JSON Schema, 5.0 is the integer 5."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RATE:
        raise ApiError(400, f"rate_limit_per_second must be null or an integer from 1 to "
                            f"{MAX_RATE}")
    return int(value)


def parse_ordered(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ApiError(400, "ordered must be true or false")
    return value


def parse_paused(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ApiError(400, "paused must be true (deliveries wait, none is attempted) or "
                            "false")
    return value


def parse_priority(value: Any) -> int:
    """An integer from MIN_PRIORITY to MAX_PRIORITY; higher is claimed first."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if (isinstance(value, bool) or not isinstance(value, int)
            or not MIN_PRIORITY <= value <= MAX_PRIORITY):
        raise ApiError(400, f"priority must be an integer from {MIN_PRIORITY} (lowest) to "
                            f"{MAX_PRIORITY} (highest); the default is {DEFAULT_PRIORITY}")
    return int(value)


def parse_timeout(value: Any, most: float) -> float | None:
    """null (the node's request timeout), or seconds from MIN_TIMEOUT to `most`."""
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not MIN_TIMEOUT <= value <= most):
        raise ApiError(400, f"timeout_s must be null (the node's default) or a number of "
                            f"seconds from {MIN_TIMEOUT:g} to {most:g} (the node's maximum)")
    return float(value)


def _header(name: Any, value: Any) -> tuple[str, str]:
    if not patterns.matches(patterns.HEADER_NAME, name):
        raise ApiError(400, f"headers: {name[:100]!r} is not a header name (letters, digits "
                            "and !#$%&'*+.^_`|~- only, at most 64)")
    if name.lower() in RESERVED_HEADERS or name.lower().startswith(RESERVED_PREFIXES):
        raise ApiError(400, f"headers.{name}: set by triggerd itself (the signature, the "
                            "event, the body or the connection); it cannot be overridden")
    if not isinstance(value, str) or not patterns.matches(patterns.HEADER_VALUE, value):
        raise ApiError(400, f"headers.{name}: must be a string of 1 to 1024 visible ASCII "
                            "characters (spaces and tabs inside)")
    return name, value


def parse_headers(value: Any) -> dict[str, str] | None:
    """null, or {name: value} of at most MAX_HEADERS headers sent with every webhook."""
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > MAX_HEADERS:
        raise ApiError(400, f"headers must be null or an object of at most {MAX_HEADERS} "
                            "header names and values")
    headers = dict(_header(name, item) for name, item in value.items())
    if len({name.lower() for name in headers}) < len(headers):
        raise ApiError(400, "headers: a name is given twice (names are case-insensitive)")
    return headers or None


def parse_success_statuses(value: Any) -> list[int] | None:
    """null (any 2xx is a success), or the 2xx statuses that count as one; like JSON
    Schema, 204.0 is the integer 204."""
    if value is None:
        return None
    if isinstance(value, list):
        value = [int(v) if isinstance(v, float) and v.is_integer() else v for v in value]
    if (not isinstance(value, list) or not 1 <= len(value) <= MAX_STATUSES
            or not all(isinstance(v, int) and not isinstance(v, bool) and 200 <= v <= 299
                       for v in value)):
        raise ApiError(400, "success_statuses must be null (any 2xx) or a non-empty list of "
                            "statuses from 200 to 299")
    return sorted(set(value))


DEFAULTS: dict[str, Any] = {
    "url": None, "event_types": None, "description": None, "rate_limit_per_second": None,
    "ordered": False, "filter": None, "priority": DEFAULT_PRIORITY, "timeout_s": None,
    "headers": None, "success_statuses": None, "paused": False}


def parse_endpoint(body: Any, partial: bool, max_timeout: float) -> dict[str, Any]:
    """The validated fields of a create (all, with defaults) or a PATCH (those given);
    `filter` is a filters.Filter (or None), `timeout_s` at most `max_timeout`."""
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object")
    unknown = sorted(set(body) - set(DEFAULTS))
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(unknown)}; "
                            f"accepted: {', '.join(DEFAULTS)}")
    if partial and not body:
        raise ApiError(400, f"nothing to change: give any of {', '.join(DEFAULTS)}")
    if not partial:
        body = {**DEFAULTS, **body}
    parsers: dict[str, Callable[[Any], Any]] = {
        "url": parse_url, "event_types": parse_event_types, "description": parse_description,
        "rate_limit_per_second": parse_rate, "ordered": parse_ordered,
        "filter": parse_filter, "priority": parse_priority,
        "timeout_s": lambda value: parse_timeout(value, max_timeout),
        "headers": parse_headers, "success_statuses": parse_success_statuses,
        "paused": parse_paused}
    return {name: parse(body[name]) for name, parse in parsers.items() if name in body}


MIN_YEAR, MAX_YEAR = 1970, 9998  # as patterns.YEAR states them
# The parts of a time that matches patterns.TIME.
_TIME_PARTS = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}).([0-9]{2}):([0-9]{2}):([0-9]{2})"
                         r"(?:\.([0-9]+))?(.*)")


def _offset(text: str) -> timezone:
    """`Z`, `z` or nothing: UTC; else +hh:mm or -hh:mm, less than 24 hours."""
    if text in ("", "Z", "z"):
        return UTC
    hours, minutes = int(text[1:3]), int(text[4:6])
    if minutes > 59:
        raise ValueError(f"offset minutes {minutes}")
    sign = -1 if text[0] == "-" else 1
    return timezone(sign * timedelta(hours=hours, minutes=minutes))  # ValueError: >= 24 h


def parse_time(value: Any, name: str) -> datetime:
    """An RFC 3339 time (patterns.TIME), in UTC; one without an offset is taken as UTC,
    and a leap second (:60) as the last microsecond before it."""
    parts = (_TIME_PARTS.fullmatch(value)
             if isinstance(value, str) and patterns.matches(patterns.TIME, value) else None)
    if parts is None:
        raise ApiError(400, f"{name} must be an RFC 3339 time in the years {MIN_YEAR} to "
                            f"{MAX_YEAR}, such as 2024-05-01T00:00:00Z")
    year, month, day, hour, minute, second = (int(part) for part in parts.groups()[:6])
    micro = int((parts[7] or "0")[:6].ljust(6, "0"))
    if second == 60:
        second, micro = 59, 999_999
    try:
        written = datetime(year, month, day, hour, minute, second, micro, _offset(parts[8]))
    except ValueError:
        raise ApiError(400, f"{name} is not a valid time: {value[:100]!r}") from None
    return written.astimezone(UTC)


def parse_window(body: Any) -> tuple[datetime, datetime | None]:
    """The [since, until) window of a recover request; until None means now."""
    if not isinstance(body, dict) or body.get("since") is None:
        raise ApiError(400, "since is required: an ISO-8601 timestamp")
    since = parse_time(body["since"], "since")
    until = None if body.get("until") is None else parse_time(body["until"], "until")
    if since >= (until or datetime.now(UTC)):
        raise ApiError(400, "since must be before until (which defaults to now)")
    return since, until
