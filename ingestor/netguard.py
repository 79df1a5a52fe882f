"""The SSRF guard when an endpoint is written: refuses hosts that are, or resolve to,
addresses the policy (triggerd_sql.netpolicy) calls internal. The deliverer applies the
same policy again to every connection, since DNS answers can change after this check.
"""

from __future__ import annotations

import asyncio
import socket

from triggerd_sql.netpolicy import IPAddress, ip_literal, is_internal, is_internal_name, refusal

__all__ = ["TargetRefused", "check_host", "is_internal"]

RESOLVE_TIMEOUT_S = 2.0


class TargetRefused(ValueError):
    """The target may not be used; the message says why and how to allow it."""


def _refusal(host: str, addr: IPAddress | None) -> TargetRefused:
    return TargetRefused(refusal(host, addr))


async def check_host(host: str, port: int, timeout: float = RESOLVE_TIMEOUT_S) -> None:
    """Raises TargetRefused when `host` is, or resolves to, an internal address.

    A name that does not resolve now (a DNS outage, a receiver not deployed yet) is
    accepted: the deliverer resolves and checks every connection anyway, which is also
    what stops a name that later starts pointing inside."""
    host = host.strip("[]").rstrip(".").lower()
    literal = ip_literal(host)
    if literal is not None:
        if is_internal(literal):
            raise _refusal(host, literal)
        return
    if is_internal_name(host):
        raise _refusal(host, None)
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
    except (TimeoutError, socket.gaierror):
        return
    except UnicodeError:
        raise TargetRefused(f"{host} is not a valid host name") from None
    for info in infos:
        addr = ip_literal(str(info[4][0]))
        if addr is None or is_internal(addr):
            raise _refusal(host, addr)
