"""Which addresses a webhook may reach: the one SSRF policy, used when an endpoint is
written (ingestor/netguard.py) and on every connection a delivery makes
(workers/netguard.py), so the two can never disagree.

An address is internal - refused unless TRIGGERD_ALLOW_PRIVATE_TARGETS=true - when it
is loopback, private, shared (100.64/10), link-local, multicast, reserved,
unspecified, IPv6 site-local or otherwise not globally routable. An IPv6 address that
carries an IPv4 one (IPv4-mapped ::ffff:a.b.c.d, 6to4 2002::/16, NAT64 64:ff9b::/96) is
judged by the IPv4 address it reaches: ::ffff:8.8.8.8 is 8.8.8.8, ::ffff:127.0.0.1 is
loopback. IPv4 spellings that are not dotted quads (127.1, 0x7f000001, 2130706433,
0177.0.0.1) are not literals here: they go through the resolver, which turns them into
the address they mean, and that address is judged. `localhost` and the names under it
are internal by name.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

FLAG = "TRIGGERD_ALLOW_PRIVATE_TARGETS"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


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
    inner = embedded_ipv4(addr)
    if inner is not None:
        return is_internal(inner)
    if isinstance(addr, ipaddress.IPv6Address) and addr.is_site_local:
        return True
    return (addr.is_private or addr.is_loopback or addr.is_link_local or addr.is_multicast
            or addr.is_reserved or addr.is_unspecified or not addr.is_global)


def is_internal_name(host: str) -> bool:
    """`localhost` and every name under it, which resolve to loopback (RFC 6761)
    whatever a resolver answers."""
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def ip_literal(host: str) -> IPAddress | None:
    """The address when `host` is an IP literal (brackets and a zone id allowed)."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def refusal(host: str, addr: IPAddress | None) -> str:
    """Why `host` (resolving to `addr`) is refused, and how to allow it."""
    if addr is None or str(addr) == host.strip("[]"):
        return f"{host} is a private or loopback address; set {FLAG}=true to allow it"
    return (f"{host} resolves to {addr}, a private or loopback address; "
            f"set {FLAG}=true to allow it")
