"""GET /openapi.json on a real node: a valid OpenAPI 3.1 document that cannot drift from
the app. Its operations are exactly the router's; every operation is exercised against
real PostgreSQL and each answer is validated against the documented status, schema
(held strict: no undocumented field) and headers; documented parameter bounds and
security are the enforced ones."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from ingestor.app import create_app
from ingestor.openapi import document
from ingestor.routes_docs import ASSETS as DOCS_ASSETS
from supervisor.node.tree import Node
from tests.conftest import Api
from tests.integration.delivery_helpers import PUBLIC_URL, insert_attempt, insert_delivery

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
Operation = tuple[str, str]  # (METHOD, path template)


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    built = document()
    validate(built, cls=OpenAPIV31SpecValidator)
    return built


def documented(doc: dict[str, Any]) -> set[Operation]:
    return {(method.upper(), path) for path, item in doc["paths"].items()
            for method in item if method in METHODS}


def served(app: web.Application) -> set[Operation]:
    """The router's (method, path) pairs; aiohttp adds a HEAD beside each GET. The
    console's pages, assets and their JSON under /dashboard/ are a browser application
    (README, "Console"; tests/integration/test_console.py), not part of the API."""
    routes = {(route.method, route.resource.canonical) for route in app.router.routes()
              if route.resource is not None
              and not route.resource.canonical.startswith("/dashboard/")}
    heads = {path for method, path in routes if method == "HEAD"}
    assert heads <= {path for method, path in routes if method == "GET"}
    return {(method, path) for method, path in routes if method != "HEAD"}


def strict(schema: Any) -> Any:
    """A copy where every object with listed properties admits no other property."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        found: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            found = found[part]
        node = found
    return node


async def fetch(api: Api, method: str, path: str, key: str | None = None,
                **kwargs: Any) -> tuple[int, Any, ClientResponse]:
    """Status, body (decoded JSON, or text for any other type) and the response."""
    headers = dict(kwargs.pop("headers", None) or {})
    if key is not None:
        headers["X-API-Key"] = key
    async with api.request(method, path, headers=headers, **kwargs) as resp:
        raw = await resp.read()
        body = json.loads(raw) if resp.content_type == "application/json" else raw.decode()
        return resp.status, body, resp


def check_answer(doc: dict[str, Any], op: Operation, status: int, body: Any,
                 resp: ClientResponse) -> None:
    method, path = op
    responses = doc["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path} answered undocumented {status}: {body}"
    response = resolve(doc, responses[str(status)])
    assert resp.content_type in response["content"], (method, path, resp.content_type)
    if resp.content_type == "application/json":
        schema = response["content"]["application/json"]["schema"]
        components = strict(copy.deepcopy(doc["components"]))
        OAS31Validator({**strict(schema), "components": components},
                       format_checker=oas31_format_checker).validate(body)
    for name in response.get("headers", {}):
        assert name in resp.headers, f"{method} {path} {status} lacks header {name}"


class Exerciser:
    """Calls operations, checks each answer against the document, records coverage."""

    def __init__(self, api: Api, doc: dict[str, Any]) -> None:
        self.api, self.doc = api, doc
        self.ids: dict[str, str] = {}
        self.covered: set[Operation] = set()

    async def __call__(self, method: str, path: str, expected: int, key: str | None = None,
                       **kwargs: Any) -> Any:
        status, body, resp = await fetch(self.api, method, path.format(**self.ids), key,
                                         **kwargs)
        assert status == expected, (method, path, status, body)
        check_answer(self.doc, (method, path), status, body, resp)
        self.covered.add((method, path))
        return body


async def test_served_and_valid(api: Api, doc: dict[str, Any]) -> None:
    status, body, resp = await api.call("GET", "/openapi.json")
    assert status == 200 and resp.content_type == "application/json"
    assert body == doc and body["openapi"].startswith("3.1")
    validate(body, cls=OpenAPIV31SpecValidator)
    again, _, _ = await api.call("GET", "/openapi.json")
    assert again == 200


async def test_operations_are_exactly_the_routers(node: Node, doc: dict[str, Any]) -> None:
    app = create_app(node.ingest)
    assert served(app) - documented(doc) == set(), "served but not documented"
    assert documented(doc) - served(app) == set(), "documented but not served"


async def test_every_operation_answers_as_documented(api: Api, db: Any,
                                                     doc: dict[str, Any]) -> None:
    call = Exerciser(api, doc)
    key = str((await call("POST", "/api/keys/generate", 201,
                          json={"organization_name": "acme", "tier": "enterprise"}))["api_key"])
    event = {"type": "order.created", "payload": {"n": 1}, "dedup_id": "d-1"}
    call.ids["event_id"] = (await call("POST", "/api/events", 202, key, json=event))["id"]
    await call("POST", "/api/events", 409, key, json=event)
    await call("POST", "/api/events", 400, key, json={"type": "", "payload": {}})
    await call("POST", "/api/events", 415, key, data=b"{}")
    batch = {"events": [{"type": "a", "payload": {}}, event]}
    results = (await call("POST", "/api/events/batch", 202, key, json=batch))["results"]
    await call("POST", "/api/events/batch", 400, key, json={"events": [{"type": "a"}]})
    await call("GET", "/api/events/{event_id}", 200, key)
    await call("GET", "/api/events/{event_id}", 401)
    await call("GET", "/api/inbox", 200, key, params={"limit": "1"})
    await call("POST", "/api/ack", 200, key,
               json={"event_ids": [call.ids["event_id"], str(uuid.uuid4())]})
    await call("POST", "/api/ack/{event_id}", 200, key)
    await call("GET", "/api/keys", 200, key)
    await call("POST", "/api/webhook/config", 201, key, json={"webhook_url": PUBLIC_URL})
    await call("POST", "/api/webhook/config", 200, key, json={"webhook_url": PUBLIC_URL})
    endpoint = await call("POST", "/api/endpoints", 201, key, json={"url": PUBLIC_URL})
    call.ids["endpoint_id"] = endpoint["id"]
    await call("POST", "/api/endpoints", 400, key, json={"url": PUBLIC_URL, "nope": 1})
    await call("GET", "/api/endpoints", 200, key)
    await call("GET", "/api/endpoints/{endpoint_id}", 200, key)
    await call("PATCH", "/api/endpoints/{endpoint_id}", 200, key, json={"description": "d"})
    await call("POST", "/api/endpoints/{endpoint_id}/rotate-secret", 200, key)
    await call("POST", "/api/endpoints/{endpoint_id}/enable", 200, key)
    await call("POST", "/api/endpoints/{endpoint_id}/pause", 200, key)
    await call("POST", "/api/endpoints/{endpoint_id}/resume", 200, key)
    await call("PATCH", "/api/endpoints/{endpoint_id}", 200, key, json={"paused": True})
    await call("PATCH", "/api/endpoints/{endpoint_id}", 200, key, json={
        "filter": {"data": {"n": {"$gte": 1}}}, "priority": 8, "timeout_s": 2.5,
        "headers": {"X-Tenant": "t"}, "success_statuses": [200, 204]})
    await call("POST", "/api/endpoints/{endpoint_id}/test-filter", 200, key,
               json={"event": {"type": "order.created", "payload": {"n": 1}}})
    await call("POST", "/api/endpoints/{endpoint_id}/test-filter", 400, key,
               json={"event": {"type": "t", "payload": {}}, "filter": {"$x": 1}})
    dead = [await insert_delivery(db, event_id, endpoint["id"], "dead_letter", 1,
                                  last_error="HTTP 500")
            for event_id in (call.ids["event_id"], results[0]["id"])]
    await insert_attempt(db, dead[0], 1, 500, error="HTTP 500", response_body="no")
    call.ids["delivery_id"] = str(dead[0])
    await call("GET", "/api/deliveries", 200, key)
    await call("GET", "/api/deliveries/{delivery_id}", 200, key)
    for metric in ("queue-health", "delivery-stats", "recent-failures", "dead-letter-queue",
                   "performance", "alerts"):
        await call("GET", f"/api/webhook-metrics/{metric}", 200, key)
    await call("POST", "/api/deliveries/{delivery_id}/retry", 202, key)
    await call("POST", "/api/webhook-metrics/retry-failed/{delivery_id}", 409, key)
    await call("POST", "/api/deliveries/{delivery_id}/resolve", 409, key, json={})
    call.ids["delivery_id"] = str(dead[1])
    await call("POST", "/api/deliveries/{delivery_id}/resolve", 200, key, json={"note": "n"})
    await call("POST", "/api/deliveries/{delivery_id}/resolve", 409, key, json={})
    await call("GET", "/api/webhook-metrics/dead-letter-queue", 200, key,
               params={"resolved": "true", "since": "2000-01-01T00:00:00Z"})
    await call("POST", "/api/webhook-metrics/dead-letter-queue/retry", 400, key,
               json={"filter": {"resolved": "yes"}})
    await call("POST", "/api/webhook-metrics/dead-letter-queue/retry", 202, key,
               json={"filter": {"endpoint_id": endpoint["id"]}})
    await call("POST", "/api/endpoints/{endpoint_id}/recover", 202, key,
               json={"since": "2000-01-01T00:00:00Z"})
    await call("GET", "/health/live", 200)
    await call("GET", "/health/ready", 200)
    await call("GET", "/openapi.json", 200)
    await call("GET", "/metrics", 200)
    await call("GET", "/dashboard", 200)
    await call("GET", "/docs", 200)
    for asset in DOCS_ASSETS:
        await call("GET", f"/docs/{asset}", 200)
    await call("DELETE", "/api/endpoints/{endpoint_id}", 200, key)
    source = await call("POST", "/api/sources", 201, key, json={"name": "s", "kind": "github"})
    call.ids["source_id"] = source["id"]
    call.ids["token"] = source["ingest_path"].removeprefix("/in/")
    await call("POST", "/api/sources", 403, key, json={"name": "s", "kind": "none"})
    await call("GET", "/api/sources", 200, key)
    await call("GET", "/api/sources/{source_id}", 200, key)
    await call("PATCH", "/api/sources/{source_id}", 200, key, json={"tolerance_s": 60})
    await call("POST", "/in/{token}", 401, json={"a": 1})
    await call("GET", "/api/sources/{source_id}/rejections", 200, key)
    await call("POST", "/api/sources/{source_id}/rotate-secret", 200, key, json={})
    await call("DELETE", "/api/sources/{source_id}", 200, key)
    await call("POST", "/in/{token}", 404, json={"a": 1})
    await call("GET", "/api/endpoints/{endpoint_id}", 404, key)
    await call("POST", "/api/keys/rotate", 200, key)
    await call("GET", "/api/keys", 401, key)
    assert documented(doc) - call.covered == set(), "operations never exercised"


async def test_rate_limit_and_admin_token_as_documented(api: Api, node: Node,
                                                        doc: dict[str, Any]) -> None:
    call = Exerciser(api, doc)
    key = await api.new_org("small", tier="free")
    many = {"events": [{"type": "a", "payload": {}}] * 101}
    body = await call("POST", "/api/events/batch", 413, key, json=many)  # never allowed
    assert body["limit"] == 100
    some = {"events": [{"type": "a", "payload": {}}] * 60}
    await call("POST", "/api/events/batch", 202, key, json=some)
    body = await call("POST", "/api/events/batch", 429, key, json=some)  # wait and retry
    assert body["limit"] == 100
    node.ingest.admin_token = "s3cret"
    org = {"organization_name": "other"}
    await call("POST", "/api/keys/generate", 401, json=org)
    await call("POST", "/api/keys/generate", 201, json=org,
               headers={"Authorization": "Bearer s3cret"})
    await call("GET", "/dashboard", 401)
    await call("GET", "/dashboard", 200, headers={"Authorization": "Bearer s3cret"})
    security = doc["paths"]["/api/keys/generate"]["post"]["security"]
    assert {"AdminToken": []} in security and {} in security


async def test_key_security_is_what_is_enforced(api: Api, doc: dict[str, Any]) -> None:
    """Operations under the key schemes answer 401 without a key; open ones do not."""
    for method, path in sorted(documented(doc)):
        op = doc["paths"][path][method.lower()]
        filled = path.format(event_id=uuid.uuid4(), endpoint_id=uuid.uuid4(), delivery_id=1,
                             source_id=uuid.uuid4(), token="unknown")
        status, body, resp = await fetch(api, method, filled, json={})
        check_answer(doc, (method, path), status, body, resp)
        if op.get("security", doc["security"]) == doc["security"]:
            assert status == 401, (method, path, status)
        else:
            assert status != 401, (method, path, status)


def _bad_values(schema: dict[str, Any]) -> list[str]:
    bad = []
    if "maximum" in schema:
        bad += [str(schema["maximum"] + 1), str(schema["minimum"] - 1), "ten"]
    if "enum" in schema:
        bad.append("bogus")
    if "maxLength" in schema:
        bad.append("x" * (schema["maxLength"] + 1))
    if schema.get("format") == "uuid":
        bad.append("not-a-uuid")
    return bad


async def test_parameter_bounds_are_enforced(api: Api, doc: dict[str, Any]) -> None:
    """Each documented bound is the handler's: just outside answers 400, the edge 200."""
    key = await api.new_org()
    for method, path in sorted(documented(doc)):
        for param in doc["paths"][path][method.lower()].get("parameters", []):
            schema, name = param["schema"], param["name"]
            if param["in"] == "query":
                edges = [str(schema[k]) for k in ("minimum", "maximum") if k in schema]
                for good in edges + list(schema.get("enum", [])):
                    status, body, _ = await api.call(method, path, key, params={name: good})
                    assert status == 200, (path, name, good, body)
                for bad in _bad_values(schema):
                    status, body, _ = await api.call(method, path, key, params={name: bad})
                    assert status == 400, (path, name, bad, body)
            elif param["in"] == "path":
                for bad in _bad_values(schema):
                    filled = path.replace("{" + name + "}", bad)
                    status, body, _ = await api.call(method, filled, key, json={})
                    assert status == 400, (method, filled, body)
