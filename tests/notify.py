"""A real sd_notify socket for tests: what systemd would receive, with the sender's pid.

`NotifySocket` binds a unix datagram socket (SO_PASSCRED, so each message carries the
sending pid like systemd's NotifyAccess=main check) and collects messages in a thread,
timestamped on arrival; `environ()` is what to give the node.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Message:
    at: float  # time.monotonic() on arrival
    pid: int
    text: str

    def fields(self) -> dict[str, str]:
        return dict(line.split("=", 1) for line in self.text.splitlines() if "=" in line)


class NotifySocket:
    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="tgd-notify-", dir="/tmp")
        self.path = Path(self._dir) / "notify"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(self.path))
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self._sock.settimeout(0.05)
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def environ(self, watchdog_usec: int | None = None) -> dict[str, str]:
        env = {"NOTIFY_SOCKET": str(self.path)}
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        return env

    def _receive(self) -> None:
        space = socket.CMSG_SPACE(struct.calcsize("3i"))
        while not self._closed.is_set():
            try:
                data, ancillary, _, _ = self._sock.recvmsg(65536, space)
            except TimeoutError:
                continue
            except OSError:
                return
            pid = 0
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", payload[:12])[0]
            with self._lock:
                self.messages.append(Message(time.monotonic(), pid, data.decode()))

    def received(self) -> list[Message]:
        with self._lock:
            return list(self.messages)

    def with_field(self, name: str, value: str | None = None) -> list[Message]:
        return [m for m in self.received()
                if name in m.fields() and (value is None or m.fields()[name] == value)]

    def statuses(self) -> list[str]:
        return [m.fields()["STATUS"] for m in self.with_field("STATUS")]

    async def wait_for(self, name: str, value: str | None = None, timeout: float = 15.0,
                       count: int = 1) -> list[Message]:
        """The messages carrying `name` (=`value`), once there are `count` of them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.with_field(name, value)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.02)
        raise TimeoutError(f"not {count} x {name}={value} in {self.received()}")

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=2)
        self._sock.close()
        self.path.unlink(missing_ok=True)
        os.rmdir(self._dir)
