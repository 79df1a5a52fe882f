"""The SSRF guard for webhook targets: refuses hosts that are, or resolve to, addresses
inside the node's network (loopback, private, link-local, multicast, reserved).

Checked when an endpoint is written; the deliverer checks the resolved address again
at delivery time, since DNS answers can change after this check.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

FLAG = "TRIGGERD_ALLOW_PRIVATE_TARGETS"
RESOLVE_TIMEOUT_S = 2.0
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class TargetRefused(ValueError):
    """The target may not be used; the message says why and how to allow it."""


def embedded_ipv4(addr: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4 or NAT64), if any."""
    if isinstance(addr, ipaddress.IPv4Address):
        return None
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFF_FFFF)
    return None


def is_internal(addr: IPAddress) -> bool:
    """True for any address a webhook must not reach by default."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return is_internal(addr.ipv4_mapped)
    inner = embedded_ipv4(addr)
    if inner is not None and is_internal(inner):
        return True
    return (addr.is_private or addr.is_loopback or addr.is_link_local or addr.is_multicast
            or addr.is_reserved or addr.is_unspecified or not addr.is_global
            or (isinstance(addr, ipaddress.IPv6Address) and addr.is_site_local))


def _refusal(host: str, addr: IPAddress | None) -> TargetRefused:
    where = host if addr is None or str(addr) == host else f"{host} resolves to {addr}, which"
    return TargetRefused(f"{where} is a private or loopback address; "
                         f"set {FLAG}=true to allow it")


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


async def check_host(host: str, port: int, timeout: float = RESOLVE_TIMEOUT_S) -> None:
    """Raises TargetRefused when `host` is, or resolves to, an internal address.

    A name that does not resolve now (a DNS outage, a receiver not deployed yet) is
    accepted: the deliverer resolves and checks every connection anyway, which is also
    what stops a name that later starts pointing inside."""
    host = host.strip("[]").rstrip(".").lower()
    literal = _literal(host)
    if literal is not None:
        if is_internal(literal):
            raise _refusal(host, literal)
        return
    if host == "localhost" or host.endswith(".localhost"):
        raise _refusal(host, None)
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
    except (socket.gaierror, asyncio.TimeoutError):
        return
    except UnicodeError:
        raise TargetRefused(f"{host} is not a valid host name") from None
    for info in infos:
        addr = _literal(str(info[4][0]))
        if addr is None or is_internal(addr):
            raise _refusal(host, addr)
