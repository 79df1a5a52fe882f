"""Preflight checks on real sockets and directories, and the wording of start failures."""

from __future__ import annotations

import socket
from pathlib import Path

import asyncpg
import pytest

from supervisor.node import failures, preflight
from supervisor.node.failures import CONFIG, OTHER, StartupError
from supervisor.node.postgres import EmbeddedPostgresError


async def test_a_port_in_use_is_found_before_anything_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError) as caught:
            await preflight.check_listen("127.0.0.1", port)
    assert caught.value.code == OTHER
    assert str(caught.value).startswith(f"PORT: 127.0.0.1:{port} is already in use")
    await preflight.check_listen("127.0.0.1", port)  # free again: nothing held


@pytest.mark.parametrize("host", ["300.1.1.1", "no such host", "192.0.2.1"])
async def test_a_bad_host_is_a_configuration_error(host: str) -> None:
    with pytest.raises(StartupError) as caught:
        await preflight.check_listen(host, 4000)
    assert caught.value.code == CONFIG
    assert str(caught.value).startswith("TRIGGERD_HOST: ")


def test_data_dir_under_a_file_or_unwritable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    for bad in (tmp_path / "file", tmp_path / "file" / "data", Path("/sys/kernel/triggerd")):
        with pytest.raises(StartupError) as caught:
            preflight.check_data_dir(bad)
        assert caught.value.code == CONFIG
        assert str(caught.value).startswith(f"TRIGGERD_DATA_DIR: cannot use {bad} ")
    preflight.check_data_dir(tmp_path / "new" / "data")
    assert (tmp_path / "new" / "data").is_dir()


def test_database_failures_never_show_the_password() -> None:
    dsn = "postgresql://app:s3cret@db.example:6432/queue"
    assert failures.where(dsn) == "db.example:6432/queue"
    refused = failures.unreachable(ConnectionRefusedError(111, "Connection refused"), dsn, 30)
    assert "s3cret" not in str(refused) and refused.code == OTHER
    login = failures.database_error(asyncpg.InvalidPasswordError("password authentication "
                                                                 "failed for user \"app\""), dsn)
    assert login is not None and login.code == CONFIG and "s3cret" not in str(login)
    assert failures.database_error(ConnectionRefusedError(), dsn) is None  # keep waiting
    malformed = failures.database_error(ValueError("invalid port"), dsn)
    assert malformed is not None and malformed.code == CONFIG


def test_explain_names_the_child_and_keeps_one_line() -> None:
    exc = OSError(98, "Address already in use")
    exc.add_note("while Ingest was starting child 'http'")
    exc.add_note("while Node was starting child 'ingest'")
    assert str(failures.explain(exc, "127.0.0.1", 4000)).startswith(
        "PORT: 127.0.0.1:4000 is already in use")
    bug = KeyError("x\nwith a second line")
    bug.add_note("while Node was starting child 'maintenance'")
    line = str(failures.explain(bug, "127.0.0.1", 4000))
    assert line.startswith("maintenance failed to start: KeyError:") and "\n" not in line
    embedded = failures.explain(EmbeddedPostgresError("did not start; see /x/server.log\n"
                                                      "--- last lines ---\nFATAL"), "h", 1)
    assert str(embedded) == "embedded PostgreSQL: did not start; see /x/server.log"
