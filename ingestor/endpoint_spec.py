"""What the endpoint operations take: a new endpoint's settings (`EndpointSpec`, every
field with its default) and a change (`EndpointChanges`, only the fields given; UNSET
tells a field left as it is from one cleared with None).

`endpoint_input.parse_endpoint` validates a JSON body into the fields these are built
from (`spec_from`, `changes_from`), with the messages the API answers; a command line
or a console form builds them the same way.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import orjson

from ingestor.endpoint_input import DEFAULT_PRIORITY
from ingestor.filters import Filter


class Unset(enum.Enum):
    UNSET = "unset"


UNSET = Unset.UNSET


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """A new endpoint: where, which events, and how they are delivered."""

    url: str
    event_types: tuple[str, ...] | None = None
    description: str | None = None
    rate_limit_per_second: int | None = None
    ordered: bool = False
    filter: Filter | None = None
    priority: int = DEFAULT_PRIORITY
    timeout_s: float | None = None
    headers: Mapping[str, str] | None = None
    success_statuses: tuple[int, ...] | None = None
    paused: bool = False


@dataclass(frozen=True, slots=True)
class EndpointChanges:
    """A change to an endpoint: UNSET fields keep their value, None clears one."""

    url: str | Unset = UNSET
    event_types: tuple[str, ...] | None | Unset = UNSET
    description: str | None | Unset = UNSET
    rate_limit_per_second: int | None | Unset = UNSET
    ordered: bool | Unset = UNSET
    filter: Filter | None | Unset = UNSET
    priority: int | Unset = UNSET
    timeout_s: float | None | Unset = UNSET
    headers: Mapping[str, str] | None | Unset = UNSET
    success_statuses: tuple[int, ...] | None | Unset = UNSET
    paused: bool | Unset = UNSET

    def given(self) -> dict[str, Any]:
        """The fields given, by name, in declaration order."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not UNSET}


def _typed(parsed: Mapping[str, Any]) -> dict[str, Any]:
    typed = dict(parsed)
    for name in ("event_types", "success_statuses"):
        if typed.get(name) is not None:
            typed[name] = tuple(typed[name])
    return typed


def spec_from(parsed: Mapping[str, Any]) -> EndpointSpec:
    """The spec of `parse_endpoint(body, partial=False, ...)`'s fields."""
    return EndpointSpec(**_typed(parsed))


def changes_from(parsed: Mapping[str, Any]) -> EndpointChanges:
    """The change of `parse_endpoint(body, partial=True, ...)`'s fields."""
    return EndpointChanges(**_typed(parsed))


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def rule_values(values: Mapping[str, Any]) -> list[Any]:
    """The query parameters of the routing rules and delivery settings, in the order of
    INSERT_ENDPOINT's and UPDATE_ENDPOINT's $9..$14 (absent fields: None)."""
    flt: Filter | None = values.get("filter")
    return [None if flt is None else _json_text(flt.document),
            None if flt is None else flt.path, values.get("priority"),
            values.get("timeout_s"),
            None if values.get("headers") is None else _json_text(dict(values["headers"])),
            None if values.get("success_statuses") is None
            else list(values["success_statuses"])]
