"""sd_notify: tells systemd (Type=notify) how the node is doing.

`notify("READY=1")` and friends send one datagram to $NOTIFY_SOCKET; `status(text)` sends
a `STATUS=` line (what `systemctl status` shows). Nothing is ever waited for: the socket
is non-blocking, and a message systemd cannot take at once is dropped. Without
$NOTIFY_SOCKET (not under systemd) every call is a no-op that returns False.

`watchdog_period()` reads $WATCHDOG_USEC / $WATCHDOG_PID as sd_watchdog_enabled(3) does,
with one addition: the single-file binary (PyInstaller onefile) runs the node as the child
of its bootloader, which is systemd's main PID, so when frozen the parent's pid is taken
as ours (the unit says NotifyAccess=all so that systemd takes the child's pings).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Mapping


def notify(state: str) -> bool:
    """Sends `state` (e.g. "READY=1", or several "K=V" lines) to $NOTIFY_SOCKET."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or address[0] not in "/@":
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(state.encode(errors="replace"), socket.MSG_DONTWAIT, address)
        except OSError:
            return False
    return True


def status(text: str, *extra: str) -> bool:
    """A STATUS= line (one line: newlines become spaces), sent with any `extra` states."""
    line = "STATUS=" + " ".join(text.split("\n"))
    return notify("\n".join((*extra, line)))


def reloading() -> bool:
    """RELOADING=1 with the monotonic time systemd's notify-reload protocol asks for."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=reloading")


def watchdog_period(environ: Mapping[str, str] | None = None, *,
                    frozen: bool | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), or None when systemd
    asked for none, or asked another process (WATCHDOG_PID is neither ours nor, in the
    single-file binary, our bootloader's). `frozen` defaults to sys.frozen."""
    env = os.environ if environ is None else environ
    pid = env.get("WATCHDOG_PID")
    if pid and pid.strip() not in _own_pids(getattr(sys, "frozen", False)
                                            if frozen is None else frozen):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2_000_000 if usec > 0 else None


def _own_pids(frozen: bool) -> tuple[str, ...]:
    return (str(os.getpid()), str(os.getppid())) if frozen else (str(os.getpid()),)
