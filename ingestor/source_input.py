"""Validation of the source API's bodies: a new source, a change, a new secret; and of an
`hmac` or `none` source's settings. Messages name the field; the rules are the ones the
OpenAPI document states (`openapi_sources`), except the few that relate two fields."""

from __future__ import annotations

import re
from typing import Any

from ingestor import patterns
from ingestor.errors import ApiError
from ingestor.source_kinds import KINDS
from ingestor.source_schemes import (
    ALGORITHMS,
    DIGEST_ENCODINGS,
    KEY_ENCODINGS,
    SEPARATORS,
    secret_key,
)
from ingestor.validation import MAX_NAME

DEFAULT_TOLERANCE_S = 300
MAX_TOLERANCE_S = 86_400
MAX_SECRET = 1_024
MAX_SETTING = 200
# A header name (RFC 9110 token); a printable secret; a JSON path of plain names.
HEADER = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
SECRET = r"^[ -~]*[!-~][ -~]*$"
PATH = r"^[^.\x00]+(?:\.[^.\x00]+)*$"
TEMPLATE = r"^[^\x00]*\{body\}[^\x00]*$"
_SIGNED_FIELD = ("header", "part")
_EVENT_FIELD = ("header", "path")
_HMAC_KEYS = {"header", "prefix", "separator", "algorithm", "key_encoding", "digest_encoding",
              "template", "timestamp", "signed_id", "two_sided", "type_from", "id_from",
              "fixed_type"}
_NONE_KEYS = {"type_from", "id_from", "fixed_type"}


def _text(body: dict[str, Any], name: str, pattern: str, max_length: int,
          where: str = "") -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if (not isinstance(value, str) or not 1 <= len(value) <= max_length
            or not patterns.matches(pattern, value)):
        raise ApiError(400, f"{where}{name} must be 1 to {max_length} characters "
                            f"matching {pattern}")
    return value


def _choice(body: dict[str, Any], name: str, choices: tuple[str, ...], where: str) -> None:
    if name in body and body[name] not in choices:
        raise ApiError(400, f"{where}{name} must be one of {', '.join(choices)}")


def _place(raw: Any, name: str, kinds: tuple[str, ...], where: str) -> dict[str, str] | None:
    if raw is None:
        return None
    if (not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in kinds):
        raise ApiError(400, f"{where}{name} must be an object with one of "
                            f"{', '.join(kinds)}")
    (kind, value), = raw.items()
    pattern = HEADER if kind == "header" else PATH if kind == "path" else HEADER
    _text(raw, kind, pattern, MAX_SETTING, f"{where}{name}.")
    return {kind: value}


def parse_settings(raw: Any, kind: str) -> dict[str, Any] | None:
    """The stored settings of an `hmac` or `none` source (None for the others)."""
    where = "settings."
    if kind not in ("hmac", "none"):
        if raw is not None:
            raise ApiError(400, f"settings are only for the hmac and none kinds, not {kind}")
        return None
    raw = {} if raw is None and kind == "none" else raw
    if not isinstance(raw, dict):
        raise ApiError(400, "settings (an object with at least `header`) are required for "
                            "the hmac kind")
    unknown = set(raw) - (_HMAC_KEYS if kind == "hmac" else _NONE_KEYS)
    if unknown:
        raise ApiError(400, f"unknown settings for the {kind} kind: {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    for name in ("type_from", "id_from"):
        place = _place(raw.get(name), name, _EVENT_FIELD, where)
        if place is not None:
            out[name] = place
    fixed = _text(raw, "fixed_type", patterns.NAME, MAX_NAME, where)
    if fixed is not None:
        out["fixed_type"] = fixed
    if kind == "hmac":
        out.update(_hmac(raw, where))
    return out


def _hmac(raw: dict[str, Any], where: str) -> dict[str, Any]:
    header = _text(raw, "header", HEADER, MAX_SETTING, where)
    if header is None:
        raise ApiError(400, f"{where}header (the signature header's name) is required")
    out: dict[str, Any] = {"header": header}
    prefix = raw.get("prefix", "")
    if not isinstance(prefix, str) or len(prefix) > 50 or not re.fullmatch(r"[!-~]*", prefix):
        raise ApiError(400, f"{where}prefix must be at most 50 printable characters")
    out["prefix"] = prefix
    for name, choices in (("separator", SEPARATORS), ("algorithm", ALGORITHMS),
                          ("key_encoding", KEY_ENCODINGS), ("digest_encoding", DIGEST_ENCODINGS)):
        if raw.get(name) is not None:
            _choice(raw, name, choices, where)
            out[name] = raw[name]
    template = _text(raw, "template", TEMPLATE, MAX_SETTING, where) or "{body}"
    out["template"] = template
    if "two_sided" in raw and not isinstance(raw["two_sided"], bool):
        raise ApiError(400, f"{where}two_sided must be a boolean")
    out["two_sided"] = bool(raw.get("two_sided", False))
    for name, placeholder in (("timestamp", "{timestamp}"), ("signed_id", "{id}")):
        place = _place(raw.get(name), name, _SIGNED_FIELD, where)
        if place is not None:
            out[name] = place
        if (place is None) == (placeholder in template):
            raise ApiError(400, f"{where}template uses {placeholder} exactly when {name} "
                                "says where it comes from")
    return out


def parse_tolerance(body: dict[str, Any]) -> int | None:
    value = body.get("tolerance_s")
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():  # JSON Schema: 60.0 is an integer
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) \
            or not 1 <= value <= MAX_TOLERANCE_S:
        raise ApiError(400, f"tolerance_s must be an integer from 1 to {MAX_TOLERANCE_S}")
    return int(value)


def parse_secret(body: dict[str, Any], kind: str, settings: dict[str, Any] | None) -> str | None:
    """A secret given by the organization (a provider's), checked to be usable as a key."""
    secret = _text(body, "secret", SECRET, MAX_SECRET)
    if secret is None:
        return None
    encoding = "whsec" if kind == "standard-webhooks" else (settings or {}).get(
        "key_encoding", "raw")
    try:
        secret_key(secret, encoding)
    except ValueError as exc:
        raise ApiError(400, f"secret: {exc}") from None
    return secret


def _object(body: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object")
    unknown = set(body) - allowed
    if unknown:
        raise ApiError(400, f"unknown fields: {', '.join(sorted(unknown))}")
    return body


def parse_source(raw: Any) -> dict[str, Any]:
    """A new source's fields: name, kind, settings, tolerance_s, secret (None: make one)."""
    body = _object(raw, {"name", "kind", "settings", "tolerance_s", "secret"})
    name = _text(body, "name", patterns.NAME, MAX_NAME)
    if name is None:
        raise ApiError(400, "name is required")
    kind = body.get("kind")
    if kind not in KINDS:
        raise ApiError(400, f"kind must be one of {', '.join(KINDS)}")
    settings = parse_settings(body.get("settings"), kind)
    return {"name": name, "kind": kind, "settings": settings,
            "tolerance_s": parse_tolerance(body) or DEFAULT_TOLERANCE_S,
            "secret": parse_secret(body, kind, settings)}


def parse_patch(raw: Any) -> dict[str, Any]:
    """A change: `name` and/or `tolerance_s` (absent: kept)."""
    body = _object(raw, {"name", "tolerance_s"})
    if not body:
        raise ApiError(400, "give name and/or tolerance_s")
    fields: dict[str, Any] = {}
    if "name" in body:
        fields["name"] = _text(body, "name", patterns.NAME, MAX_NAME)
        if fields["name"] is None:
            raise ApiError(400, "name must not be null")
    if "tolerance_s" in body:
        fields["tolerance_s"] = parse_tolerance(body)
        if fields["tolerance_s"] is None:
            raise ApiError(400, "tolerance_s must not be null")
    return fields


def parse_rotation(raw: Any, kind: str, settings: dict[str, Any] | None) -> str | None:
    """The new secret of a rotation: the one given, or None (make one)."""
    return parse_secret(_object(raw, {"secret"}), kind, settings)
