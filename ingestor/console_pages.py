"""The console's HTML: server-rendered pages over records, with no I/O here.

Every value from the database is escaped (`_e`): endpoint URLs, receivers' answers and
errors, notes and organization names are hostile input. The pages carry no inline
script or style (the Content-Security-Policy admits only the node's own
/dashboard/assets); console.js adds the live charts, sorting, filtering and the
confirmation of every action form (`data-confirm`).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from ingestor.console_sessions import CSRF_FIELD, Session
from ingestor.nodes import NodeStatus
from ingestor.records import Endpoint
from ingestor.records_console import (
    AttemptRow,
    AuditEntry,
    DeadLetterPage,
    DeadLetterRow,
    EndpointRow,
    OrgName,
)

ASSET_VERSION = "1"
HERE = ' class="here"'
WHEN = ' type="datetime-local" step="1"'
PAGES = (("live", "/dashboard", "Live"), ("endpoints", "/dashboard/endpoints", "Endpoints"),
         ("dead", "/dashboard/dead-letters", "Dead letters"),
         ("audit", "/dashboard/audit", "Audit"), ("nodes", "/dashboard/nodes", "Nodes"))


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _t(value: datetime | None) -> str:
    return "-" if value is None else _e(value.isoformat(sep=" ", timespec="seconds"))


def _head(title: str) -> str:
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)} · triggerd</title><link rel=\"icon\" href=\"data:,\">"
            f'<link rel="stylesheet" href="/dashboard/assets/console.css?v={ASSET_VERSION}">'
            f'<script src="/dashboard/assets/console.js?v={ASSET_VERSION}" defer></script>'
            "</head>")


def login(error: str | None = None) -> str:
    failed = f'<p class="bad" id="login-error">{_e(error)}</p>' if error else ""
    return (_head("Sign in") + '<body class="login"><main><h1>triggerd console</h1>'
            '<form method="post" action="/dashboard/login" id="login">'
            '<label>Admin token or API key <input type="password" name="token" id="token" '
            'autocomplete="current-password" autofocus></label>'
            f'<button type="submit">Sign in</button></form>{failed}'
            '<p class="muted">Operators sign in with TRIGGERD_ADMIN_TOKEN and see every '
            "organization; an organization's API key sees that organization only.</p>"
            "</main></body></html>")


def query(scope: UUID | None, session: Session, **params: Any) -> str:
    """A query string keeping an operator's chosen organization."""
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    if session.operator and scope is not None:
        kept["org"] = str(scope)
    return ("?" + urlencode(kept)) if kept else ""


def layout(session: Session, scope: UUID | None, orgs: Sequence[OrgName], current: str,
           body: str, notice: str | None = None) -> str:
    nav = "".join(
        f'<a href="{path}{_e(query(scope, session))}"'
        f"{HERE if key == current else ''}>{label}</a>"
        for key, path, label in PAGES if key != "nodes" or session.operator)
    picker = ""
    if session.operator:
        options = "".join(f'<option value="{_e(o.id)}"{" selected" if o.id == scope else ""}>'
                          f"{_e(o.name)}</option>" for o in orgs)
        picker = ('<form method="get" id="org-picker"><select name="org" id="org">'
                  f'<option value="">every organization</option>{options}</select>'
                  '<button type="submit">View</button></form>')
    shown = f'<p class="notice" id="notice">{_e(notice)}</p>' if notice else ""
    who = "operator" if session.operator else session.who
    return (_head(current) + f'<body data-csrf="{_e(session.csrf)}" '
            f'data-org="{_e(scope or "")}"><header><b>triggerd</b><nav>{nav}</nav>{picker}'
            f'<span class="who" id="who">{_e(who)}</span>'
            '<form method="post" action="/dashboard/logout" id="logout">'
            f"{csrf_field(session)}<button>Sign out</button></form></header>"
            f"<main>{shown}{body}</main></body></html>")


def csrf_field(session: Session) -> str:
    return f'<input type="hidden" name="{CSRF_FIELD}" value="{_e(session.csrf)}">'


def action(session: Session, name: str, label: str, confirm: str, back: str,
           fields: dict[str, Any], extra: str = "") -> str:
    """A form posting one console action, confirmed in the browser before it goes."""
    hidden = "".join(f'<input type="hidden" name="{_e(k)}" value="{_e(v)}">'
                     for k, v in fields.items() if v is not None)
    return (f'<form method="post" action="/dashboard/actions/{name}" class="action" '
            f'data-confirm="{_e(confirm)}">{csrf_field(session)}'
            f'<input type="hidden" name="back" value="{_e(back)}">{hidden}{extra}'
            f'<button type="submit" class="act-{name}">{_e(label)}</button></form>')


def _table(headers: Sequence[str], rows: Iterable[str], ident: str, empty: str,
           sortable: bool = False) -> str:
    body = "".join(rows)
    if not body:
        return f'<p class="muted" id="{ident}-empty">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    cls = ' class="sortable"' if sortable else ""
    return f'<table id="{ident}"{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def live() -> str:
    charts = (("ingest", "Events accepted per minute"),
              ("outcomes", "Attempts per minute by outcome"),
              ("duration", "Attempt duration p50 / p99 (ms)"),
              ("latency", "Ingest to delivered p50 / p99 (ms)"),
              ("queue", "Queue depth and oldest due age (s), per minute, then now"))
    figures = "".join(f'<figure><figcaption>{label}</figcaption>'
                      f'<svg id="chart-{key}" class="chart" viewBox="0 0 600 140" '
                      'role="img"></svg></figure>' for key, label in charts)
    counters = "".join(
        f'<div class="counter"><span class="value" id="{key}">-</span>'
        f"<span class=\"label\">{label}</span></div>" for key, label in (
            ("events-1h", "events, last hour"), ("delivered-1h", "delivered, last hour"),
            ("failed-1h", "failed attempts, last hour"), ("queue-depth", "waiting now"),
            ("oldest-due", "oldest due (s)")))
    return (f'<section id="live" data-poll="/dashboard/api/live"><div class="counters">'
            f'{counters}</div><p class="muted">Across every node, from PostgreSQL; updated '
            f'every 3 s. <span id="live-at"></span> <span id="live-capped"></span></p>'
            f"{figures}</section>")


def _state(state: str) -> str:
    ok = state == "enabled"
    return f'<span class="state {"ok" if ok else "bad"}">{_e(state)}</span>'


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def endpoints(session: Session, scope: UUID | None, rows: Sequence[EndpointRow]) -> str:
    lines = (
        f'<tr data-id="{_e(r.id)}"><td><a href="/dashboard/endpoints/{_e(r.id)}'
        f'{_e(query(scope, session))}">{_e(r.url)}</a><br><small class="muted">{_e(r.id)}'
        f"</small></td><td>{_e(r.org_name)}</td><td>{_state(r.state)}</td>"
        f'<td class="num">{_pct(r.success_rate_1h)}</td><td class="num">{r.attempts_1h}</td>'
        f'<td class="num">{"-" if r.p99_ms_1h is None else r.p99_ms_1h}</td>'
        f'<td class="num">{r.due}</td></tr>' for r in rows)
    return ('<h1>Endpoints</h1><p><input type="search" id="filter" placeholder="filter rows">'
            ' <span class="muted">click a heading to sort; last hour</span></p>'
            + _table(("url", "organization", "state", "success", "attempts", "p99 ms",
                      "due"), lines, "endpoints", "no endpoints", sortable=True))


def endpoint(session: Session, scope: UUID | None, ep: Endpoint,
             attempts: Sequence[AttemptRow]) -> str:
    back = f"/dashboard/endpoints/{ep.id}{query(scope, session)}"
    paused = ep.paused
    toggle = (action(session, "resume", "Resume", f"Resume {ep.url}?", back,
                     {"endpoint_id": ep.id}) if paused else
              action(session, "pause", "Pause", f"Pause {ep.url}? Its deliveries wait.", back,
                     {"endpoint_id": ep.id}))
    enabling = (action(session, "disable", "Disable", f"Disable {ep.url}? Its undelivered "
                       "deliveries become dead letters.", back, {"endpoint_id": ep.id},
                       '<input name="reason" placeholder="reason" maxlength="1000">')
                if ep.enabled else
                action(session, "enable", "Enable", f"Enable {ep.url} and close its breaker?",
                       back, {"endpoint_id": ep.id}))
    dead = (f'<a id="endpoint-dead-letters" href="/dashboard/dead-letters'
            f'{_e(query(scope, session, endpoint_id=ep.id))}">its dead letters</a>')
    recover = action(session, "recover", "Recover since", "Re-queue this endpoint's failed and "
                     "dead deliveries since the time given?", back, {"endpoint_id": ep.id},
                     '<input type="datetime-local" name="since" required step="1">')
    lines = (f"<tr><td>{_t(a.created_at)}</td><td>{a.delivery_id}</td><td>{a.attempt}</td>"
             f"<td>{_e(a.event_type)}</td><td>{_e(a.response_status or '-')}</td>"
             f'<td class="num">{a.duration_ms}</td><td>{_e(a.error)}</td>'
             f'<td><pre class="excerpt">{_e(a.response_excerpt)}</pre></td></tr>'
             for a in attempts)
    state = "disabled" if not ep.enabled else "paused" if paused else "enabled"
    return (f'<h1>Endpoint <span id="endpoint-url">{_e(ep.url)}</span></h1>'
            f'<p>{_e(ep.id)} · <span id="endpoint-state">{_e(state)}</span>'
            f"{'' if ep.enabled else ' (' + _e(ep.disabled_reason) + ')'}"
            f" · {_e(ep.description)} · {dead}</p>"
            f'<div class="actions">{toggle}{enabling}{recover}</div>'
            "<h2>Recent attempts</h2>"
            + _table(("at", "delivery", "#", "type", "status", "ms", "error",
                      "response excerpt"), lines, "attempts", "no attempts yet"))


def dead_letters(session: Session, scope: UUID | None, page: DeadLetterPage,
                 search: dict[str, str], back: str) -> str:
    inputs = "".join(
        f'<label>{label} <input name="{name}" id="dl-{name}" value="{_e(search.get(name))}"'
        f"{WHEN if name in ('since', 'until') else ''}>"
        "</label>" for name, label in (("endpoint_id", "endpoint"), ("event_type", "type"),
                                        ("since", "since"), ("until", "until"),
                                        ("error", "error contains")))
    org = f'<input type="hidden" name="org" value="{_e(scope)}">' if (
        session.operator and scope) else ""
    form = f'<form method="get" id="dl-search">{org}{inputs}<button>Search</button></form>'
    def row(d: DeadLetterRow) -> str:
        retry = action(session, "retry", "Retry", f"Retry delivery {d.id}?", back,
                       {"delivery_id": d.id})
        resolve = "" if d.resolved_at else action(
            session, "resolve", "Resolve", f"Resolve delivery {d.id} without sending it?",
            back, {"delivery_id": d.id},
            '<input name="note" placeholder="note" maxlength="1000">')
        return (f'<tr data-id="{d.id}"><td>{d.id}</td><td>{_e(d.org_name)}</td>'
                f"<td>{_e(d.url)}</td><td>{_e(d.event_type)}</td><td>{d.attempts}</td>"
                f"<td>{_e(d.last_error)}</td><td>{_t(d.updated_at)}</td>"
                f"<td>{_e(d.resolved_by or '')} {_e(d.resolution_note)}</td>"
                f"<td>{retry}{resolve}</td></tr>")

    lines = "".join(row(d) for d in page.items)
    bulk = action(session, "retry-filtered", "Retry every match",
                  "Re-queue every dead letter of this endpoint, type and time range (the "
                  "error text is not applied)?", back,
                  {k: search.get(k) or None for k in ("endpoint_id", "event_type", "since",
                                                      "until")} | {"org": scope})
    more = ""
    if page.next_before:
        more = (f'<p><a id="next-page" href="/dashboard/dead-letters'
                f'{_e(query(scope, session, **search, before=page.next_before))}">older</a></p>')
    return ("<h1>Dead letters</h1>" + form + f'<div class="actions">{bulk}</div>'
            + _table(("id", "organization", "endpoint", "type", "attempts", "last error",
                      "dead since", "resolved", ""), [lines], "dead-letters",
                     "no dead letters match") + more)


def audit(rows: Sequence[AuditEntry]) -> str:
    lines = (f"<tr><td>{_t(a.at)}</td><td>{_e(a.who)}</td><td>{_e(a.org_name)}</td>"
             f"<td>{_e(a.action)}</td><td>{_e(a.target)}</td><td>{_e(a.detail)}</td></tr>"
             for a in rows)
    return "<h1>Audit</h1>" + _table(("at", "who", "organization", "action", "target",
                                      "outcome"), lines, "audit", "no actions yet")


def nodes(rows: Sequence[NodeStatus]) -> str:
    def pool(n: NodeStatus) -> str:
        p, d = n.stats.get("pool"), n.stats.get("db_pool")
        workers = "-" if not p else f"{p['busy']}/{p['size']} busy"
        db = "-" if not d else f"{d['open'] - d['idle']}/{d['max']} in use"
        return f"{_e(workers)}<br>{_e(db)}"

    lines = (f'<tr class="{"ok" if n.alive else "bad"}"><td>{_e(n.name)}</td>'
             f"<td>{'alive' if n.alive else 'silent'}</td><td>{_e(', '.join(n.roles))}</td>"
             f"<td>{_e(n.version)}</td><td>{_t(n.started_at)}</td><td>{n.seen_ago_s:.1f} s</td>"
             f"<td>{_e(', '.join(f'{k} {v}' for k, v in n.stats.get('restarts', {}).items()))}"
             f"{' (degraded)' if n.stats.get('degraded') else ''}</td><td>{pool(n)}</td></tr>"
             for n in rows)
    return "<h1>Nodes</h1>" + _table(("node", "state", "roles", "version", "started",
                                      "seen", "restarts", "pool use"), lines, "nodes",
                                     "no node has a heartbeat row")
