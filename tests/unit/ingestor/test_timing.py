"""Every answer is timed under a few fixed labels, whatever the path a client sends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ingestor.http import errors
from ingestor.timing import BUCKETS, REQUEST_TIMES, ROUTE_GROUPS, RequestTimes, group_of, timing


@pytest.mark.parametrize(("template", "group"), [
    ("/api/events", "ingest"), ("/api/events/batch", "ingest"), ("/in/{token}", "ingest"),
    ("/api/events/{event_id}", "api"), ("/api/endpoints/{endpoint_id}/pause", "api"),
    ("/metrics", "node"), ("/health/ready", "node"), ("/dashboard", "node"),
])
def test_route_groups(template: str, group: str) -> None:
    assert group_of(template) == group


def _count(group: str, status_class: str) -> float:
    for metric in REQUEST_TIMES.collect():
        for sample in metric.samples:
            if (sample.name.endswith("_count") and sample.labels["route_group"] == group
                    and sample.labels["status_class"] == status_class):
                return sample.value
    return 0.0


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async def accepted(_: web.Request) -> web.Response:
        return web.json_response({}, status=202)

    async def broken(_: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    async def moved(_: web.Request) -> web.Response:
        raise web.HTTPFound("/metrics")

    app = web.Application(middlewares=[timing, errors])
    app.router.add_post("/api/events", accepted)
    app.router.add_get("/api/broken/{id}", broken)
    app.router.add_get("/dashboard", moved)
    async with TestClient(TestServer(app)) as made:
        yield made


async def test_each_answer_counts_once_under_its_group_and_class(
        client: TestClient[web.Request, web.Application]) -> None:
    cases = [("POST", "/api/events", "ingest", "2xx"), ("GET", "/api/broken/7", "api", "5xx"),
             ("GET", "/dashboard", "node", "3xx"), ("GET", "/nowhere/1", "unmatched", "4xx"),
             ("DELETE", "/api/events", "unmatched", "4xx")]  # 405: a known path
    for method, path, group, status_class in cases:
        before = _count(group, status_class)
        async with client.request(method, path, allow_redirects=False) as resp:
            await resp.read()
        assert _count(group, status_class) == before + 1, (method, path)


def test_buckets_are_cumulative_and_bounds_inclusive() -> None:
    assert ROUTE_GROUPS[1] == "api"
    times = RequestTimes()
    for seconds in (0.0001, 0.0005, 0.0006, 3.0, 60.0):
        times.observe(1, 204, seconds)  # api
    [family] = times.collect()
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples
               if s.labels["route_group"] == "api" and s.labels["status_class"] == "2xx"}
    assert samples["triggerd_http_request_seconds_bucket", "0.0005"] == 2  # le: inclusive
    assert samples["triggerd_http_request_seconds_bucket", "0.001"] == 3
    assert samples["triggerd_http_request_seconds_bucket", "5.0"] == 4
    assert samples["triggerd_http_request_seconds_bucket", "+Inf"] == 5
    assert samples["triggerd_http_request_seconds_count", None] == 5
    assert samples["triggerd_http_request_seconds_sum", None] == pytest.approx(63.0012)
    assert len(family.samples) == 20 * (len(BUCKETS) + 3)  # every series, from the start
