"""Time-ordered identifiers (UUIDv7, RFC 9562) and random API keys."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from uuid import UUID

KEY_PREFIX = "tgd_"


def uuid7() -> UUID:
    """A UUIDv7: 48 bits of Unix milliseconds, then random bits, so ids sort by time."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & 0xFFFF_FFFF_FFFF) << 80 | rand
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return UUID(int=value)


def new_api_key() -> str:
    """A key of 32 random bytes, URL-safe; shown to its owner once."""
    return KEY_PREFIX + base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


def key_digest(key: str) -> bytes:
    """What the database stores of a key: its SHA-256."""
    return hashlib.sha256(key.encode()).digest()


def parse_uuid(raw: str) -> UUID | None:
    """The UUID in `raw`, or None when it is not one."""
    try:
        return UUID(raw)
    except (ValueError, AttributeError, TypeError):
        return None
