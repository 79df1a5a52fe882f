"""Who already listens on a node's port, for `--reuse-port` (TRIGGERD_REUSE_PORT).

The kernel lets every process of the same user that sets SO_REUSEPORT share a port, and
spreads new connections among them: it cannot tell a triggerd node from another program,
nor a node of this database from one of another deployment. So before a node joins a
shared port, `check` finds the processes holding listening sockets on it (Linux /proc:
the socket tables, then each process's descriptors; a process of another user cannot
share the port anyway, so not seeing its descriptors loses nothing) and requires each
to be a node of this database on this host (its row in `nodes`). A listener may open a
moment before its node's first heartbeat lands, so a stranger is looked for again for
up to WAIT_S before it is refused, in one line.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import time
from pathlib import Path

import asyncpg

from supervisor.node.failures import StartupError

WAIT_S = 3.0
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's state column

# The pids of this host's nodes that serve on a port. $1 the host name, $2 ':<port>'.
HOST_NODES = "SELECT pid FROM nodes WHERE host = $1 AND right(name, length($2)) = $2"


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address of /proc/net/tcp{,6}: 32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(words)


def _overlaps(a: ipaddress.IPv4Address | ipaddress.IPv6Address,
              b: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        a = a.ipv4_mapped
    if isinstance(b, ipaddress.IPv6Address) and b.ipv4_mapped is not None:
        b = b.ipv4_mapped
    return a == b or a.is_unspecified or b.is_unspecified


def listening_inodes(host_addresses: list[str], port: int) -> set[str]:
    """The inodes of the listening TCP sockets on `port` whose address overlaps one of
    `host_addresses` (the same address, or either side the wildcard)."""
    ours = [ipaddress.ip_address(a.split("%")[0]) for a in host_addresses]
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            address, _, hex_port = local.partition(":")
            if state == LISTEN and int(hex_port, 16) == port and any(
                    _overlaps(_address(address), mine) for mine in ours):
                found.add(inode)
    return found


def holders(inodes: set[str]) -> dict[int, str]:
    """pid -> command name of the processes (visible to this user) holding `inodes`."""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    found: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if any(os.readlink(fd) in wanted for fd in (proc / "fd").iterdir()):
                found[int(proc.name)] = (proc / "comm").read_text().strip()
        except OSError:
            continue  # gone meanwhile, or another user's
    return found


async def check(dsn: str, host: str, port: int) -> None:
    """Refuses (StartupError) a port shared with anything but this database's nodes."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    addresses = [str(info[4][0]) for info in infos]
    deadline = time.monotonic() + WAIT_S
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        while True:
            listeners = await asyncio.to_thread(
                lambda: holders(listening_inodes(addresses, port)))
            nodes = {r["pid"] for r in await conn.fetch(HOST_NODES, socket.gethostname(),
                                                         f":{port}")}
            strangers = {pid: name for pid, name in listeners.items() if pid not in nodes}
            if not strangers or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    if strangers:
        pid, name = sorted(strangers.items())[0]
        raise StartupError(
            f"PORT: {host}:{port} is shared (SO_REUSEPORT) with pid {pid} ({name}), which "
            "is not a triggerd node of this database; stop it, or set PORT (or --port) to "
            "another port")
