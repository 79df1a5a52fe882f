"""Whatever a client sends, the answer is JSON and never a 500."""

from __future__ import annotations

import random
import uuid
from typing import Any

from tests.conftest import Api

ROUTES = [
    ("POST", "/api/events"), ("POST", "/api/events/batch"), ("POST", "/api/ack"),
    ("POST", "/api/keys/generate"), ("POST", "/api/webhook/config"), ("POST", "/api/endpoints"),
    ("PATCH", "/api/endpoints/{id}"), ("POST", "/api/endpoints/{id}/recover"),
    ("GET", "/api/inbox"), ("GET", "/api/deliveries"), ("GET", "/api/events/{id}"),
    ("GET", "/api/webhook-metrics/delivery-stats"), ("GET", "/api/webhook-metrics/recent-failures"),
    ("GET", "/api/webhook-metrics/dead-letter-queue"), ("POST", "/api/deliveries/{id}/retry"),
]
ODD = [None, True, -1, 0, 2**70, 1.5e308, "", " ", "\x00", "é" * 300, "x" * 5000, [], {},
       [None], {"": None}, "order.*", "*", "http://", "https://[::1]/", "ftp://x", "1970-01-01",
       "not-a-date", str(uuid.uuid4()), "%00", "../../etc/passwd"]
FIELDS = ["type", "payload", "dedup_id", "events", "event_ids", "organization_name", "tier",
          "url", "webhook_url", "event_types", "ordered", "rate_limit_per_second",
          "description", "since", "until"]
PARAMS = ["limit", "cursor", "status", "type", "range", "endpoint_id", "event_type"]


def _value(rng: random.Random, depth: int = 0) -> Any:
    if depth < 2 and rng.random() < 0.2:
        return {f: _value(rng, depth + 1) for f in rng.sample(FIELDS, rng.randint(0, 4))}
    if depth < 2 and rng.random() < 0.1:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return rng.choice(ODD)


async def test_random_bad_input_gets_json_errors(api: Api) -> None:
    key = await api.new_org()
    _, created, _ = await api.call("POST", "/api/endpoints", key,
                                   json={"url": "https://example.com/hook"})
    rng = random.Random(20261123)
    for _ in range(400):
        method, path = rng.choice(ROUTES)
        ident = rng.choice([created.get("id", "x"), "not-an-id", "1", str(uuid.uuid4()), "-5"])
        path = path.replace("{id}", str(ident))
        kwargs: dict[str, Any] = {}
        if method == "GET":
            kwargs["params"] = {p: str(rng.choice(ODD)) for p in rng.sample(PARAMS, 2)}
        elif rng.random() < 0.15:
            kwargs["data"] = rng.choice([b"{", b"[]", b"null", b"\xff\xfe", b"1e999"])
            kwargs["headers"] = {"Content-Type": "application/json"}
        else:
            kwargs["json"] = {f: _value(rng) for f in rng.sample(FIELDS, rng.randint(0, 5))}
        status, body, _ = await api.call(method, path, key, **kwargs)
        assert status < 500, (method, path, kwargs, status, body)
        if status >= 400:
            assert isinstance(body, dict) and isinstance(body.get("error"), str), body
