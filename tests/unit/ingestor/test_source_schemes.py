"""Signature schemes as data: each provider preset against independently computed
signatures, and the rules every scheme shares (rotation, tolerance, tampering)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from ingestor.source_kinds import PRESETS
from ingestor.source_schemes import Field, Rejected, Scheme, secret_key, verify

NOW = 1_800_000_000
BODY = b'{"id": "evt_1", "type": "invoice.paid"}'


def _hex(key: bytes, message: bytes, algorithm: str = "sha256") -> str:
    return hmac.new(key, message, getattr(hashlib, algorithm)).hexdigest()


def test_github_documented_vector() -> None:
    scheme, _ = PRESETS["github"]
    signature = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    verify(scheme, [b"It's a Secret to Everybody"], {"X-Hub-Signature-256": f"sha256={signature}"},
           b"Hello, World!", 300, NOW)


def test_stripe_any_v1_matches_and_stale_is_refused() -> None:
    scheme, _ = PRESETS["stripe"]
    key = b"whsec_abc"
    good = _hex(key, f"{NOW}.".encode() + BODY)
    header = {"Stripe-Signature": f"t={NOW},v1={'0' * 64},v1={good}"}
    verify(scheme, [key], header, BODY, 300, NOW)
    with pytest.raises(Rejected) as caught:
        verify(scheme, [key], header, BODY, 300, NOW + 301)
    assert caught.value.reason == "stale_timestamp"
    verify(scheme, [key], header, BODY, 300, NOW - 3600)  # one-sided, like Stripe's own


def test_slack_is_two_sided() -> None:
    scheme, _ = PRESETS["slack"]
    key = b"slack-secret"
    headers = {"X-Slack-Request-Timestamp": str(NOW),
               "X-Slack-Signature": "v0=" + _hex(key, f"v0:{NOW}:".encode() + BODY)}
    verify(scheme, [key], headers, BODY, 300, NOW)
    with pytest.raises(Rejected, match="ahead"):
        verify(scheme, [key], headers, BODY, 300, NOW - 301)


def test_shopify_base64_digest() -> None:
    scheme, _ = PRESETS["shopify"]
    digest = base64.b64encode(hmac.digest(b"shp", BODY, "sha256")).decode()
    verify(scheme, [b"shp"], {"X-Shopify-Hmac-Sha256": digest}, BODY, 300, NOW)


def test_rotation_any_key_and_tampering() -> None:
    scheme, _ = PRESETS["github"]
    header = {"X-Hub-Signature-256": "sha256=" + _hex(b"old", BODY)}
    verify(scheme, [b"new", b"old"], header, BODY, 300, NOW)
    with pytest.raises(Rejected) as caught:
        verify(scheme, [b"new", b"old"], header, BODY[:-1] + b" ", 300, NOW)
    assert caught.value.reason == "bad_signature"


@pytest.mark.parametrize("algorithm", ["sha256", "sha512", "sha1"])
@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_hmac_as_data(algorithm: str, encoding: str) -> None:
    scheme = Scheme("X-Sig", prefix="sig=", algorithm=algorithm, key_encoding="base64",
                    digest_encoding=encoding, template="{timestamp}|{body}",
                    timestamp=Field(header="X-Time"), two_sided=True)
    key = secret_key(base64.b64encode(b"k" * 32).decode(), "base64")
    raw = hmac.digest(key, f"{NOW}|".encode() + BODY, algorithm)
    text = raw.hex() if encoding == "hex" else base64.b64encode(raw).decode()
    verify(scheme, [key], {"X-Sig": f"sig={text}", "X-Time": str(NOW)}, BODY, 60, NOW)


@pytest.mark.parametrize(("headers", "reason"), [
    ({}, "missing_signature"),
    ({"X-Hub-Signature-256": "sha1=abc"}, "malformed_signature"),
    ({"X-Hub-Signature-256": "sha256=zz"}, "malformed_signature"),
])
def test_missing_or_malformed(headers: dict[str, str], reason: str) -> None:
    scheme, _ = PRESETS["github"]
    with pytest.raises(Rejected) as caught:
        verify(scheme, [b"k"], headers, BODY, 300, NOW)
    assert caught.value.reason == reason


def test_secret_decoding() -> None:
    assert secret_key("whsec_" + base64.b64encode(b"xyz").decode(), "whsec") == b"xyz"
    with pytest.raises(ValueError):
        secret_key("not base64!", "base64")
