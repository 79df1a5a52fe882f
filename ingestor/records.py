"""The records the operations return: frozen dataclasses built at the database boundary.

Each record lists what the API shows of it, in that order: `shapes.to_json` renders it
and `shapes.schema_of` describes it in the OpenAPI document, so the two cannot drift.
Secrets are never a field of a record that is listed; they travel beside it
(`NewEndpoint`, `RotatedEndpoint`, `NewKey`) only in the answer that makes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar, cast, get_args
from uuid import UUID

from ingestor.shapes import array, const, nullable, show, string
from ingestor.validation import decode_json

T = TypeVar("T")
R = TypeVar("R")
Row = Mapping[str, Any]

DeliveryStatus = Literal["pending", "in_flight", "failed", "delivered", "dead_letter",
                         "cancelled"]
DELIVERY_STATUSES: tuple[str, ...] = get_args(DeliveryStatus)
EventStatus = Literal["pending", "delivered", "failed", "acknowledged", "cancelled"]
EVENT_STATUSES: tuple[str, ...] = get_args(EventStatus)
Breaker = Literal["closed", "open", "half_open"]
_OBJECT = nullable({"type": "object"})
_HEADERS = nullable({"type": "object", "additionalProperties": string()})


def decoded(text: str | None) -> Any:
    """A JSON column as sent back: its numbers exact (validation.decode_json)."""
    return None if text is None else decode_json(text.encode())


def _tuple(values: Any) -> Any:
    return None if values is None else tuple(values)


_NAMES: dict[type, tuple[str, ...]] = {}


def from_row(cls: type[R], row: Row) -> R:
    """A record whose fields are all columns of `row`, by name."""
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in fields(cast(Any, cls)))
    return cls(**{name: row[name] for name in names})


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, newest first, and the cursor of the next (None: the last)."""

    items: tuple[T, ...]
    next_cursor: str | None


# -- endpoints ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where an organization's webhooks go, as the API shows it (never its secrets)."""

    id: UUID
    url: str
    event_types: tuple[str, ...] | None
    description: str | None
    rate_limit_per_second: int | None
    ordered: bool
    filter: Any = field(metadata=show(_OBJECT))
    priority: int
    timeout_s: float | None
    headers: Mapping[str, str] | None = field(metadata=show(_HEADERS))
    success_statuses: tuple[int, ...] | None
    is_default: bool
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    last_success_at: datetime | None
    breaker: Breaker
    breaker_open_until: datetime | None
    paused: bool = field(metadata=show(description=(
        "Deliveries are routed to it and wait; none is attempted until it is resumed.")))
    paused_at: datetime | None
    paused_by: str | None = field(metadata=show(description=(
        "Who paused it: a key id (`key_` and 16 hex digits), or an operator's name.")))
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> Endpoint:
        return cls(
            id=row["id"], url=row["url"], event_types=_tuple(row["event_types"]),
            description=row["description"], rate_limit_per_second=row["rate_limit_per_second"],
            ordered=row["ordered"], filter=decoded(row["filter"]), priority=row["priority"],
            timeout_s=row["timeout_s"], headers=decoded(row["headers"]),
            success_statuses=_tuple(row["success_statuses"]), is_default=row["is_default"],
            enabled=row["enabled"], disabled_reason=row["disabled_reason"],
            disabled_at=row["disabled_at"], last_success_at=row["last_success_at"],
            breaker=row["breaker"], breaker_open_until=row["breaker_open_until"],
            paused=row["paused_at"] is not None, paused_at=row["paused_at"],
            paused_by=row["paused_by"], created_at=row["created_at"],
            updated_at=row["updated_at"])


_SECRET = string(pattern="^whsec_", description="Shown at creation and rotation only.")


@dataclass(frozen=True, slots=True)
class NewEndpoint:
    """An endpoint just created, with its signing secret (shown this once)."""

    endpoint: Endpoint = field(metadata=show(flatten=True))
    secret: str = field(metadata=show(_SECRET))


@dataclass(frozen=True, slots=True)
class RotatedEndpoint:
    """An endpoint with its new secret; the previous one signs beside it until then."""

    endpoint: Endpoint = field(metadata=show(flatten=True))
    secret: str = field(metadata=show(_SECRET))
    previous_secret_until: datetime


@dataclass(frozen=True, slots=True)
class EndpointDeleted:
    id: UUID
    deleted: bool = field(default=True, metadata=show(const(True)))


@dataclass(frozen=True, slots=True)
class Recovered:
    requeued: int = field(metadata=show(minimum=0))


@dataclass(frozen=True, slots=True)
class FilterTest:
    """Whether an event would be routed to an endpoint, and why not."""

    matches: bool
    type_matches: bool
    event_types: tuple[str, ...] | None
    filter: Any = field(metadata=show(_OBJECT))
    filter_tested: bool
    filter_matches: bool | None
    conditions: tuple[Mapping[str, Any], ...] = field(
        metadata=show(array({"type": "object"})))
    reason: str | None


# -- deliveries -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Delivery:
    """One event's delivery to one endpoint."""

    id: int = field(metadata=show(minimum=1))
    event_id: UUID
    endpoint_id: UUID
    event_type: str
    status: DeliveryStatus
    attempts: int = field(metadata=show(minimum=0, description="Attempts made so far."))
    response_status: int | None
    last_error: str | None
    next_attempt_at: datetime
    delivered_at: datetime | None
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None = field(metadata=show(description=(
        "The id of the key that resolved it: `key_` and 16 hex digits.")))
    resolution_note: str | None


@dataclass(frozen=True, slots=True)
class Attempt:
    attempt: int = field(metadata=show(minimum=1))
    response_status: int | None
    duration_ms: float = field(metadata=show(minimum=0))
    error: str | None
    response_body: str | None = field(metadata=show(description="Cut to 4 KiB."))
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryDetail:
    """A delivery with every attempt, in order (in place of the count)."""

    delivery: Delivery = field(metadata=show(flatten=True))
    attempts: tuple[Attempt, ...] = field(metadata=show(
        description="Every attempt, in order (in place of the count)."))


@dataclass(frozen=True, slots=True)
class Retried:
    id: int = field(metadata=show(minimum=1))
    status: Literal["pending"] = field(metadata=show(const("pending")))


@dataclass(frozen=True, slots=True)
class DeadLettersRetried:
    requeued: int = field(metadata=show(minimum=0, description=(
        "Now pending, due now, with a fresh set of attempts.")))
    skipped: int = field(metadata=show(minimum=0, description=(
        "Matched, but left dead letters: their endpoint is disabled or deleted (enable "
        "it, then retry).")))


# -- events ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Event:
    """An event as stored; its payload is the stored JSON text, passed through."""

    id: UUID
    type: str
    payload: str = field(metadata=show({"type": "object"}, raw=True))
    dedup_id: str | None
    status: EventStatus
    created_at: datetime


@dataclass(frozen=True, slots=True)
class EventDelivery:
    """An event's delivery to one endpoint, as the event shows it."""

    endpoint_id: UUID
    url: str
    status: DeliveryStatus
    attempts: int = field(metadata=show(minimum=0))
    response_status: int | None
    last_error: str | None
    next_attempt_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class EventDetail:
    event: Event = field(metadata=show(flatten=True))
    acknowledged_at: datetime | None
    source_id: UUID | None = field(metadata=show(
        description="The source it came from (POST /in/{token})."))
    provider_id: str | None = field(metadata=show(
        description="The provider's id of the event, from a source."))
    headers: Mapping[str, str] | None = field(metadata=show(nullable({
        "type": "object", "additionalProperties": string(),
        "description": "From a source: the request headers that filters may match "
                       "(lower-case names)."})))
    routing_note: str | None = field(metadata=show(description=(
        "Set when the event was routed otherwise than by its endpoints' filters (they "
        "overran the routing budget).")))
    deliveries: tuple[EventDelivery, ...] = field(metadata=show(
        description="One per endpoint the event was routed to."))


@dataclass(frozen=True, slots=True)
class ReplayedDelivery:
    """One of an event's deliveries a replay reached: replayed (now pending, with a
    fresh set of attempts), or left as it was (`status`: under way, or of a disabled or
    deleted endpoint)."""

    delivery_id: int = field(metadata=show(minimum=1))
    endpoint_id: UUID
    status: DeliveryStatus = field(metadata=show(description="Its status before."))
    replayed: bool


@dataclass(frozen=True, slots=True)
class Replayed:
    event_id: UUID
    replayed: int = field(metadata=show(minimum=0))
    deliveries: tuple[ReplayedDelivery, ...]


@dataclass(frozen=True, slots=True)
class Acked:
    id: UUID
    acknowledged: bool = field(default=True, metadata=show(const(True)))


@dataclass(frozen=True, slots=True)
class AckedMany:
    acknowledged: int = field(metadata=show(minimum=0))
    not_found: tuple[UUID, ...] = field(metadata=show(
        description="Unknown ids, or another organization's."))


# -- organizations and keys -----------------------------------------------------------

Tier = Literal["free", "pro", "business", "enterprise"]
_KEY = string(description="Shown once.")
_KEY_ID = string(pattern="^key_[0-9a-f]{16}$", description=(
    "The key's public id: `key_` and the first 8 bytes of its SHA-256 in hex."))


@dataclass(frozen=True, slots=True)
class Organization:
    organization_id: UUID
    organization_name: str
    tier: Tier
    rate_limit_per_minute: int
    active_keys: int = field(metadata=show(minimum=0))
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewKey:
    """A new organization and its first key, shown this once."""

    api_key: str = field(metadata=show(_KEY))
    organization_id: UUID
    organization_name: str
    tier: Tier
    rate_limit_per_minute: int


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key added to an organization, shown this once."""

    api_key: str = field(metadata=show(_KEY))
    key_id: str = field(metadata=show(_KEY_ID))
    organization_id: UUID


@dataclass(frozen=True, slots=True)
class RotatedKey:
    api_key: str = field(metadata=show(_KEY))
    organization_id: UUID
    message: str = "Key rotated; the previous key is refused from now on"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """One of an organization's keys, by its public id (never the key)."""

    key_id: str = field(metadata=show(_KEY_ID))
    created_at: datetime
    revoked_at: datetime | None
