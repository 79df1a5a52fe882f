"""Standard Webhooks signatures: the spec's test vector, rotation order, bad secrets."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from workers.signing import sign, signature_header

# The test vector published with the Standard Webhooks reference libraries.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def test_matches_the_published_vector() -> None:
    assert sign(SECRET, MSG_ID, TIMESTAMP, BODY) == EXPECTED


def test_matches_the_reference_library() -> None:
    secret = new_secret()
    when = datetime.fromtimestamp(TIMESTAMP, tz=UTC)
    expected = Webhook(secret).sign(MSG_ID, when, BODY.decode())
    assert sign(secret, MSG_ID, TIMESTAMP, BODY) == expected


def test_prefix_is_optional_and_padding_may_be_left_out() -> None:
    bare = SECRET.removeprefix("whsec_")
    assert sign(bare, MSG_ID, TIMESTAMP, BODY) == EXPECTED
    unpadded = "whsec_" + base64.b64encode(b"k" * 31).decode().rstrip("=")
    padded = "whsec_" + base64.b64encode(b"k" * 31).decode()
    assert sign(unpadded, MSG_ID, TIMESTAMP, BODY) == sign(padded, MSG_ID, TIMESTAMP, BODY)


def test_header_has_one_signature_per_secret_current_first() -> None:
    current, previous = new_secret(), new_secret()
    header = signature_header((current, previous), MSG_ID, TIMESTAMP, BODY)
    assert header == (f"{sign(current, MSG_ID, TIMESTAMP, BODY)} "
                      f"{sign(previous, MSG_ID, TIMESTAMP, BODY)}")
    assert signature_header([current], MSG_ID, TIMESTAMP, BODY) == sign(
        current, MSG_ID, TIMESTAMP, BODY)


def test_every_input_is_signed() -> None:
    base = sign(SECRET, MSG_ID, TIMESTAMP, BODY)
    assert sign(SECRET, MSG_ID + "x", TIMESTAMP, BODY) != base
    assert sign(SECRET, MSG_ID, TIMESTAMP + 1, BODY) != base
    assert sign(SECRET, MSG_ID, TIMESTAMP, BODY + b" ") != base
    assert sign(new_secret(), MSG_ID, TIMESTAMP, BODY) != base


@pytest.mark.parametrize("secret", ["whsec_", "whsec_not base64!", "whsec_a"])
def test_unusable_secret_is_refused(secret: str) -> None:
    with pytest.raises(ValueError):
        sign(secret, MSG_ID, TIMESTAMP, BODY)


def test_no_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        signature_header((), MSG_ID, TIMESTAMP, BODY)
