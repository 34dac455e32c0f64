"""Figures for the MSP (``metrics/`` and the Alert metrics page): per rule, client or integration over 24 h,
7 days or 30 days.

- ``alerts``: alerts first seen in the period;
- ``tickets``: tickets created in the period that those alerts landed on;
- ``dedup_ratio``: the share of ticketed alerts that were folded into a ticket another alert had opened
  (``1 - tickets / ticketed alerts``; 0 when every alert made its own ticket);
- ``suppressed``: alerts a maintenance window held (still suppressed, or resolved inside the window);
- ``ignored``: alerts an ``ignore`` rule dropped;
- ``mtta_seconds``: mean time from ticket creation to the first human touch (a person's note, status,
  assignment, priority change or time entry); ``mttr_seconds``: mean time to close, closed tickets only.

Test alerts and test tickets are left out. Every figure comes from two grouped statements over the
tenant's alerts in the period (index ``alert_tenant_first_seen``) and their tickets: no query per row,
so it stays fast at a million alerts (bench/metrics.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connection
from django.db.models import Count
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

PERIODS = {"24h": dt.timedelta(hours=24), "7d": dt.timedelta(days=7), "30d": dt.timedelta(days=30)}
GROUPINGS = {"rule": "a.rule_id", "client": "a.client_id", "integration": "a.provider"}
ALERT_SOURCES = ("alert", "huntress")  # tickets the pipeline makes (the chart's ticket bars)


def _seconds(later: str, earlier: str) -> str:
    if connection.vendor == "postgresql":
        return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"  # the embedded SQLite default


def _tables():
    from alerts.models import Alert
    from tickets.models import Ticket, TicketActivity

    return Alert._meta.db_table, Ticket._meta.db_table, TicketActivity._meta.db_table


def _alert_counts(tenant_id: int, since: dt.datetime, key: str) -> dict[Any, dict[str, int]]:
    alerts, _, _ = _tables()
    sql = f"""
        SELECT {key} AS k, COUNT(*),
               COUNT(*) FILTER (WHERE a.ticket_id IS NOT NULL),
               COUNT(*) FILTER (WHERE a.state = 'suppressed' OR a.suppressed_by_id IS NOT NULL),
               COUNT(*) FILTER (WHERE a.state = 'ignored')
        FROM {alerts} a
        WHERE a.tenant_id = %s AND a.first_seen >= %s AND a.is_test = %s
        GROUP BY {key}
    """
    with connection.cursor() as cur:
        cur.execute(sql, [tenant_id, since, False])
        return {k: {"alerts": n, "ticketed": t, "suppressed": s, "ignored": i} for k, n, t, s, i in cur.fetchall()}


def _ticket_stats(tenant_id: int, since: dt.datetime, key: str) -> dict[Any, dict[str, Any]]:
    alerts, tickets, activity = _tables()
    sql = f"""
        WITH kt AS (
            SELECT DISTINCT {key} AS k, a.ticket_id
            FROM {alerts} a
            WHERE a.tenant_id = %s AND a.first_seen >= %s AND a.is_test = %s AND a.ticket_id IS NOT NULL
        ), t AS (
            SELECT kt.k, t.created_at, t.closed_at,
                   (SELECT MIN(x.created_at) FROM {activity} x
                    WHERE x.tenant_id = %s AND x.ticket_id = t.id AND x.actor_id IS NOT NULL
                      AND x.kind <> 'created') AS touched_at
            FROM kt JOIN {tickets} t ON t.id = kt.ticket_id
            WHERE t.tenant_id = %s AND t.created_at >= %s AND t.is_test = %s
        )
        SELECT k, COUNT(*),
               AVG({_seconds("touched_at", "created_at")}),
               AVG({_seconds("closed_at", "created_at")})
        FROM t GROUP BY k
    """
    with connection.cursor() as cur:
        cur.execute(sql, [tenant_id, since, False, tenant_id, tenant_id, since, False])
        return {k: {"tickets": n, "mtta": mtta, "mttr": mttr} for k, n, mtta, mttr in cur.fetchall()}


def _names(by: str, keys: list) -> dict[Any, str]:
    if by == "rule":
        from alerts.models import AlertRule

        return dict(AlertRule.objects.filter(pk__in=[k for k in keys if k is not None]).values_list("pk", "name"))
    if by == "client":
        from psa.models import Client

        return dict(Client.objects.filter(pk__in=[k for k in keys if k is not None]).values_list("pk", "name"))
    from integrations import registry

    return {p.slug: p.name for p in registry.all_providers()}


NONE_NAMES = {"rule": "No rule (unmapped)", "client": "Unmapped", "integration": "?"}


def figures(by: str, period: str, *, tenant_id: int | None = None, now: dt.datetime | None = None) -> list[dict]:
    """Rows ``{key, name, alerts, tickets, dedup_ratio, suppressed, ignored, mtta_seconds, mttr_seconds}``,
    most alerts first."""
    from psa.tenancy import get_current_tenant_id

    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}.")
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}.")
    tenant_id = tenant_id or get_current_tenant_id()
    since = (now or timezone.now()) - PERIODS[period]
    key = GROUPINGS[by]
    counts = _alert_counts(tenant_id, since, key)
    stats = _ticket_stats(tenant_id, since, key)
    names = _names(by, list(counts))
    rows = []
    for k, c in counts.items():
        s = stats.get(k, {"tickets": 0, "mtta": None, "mttr": None})
        ticketed = c["ticketed"]
        rows.append({
            "key": k,
            "name": names.get(k, str(k)) if k is not None else NONE_NAMES[by],
            "alerts": c["alerts"],
            "tickets": s["tickets"],
            "dedup_ratio": round(1 - s["tickets"] / ticketed, 4) if ticketed else 0.0,
            "suppressed": c["suppressed"],
            "ignored": c["ignored"],
            "mtta_seconds": round(float(s["mtta"]), 1) if s["mtta"] is not None else None,
            "mttr_seconds": round(float(s["mttr"]), 1) if s["mttr"] is not None else None,
        })
    rows.sort(key=lambda r: (-r["alerts"], str(r["name"])))
    return rows


def series(period: str, *, now: dt.datetime | None = None) -> list[dict]:
    """Alerts and tickets per hour (24 h) or per day (7 d, 30 d), for the charts; every bucket present."""
    from alerts.models import Alert
    from tickets.models import Ticket

    now = now or timezone.now()
    hourly = period == "24h"
    step = dt.timedelta(hours=1) if hourly else dt.timedelta(days=1)
    trunc = TruncHour if hourly else TruncDay
    since = now - PERIODS[period]
    alerts = dict(Alert.objects.filter(first_seen__gte=since, is_test=False).annotate(b=trunc("first_seen"))
                  .values("b").annotate(n=Count("id")).values_list("b", "n"))
    tickets = dict(Ticket.objects.filter(created_at__gte=since, is_test=False, source__in=ALERT_SOURCES)
                   .annotate(b=trunc("created_at")).values("b").annotate(n=Count("id")).values_list("b", "n"))
    start = since.replace(minute=0, second=0, microsecond=0)
    if not hourly:
        start = start.replace(hour=0)
    out = []
    bucket = start
    while bucket <= now:
        out.append({"at": bucket, "alerts": alerts.get(bucket, 0), "tickets": tickets.get(bucket, 0)})
        bucket += step
    return out
