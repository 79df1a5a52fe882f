"""A small OTP-style actor runtime on asyncio: processes, actors and supervisors.

It knows nothing of webhooks; the node assembly lives in `supervisor.node`.
"""

from supervisor.actor import Actor, PeriodicActor, Process, Resident, Tick
from supervisor.spec import ChildSpec, Restart, Strategy
from supervisor.supervisor import Supervisor, SupervisorEscalation

__all__ = [
    "Actor",
    "ChildSpec",
    "PeriodicActor",
    "Process",
    "Resident",
    "Restart",
    "Strategy",
    "Supervisor",
    "SupervisorEscalation",
    "Tick",
]
