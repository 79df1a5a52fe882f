"""Operating-system helpers for the embedded PostgreSQL (see `supervisor.node.postgres`).

Which user runs the server when the node is root, whether that user can reach a
directory, private directories, and whether a pid is a live postmaster of a cluster.
Pure functions of the machine's state; they raise `OSError` or
`subprocess.SubprocessError` and leave the wording of errors to the caller.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SERVICE_USER = "triggerd"


@dataclass(frozen=True, slots=True)
class ServerUser:
    """The unprivileged account that runs initdb, pg_ctl and postgres."""

    uid: int
    gid: int
    name: str


def cluster_owner(cluster: Path) -> ServerUser | None:
    """The owner of an existing cluster (it must keep running as that user)."""
    try:
        info = (cluster / "PG_VERSION").stat()
    except OSError:
        return None
    try:
        name = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        name = str(info.st_uid)
    return ServerUser(info.st_uid, info.st_gid, name)


def service_user() -> ServerUser:
    """`triggerd`, else `postgres`, else a newly created `triggerd` system user."""
    for name in (SERVICE_USER, "postgres"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return ServerUser(entry.pw_uid, entry.pw_gid, name)
    log.info("creating system user %s to run the embedded PostgreSQL", SERVICE_USER)
    try:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", SERVICE_USER],
                       capture_output=True, text=True, check=True, timeout=30)
    except subprocess.CalledProcessError:
        # Another node starting at the same moment may have created it first.
        if SERVICE_USER not in {entry.pw_name for entry in pwd.getpwall()}:
            raise
    entry = pwd.getpwnam(SERVICE_USER)
    return ServerUser(entry.pw_uid, entry.pw_gid, SERVICE_USER)


def can_traverse(user: ServerUser, directory: Path) -> bool:
    """True if `user` has search permission on `directory` and all its parents."""
    groups = set(os.getgrouplist(user.name, user.gid))
    for path in (directory, *directory.parents):
        info = path.stat()
        if info.st_uid == user.uid:
            bit = stat.S_IXUSR
        elif info.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return False
    return True


def make_private_dir(path: Path, user: ServerUser | None) -> None:
    """Create `path` (and parents) and make it 0700, owned by `user` when given."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if user is not None:
        os.chown(path, user.uid, user.gid)
    os.chmod(path, 0o700)


def short_socket_dir(cluster: Path, user: ServerUser | None) -> Path:
    """A private socket dir under /tmp for a cluster whose own path is too long.

    Refuses (FileExistsError) a path that exists as a symlink, a file, or a directory
    owned by someone else: /tmp is shared, and the socket's safety rests on this dir.
    """
    digest = hashlib.sha256(str(cluster).encode()).hexdigest()[:12]
    path = Path("/tmp") / f"triggerd-{digest}"
    try:
        path.mkdir(mode=0o700)
        if user is not None:
            os.chown(path, user.uid, user.gid)
    except FileExistsError:
        pass
    info = path.lstat()
    owner = user.uid if user is not None else os.geteuid()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != owner:
        raise FileExistsError(f"{path} exists but is not a directory owned by uid {owner}")
    os.chmod(path, 0o700)
    return path


def postmaster_alive(pid: int, cluster: Path) -> bool:
    """True if `pid` is a live (not zombie) postgres serving `cluster`.

    A pid from a stale postmaster.pid may since belong to another program, or to a
    postgres of another cluster; the postmaster's working directory is its cluster.
    """
    try:
        head, rest = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)
        state, name = rest.split()[0], head.split("(", 1)[1]
    except (OSError, ValueError, IndexError):
        return False
    if state == "Z" or name not in ("postgres", "postmaster"):
        return False
    try:
        return os.readlink(f"/proc/{pid}/cwd") == os.path.realpath(cluster)
    except OSError:
        return True  # cannot look (another user's process): trust the name


def tail(text: str, lines: int = 20) -> str:
    """The last `lines` lines of `text`."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def read_tail(path: Path, since: int = 0, lines: int = 20) -> str:
    """The last `lines` lines of a file, read from byte `since` (at most 16 KiB of it)."""
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            f.seek(max(since, end - 16384))
            return tail(f.read().decode(errors="replace"), lines)
    except OSError:
        return ""
