"""The benchmark suite's smoke mode, so the harness cannot rot: it must complete and write
results.json with every promised key (and RESULTS.md). No figure is checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.report import GOALS, lookup

REPO = Path(__file__).resolve().parents[1]
# The keys issue 4 promises (nested objects: "ingest.c128.triggerd_rps" is
# results["ingest"]["c128"]["triggerd_rps"]).
PROMISED = [f"ingest.{c}.{k}" for c in ("c64", "c128")
            for k in ("triggerd_rps", "bare_rps", "naive_rps", "p99_ms")] + [
    "sources.rps", "sources.plain_rps", "sources.vs_plain", "sources.stored",  # issue 9
    "sequential.avg_ms", "sequential.p95_ms", "sequential.p99_ms", "batch.events_per_s",
    "routing.events_per_s", "delivery.deliveries_per_s", "e2e.p50_ms", "e2e.p99_ms",
    "memory.rss_mb_load", "memory.rss_mb_db_down",
    # routing rules: filtered routing checked against the expected deliveries; priority
    "routing_filters.events_per_s", "routing_filters.expected_deliveries",
    "routing_filters.deliveries", "routing_filters.wrong_deliveries",
    "routing_filters.vs_plain", "priority.p50_ms",
    "priority.p99_ms", "priority.low_drain_per_s", "priority.non_2xx",
    "priority.baseline.p99_ms", "priority.baseline.low_drain_per_s"]
MACHINE = ["cpu_model", "cores", "memory_mb", "kernel", "python", "postgres"]


def _has(results: dict[str, object], dotted: str) -> bool:
    *parents, last = dotted.split(".")
    node = results
    for part in parents:
        node = node.get(part)  # type: ignore[assignment]
        if not isinstance(node, dict):
            return False
    return last in node


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_smoke_run_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--no-install", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stderr[-3000:]

    results = json.loads(out.read_text())
    missing = [key for key in PROMISED if not _has(results, key)]
    assert not missing, missing
    assert all(_has(results, key) for key, _, _ in GOALS)
    assert results["date"] and results["load_generator"]
    assert all(results["machine"].get(key) for key in MACHINE), results["machine"]
    assert lookup(results, "ingest.c128.triggerd_rps") is not None, done.stderr[-3000:]
    assert (tmp_path / "RESULTS.md").read_text().startswith("# Benchmark results")
