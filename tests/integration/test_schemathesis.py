"""A bounded schemathesis run against a real node, which must find nothing.

The document is loaded from the running node's /openapi.json and every operation is
exercised with every check, positive and negative data, and the stateful phase over the
document's links, authenticated with an organization's key. Each failure it could report
is a place where the document and the validation disagree, or a bug.

Bounded and repeatable: a fixed seed (each cycle of the run shifts it), no example
database or cache, at most MAX_EXAMPLES cases per operation and phase, and MAX_TIME_S
for the whole run, which schemathesis spends in full: after the examples and coverage
phases it repeats fuzzing and stateful sequences, with fresh seeds, until the time is up.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import schemathesis
from schemathesis import Case, HookContext, Response
from schemathesis.auths import AuthContext
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import StopReason, events, from_schema
from schemathesis.engine.recorder import ScenarioRecorder

from ingestor.endpoint_input import parse_filter, parse_headers, parse_window
from ingestor.http import ApiError
from supervisor.node.tree import Node
from tests.conftest import Api, node_config

pytestmark = pytest.mark.timeout(180)

MAX_TIME_S = 60
MAX_EXAMPLES = 20
SETTINGS: dict[str, Any] = {
    "seed": 20_240_508,
    "max-time": MAX_TIME_S,
    "cache": {"enabled": False},
    "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True,
                   "database": "none"},
    "checks": {"enabled": True},
    "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True},
               "fuzzing": {"enabled": True}, "stateful": {"enabled": True, "max-steps": 10}},
}


class KeyHolder:
    """The organization's current API key; when the run rotates it, the new one."""

    def __init__(self, key: str) -> None:
        self.key = key

    def after_call(self, case: Case, response: Response) -> None:
        if case.operation.label == "POST /api/keys/rotate" and response.status_code == 200:
            self.key = str(response.json()["api_key"])


def within_cross_field_rules(context: HookContext, case: Case, kwargs: dict[str, Any]) -> None:
    """Keeps a positive request within the two rules that the document states in prose,
    since JSON Schema cannot relate two values: the Idempotency-Key header and the body's
    `dedup_id` are equal when both are given, and a recover window is not empty. Each
    400 has its own tests; here a request that would break a rule is mended just before
    it is sent (after the stateful phase has filled in values from earlier answers)."""
    meta, body = case.meta, case.body
    if meta is None or not meta.generation.mode.is_positive or not isinstance(body, dict):
        return
    if case.operation.label == "POST /api/events" and isinstance(body.get("dedup_id"), str):
        case.headers = {name: value for name, value in (case.headers or {}).items()
                        if name.lower() != "idempotency-key" or value == body["dedup_id"]}
    if case.operation.label == "POST /api/sources":
        _mend_source(body)
    if case.operation.label == "POST /api/sources/{source_id}/rotate-secret":
        body.pop("secret", None)  # whether it must be base64 depends on the source's kind
    if case.operation.label in _ENDPOINT_WRITES:
        _mend_endpoint(body)
    if case.operation.label == "POST /api/endpoints/{endpoint_id}/recover":
        try:
            parse_window(body)
        except ApiError:
            body.pop("until", None)
            body["since"] = "1970-01-01T00:00:00Z"


_ENDPOINT_WRITES = ("POST /api/endpoints", "PATCH /api/endpoints/{endpoint_id}",
                    "POST /api/endpoints/{endpoint_id}/test-filter")


def _mend_endpoint(body: dict[str, Any]) -> None:
    """An endpoint's rules that the document states in prose: the filter grammar (its
    operators, the fields of the subject, its bounds) and the header names reserved in
    any case. A generated filter or header set outside them is replaced by a valid one."""
    for name, parse, valid in (("filter", parse_filter, {"data": {"n": {"$gte": 1}}}),
                               ("headers", parse_headers, {"X-Tenant": "t"})):
        if body.get(name) is None:
            continue
        try:
            parse(body[name])
        except ApiError:
            body[name] = valid


def _mend_source(body: dict[str, Any]) -> None:
    """A new source's rules between fields: settings only for the hmac kind (required
    there) and the none kind; each template placeholder with its place; no given secret
    (whether it must be base64 depends on the kind)."""
    body.pop("secret", None)
    settings = body.get("settings")
    if body.get("kind") not in ("hmac", "none") or not isinstance(settings, dict):
        body["settings"] = {"header": "X-Sig"} if body.get("kind") == "hmac" else None
        return
    if body["kind"] == "none":
        body["settings"] = {k: v for k, v in settings.items()
                            if k in ("type_from", "id_from", "fixed_type")}
        return
    settings["header"] = settings.get("header") or "X-Sig"
    template = settings.get("template") or "{body}"
    for name, placeholder in (("timestamp", "{timestamp}"), ("signed_id", "{id}")):
        if settings.get(name) is None:
            template = template.replace(placeholder, "")
    if "{body}" not in template:
        template = "{body}"
    for name, placeholder in (("timestamp", "{timestamp}"), ("signed_id", "{id}")):
        if placeholder not in template:
            settings.pop(name, None)
    settings["template"] = template


def load_schema(base: str, holder: KeyHolder) -> Any:
    config = SchemathesisConfig.from_dict({**SETTINGS, "base-url": base})
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json", config=config)

    class KeyAuth:
        def get(self, case: Case, context: AuthContext) -> str:
            return holder.key

        def set(self, case: Case, data: str, context: AuthContext) -> None:
            case.headers = {**(case.headers or {}), "X-API-Key": data}

    def after_call(context: HookContext, case: Case, response: Response) -> None:
        holder.after_call(case, response)

    schema.auth(refresh_interval=None)(KeyAuth)
    schema.hook(after_call)
    return schema


@dataclass
class Outcome:
    """What a run found (one example per check, operation and kind of answer), why it
    stopped, the seconds each phase took and the operations it exercised."""

    failures: dict[str, str] = field(default_factory=dict)
    stop: StopReason = StopReason.COMPLETED
    phases: dict[str, float] = field(default_factory=dict)
    operations: set[str] = field(default_factory=set)

    def record(self, recorder: ScenarioRecorder, phase: str) -> None:
        if phase != "stateful":
            self.operations.add(recorder.label)
        for case_id, checks in recorder.checks.items():
            interaction = recorder.interactions.get(case_id)
            answer = interaction.response if interaction is not None else None
            said = "" if answer is None else f"-> {answer.status_code} {answer.text[:300]}"
            for check in checks:
                if check.failure_info is None:
                    continue
                failure = check.failure_info.failure
                kind = re.sub(r"\d+", "N", said[:60])
                self.failures[f"[{check.name}] {failure.operation}: {failure.title} {kind}"] = (
                    f"{failure.message[:400]}\n{check.failure_info.code_sample[:700]}\n{said}")

    def report(self) -> str:
        return "\n\n".join(f"{title}\n{example}" for title, example in
                           sorted(self.failures.items()))


def run_schemathesis(base: str, key: str) -> Outcome:
    schema = load_schema(base, KeyHolder(key))
    outcome, started = Outcome(), {}
    mend = schemathesis.hook("before_call")(within_cross_field_rules)  # a global-only hook
    try:
        for event in from_schema(schema).execute():
            if isinstance(event, events.PhaseStarted):
                started[event.phase.name.value] = event.timestamp
            elif isinstance(event, events.PhaseFinished) and event.phase.name.value in started:
                name = event.phase.name.value
                took = outcome.phases.get(name, 0.0) + event.timestamp - started[name]
                outcome.phases[name] = round(took, 1)
            elif isinstance(event, events.ScenarioFinished):
                outcome.record(event.recorder, event.phase.value)
            elif isinstance(event, events.NonFatalError | events.FatalError):
                outcome.failures[f"error: {event!r}"[:300]] = ""
            elif isinstance(event, events.EngineFinished):
                outcome.stop = event.stop_reason
                outcome.failures.update({str(failure): "" for failure in event.failures})
    finally:
        schemathesis.hooks.unregister(mend)
    return outcome


@pytest.fixture
async def open_node(database_url: str) -> AsyncIterator[Api]:
    """A node on 127.0.0.1 that takes private targets, so that creating an endpoint looks
    up no name in DNS (the SSRF refusals have their own tests)."""
    running = Node(node_config(database_url, allow_private_targets=True))
    await running.root.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(f"http://127.0.0.1:{running.config.port}", session)
    finally:
        await running.root.stop(10)


async def test_schemathesis_finds_nothing(open_node: Api) -> None:
    key = await open_node.new_org("schemathesis")
    _, document, _ = await open_node.call("GET", "/openapi.json")
    documented = {f"{method.upper()} {path}" for path, item in document["paths"].items()
                  for method in item}
    started = time.monotonic()
    outcome = await asyncio.to_thread(run_schemathesis, open_node.base, key)
    took = time.monotonic() - started
    assert not outcome.failures, (
        f"{len(outcome.failures)} failure(s) in {took:.0f} s ({outcome.stop}, phases "
        f"{outcome.phases}):\n\n{outcome.report()}")
    assert outcome.stop in (StopReason.COMPLETED, StopReason.MAX_TIME), outcome.stop
    assert {"examples", "coverage", "fuzzing", "stateful"} <= set(outcome.phases)
    # Every operation, except the document itself, which schemathesis does not call.
    assert outcome.operations == documented - {"GET /openapi.json"}, (
        documented ^ outcome.operations)
    print(f"schemathesis: {outcome.stop} in {took:.1f} s, phases {outcome.phases}")
