"""sd_notify over a real datagram socket, and the watchdog settings systemd passes."""

from __future__ import annotations

import os
import subprocess
import sys
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


@pytest.mark.parametrize(("frozen", "period"), [(True, 0.5), (False, None)])
def test_the_single_file_binary_pings_for_its_bootloader(frozen: bool,
                                                         period: float | None) -> None:
    """Frozen (PyInstaller onefile), the node is the child of systemd's main PID."""
    environ = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getppid())}
    assert sdnotify.watchdog_period(environ, frozen=frozen) == period
    own = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}
    assert sdnotify.watchdog_period(own, frozen=frozen) == 0.5
    other = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}
    assert sdnotify.watchdog_period(other, frozen=frozen) is None


@pytest.mark.parametrize(("frozen", "expected"), [("True", "0.5"), ("False", "None")])
def test_a_frozen_child_process_takes_its_parents_watchdog(frozen: str, expected: str) -> None:
    """A real child whose WATCHDOG_PID is this process, as the bootloader's child sees it."""
    code = (f"import sys; sys.frozen = {frozen}\n"
            "from supervisor.node import sdnotify\n"
            "print(sdnotify.watchdog_period())")
    env = {**os.environ, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    assert done.stdout.strip() == expected
