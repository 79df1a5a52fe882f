"""The package boundaries of DESIGN section 1, checked on the import statements."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imports(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(("package", "forbidden"), [
    ("ingestor", ("workers",)),
    ("workers", ("ingestor", "supervisor.node")),
])
def test_packages_do_not_import_each_other(package: str, forbidden: tuple[str, ...]) -> None:
    for module, names in imports(package).items():
        bad = {n for n in names if n.split(".")[0] in forbidden or n in forbidden
               or any(n.startswith(f + ".") for f in forbidden)}
        assert not bad, f"{module} imports {bad}"


def test_runtime_knows_nothing_of_webhooks() -> None:
    for module, names in imports("supervisor").items():
        if "/node/" in module:
            continue
        bad = {n for n in names if n.split(".")[0] in ("ingestor", "workers", "asyncpg",
                                                        "aiohttp")
               or n.startswith("supervisor.node")}
        assert not bad, f"{module} imports {bad}"
