"""The SSRF guard's address classes and host checks, without a node."""

from __future__ import annotations

import ipaddress

import pytest

from ingestor.netguard import TargetRefused, check_host, is_internal


@pytest.mark.parametrize("raw", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.0.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255", "::1", "::", "fe80::1",
    "fc00::1", "ff02::1", "::ffff:10.0.0.1", "2002:7f00:1::", "64:ff9b::a9fe:a9fe"])
def test_internal_addresses(raw: str) -> None:
    assert is_internal(ipaddress.ip_address(raw))


@pytest.mark.parametrize("raw", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111",
                                 "::ffff:8.8.8.8"])
def test_public_addresses(raw: str) -> None:
    assert not is_internal(ipaddress.ip_address(raw))


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "api.localhost", "[::1]",
                                  "127.0.0.1", "127.1"])
async def test_refused_hosts_name_the_flag(host: str) -> None:
    with pytest.raises(TargetRefused, match="TRIGGERD_ALLOW_PRIVATE_TARGETS=true"):
        await check_host(host, 443)


async def test_unresolvable_host_is_left_to_the_delivery_check() -> None:
    await check_host("no-such-host.invalid", 443)


async def test_public_literal_passes_without_dns() -> None:
    await check_host("93.184.216.34", 443)
