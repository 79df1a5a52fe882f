"""One SSRF policy: every address form gets the same verdict when an endpoint is written
(ingestor.netguard.check_host) and when a delivery connects (workers.netguard: the IP
literal check, then the guarded resolver over the system's own resolver)."""

from __future__ import annotations

import socket

import aiohttp
import pytest

from ingestor.netguard import TargetRefused, check_host
from triggerd_sql.netpolicy import ip_literal
from workers.netguard import BlockedTarget, GuardedResolver, check_literal

INTERNAL = [
    # IPv4, and spellings of it that only a resolver turns into an address
    "127.0.0.1", "127.1", "0x7f000001", "2130706433", "0177.0.0.1", "0", "0.0.0.0",
    "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "224.0.0.1", "240.0.0.1", "255.255.255.255", "192.0.2.1",
    # IPv6, bracketed or not, with a zone id
    "::1", "[::1]", "::", "fe80::1", "fe80::1%lo", "fc00::1", "fd12:3456::1", "fec0::1",
    "ff02::1", "2001:db8::1",
    # IPv6 carrying an internal IPv4 address
    "::ffff:127.0.0.1", "::ffff:7f00:1", "[::ffff:10.0.0.1]", "2002:7f00:1::",
    "2002:a9fe:a9fe::", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",
    # names resolving inside
    "localhost", "LOCALHOST.", "api.localhost",
]
PUBLIC = [
    "93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111",
    # IPv6 carrying a public IPv4 address reaches that address: judged by it
    "::ffff:8.8.8.8", "2002:808:808::", "64:ff9b::808:808",
]


async def _refused_at_creation(host: str) -> bool:
    try:
        await check_host(host, 443)
    except TargetRefused:
        return True
    return False


async def _blocked_at_delivery(host: str) -> bool:
    try:
        check_literal(host)
    except BlockedTarget:
        return True
    if ip_literal(host) is not None:
        return False  # a literal is connected to as is, without a resolver
    resolver = GuardedResolver(aiohttp.ThreadedResolver())
    try:
        await resolver.resolve(host.rstrip("."), 443, socket.AF_UNSPEC)
    except BlockedTarget:
        return True
    finally:
        await resolver.close()
    return False


@pytest.mark.parametrize("host", INTERNAL)
async def test_internal_everywhere(host: str) -> None:
    assert await _refused_at_creation(host)
    assert await _blocked_at_delivery(host)


@pytest.mark.parametrize("host", PUBLIC)
async def test_public_everywhere(host: str) -> None:
    assert not await _refused_at_creation(host)
    assert not await _blocked_at_delivery(host)
