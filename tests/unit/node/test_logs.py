"""Log lines carry their record's fields: JSON beside the message, text as key=value,
and the node's name from the context its tree runs in."""

from __future__ import annotations

import contextvars
import io
import logging
from collections.abc import Iterator
from uuid import UUID

import orjson
import pytest

from supervisor.node import logs

EVENT = UUID("01890000-0000-7000-8000-000000000001")


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    made = logging.getLogger("tests.logs")
    made.propagate = False
    made.setLevel(logging.INFO)
    yield made
    made.handlers.clear()


def _lines(logger: logging.Logger, fmt: str) -> io.StringIO:
    stream = io.StringIO()
    logger.handlers[:] = [logs.handler(fmt, stream)]
    return stream


def test_json_lines_carry_the_ids_as_fields(logger: logging.Logger) -> None:
    stream = _lines(logger, "json")
    logger.warning("delivery %d attempt %d failed", 7, 2, extra={
        "event_id": EVENT, "delivery_id": 7, "endpoint_id": "ep", "org_id": None,
        "response_status": 500, "duration_ms": 12.5})
    line = orjson.loads(stream.getvalue())
    assert line["msg"] == "delivery 7 attempt 2 failed" and line["level"] == "warning"
    assert line["logger"] == "tests.logs" and line["ts"].endswith("Z")
    assert line["event_id"] == str(EVENT) and line["delivery_id"] == 7
    assert line["response_status"] == 500 and line["duration_ms"] == 12.5
    assert "org_id" not in line  # None is left out
    assert "node" not in line  # logged outside any node's tree


def test_the_fields_cannot_hide_the_message(logger: logging.Logger) -> None:
    stream = _lines(logger, "json")
    logger.info("the message", extra={"ts": "forged", "level": "forged", "logger": "x"})
    line = orjson.loads(stream.getvalue())
    assert line["level"] == "info" and line["logger"] == "tests.logs" and line["ts"] != "forged"


def test_the_node_comes_from_the_context(logger: logging.Logger) -> None:
    stream = _lines(logger, "json")
    context = contextvars.copy_context()
    context.run(logs.NODE.set, "host:1:4000")
    context.run(logger.info, "inside the tree")
    logger.info("outside", extra={"node": "given"})
    first, second = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert first["node"] == "host:1:4000" and second["node"] == "given"


def test_text_lines_show_the_same_fields_compactly(logger: logging.Logger) -> None:
    stream = _lines(logger, "text")
    context = contextvars.copy_context()
    context.run(logs.NODE.set, "host:1:4000")
    context.run(logger.info, "delivery %d attempt %d failed", 7, 1, extra={
        "error": "HTTP 500", "delivery_id": 7, "event_id": EVENT, "org_id": "org",
        "duration_ms": 3.14159, "next_attempt_at": None})
    line = stream.getvalue().rstrip("\n")
    assert line.endswith(f" INFO    tests.logs: delivery 7 attempt 1 failed  org_id=org "
                         f"event_id={EVENT} delivery_id=7 error='HTTP 500' duration_ms=3.1 "
                         "node=host:1:4000")


def test_text_lines_without_fields_are_plain(logger: logging.Logger) -> None:
    stream = _lines(logger, "text")
    logger.info("plain")
    assert stream.getvalue().rstrip("\n").endswith("tests.logs: plain")


def test_json_keeps_the_traceback(logger: logging.Logger) -> None:
    stream = _lines(logger, "json")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed", extra={"delivery_id": 1})
    line = orjson.loads(stream.getvalue())
    assert "ValueError: boom" in line["exc"] and line["delivery_id"] == 1
