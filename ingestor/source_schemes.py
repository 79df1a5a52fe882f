"""How a source's requests are signed, as data (`Scheme`), and `verify`, which checks one
request's exact bytes against it before anything parses them.

A scheme names the signature header; the prefix each signature carries (`sha256=`,
`v1=`); whether the header holds several parts (Stripe's `t=..,v1=..`, split on ",";
Standard Webhooks' `v1,<sig> v1,<sig>`, split on " "); the HMAC algorithm; how the secret
becomes the key (raw bytes, base64, or `whsec_` + base64); how the digest is written (hex,
base64); the signed string (a template over `{body}`, `{timestamp}`, `{id}`); where the
timestamp and id come from (a header, or a `name=value` part of the signature header);
and the timestamp tolerance, one-sided (only stale refused) or two-sided.

Every provider kind is a `Scheme` value (`source_kinds`); the `hmac` kind is one the
organization writes. Any signature may match any of the source's secrets (rotation).
Digests are compared with `hmac.compare_digest`. Pure: no I/O, the clock is passed in.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ALGORITHMS = ("sha256", "sha512", "sha1")
KEY_ENCODINGS = ("raw", "base64", "whsec")
DIGEST_ENCODINGS = ("hex", "base64")
SEPARATORS = (",", " ", ";")
PLACEHOLDERS = ("{body}", "{timestamp}", "{id}")
_PLACEHOLDER = re.compile(r"(\{body\}|\{timestamp\}|\{id\})")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_MAX_SIGNATURES = 16


class Rejected(Exception):
    """A request refused before its body is read as JSON: `reason` is a short, bounded
    label (the metric's), the message says what to fix."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Field:
    """Where a value is read: a request `header`, a `part` (`name=value`) of the
    signature header, or a dotted `path` into the JSON body (only after verification)."""

    header: str | None = None
    part: str | None = None
    path: str | None = None


@dataclass(frozen=True, slots=True)
class Scheme:
    header: str
    prefix: str = ""
    separator: str | None = None
    algorithm: str = "sha256"
    key_encoding: str = "raw"
    digest_encoding: str = "hex"
    template: str = "{body}"
    timestamp: Field | None = None
    signed_id: Field | None = None
    two_sided: bool = False


def secret_key(secret: str, encoding: str) -> bytes:
    """The HMAC key a secret stands for; ValueError when it cannot be decoded."""
    if encoding == "raw":
        return secret.encode("utf-8")
    text = secret.removeprefix("whsec_") if encoding == "whsec" else secret
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the secret is not {'whsec_ + ' if encoding == 'whsec' else ''}"
                         "base64") from None
    if not key:
        raise ValueError("the secret decodes to no bytes")
    return key


def _parts(scheme: Scheme, raw: str) -> list[str]:
    if scheme.separator is None:
        return [raw.strip()]
    return [part.strip() for part in raw.split(scheme.separator)][:64]


def _read(field: Field, headers: Mapping[str, str], parts: Sequence[str]) -> str | None:
    if field.header is not None:
        return headers.get(field.header)
    name = f"{field.part}="
    return next((p[len(name):] for p in parts if p.startswith(name)), None)


def _signatures(scheme: Scheme, parts: Sequence[str]) -> list[bytes]:
    found = []
    for part in parts:
        if not part.startswith(scheme.prefix):
            continue
        text = part[len(scheme.prefix):]
        try:
            found.append(bytes.fromhex(text) if scheme.digest_encoding == "hex"
                         else base64.b64decode(text, validate=True))
        except ValueError:  # binascii.Error is one
            continue
    return found[:_MAX_SIGNATURES]


def _check_time(scheme: Scheme, text: str | None, tolerance: int, now: float) -> None:
    if text is None:
        raise Rejected("missing_timestamp", "missing signature timestamp")
    if not _TIMESTAMP.fullmatch(text):
        raise Rejected("malformed_timestamp", "the signature timestamp is not a Unix time")
    age = now - int(text)
    if age > tolerance:
        raise Rejected("stale_timestamp", f"timestamp older than {tolerance} s")
    if scheme.two_sided and -age > tolerance:
        raise Rejected("future_timestamp", f"timestamp more than {tolerance} s ahead")


def _signed(scheme: Scheme, body: bytes, timestamp: str | None, id_: str | None) -> bytes:
    values = {"{body}": body, "{timestamp}": (timestamp or "").encode("utf-8", "surrogateescape"),
              "{id}": (id_ or "").encode("utf-8", "surrogateescape")}
    return b"".join(values.get(piece, piece.encode("utf-8"))
                    for piece in _PLACEHOLDER.split(scheme.template))


def verify(scheme: Scheme, keys: Sequence[bytes], headers: Mapping[str, str], body: bytes,
           tolerance: int, now: float) -> None:
    """Returns when a signature of the request matches one of `keys`; else Rejected."""
    raw = headers.get(scheme.header)
    if not raw or not raw.strip():
        raise Rejected("missing_signature", f"missing {scheme.header} header")
    parts = _parts(scheme, raw)
    presented = _signatures(scheme, parts)
    if not presented:
        raise Rejected("malformed_signature", f"no {scheme.prefix or 'signature'} in "
                                              f"{scheme.header}")
    timestamp = id_ = None
    if scheme.timestamp is not None:
        timestamp = _read(scheme.timestamp, headers, parts)
        _check_time(scheme, timestamp, tolerance, now)
    if scheme.signed_id is not None:
        id_ = _read(scheme.signed_id, headers, parts)
        if not id_:
            raise Rejected("missing_id", "missing the signed message id")
    message = _signed(scheme, body, timestamp, id_)
    matched = False
    for key in keys:
        digest = hmac.new(key, message, scheme.algorithm).digest()
        for signature in presented:  # no early exit: the time does not tell which matched
            matched |= hmac.compare_digest(digest, signature)
    if not matched:
        raise Rejected("bad_signature", "signature does not match")




