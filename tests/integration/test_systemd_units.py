"""The systemd units: scripts/*.service are what `triggerd systemd-unit` prints for
/usr/local/bin/triggerd; each printed unit passes `systemd-analyze verify` without a
word and `systemd-analyze security --offline=yes` at an exposure of at most 2.0 ("OK").
No systemd needs to run: systemd-analyze reads the files (scripts/test installs it)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.node import systemd_unit
from supervisor.node.systemd_unit import FILES, UnitSpec

ROOT = Path(__file__).resolve().parents[2]
FLAGS = {"node": [], "template": ["--template", "--postgres"], "postgres": ["--postgres-service"]}
EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)")
MAX_EXPOSURE = 2.0


def _analyze() -> str:
    found = shutil.which("systemd-analyze")
    assert found, "systemd-analyze is missing: scripts/test installs Debian's systemd package"
    return found


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TRIGGERD_") and k != "DATABASE_URL"}
    return subprocess.run([sys.executable, "-m", "supervisor.node.cli", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)


def _print(*args: str) -> str:
    done = _cli("systemd-unit", *args)
    assert done.returncode == 0 and not done.stderr, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def units(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The three units, printed for a real executable, in one directory (the template
    Requires= triggerd-postgres.service: verify looks for it beside it)."""
    where = tmp_path_factory.mktemp("units")
    binary = where / "bin" / "triggerd"
    binary.parent.mkdir()
    shutil.copy("/bin/true", binary)
    for kind, name in FILES.items():
        (where / name).write_text(_print(*FLAGS[kind], "--binary", str(binary)))
    yield where


@pytest.mark.parametrize("name", list(FILES.values()))
def test_verify_has_nothing_to_say(units: Path, name: str) -> None:
    done = subprocess.run([_analyze(), "verify", str(units / name)], capture_output=True,
                          text=True, timeout=120)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


@pytest.mark.parametrize("name", list(FILES.values()))
def test_exposure_is_ok(units: Path, name: str) -> None:
    done = subprocess.run([_analyze(), "security", "--offline=yes", str(units / name)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    found = EXPOSURE.search(done.stdout)
    assert found, done.stdout
    assert float(found.group(1)) <= MAX_EXPOSURE, done.stdout
    assert found.group(2) in ("OK", "SAFE")
    # --threshold is in tenths: it fails the command above 2.0.
    strict = subprocess.run([_analyze(), "security", "--offline=yes", "--threshold=20",
                             str(units / name)], capture_output=True, text=True, timeout=120)
    assert strict.returncode == 0, strict.stdout


def test_threshold_fails_a_unit_above_it(units: Path) -> None:
    done = subprocess.run([_analyze(), "security", "--offline=yes", "--threshold=5",
                           str(units / FILES["node"])], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0  # the node's exposure is above 0.5: the check can fail


@pytest.mark.parametrize("kind", list(FILES))
def test_scripts_are_the_generators_output(kind: systemd_unit.Kind) -> None:
    in_scripts = (ROOT / "scripts" / FILES[kind]).read_text()
    spec = UnitSpec(kind, postgres=kind == "template")
    assert systemd_unit.render(spec) == in_scripts, f"regenerate scripts/{FILES[kind]}"
    assert _print(*FLAGS[kind], "--binary", systemd_unit.DEFAULT_BINARY) == in_scripts


def _exec_start(unit: str) -> str:
    return next(line.removeprefix("ExecStart=") for line in unit.splitlines()
                if line.startswith("ExecStart="))


def test_exec_start_follows_the_flags() -> None:
    binary = "/opt/triggerd 1/bin/triggerd"
    assert _exec_start(_print("--binary", binary)) == f'"{binary}" serve'
    assert _exec_start(_print("--roles", "ingest", "--binary", "/b/triggerd")) == (
        "/b/triggerd serve --roles ingest")
    template = _print("--template", "--roles", "process,deliver", "--binary", "/b/triggerd")
    assert _exec_start(template) == "/b/triggerd serve --roles process,deliver --reuse-port"
    assert "EnvironmentFile=-/etc/triggerd/%i.env" in template
    assert "Requires=triggerd-postgres.service" not in template
    on_postgres = _print("--template", "--postgres", "--binary", "/b/triggerd")
    assert "Requires=triggerd-postgres.service" in on_postgres.splitlines()
    assert "triggerd-postgres.service" in next(
        line for line in on_postgres.splitlines() if line.startswith("After="))
    assert _exec_start(_print("--postgres-service", "--binary", "/b/triggerd")) == (
        "/b/triggerd postgres")
    assert "User=svc" in _print("--user", "svc", "--binary", "/b/triggerd").splitlines()


def test_the_default_binary_is_this_triggerd() -> None:
    script = Path(sys.executable).parent / "triggerd"
    if not os.access(script, os.X_OK):
        pytest.skip("no triggerd script beside this Python")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGERD_")}
    done = subprocess.run([str(script), "systemd-unit"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert _exec_start(done.stdout) == f"{script} serve"


@pytest.mark.parametrize(("args", "message"), [
    (["--roles", "ingest,cook"], "--roles: 'ingest,cook': expected a comma-separated subset"),
    (["--binary", "triggerd"], "--binary: 'triggerd': give an absolute path"),
    (["--template", "--postgres-service"], "not allowed with argument"),
    (["--postgres-service", "--roles", "ingest"], "takes neither --roles nor --postgres"),
])
def test_a_wrong_flag_is_one_line_exit_2(args: list[str], message: str) -> None:
    done = _cli("systemd-unit", *args)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and message in done.stderr, done.stderr
