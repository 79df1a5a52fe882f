"""Source ingest: verified Stripe-signed deliveries to `POST /in/{token}` beside plain
`POST /api/events`, measured back to back on the same node at the same connection count.

wrk's Lua has no HMAC, so every request is signed beforehand: one timestamp taken just
before the run (well within the 300 s tolerance), a provider id unique to the run and the
request, written to a file the wrk script reads (the built-in generator takes the same
list). The set is sized from the plain run's rate, twice over; should it still run out,
ids repeat and are answered as duplicates, which the count of stored events shows.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from benchmarks.loadgen import WRK_DONE, Load, LoadGenerator, Request, closed_loop
from benchmarks.measure_ingest import new_keys
from benchmarks.procs import Child
from benchmarks.profiles import Profile

Say = Callable[[str], None]
DATA = '"type":"benchmark.test","data":{"timestamp":1700000000.0,"data":"benchmark payload"}'

# wrk script: each thread reads its share of the signed requests on its first request()
# (inside the measured time, so the source case is not flattered) and cycles through it.
LUA = """
local file, nthreads, started = "%(file)s", %(threads)d, 0
local paths, sigs, bodies, n, i = nil, nil, nil, 0, 0
function setup(thread)
  thread:set("tid", started)
  started = started + 1
end
local function load()
  paths, sigs, bodies = {}, {}, {}
  local k = 0
  for line in io.lines(file) do
    if k %% nthreads == tid then
      local p, s, b = line:match("^([^\\t]*)\\t([^\\t]*)\\t(.*)$")
      n = n + 1
      paths[n], sigs[n], bodies[n] = p, s, b
    end
    k = k + 1
  end
end
function request()
  if paths == nil then load() end
  i = i %% n + 1
  return wrk.format("POST", paths[i], {["Content-Type"] = "application/json",
                                       ["Stripe-Signature"] = sigs[i]}, bodies[i])
end
"""


def stripe_signature(secret: str, at: int, body: bytes) -> str:
    """Stripe's scheme: hex HMAC-SHA256 of "{t}.{body}", keyed by the whole whsec_ string."""
    digest = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def presign(sources: list[tuple[str, str]], run: str, count: int) -> list[Request]:
    """`count` signed deliveries spread over `sources` (ingest path, secret)."""
    at = int(time.time())
    signed: list[Request] = []
    for i in range(count):
        path, secret = sources[i % len(sources)]
        body = f'{{"id":"evt_{run}_{i}",{DATA}}}'.encode()
        signed.append((path, {"Content-Type": "application/json",
                              "Stripe-Signature": stripe_signature(secret, at, body)}, body))
    return signed


async def stripe_sources(url: str, keys: list[str]) -> list[tuple[str, str]]:
    """One Stripe source per organization: (ingest path, secret)."""
    async def create(session: aiohttp.ClientSession, key: str) -> tuple[str, str]:
        secret = "whsec_" + secrets.token_urlsafe(24)
        async with session.post(url + "/api/sources", headers={"X-API-Key": key}, json={
                "name": "bench stripe", "kind": "stripe", "secret": secret}) as resp:
            body = await resp.json(content_type=None)
            if resp.status != 201:
                raise RuntimeError(f"POST /api/sources answered {resp.status}: {body}")
            return str(body["ingest_path"]), secret

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        return list(await asyncio.gather(*(create(session, key) for key in keys)))


async def _send(gen: LoadGenerator, load: Load, signed: list[Request]) -> dict[str, Any]:
    if gen.wrk is None:
        return await closed_loop(load, request=lambda n: signed[(n - 1) % len(signed)])
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as handle:
        for path, headers, body in signed:
            handle.write(f"{path}\t{headers['Stripe-Signature']}\t{body.decode()}\n")
    try:
        script = LUA % {"file": handle.name, "threads": gen.threads_for(load)} + WRK_DONE
        return await gen.wrk_script(gen.wrk, script, load)
    finally:
        Path(handle.name).unlink(missing_ok=True)


async def _stored(dsn: str, run: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM events WHERE starts_with(provider_id, $1)", f"evt_{run}_"))
    finally:
        await conn.close()


async def _plain(gen: LoadGenerator, profile: Profile, node: Child) -> dict[str, Any]:
    keys = tuple(await new_keys(node.url, profile.keys))
    load = Load(node.url, keys, profile.source_connections, profile.ingest_s)
    if profile.warmup_s:
        await gen.run(Load(node.url, keys, load.connections, profile.warmup_s))
    return await gen.run(load)


async def _source(gen: LoadGenerator, profile: Profile, node: Child, dsn: str,
                  expect_rps: float) -> tuple[dict[str, Any], int, int]:
    """The signed run: its figures, how many requests were signed, how many stored."""
    sources = await stripe_sources(node.url, await new_keys(node.url, profile.keys))
    load = Load(node.url, (), profile.source_connections, profile.ingest_s)
    if profile.warmup_s:
        count = int(2 * expect_rps * profile.warmup_s) + 1000
        await _send(gen, Load(node.url, (), load.connections, profile.warmup_s),
                    presign(sources, secrets.token_hex(6), count))
    run = secrets.token_hex(6)
    signed = presign(sources, run, int(2 * expect_rps * profile.ingest_s) + 1000)
    result = await _send(gen, load, signed)
    await asyncio.sleep(0.5)  # requests cut off at the end may still commit
    return result, len(signed), await _stored(dsn, run)


def _figures(name: str, run: dict[str, Any]) -> dict[str, Any]:
    return {f"{name}_rps": run["rps"], f"{name}_p50_ms": run["p50_ms"],
            f"{name}_p99_ms": run["p99_ms"], f"{name}_non_2xx": run["non_2xx"],
            f"{name}_errors": run["errors"]}


async def sources(gen: LoadGenerator, profile: Profile, node: Child, dsn: str,
                  say: Say) -> dict[str, Any]:
    """Plain ingest, then Stripe-signed source deliveries, each after its warm-up."""
    plain = await _plain(gen, profile, node)
    say(f"sources c{profile.source_connections} plain /api/events: {plain['rps']:.0f} req/s, "
        f"p99 {plain['p99_ms']:.2f} ms, non-2xx {plain['non_2xx']}")
    run, signed, stored = await _source(gen, profile, node, dsn, max(plain["rps"], 1000.0))
    duplicates = max(0, run["ok"] - stored)
    section: dict[str, Any] = {
        "connections": profile.source_connections, "kind": "stripe",
        "seconds_per_run": profile.ingest_s, "path": "/in/{token}",
        "rps": run["rps"], "p50_ms": run["p50_ms"], "p99_ms": run["p99_ms"],
        "non_2xx": run["non_2xx"], "errors": run["errors"], "ok": run["ok"],
        "signed": signed, "stored": stored, "duplicates": duplicates,
        **_figures("plain", plain),
        "vs_plain": run["rps"] / plain["rps"] if plain["rps"] else None}
    if duplicates:
        section["note"] = (f"{duplicates} answers were duplicates (the {signed} signed "
                           "requests ran out); the rate counts them")
    say(f"sources c{profile.source_connections} stripe: {run['rps']:.0f} req/s, p50 "
        f"{run['p50_ms']:.2f} ms, p99 {run['p99_ms']:.2f} ms, non-2xx {run['non_2xx']}, "
        f"stored {stored} of {run['ok']} answered; {section['vs_plain'] or 0:.2f}x plain")
    return section
