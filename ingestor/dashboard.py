"""The operators' dashboard: one server-rendered HTML page, refreshed every 5 s.

`render()` takes plain data (the tree's status, the metric samples of a scrape, the
queue state and rows from PostgreSQL) and returns the page; it does no I/O. Every
value is escaped: endpoint URLs and errors come from clients and receivers.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ingestor.metrics import DELIVERY_STATES, REJECTED, QueueState

REFRESH_S = 5
# The outcome kinds the delivery side counts (workers/metrics.py, not importable here).
OUTCOMES = ("delivered", "http_error", "timeout", "connect_error", "blocked", "error",
            "deferred")

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.5em}
table{border-collapse:collapse;margin:.3em 0}
td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}.num{text-align:right}
.ok{color:#176a1a}.bad{color:#b00020;font-weight:bold}.muted{color:#777}
"""


@dataclass(frozen=True, slots=True)
class Page:
    """Everything the page shows; `queue`, `dead_letters` and `endpoints` are None when
    PostgreSQL did not answer."""

    node_name: str
    now: datetime
    tree: list[dict[str, Any]]
    values: Mapping[str, float]
    queue: QueueState | None
    dead_letters: list[Mapping[str, Any]] | None
    endpoints: list[Mapping[str, Any]] | None


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.3f}"


def _time(value: datetime | None) -> str:
    return "-" if value is None else _e(value.isoformat(sep=" ", timespec="seconds"))


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str = "none") -> str:
    """A table of already-escaped cells."""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows)
    if not body:
        return f'<p class="muted">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f"<table><tr>{head}</tr>{body}</table>"


def _pairs(pairs: Iterable[tuple[str, float | None]]) -> str:
    return _table(("", "value"), ((_e(k), f'<span class="num">{_num(v)}</span>')
                                  for k, v in pairs))


def _state(text: str, ok: bool) -> str:
    return f'<span class="{"ok" if ok else "bad"}">{_e(text)}</span>'


def _tree(tree: list[dict[str, Any]]) -> str:
    rows: list[list[str]] = []
    for sup in tree:
        indent = "&nbsp;" * 4 * sup["depth"]
        rows.append([f"{indent}<b>{_e(sup['name'])}</b>", _e(sup["strategy"]),
                     _state("degraded" if sup["degraded"] else "running", not sup["degraded"]),
                     _e(sup["restarts"])])
        for child in sup["children"]:
            if child["supervisor"] and child["state"] == "running":
                continue  # listed as a supervisor of its own
            rows.append([f"{indent}&nbsp;&nbsp;&nbsp;&nbsp;{_e(child['name'])}",
                         _e(child["id"]), _state(child["state"], child["state"] == "running"),
                         ""])
    return _table(("part", "strategy / id", "state", "restarts"), rows, "tree not running")


def _counters(values: Mapping[str, float]) -> str:
    def get(name: str, **labels: str) -> float | None:
        key = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        return values.get(f"{name}{{{key}}}" if key else name)

    flushes = get("triggerd_writer_batch_events_count")
    batched = get("triggerd_writer_batch_events_sum")
    mean = batched / flushes if flushes and batched is not None else None
    ingest = [("events committed", get("triggerd_events_committed_total")),
              ("duplicates", get("triggerd_events_duplicate_total"))]
    ingest += [(f"rejected: {r}", get("triggerd_ingest_rejected_total", reason=r))
               for r in REJECTED]
    ingest += [("writer queue", get("triggerd_writer_queue_depth")),
               ("writer queue capacity", get("triggerd_writer_queue_capacity")),
               ("flushes", flushes), ("mean events per flush", mean)]
    delivery = [("events routed", get("triggerd_events_routed_total")),
                ("deliveries created", get("triggerd_deliveries_created_total")),
                ("deliveries claimed", get("triggerd_deliveries_claimed_total"))]
    delivery += [(f"attempts: {o}", get("triggerd_delivery_attempts_total", outcome=o))
                 for o in OUTCOMES]
    delivery += [("dead letters", get("triggerd_dead_letters_total")),
                 ("breakers opened", get("triggerd_breaker_opened_total")),
                 ("pool busy", get("triggerd_pool_busy")),
                 ("pool size", get("triggerd_pool_size")),
                 ("pool free slots", get("triggerd_pool_free_slots"))]
    return ("<h2>Ingest (this process, since it started)</h2>" + _pairs(ingest)
            + "<h2>Delivery (this process, since it started)</h2>" + _pairs(delivery))


def _queue(queue: QueueState | None) -> str:
    if queue is None:
        return '<p class="bad">PostgreSQL did not answer: queue state unknown</p>'
    pairs: list[tuple[str, float | None]] = [
        (f"deliveries {s}", queue.deliveries.get(s, 0)) for s in DELIVERY_STATES]
    pairs += [("deliveries due now", queue.due), ("events not yet routed", queue.unrouted),
              ("oldest pending delivery (s)", round(queue.oldest_pending_age_s, 1))]
    return _pairs(pairs)


def _dead_letters(rows: list[Mapping[str, Any]] | None) -> str:
    if rows is None:
        return '<p class="muted">unavailable</p>'
    return _table(("delivery", "organization", "endpoint url", "error", "dead since"),
                  ([_e(r["id"]), _e(r["org_name"]), _e(r["url"]), _e(r["last_error"]),
                    _time(r["updated_at"])] for r in rows), "no dead letters")


def _endpoints(rows: list[Mapping[str, Any]] | None) -> str:
    if rows is None:
        return '<p class="muted">unavailable</p>'

    def state(r: Mapping[str, Any]) -> str:
        if not r["enabled"]:
            return _state(f"disabled: {r['disabled_reason'] or ''}", False)
        until = r["breaker_open_until"].isoformat(sep=" ", timespec="seconds")
        return _state(f"breaker {r['breaker']} until {until}", False)

    return _table(("endpoint", "organization", "url", "state", "consecutive failures"),
                  ([_e(r["id"]), _e(r["org_name"]), _e(r["url"]), state(r),
                    _e(r["consecutive_failures"])] for r in rows),
                  "every endpoint is enabled with its breaker closed")


def render(page: Page) -> str:
    degraded = bool(page.tree) and bool(page.tree[0]["degraded"])
    status = " ".join([_state("tree degraded" if degraded else "tree running", not degraded),
                       "&middot;",
                       _state("PostgreSQL up" if page.queue is not None
                              else "PostgreSQL unreachable",
                              page.queue is not None)])
    return "".join([
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f'<meta http-equiv="refresh" content="{REFRESH_S}">',
        f"<title>triggerd {_e(page.node_name)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>triggerd &middot; node {_e(page.node_name)}</h1>",
        f'<p>{status} <span class="muted">&middot; {_time(page.now)}'
        f" &middot; refreshed every {REFRESH_S} s</span></p>",
        "<h2>Supervision tree</h2>", _tree(page.tree),
        _counters(page.values),
        "<h2>Queues (all organizations)</h2>", _queue(page.queue),
        "<h2>Recent dead letters (all organizations, newest first)</h2>",
        _dead_letters(page.dead_letters),
        "<h2>Endpoints disabled or with an open breaker</h2>", _endpoints(page.endpoints),
        "</body></html>",
    ])
