"""Validation of endpoint fields and recover windows, with messages a client can act on."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from ingestor.http import ApiError
from ingestor.netguard import TargetRefused, check_host

MAX_URL = 2048
MAX_DESCRIPTION = 1000
MAX_TYPE = 255
MAX_EVENT_TYPES = 100
MAX_RATE = 100_000


def parse_url(value: Any, name: str = "url") -> str:
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
    if any(ch.isspace() or ch == "\x00" for ch in item):
        raise ApiError(400, f"{where} must not contain spaces")
    if "*" in item and (item.count("*") > 1 or not item.endswith(".*") or len(item) < 3):
        raise ApiError(400, f"{where}: '*' is only allowed as a '.*' suffix (e.g. 'order.*') "
                            "or alone")
    return item


def parse_event_types(value: Any) -> list[str] | None:
    """None (every type), or exact types and 'prefix.*' patterns; a '*' entry means all."""
    if value is None:
        return None
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_EVENT_TYPES:
        raise ApiError(400, f"event_types must be null (all types) or a list of 1 to "
                            f"{MAX_EVENT_TYPES} types or 'prefix.*' patterns")
    if "*" in value:
        return None
    return list(dict.fromkeys(_event_type(item, i) for i, item in enumerate(value)))


def parse_description(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION or "\x00" in value:
        raise ApiError(400, f"description must be null or a string of at most "
                            f"{MAX_DESCRIPTION} characters")
    return value


def parse_rate(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RATE:
        raise ApiError(400, f"rate_limit_per_second must be null or an integer from 1 to "
                            f"{MAX_RATE}")
    return int(value)


def parse_ordered(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ApiError(400, "ordered must be true or false")
    return value


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "url": parse_url, "event_types": parse_event_types, "description": parse_description,
    "rate_limit_per_second": parse_rate, "ordered": parse_ordered}


def parse_endpoint(body: Any, partial: bool) -> dict[str, Any]:
    """The validated fields of a create (all, with defaults) or a PATCH (those given)."""
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object")
    unknown = sorted(set(body) - set(_PARSERS))
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(unknown)}; "
                            f"accepted: {', '.join(_PARSERS)}")
    if partial and not body:
        raise ApiError(400, f"nothing to change: give any of {', '.join(_PARSERS)}")
    if not partial:
        body = {"url": None, "event_types": None, "description": None,
                "rate_limit_per_second": None, "ordered": False, **body}
    return {name: parse(body[name]) for name, parse in _PARSERS.items() if name in body}


MIN_YEAR, MAX_YEAR = 1970, 9998


def parse_time(value: Any, name: str) -> datetime:
    """An ISO-8601 timestamp; one without an offset is taken as UTC."""
    if not isinstance(value, str):
        raise ApiError(400, f"{name} must be an ISO-8601 timestamp string")
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        in_utc = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ApiError(400, f"{name} is not an ISO-8601 timestamp: {value[:100]!r}") from None
    if not MIN_YEAR <= in_utc.year <= MAX_YEAR:
        raise ApiError(400, f"{name} must fall in the years {MIN_YEAR} to {MAX_YEAR}")
    return in_utc


def parse_window(body: Any) -> tuple[datetime, datetime | None]:
    """The [since, until) window of a recover request; until None means now."""
    if not isinstance(body, dict) or body.get("since") is None:
        raise ApiError(400, "since is required: an ISO-8601 timestamp")
    since = parse_time(body["since"], "since")
    until = None if body.get("until") is None else parse_time(body["until"], "until")
    if since >= (until or datetime.now(UTC)):
        raise ApiError(400, "since must be before until (which defaults to now)")
    return since, until
