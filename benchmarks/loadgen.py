"""Load generators: wrk when it can be had, else a built-in asyncio closed loop; and the
asyncio open loop used for end-to-end latency.

Every closed-loop run returns the same figures: requests, ok (2xx), non_2xx, errors
(no answer), rps (2xx per second), p50_ms, p99_ms, max_ms. Requests are spread
round-robin over several API keys (organizations), because rate limits are counted per
organization: enterprise allows 100000 a minute on each node.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.benchmark_async import percentile

EVENT = '{"type":"benchmark.test","payload":{"timestamp":1700000000.0,"data":"benchmark payload"}'

# The done() of every wrk script: the figures as one JSON line (parse_wrk reads it).
# Appended after %-formatting, so its own % signs stay single.
WRK_DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKRESULT {"requests":%d,"duration_us":%d,"connect":%d,'
    .. '"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,'
    .. '"max_us":%d}\\n', summary.requests, summary.duration, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
"""

# wrk script: a request() that rotates keys and makes every dedup_id unique.
LUA = """
local keys = {%(keys)s}
local path, mode, run = "%(path)s", "%(mode)s", "%(run)s"
local batch_body = '%(batch_body)s'
local counter, n = 0, #keys
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function request()
  counter = counter + 1
  local body = batch_body
  if mode == "single" then
    body = '%(event)s,"dedup_id":"' .. run .. '-' .. tid .. '-' .. counter .. '"}'
  end
  return wrk.format("POST", path, {["Content-Type"] = "application/json",
                                   ["X-API-Key"] = keys[(counter + tid) %% n + 1]}, body)
end
"""


def batch_body(size: int) -> str:
    events = ",".join([EVENT + "}"] * size)
    return '{"events":[' + events + "]}"


def find_wrk(install: bool = True) -> str | None:
    """The path to wrk; installs Debian's package (as root, with apt-get) when missing."""
    found = shutil.which("wrk")
    if found or not install or not shutil.which("apt-get"):
        return found
    try:
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True,
                       timeout=180, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return shutil.which("wrk")


def wrk_version(path: str) -> str:
    done = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10)
    match = re.search(r"wrk (\S+)", done.stdout + done.stderr)
    return f"wrk {match.group(1)}" if match else "wrk"


@dataclass(frozen=True, slots=True)
class Load:
    """One closed-loop run's shape."""
    url: str            # the server, e.g. http://127.0.0.1:4000
    keys: tuple[str, ...]
    connections: int
    duration: float
    path: str = "/api/events"
    batch: int = 0      # events per request; 0 = single events


class LoadGenerator:
    def __init__(self, wrk: str | None, threads: int = 2) -> None:
        self.wrk = wrk
        self.threads = threads
        self.name = wrk_version(wrk) if wrk else "asyncio (built-in closed loop)"

    def threads_for(self, load: Load) -> int:
        return min(self.threads, load.connections)

    async def run(self, load: Load) -> dict[str, Any]:
        if self.wrk is not None:
            return await self._wrk(self.wrk, load)
        return await closed_loop(load)

    async def _wrk(self, wrk: str, load: Load) -> dict[str, Any]:
        script = LUA % {
            "keys": ",".join(f'"{k}"' for k in load.keys), "path": load.path,
            "mode": "batch" if load.batch else "single", "run": secrets.token_hex(6),
            "batch_body": batch_body(load.batch) if load.batch else "",
            "event": EVENT} + WRK_DONE
        return await self.wrk_script(wrk, script, load)

    async def wrk_script(self, wrk: str, script: str, load: Load) -> dict[str, Any]:
        """One wrk run of `script` (which must end with WRK_DONE)."""
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
            handle.write(script)
        try:
            proc = await asyncio.create_subprocess_exec(
                wrk, "-t", str(self.threads_for(load)),
                "-c", str(load.connections), "-d", f"{max(1, round(load.duration))}s",
                "--timeout", "10s", "-s", handle.name, load.url,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            out, _ = await proc.communicate()
        finally:
            Path(handle.name).unlink(missing_ok=True)
        text = out.decode(errors="replace")
        match = re.search(r"WRKRESULT (\{.*\})", text)
        if proc.returncode != 0 or match is None:
            raise RuntimeError(f"wrk failed (exit {proc.returncode}): {text[-500:]}")
        raw = json.loads(match.group(1))
        errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
        ok = raw["requests"] - raw["status"]
        seconds = raw["duration_us"] / 1e6
        return {"requests": raw["requests"], "ok": max(ok, 0), "non_2xx": raw["status"],
                "errors": errors, "seconds": seconds, "rps": max(ok, 0) / seconds,
                "p50_ms": raw["p50_us"] / 1000, "p99_ms": raw["p99_us"] / 1000,
                "max_ms": raw["max_us"] / 1000}


def _body(load: Load, run: str, i: int) -> bytes:
    if load.batch:
        return batch_body(load.batch).encode()
    return f'{EVENT},"dedup_id":"{run}-{i}"}}'.encode()


Request = tuple[str, dict[str, str], bytes]  # path, headers, body


async def closed_loop(load: Load, statuses: Counter[str] | None = None,
                      request: Callable[[int], Request] | None = None) -> dict[str, Any]:
    """`connections` workers, each posting again as soon as it has its answer; the n-th
    request is `request(n)` when given, else an event of `load` under its keys."""
    statuses = Counter() if statuses is None else statuses
    latencies: list[float] = []
    run, sent = secrets.token_hex(6), 0
    started = time.perf_counter()
    deadline = started + load.duration
    connector = aiohttp.TCPConnector(limit=load.connections)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async def worker() -> None:
            nonlocal sent
            while time.perf_counter() < deadline:
                sent += 1
                if request is None:
                    path, body = load.path, _body(load, run, sent)
                    headers = {"Content-Type": "application/json",
                               "X-API-Key": load.keys[sent % len(load.keys)]}
                else:
                    path, headers, body = request(sent)
                t0 = time.perf_counter()
                try:
                    async with session.post(load.url + path, data=body,
                                            headers=headers) as resp:
                        await resp.read()
                        status = str(resp.status)
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    status = type(exc).__name__
                    await asyncio.sleep(0.01)  # no answer: do not spin on a refused socket
                statuses[status] += 1
                if status.startswith("2"):
                    latencies.append((time.perf_counter() - t0) * 1000)

        await asyncio.gather(*(worker() for _ in range(load.connections)))
    seconds = time.perf_counter() - started
    latencies.sort()
    answered = sum(n for s, n in statuses.items() if s.isdigit())
    return {"requests": sum(statuses.values()), "ok": len(latencies),
            "non_2xx": answered - len(latencies), "errors": sum(statuses.values()) - answered,
            "seconds": seconds, "rps": len(latencies) / seconds,
            "p50_ms": percentile(latencies, 50) if latencies else None,
            "p99_ms": percentile(latencies, 99) if latencies else None,
            "max_ms": latencies[-1] if latencies else None, "statuses": dict(statuses)}


async def open_loop(url: str, keys: list[str], rate: float, duration: float,
                    accepted: bool = False) -> tuple[dict[str, float], Counter[str]]:
    """POST single events at `rate` per second, on schedule whatever the answers take.

    Returns the wall-clock send time of every accepted event (with `accepted`, the time
    its 202 came back: the moment it was committed), by event id, and the count of
    each status."""
    sent_at: dict[str, float] = {}
    statuses: Counter[str] = Counter()
    tasks: set[asyncio.Task[None]] = set()
    run = secrets.token_hex(6)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async def post(i: int) -> None:
            headers = {"Content-Type": "application/json", "X-API-Key": keys[i % len(keys)]}
            body = f'{EVENT},"dedup_id":"{run}-{i}"}}'.encode()
            t0 = time.time()
            try:
                async with session.post(url + "/api/events", data=body, headers=headers) as resp:
                    answer = await resp.json(content_type=None)
                    statuses[str(resp.status)] += 1
                    if resp.status == 202:
                        sent_at[str(answer["id"])] = time.time() if accepted else t0
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
                statuses[type(exc).__name__] += 1

        start = time.perf_counter()
        for i in range(int(rate * duration)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.ensure_future(post(i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
    return sent_at, statuses
