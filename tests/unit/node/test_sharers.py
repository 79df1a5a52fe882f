"""The port checks of --reuse-port on real sockets: the bind probe accepts a port held
with SO_REUSEPORT by this user and refuses one held without it, in one line; the /proc
reading finds the process that listens on a port (and only on an overlapping address)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from supervisor.node import preflight, sharers
from supervisor.node.failures import StartupError

HOLD = """
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
time.sleep(60)
"""


def _listening(reuse_port: bool) -> tuple[socket.socket, int]:
    sock = socket.socket()
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock, int(sock.getsockname()[1])


@pytest.fixture
def holder() -> Iterator[tuple[int, int]]:
    """Another process listening with SO_REUSEPORT: (its pid, its port)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    yield proc.pid, port
    proc.kill()
    proc.wait()


async def test_a_port_shared_with_reuse_port_passes_the_probe() -> None:
    sock, port = _listening(reuse_port=True)
    with sock:
        await preflight.check_listen("127.0.0.1", port, reuse_port=True)
        with pytest.raises(StartupError, match="is already in use by another process"):
            await preflight.check_listen("127.0.0.1", port)


async def test_a_port_held_without_reuse_port_is_refused_in_one_line() -> None:
    sock, port = _listening(reuse_port=False)
    with sock, pytest.raises(StartupError) as caught:
        await preflight.check_listen("127.0.0.1", port, reuse_port=True)
    assert str(caught.value).startswith(f"PORT: 127.0.0.1:{port} is already in use by a "
                                        "process that does not share it")
    assert "\n" not in str(caught.value)


def test_the_listening_process_is_found_on_overlapping_addresses(
        holder: tuple[int, int]) -> None:
    pid, port = holder
    deadline = time.monotonic() + 5
    while not (found := sharers.holders(sharers.listening_inodes(["127.0.0.1"], port))):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert list(found) == [pid]
    assert sharers.holders(sharers.listening_inodes(["0.0.0.0"], port)) == found
    assert not sharers.listening_inodes(["127.0.0.2"], port)
    assert not sharers.listening_inodes(["127.0.0.1"], port + 1 if port < 65535 else 1)
