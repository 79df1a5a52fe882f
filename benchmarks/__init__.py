"""The benchmark suite (`python -m benchmarks`) and `benchmark_async.py`.

The suite starts everything it measures itself: a PostgreSQL of its own, triggerd nodes,
the baselines (`bare_server`, `naive_server`) and a minimal webhook receiver, each as a
subprocess, and writes `results.json` and `RESULTS.md` beside this file.
"""
