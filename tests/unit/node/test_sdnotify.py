"""sd_notify over a real datagram socket, and the watchdog settings systemd passes."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from supervisor.node import sdnotify
from tests.notify import NotifySocket


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    sock = NotifySocket()
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock.path))
    yield sock
    sock.close()


async def test_messages_arrive_from_this_process(notify_socket: NotifySocket) -> None:
    assert sdnotify.status("ready: listening\non two lines", "READY=1")
    assert sdnotify.reloading()
    ready, reloading = await notify_socket.wait_for("STATUS", count=2, timeout=2)
    assert ready.pid == os.getpid()
    assert ready.fields() == {"READY": "1", "STATUS": "ready: listening on two lines"}
    fields = reloading.fields()
    assert fields["RELOADING"] == "1" and fields["STATUS"] == "reloading"
    assert int(fields["MONOTONIC_USEC"]) > 0


def test_without_a_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not sdnotify.notify("READY=1")
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/notify")
    assert not sdnotify.notify("READY=1")  # systemd gone: never raises
    monkeypatch.setenv("NOTIFY_SOCKET", "relative/path")
    assert not sdnotify.notify("READY=1")


@pytest.mark.parametrize(("environ", "period"), [
    ({}, None),
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}, 0.5),
    ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
])
def test_watchdog_period_is_half_of_watchdog_usec(environ: dict[str, str],
                                                  period: float | None) -> None:
    assert sdnotify.watchdog_period(environ) == period
