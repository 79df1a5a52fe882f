"""The systemd units of an installed triggerd, printed by `triggerd systemd-unit`.

Three kinds: `node` (triggerd.service, one node), `template` (triggerd@.service, several
processes on one host: `triggerd@ingest1`, `triggerd@worker`, each with its own
/etc/triggerd/<instance>.env, all on one port with --reuse-port) and `postgres`
(triggerd-postgres.service: the embedded PostgreSQL of the data dir as a service of its
own, so that no node's cgroup holds it). scripts/*.service are this module's output for
/usr/local/bin/triggerd; a test keeps them equal.

Every unit gets the same sandbox (SANDBOX): a user of its own (DynamicUser=, one
name so that every unit shares one UID and the state directory), a read-only system,
no capabilities, the @system-service syscalls without @privileged and @resources.
Nodes keep AF_INET/AF_INET6 to any address (webhooks go to the internet); the
PostgreSQL unit has no network at all. NotifyAccess=all: the single-file binary is two
processes (its bootloader, systemd's main PID, and the node), and the node notifies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["node", "template", "postgres"]
DEFAULT_BINARY = "/usr/local/bin/triggerd"
DEFAULT_USER = "triggerd"
FILES: dict[Kind, str] = {"node": "triggerd.service", "template": "triggerd@.service",
                          "postgres": "triggerd-postgres.service"}
POSTGRES_UNIT = FILES["postgres"]

SANDBOX = """\
# The sandbox: a user of its own, shared by every triggerd unit (one UID, one state
# directory); nothing written outside it (and a private /tmp, where the single-file
# binary unpacks itself); no capabilities, devices, kernel knobs or namespaces.
DynamicUser=yes
User={user}
Group={user}
StateDirectory=triggerd
StateDirectoryMode=0700
UMask=0077
RemoveIPC=yes
CapabilityBoundingSet=
AmbientCapabilities=
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
DevicePolicy=closed
PrivateMounts=yes
PrivateUsers=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
# PostgreSQL's shared memory (SysV shm, /dev/shm) is in @system-service (@ipc).
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
"""

NODE_NETWORK = """\
# HTTP in, webhooks out to any address (TRIGGERD_ALLOW_PRIVATE_TARGETS governs which).
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
"""

POSTGRES_NETWORK = """\
# The embedded PostgreSQL listens on its unix socket only: no network at all.
PrivateNetwork=yes
IPAddressDeny=any
RestrictAddressFamilies=AF_UNIX
"""

COMMON = """\
EnvironmentFile=-/etc/triggerd/triggerd.env
Environment=TRIGGERD_DATA_DIR=%S/triggerd
ExecReload=/bin/kill -HUP $MAINPID
WatchdogSec=30
Restart=on-failure
RestartSec=2
# Exit 2 is a configuration mistake: restarting cannot help until the settings change.
RestartPreventExitStatus=2
# SIGTERM to the main process only: the single-file binary hands it to the node,
# which stops its own children (an embedded PostgreSQL) on the way out.
KillMode=mixed
"""


@dataclass(frozen=True, slots=True)
class UnitSpec:
    kind: Kind = "node"
    binary: str = DEFAULT_BINARY
    roles: str | None = None
    user: str = DEFAULT_USER
    postgres: bool = False  # run on triggerd-postgres.service (the embedded database)


def render(spec: UnitSpec) -> str:
    """The unit file for `spec`, ready for /etc/systemd/system/."""
    if spec.kind == "postgres":
        return _postgres(spec)
    template = spec.kind == "template"
    args = ["serve"]
    if spec.roles:
        args += ["--roles", spec.roles]
    if template:
        args.append("--reuse-port")
    after = ["network-online.target", "postgresql.service"]
    requires = []
    if spec.postgres:
        after.append(POSTGRES_UNIT)
        requires.append(POSTGRES_UNIT)
    lines = [_header(spec), "[Unit]",
             f"Description=triggerd webhook ingestion and delivery{' (%i)' if template else ''}",
             f"After={' '.join(after)}", "Wants=network-online.target"]
    if requires:
        lines += ["# Stopping or restarting the database stops or restarts this node first.",
                  f"Requires={' '.join(requires)}"]
    lines += ["", "[Service]", "Type=notify",
              "# The node notifies: with the single-file binary it is the main PID's child.",
              "NotifyAccess=all", f"ExecStart={_command(spec.binary, args)}", COMMON.rstrip()]
    if template:
        lines += ["# Per instance, e.g. TRIGGERD_ROLES=ingest in /etc/triggerd/ingest1.env.",
                  "EnvironmentFile=-/etc/triggerd/%i.env"]
    lines += ["# The drain: up to 3 x TRIGGERD_SHUTDOWN_TIMEOUT + 45 s (see README).",
              "TimeoutStopSec=90", "LimitNOFILE=65536", "",
              SANDBOX.format(user=spec.user).rstrip(), NODE_NETWORK.rstrip(), "",
              "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


def _postgres(spec: UnitSpec) -> str:
    lines = [_header(spec), "[Unit]",
             "Description=triggerd's embedded PostgreSQL (shared by the triggerd@ nodes)",
             "", "[Service]", "Type=notify", "NotifyAccess=all",
             f"ExecStart={_command(spec.binary, ['postgres'])}", COMMON.rstrip(),
             "TimeoutStartSec=180", "TimeoutStopSec=90", "",
             SANDBOX.format(user=spec.user).rstrip(), POSTGRES_NETWORK.rstrip(), "",
             "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


def _header(spec: UnitSpec) -> str:
    flags = {"node": "", "template": " --template", "postgres": " --postgres-service"}
    command = f"triggerd systemd-unit{flags[spec.kind]}{' --postgres' if spec.postgres else ''}"
    name = FILES[spec.kind]
    start = {"node": "triggerd", "template": "triggerd@ingest1 triggerd@worker",
             "postgres": "triggerd-postgres"}[spec.kind]
    return (f"# {name}, printed by `{command}`. Install:\n"
            f"#   {command} > /etc/systemd/system/{name}\n"
            f"#   systemctl daemon-reload && systemctl enable --now {start}\n"
            "# Settings: /etc/triggerd/triggerd.env (mode 0600; DATABASE_URL, PORT, "
            "TRIGGERD_*; see README).")


def _command(binary: str, args: list[str]) -> str:
    """ExecStart's command line: the binary quoted if need be, % and $ kept literal."""
    path = binary.replace("%", "%%").replace("$", "$$")
    if any(c.isspace() or c in "\"'\\;" for c in path):
        path = '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return " ".join([path, *args])
