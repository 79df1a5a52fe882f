"""Standard Webhooks signatures for outbound deliveries.

A signature is `v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">`, keyed by the
bytes base64-encoded after the `whsec_` prefix of an endpoint's secret. During a secret
rotation the `webhook-signature` header carries two signatures, current first, so a
receiver holding either secret verifies the message. Pure functions: no process, no
messages, no restart type.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"


@functools.lru_cache(maxsize=4096)
def _key(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    encoded += "=" * (-len(encoded) % 4)  # accept unpadded base64, as the reference verifier does
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise ValueError("webhook secret is not whsec_ followed by base64") from None
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` signature of one message under one secret."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per secret, space-separated, in order."""
    if not secrets:
        raise ValueError("at least one webhook secret is needed to sign")
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets)
