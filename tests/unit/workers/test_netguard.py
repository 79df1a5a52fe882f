"""The delivery-time SSRF guard: address classes, IP literals, filtered DNS answers."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from workers.netguard import BlockedTarget, GuardedResolver, check_literal, is_internal


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
    "::1", "::", "fe80::1", "fc00::1", "fec0::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2002:7f00:1::", "64:ff9b::a00:1",
])
def test_internal_addresses(address: str) -> None:
    assert is_internal(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses(address: str) -> None:
    assert not is_internal(ipaddress.ip_address(address))


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]", "fe80::1%eth0",
                                  "::ffff:127.0.0.1"])
def test_internal_literals_are_blocked(host: str) -> None:
    with pytest.raises(BlockedTarget, match="TRIGGERD_ALLOW_PRIVATE_TARGETS=true"):
        check_literal(host)


@pytest.mark.parametrize("host", ["example.com", "93.184.216.34", "localhost"])
def test_names_and_public_literals_pass_the_literal_check(host: str) -> None:
    check_literal(host)  # names are judged by the resolver


class Answers(AbstractResolver):
    """A resolver with fixed answers, standing in for DNS."""

    def __init__(self, *hosts: str) -> None:
        self.hosts = hosts
        self.closed = False

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host=h, port=port, family=family, proto=0, flags=0)
                for h in self.hosts]

    async def close(self) -> None:
        self.closed = True


async def test_resolver_keeps_only_public_addresses() -> None:
    resolver = GuardedResolver(Answers("10.0.0.5", "93.184.216.34", "::1"))
    results = await resolver.resolve("mixed.example", 443)
    assert [r["host"] for r in results] == ["93.184.216.34"]


async def test_resolver_refuses_a_name_with_only_internal_addresses() -> None:
    resolver = GuardedResolver(Answers("127.0.0.1", "::1"))
    with pytest.raises(BlockedTarget) as info:
        await resolver.resolve("inward.example", 80)
    assert str(info.value) == (
        "target inward.example resolves only to private addresses (127.0.0.1, ::1); "
        "set TRIGGERD_ALLOW_PRIVATE_TARGETS=true to allow it")
    assert isinstance(info.value, OSError)


async def test_resolver_with_no_answer_is_a_resolution_failure() -> None:
    with pytest.raises(socket.gaierror):
        await GuardedResolver(Answers()).resolve("nothing.example", 80)


async def test_resolver_closes_the_inner_one() -> None:
    inner = Answers()
    await GuardedResolver(inner).close()
    assert inner.closed
