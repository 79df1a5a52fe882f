"""The SSRF guard at delivery time: no webhook reaches the node's own network.

A target is refused when its host is an IP literal inside loopback, private, link-local,
multicast, reserved, unspecified or otherwise non-global space, judged by the one policy
in triggerd_sql.netpolicy (the same the API applies when an endpoint is written), and
`GuardedResolver` drops such addresses from every DNS answer, so a name that resolves
only inward is refused and a DNS answer that changed since the endpoint was saved cannot
slip through. Turned off by TRIGGERD_ALLOW_PRIVATE_TARGETS=true. No process, no messages.
"""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult

from triggerd_sql.netpolicy import FLAG, ip_literal, is_internal, is_internal_name

__all__ = ["BlockedTarget", "GuardedResolver", "check_literal", "is_internal"]


class BlockedTarget(OSError):
    """The target is inside the node's network; the message says how to allow it."""


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
        if is_internal_name(host):
            raise BlockedTarget(f"target {host} is a loopback name; set {FLAG}=true to allow it")
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
