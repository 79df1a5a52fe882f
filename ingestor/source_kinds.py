"""The kinds of source, as data: each provider's `Scheme` (how it signs) and `Extract`
(where its event type and id are), the `hmac` kind built from an organization's
settings, and `Source`, the record the ingest route works from.

Provider kinds, exact to each provider's documentation:
- stripe: `Stripe-Signature: t=..,v1=..`, HMAC-SHA256 of "{t}.{body}" keyed by the whole
  `whsec_...` string, hex; only a stale timestamp is refused (as Stripe's own library).
- github: `X-Hub-Signature-256: sha256=<hex>` of the body; type `X-GitHub-Event` plus
  `.{action}`; id `X-GitHub-Delivery`.
- shopify: `X-Shopify-Hmac-Sha256`, base64 of the body's HMAC; type `X-Shopify-Topic`; id
  `X-Shopify-Webhook-Id`.
- slack: `X-Slack-Signature: v0=<hex>` of "v0:{X-Slack-Request-Timestamp}:{body}",
  two-sided tolerance; type the inner event's; id `event_id`.
- standard-webhooks: `webhook-signature` (`v1,<base64>` entries, space-separated) of
  "{webhook-id}.{webhook-timestamp}.{body}", key the base64 after `whsec_`, two-sided.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from ingestor import patterns
from ingestor.source_schemes import Field, Scheme

KINDS = ("stripe", "github", "shopify", "slack", "standard-webhooks", "hmac", "none")
DEFAULT_TYPE = "webhook"
MAX_PROVIDER_ID = 200


@dataclass(frozen=True, slots=True)
class Extract:
    """Where an event's type and provider id are read, after verification: the first
    of `types` found (else `fixed_type`), `.{suffix}` appended when found, and `id`."""

    types: tuple[Field, ...] = ()
    suffix: Field | None = None
    id: Field | None = None
    fixed_type: str = DEFAULT_TYPE


PRESETS: dict[str, tuple[Scheme, Extract]] = {
    "stripe": (Scheme("Stripe-Signature", prefix="v1=", separator=",",
                      template="{timestamp}.{body}", timestamp=Field(part="t")),
               Extract((Field(path="type"),), id=Field(path="id"))),
    "github": (Scheme("X-Hub-Signature-256", prefix="sha256="),
               Extract((Field(header="X-GitHub-Event"),), suffix=Field(path="action"),
                       id=Field(header="X-GitHub-Delivery"))),
    "shopify": (Scheme("X-Shopify-Hmac-Sha256", digest_encoding="base64"),
                Extract((Field(header="X-Shopify-Topic"),),
                        id=Field(header="X-Shopify-Webhook-Id"))),
    "slack": (Scheme("X-Slack-Signature", prefix="v0=", template="v0:{timestamp}:{body}",
                     timestamp=Field(header="X-Slack-Request-Timestamp"), two_sided=True),
              Extract((Field(path="event.type"), Field(path="type")),
                      id=Field(path="event_id"))),
    "standard-webhooks": (Scheme("webhook-signature", prefix="v1,", separator=" ",
                                 key_encoding="whsec", digest_encoding="base64",
                                 template="{id}.{timestamp}.{body}",
                                 timestamp=Field(header="webhook-timestamp"),
                                 signed_id=Field(header="webhook-id"), two_sided=True),
                          Extract((Field(path="type"),), id=Field(header="webhook-id"))),
}


@dataclass(frozen=True, slots=True)
class Source:
    """A source as the ingest route needs it: its scheme (None for `none`), keys
    (newest secret first) and where to read type and id."""

    id: UUID
    org_id: UUID
    tier: str
    kind: str
    scheme: Scheme | None
    extract: Extract
    keys: tuple[bytes, ...] = field(repr=False)
    tolerance_s: int


def _field(raw: Any) -> Field | None:
    if not isinstance(raw, dict):
        return None
    return Field(header=raw.get("header"), part=raw.get("part"), path=raw.get("path"))


def scheme_of(settings: Mapping[str, Any]) -> Scheme:
    """The Scheme of an `hmac` source's stored (already validated) settings."""
    return Scheme(settings["header"], prefix=settings.get("prefix", ""),
                  separator=settings.get("separator"),
                  algorithm=settings.get("algorithm", "sha256"),
                  key_encoding=settings.get("key_encoding", "raw"),
                  digest_encoding=settings.get("digest_encoding", "hex"),
                  template=settings.get("template", "{body}"),
                  timestamp=_field(settings.get("timestamp")),
                  signed_id=_field(settings.get("signed_id")),
                  two_sided=bool(settings.get("two_sided", False)))


def extract_of(settings: Mapping[str, Any]) -> Extract:
    """The Extract of an `hmac` or `none` source's stored settings."""
    found = _field(settings.get("type_from"))
    return Extract((found,) if found is not None else (), id=_field(settings.get("id_from")),
                   fixed_type=settings.get("fixed_type") or DEFAULT_TYPE)


def kind_parts(kind: str, settings: Mapping[str, Any] | None) -> tuple[Scheme | None, Extract]:
    if kind in PRESETS:
        return PRESETS[kind]
    settings = settings or {}
    return (scheme_of(settings) if kind == "hmac" else None), extract_of(settings)


def _lookup(found: Field, headers: Mapping[str, str], body: Any) -> Any:
    if found.header is not None:
        return headers.get(found.header)
    value = body
    for step in (found.path or "").split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value


def _name(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    if len(text) > MAX_PROVIDER_ID or not patterns.matches(patterns.NAME, text):
        return None
    return text


def event_type(extract: Extract, headers: Mapping[str, str], body: Any) -> str:
    """The event's type: the first of the kind's places that holds a name."""
    for place in extract.types:
        found = _name(_lookup(place, headers, body))
        if found is not None:
            suffix = None if extract.suffix is None else _name(
                _lookup(extract.suffix, headers, body))
            return found if suffix is None else f"{found}.{suffix}"
    return extract.fixed_type


def provider_id(extract: Extract, headers: Mapping[str, str], body: Any) -> str | None:
    """The provider's id of the event, when the kind has one and the request carries it."""
    if extract.id is None:
        return None
    return _name(_lookup(extract.id, headers, body))
