"""How each figure of RESULTS.md is measured: the text printed below its table."""

METHOD = """How each figure is measured (benchmarks/, `python -m benchmarks`):

- Ingest: closed loop at 64 and 128 connections against the node (`POST /api/events`, a
  unique dedup_id per request, keys spread over several enterprise organizations), a bare
  aiohttp + uvloop handler that parses the same body and answers 202 (the ceiling), and a
  naive aiohttp + uvloop server doing one INSERT per request through an asyncpg pool (the
  "before"); each after a warm-up, one after the other on the same PostgreSQL.
  CPU per event: utime + stime from /proc, read just before and after each load run (the
  warm-up excluded), of the server process and any children, and of the benchmark's
  PostgreSQL (the postmaster, every live child, and the children it reaped meanwhile),
  divided by the run's 2xx answers. The load generator's own CPU is not counted; other
  work on the machine changes throughput far more than it changes these figures.
- Source ingest: one Stripe source per organization on the ingest node; first plain
  `POST /api/events` at 128 connections, then `POST /in/{token}` at 128 connections, each
  after a warm-up. Every source request is signed beforehand (wrk's Lua has no HMAC):
  `Stripe-Signature: t=..,v1=..` over "{t}.{body}", one timestamp taken just before the
  run, a provider id unique to the run and the request; the node verifies each one. The
  events stored with the run's ids are counted afterwards, so a duplicate answer shows.
- Sequential: `benchmark_async.py`'s method: 5 warm-ups, then one request at a time.
- Routing: events inserted straight into `events` (unrouted), one endpoint; a
  `TRIGGERD_ROLES=process`, `DISABLE_WEBHOOK_DELIVERY=true` node is started and
  `deliveries` is polled every 100 ms; the rate runs from the first poll that saw
  progress to the last change (so neither the node's start nor the polling counts).
- Routing with payload filters: the same, but ten endpoints made through
  `POST /api/endpoints` (on an ingest-only node, stopped before the events are inserted),
  each with its own filter ($eq on the type, numeric ranges, $in, $nin, $startsWith,
  $endsWith, nested $or/$not, $exist and $neq on fields that only some payloads have),
  and varied payloads from a seeded generator (amounts sometimes a string or null,
  optional fields). Each filter has a Python twin written from the documented semantics;
  the deliveries created are compared with the twins' matches event by event and
  endpoint by endpoint, and any difference is an error. The rate is events routed.
- Delivery: pending deliveries inserted straight into `deliveries`, to one endpoint of the
  receiver, then spread over four; a `process,deliver` node with `POOL_SIZE=50`; timed
  the same way until none is left pending, failed or in flight.
- End to end: a node with every role; POSTs on an open-loop schedule; the receiver's
  arrival time of each webhook minus the time its POST was sent (same clock).
- Isolation: one node with the default delivery settings (only private targets allowed),
  two organizations, each with one endpoint on a receiver of its own: G answers at once,
  H holds every request open until the node gives up (the 15 s request timeout). First G
  alone, then G beside H, each phase POSTing on an open-loop schedule; a latency is G's
  webhook arrival minus the time its 202 came back. "Held at most" is the most requests
  H's receiver held open at once.
- Priority: one node with every role and a small pool (POOL_SIZE and
  TRIGGERD_ENDPOINT_CONCURRENCY 20), delivering to the receiver's /delay/ path (it answers
  after 15 ms, so the pool is the bottleneck); one organization, two endpoints made
  through the API: L with a backlog of pending deliveries inserted at its stored
  priority, H receiving `POST /api/events` on an open-loop schedule (unique dedup_ids,
  every status counted) once L's backlog is being delivered. A latency is H's webhook
  arrival minus the time its POST was sent; L's drain rate counts its deliveries that
  finished within the open loop. Two phases on fresh nodes: L at 1 and H at 10, then
  both at 5 (the baseline: H waits behind the backlog).
- Processes: ingest-only nodes on a freshly migrated database per case, `POST /api/events`
  at 128 connections (after a warm-up) through one port: first one `serve` process, then
  two `serve --reuse-port` processes, one after the other. CPU per event: utime + stime
  from /proc of the node processes (summed) and of PostgreSQL, divided by the run's 2xx
  answers; "machine busy" is /proc/stat's busy time of every core over the run, whatever
  ran (2 cores: the load generator, the nodes and PostgreSQL share them, and so does any
  other work on the machine). The kernel spread is the smaller process's share of the
  nodes' CPU over the larger's (1 = even). Events per write transaction: the run's 2xx
  answers over the transaction ids PostgreSQL handed out meanwhile (each group-commit
  flush is one). The events stored are counted afterwards.
- Memory: VmRSS of the ingest node sampled through a sustained closed-loop run, then
  while the benchmark's PostgreSQL is killed and clients keep posting, then after restart.
"""
