"""Child specifications: what a supervisor builds, how it restarts it, how long it may take to stop.

A `ChildSpec` is lazy, like an OTP child spec: `start` is a factory called on every
(re)start, so each restart gets a fresh, not-yet-started `Process`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from supervisor.actor import Process


class Restart(enum.Enum):
    """When a child that exited is started again (OTP restart types)."""

    PERMANENT = "permanent"  # always
    TRANSIENT = "transient"  # only after a crash
    TEMPORARY = "temporary"  # never; the child is forgotten once it exits


class Strategy(enum.Enum):
    """Which siblings a supervisor restarts along with a crashed child."""

    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How a supervisor builds, restarts and stops one child.

    `shutdown` is the number of seconds the child gets to stop gracefully before its
    task is cancelled.
    """

    id: str
    start: Callable[[], Process]
    restart: Restart = Restart.PERMANENT
    shutdown: float = 5.0

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("ChildSpec.id must be a non-empty string")
        if not callable(self.start):
            raise TypeError(f"ChildSpec {self.id!r}: start must be a callable returning a Process")
        if not isinstance(self.restart, Restart):
            raise TypeError(
                f"ChildSpec {self.id!r}: restart must be a Restart, got {self.restart!r}"
            )
        if self.shutdown < 0:
            raise ValueError(f"ChildSpec {self.id!r}: shutdown must be >= 0, got {self.shutdown}")

    def __repr__(self) -> str:
        return f"ChildSpec({self.id!r}, {self.restart.value}, shutdown={self.shutdown:g}s)"
