"""Time-ordered identifiers (UUIDv7, RFC 9562), random API keys and webhook signing secrets."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import time
from uuid import UUID

from ingestor.patterns import UUID as UUID_PATTERN
from ingestor.patterns import matches

KEY_PREFIX = "tgd_"
SECRET_PREFIX = "whsec_"


_VERSION_7 = 0x7 << 76
_VARIANT = 0x2 << 62
_RAND_LOW = (1 << 62) - 1
_last = 0


def uuid7() -> str:
    """A UUIDv7 in text form: 48 bits of Unix milliseconds, then random bits, so ids sort
    by time; strictly increasing within this process. Text, because that is what the
    database driver and the client both take."""
    global _last
    millis = time.time_ns() // 1_000_000
    rand = random.getrandbits(74)  # ids are not secrets: access is checked per organization
    value = (millis & 0xFFFF_FFFF_FFFF) << 80 | _VERSION_7 | (rand >> 62) << 64 | _VARIANT \
        | (rand & _RAND_LOW)
    if value <= _last:  # same millisecond (or the clock stepped back): stay monotonic
        value = _last + 1
    _last = value
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_api_key() -> str:
    """A key of 32 random bytes, URL-safe; shown to its owner once."""
    return KEY_PREFIX + base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: "whsec_" + standard base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(32)).decode()


def key_digest(key: str) -> bytes:
    """What the database stores of a key: its SHA-256."""
    return hashlib.sha256(key.encode()).digest()


def parse_uuid(raw: str) -> UUID | None:
    """The UUID in `raw` (the canonical 8-4-4-4-12 hex form, either case, which is what
    the document's `format: uuid` admits), or None when it is not one."""
    if not isinstance(raw, str) or not matches(UUID_PATTERN, raw):
        return None
    return UUID(raw)
