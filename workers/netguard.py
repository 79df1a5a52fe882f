"""The SSRF guard at delivery time: no webhook reaches the node's own network.

A target is refused when its host is an IP literal inside loopback, private, link-local,
multicast, reserved, unspecified or otherwise non-global space (also when carried inside
an IPv6 address: IPv4-mapped, 6to4, NAT64), and `GuardedResolver` drops such addresses
from every DNS answer, so a name that resolves only inward is refused and a DNS answer
that changed since the endpoint was saved cannot slip through. The policy matches the
check made when an endpoint is written (ingestor/netguard.py; the packages do not import
each other). Turned off by TRIGGERD_ALLOW_PRIVATE_TARGETS=true. No process, no messages.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

FLAG = "TRIGGERD_ALLOW_PRIVATE_TARGETS"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class BlockedTarget(OSError):
    """The target is inside the node's network; the message says how to allow it."""


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFF_FFFF)
    return None


def is_internal(addr: IPAddress) -> bool:
    """True for any address a webhook must not reach by default."""
    if isinstance(addr, ipaddress.IPv6Address):
        inner = _embedded_ipv4(addr)
        if inner is not None and is_internal(inner):
            return True
        if addr.is_site_local:
            return True
    return (addr.is_private or addr.is_loopback or addr.is_link_local or addr.is_multicast
            or addr.is_reserved or addr.is_unspecified or not addr.is_global)


def ip_literal(host: str) -> IPAddress | None:
    """The address when `host` is an IP literal (brackets and zone id allowed), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def check_literal(host: str) -> None:
    """Raises BlockedTarget when `host` is an internal IP literal."""
    addr = ip_literal(host)
    if addr is not None and is_internal(addr):
        raise BlockedTarget(f"target {addr} is a private address; set {FLAG}=true to allow it")


class GuardedResolver(AbstractResolver):
    """Resolves with `inner` and keeps only public addresses; raises BlockedTarget (an
    OSError, which aiohttp wraps in ClientConnectorDNSError) when none is left."""

    def __init__(self, inner: AbstractResolver) -> None:
        self.inner = inner

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        if not results:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} has no address")
        public = [r for r in results if not _internal_result(r)]
        if not public:
            found = ", ".join(sorted({r["host"] for r in results}))
            raise BlockedTarget(f"target {host} resolves only to private addresses ({found}); "
                                f"set {FLAG}=true to allow it")
        return public

    async def close(self) -> None:
        await self.inner.close()


def _internal_result(result: ResolveResult) -> bool:
    addr = ip_literal(result["host"])
    return addr is None or is_internal(addr)
