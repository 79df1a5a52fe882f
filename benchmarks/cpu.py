"""CPU time of processes as the kernel counts it (/proc/<pid>/stat: utime + stime), for
figures such as microseconds of CPU per request.

`process_cpu(pid)` is one process (all its threads); `tree_cpu(pid)` is a process and
every descendant alive at the time of reading, plus what its children that already exited
used (cutime + cstime: the kernel adds a child's time to its parent when the parent reaps
it). A difference of two `tree_cpu` readings therefore also counts a child that came and
went in between, such as a PostgreSQL backend opened and closed during a run, as long as
the root reaped it. `CpuMeter` takes the two readings around a piece of work.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name, or None once it is gone.
    Index 0 is the state, 1 the parent's pid, 11/12 utime/stime, 13/14 cutime/cstime."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            raw = stat.read()
    except OSError:
        return None
    # The command name is in parentheses and may itself hold spaces or parentheses.
    return raw[raw.rindex(b")") + 2:].decode().split()


def process_cpu(pid: int) -> float | None:
    """Seconds of CPU (user + system) `pid` has used so far; None once it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) * TICK_S


def _parents() -> dict[int, list[int]]:
    """Every live process's children, by parent pid (one scan of /proc)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(name))
    return children


def tree_cpu(pid: int) -> float | None:
    """Seconds of CPU used by `pid`, its live descendants, and its reaped children;
    None when `pid` is gone."""
    root = _stat_fields(pid)
    if root is None:
        return None
    total = sum(int(root[i]) for i in (11, 12, 13, 14))
    children = _parents()
    stack = list(children.get(pid, ()))
    while stack:
        child = stack.pop()
        fields = _stat_fields(child)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])
            stack.extend(children.get(child, ()))
    return total * TICK_S


@dataclass
class CpuMeter:
    """CPU seconds a process (or tree) used between `start()` and `stop()`."""

    read: Callable[[], float | None]
    started: float | None = None
    seconds: float | None = None

    def start(self) -> CpuMeter:
        self.started = self.read()
        self.seconds = None
        return self

    def stop(self) -> float | None:
        end = self.read()
        self.seconds = None if end is None or self.started is None else end - self.started
        return self.seconds

    def per(self, count: int) -> float | None:
        """Microseconds of CPU per one of `count` (requests, events), or None."""
        if self.seconds is None or count <= 0:
            return None
        return self.seconds * 1e6 / count
