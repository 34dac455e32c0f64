"""The "see why" queries at a million alerts: MSP metrics, their chart series, dry runs, health, /metrics.

    .venv/bin/python bench/metrics.py --alerts 1000000

Builds a throwaway database (``--database-url``, name starting with psa_bench; dropped and re-created,
migrated), one tenant with 50 clients, 3 integrations, 12 rules and 2,000 assets, then writes with
set-based SQL (generate_series) ``--alerts`` alerts spread over the last 30 days: ~80 % on tickets
(about four alerts per ticket), 8 % suppressed, 6 % ignored, 6 % unmapped; a third of the tickets touched
by a person, half of them closed. Then it times, in this process (``--repeat`` runs each, median and
best printed):

- ``metrics.figures(by, period)`` for every by x period (the ``metrics/`` API);
- ``metrics.series(period)`` (the page's chart);
- a rule dry run and a window dry run over the last 1,000 alerts;
- ``health.health_by_provider`` (the RMM tab) and one Prometheus scrape.

It prints figures and asserts nothing about speed.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/psa_bench_metrics"


def _args(argv=None):
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", default=os.environ.get("BENCH_METRICS_DATABASE_URL", DEFAULT_DB))
    p.add_argument("--alerts", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--keep-db", action="store_true", help="leave the database behind (and reuse it with --reuse)")
    p.add_argument("--reuse", action="store_true", help="skip building: time the queries on a kept database")
    return p.parse_args(argv)


def _prepare(db_url: str) -> None:
    from bench.common import recreate_database

    print(f"preparing {db_url} (drop, create, migrate)...", flush=True)
    recreate_database(db_url)
    env = {**os.environ, "DATABASE_URL": db_url, "DJANGO_SETTINGS_MODULE": "psa.settings", "LOG_LEVEL": "WARNING"}
    env.pop("REDIS_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO, env=env, check=True,
                   capture_output=True, timeout=900)


def _django(db_url: str) -> None:
    os.environ["DATABASE_URL"] = db_url
    os.environ.pop("REDIS_URL", None)  # LocMem cache: the pipeline's config cache stays out of the timings
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "psa.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def _build(n_alerts: int) -> int:
    """The tenant, its configuration, then alerts/tickets/activities by SQL; returns the tenant id."""
    from django.db import connection

    from alerts.models import Alert, AlertRule
    from assets.models import Asset
    from integrations.models import Integration
    from psa.models import Client
    from psa.services.tenants import create_tenant
    from psa.tenancy import tenant_context
    from tickets.models import Board, Status, Ticket, TicketActivity

    created = create_tenant("Million MSP", "admin@million.example", "pw-secret-123")
    tenant = created.tenant
    with tenant_context(tenant):
        clients = [Client.objects.create(name=f"Client {i:02d}") for i in range(50)]
        integrations = [Integration.objects.create(provider=p, status="connected")
                        for p in ("generic", "tactical", "level")]
        rules = [AlertRule.objects.create(name=f"Rule {i:02d}", position=i + 1,
                                          conditions={"text_contains": f"kind{i}"}) for i in range(11)]
        from alerts.services.rules import ensure_catch_all

        rules.append(ensure_catch_all())
        Asset.objects.bulk_create([Asset(tenant=tenant, client=clients[i % 50], name=f"PC-{i:05d}",
                                         serial_number=f"SN{i:06d}") for i in range(2000)])
        board = Board.objects.get(name="Alerts")
        open_status = Status.objects.filter(is_closed=False).order_by("position", "id").first()
        closed_status = Status.objects.filter(is_closed=True).order_by("position", "id").first()
    asset_min = Asset.objects.unscoped().filter(tenant=tenant).order_by("id").values_list("id", flat=True).first()
    client_min = min(c.pk for c in clients)
    rule_ids = [r.pk for r in rules]
    n_tickets = max(1, n_alerts // 5)
    t_table, a_table, x_table = Ticket._meta.db_table, Alert._meta.db_table, TicketActivity._meta.db_table
    t0 = time.monotonic()
    with connection.cursor() as cur:
        cur.execute("SELECT setseed(0.42)")
        cur.execute(f"""
            INSERT INTO {t_table} (tenant_id, number, title, description, client_id, board_id, status_id,
                source, source_ref, occurrence_count, is_test, created_at, updated_at, closed_at, asset_id)
            SELECT %s, g, 'Alert ticket ' || g, '', %s + (g %% 50), %s,
                   CASE WHEN g %% 2 = 0 THEN %s ELSE %s END, 'alert', 'generic:' || g, 4, false, c, c,
                   CASE WHEN g %% 2 = 0 THEN c + (random() * interval '8 hours') END, %s + (g %% 2000)
            FROM (SELECT g, now() - random() * interval '30 days' AS c FROM generate_series(1, %s) g) s
        """, [tenant.pk, client_min, board.pk, closed_status.pk, open_status.pk, asset_min, n_tickets])
        cur.execute(f"SELECT min(id) FROM {t_table} WHERE tenant_id = %s AND source_ref LIKE 'generic:%%'",
                    [tenant.pk])
        ticket_min = cur.fetchone()[0]
        print(f"  {n_tickets:,} tickets in {time.monotonic() - t0:.1f} s", flush=True)
        t1 = time.monotonic()
        cur.execute(f"""
            INSERT INTO {x_table} (tenant_id, ticket_id, actor_id, kind, data, created_at)
            SELECT t.tenant_id, t.id, %s, 'note', '{{}}'::jsonb, t.created_at + (random() * interval '2 hours')
            FROM {t_table} t WHERE t.tenant_id = %s AND t.id %% 3 = 0
        """, [created.user.pk, tenant.pk])
        print(f"  human touches in {time.monotonic() - t1:.1f} s", flush=True)
        t2 = time.monotonic()
        # u in [0, 1): < .80 ticketed (active or resolved), < .88 suppressed, < .94 ignored, else unmapped.
        rules_sql = "(ARRAY[" + ",".join(str(r) for r in rule_ids) + "]::bigint[])"
        # An alert's ticket is k = g mod tickets; its client, asset, rule and provider follow the ticket's (the
        # alerts of one ticket share them, as the pipeline's do).
        nt = max(1, n_tickets)
        cur.execute(f"""
            INSERT INTO {a_table} (tenant_id, integration_id, provider, external_id, condition_key, dedup_key,
                severity, title, message, alert_type, state, device_external_id, device_name,
                organization_external_id, organization_id, asset_id, client_id, group_id, ticket_id, rule_id,
                suppressed_by_id, suppressed_until, occurrence_count, first_seen, last_seen, last_event_at,
                resolved_at, reset_status, reset_error, reset_at, raw, trace, is_test, created_at)
            SELECT %s, (ARRAY[%s, %s, %s]::bigint[])[1 + k %% 3], (ARRAY['generic','tactical','level'])[1 + k %% 3],
                   'a-' || g, 'cond-' || k, 'v1:' || md5(k::text),
                   (ARRAY['critical','high','medium','low','info'])[1 + g %% 5], 'Alert kind' || (k %% 11),
                   '', 'check',
                   CASE WHEN u < .80 THEN (CASE WHEN g %% 3 = 0 THEN 'resolved' ELSE 'active' END)
                        WHEN u < .88 THEN 'suppressed' WHEN u < .94 THEN 'ignored' ELSE 'unmapped' END,
                   'dev-' || ((k + 1) %% 2000), 'PC-' || ((k + 1) %% 2000), 'org-' || ((k + 1) %% 50), NULL,
                   CASE WHEN u < .94 THEN %s + ((k + 1) %% 2000) END, CASE WHEN u < .94 THEN %s + ((k + 1) %% 50) END,
                   NULL, CASE WHEN u < .80 THEN %s + k END,
                   CASE WHEN u >= .80 AND u < .88 THEN NULL WHEN u < .94 THEN {rules_sql}[1 + k %% {len(rule_ids)}] END,
                   NULL, NULL, 1, fs, fs, fs, NULL, '', '', NULL, '{{}}'::jsonb,
                   '[{{"step": "rule", "decision": "matched", "detail": "bench"}}]'::jsonb, false, fs
            FROM (SELECT g, g %% {nt} AS k, random() AS u, now() - random() * interval '30 days' AS fs
                  FROM generate_series(1, %s) g) s
        """, [tenant.pk, *[i.pk for i in integrations], asset_min, client_min, ticket_min, n_alerts])
        print(f"  {n_alerts:,} alerts in {time.monotonic() - t2:.1f} s", flush=True)
        cur.execute(f"UPDATE {a_table} SET reset_status = 'failed' WHERE tenant_id = %s AND id %% 5000 = 0",
                    [tenant.pk])
    # As autovacuum would after a while: statistics and the visibility map (index-only scans).
    for table in (a_table, t_table, x_table):
        with connection.cursor() as cur:
            cur.execute(f"VACUUM ANALYZE {table}")
    return tenant.pk


def _time(fn, repeat: int) -> tuple[float, float, object]:
    runs, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        runs.append((time.perf_counter() - t) * 1000)
    return statistics.median(runs), min(runs), result


def main(argv=None) -> int:
    args = _args(argv)
    if not args.reuse:
        _prepare(args.database_url)
    _django(args.database_url)
    from django.db import connection

    from alerts.models import Alert, AlertRule, MaintenanceWindow
    from alerts.prometheus import registry
    from alerts.services import dryrun, metrics
    from integrations.models import Integration
    from integrations.services.health import health_by_provider
    from psa.models import Tenant
    from psa.tenancy import tenant_context

    try:
        if args.reuse:
            tenant_id = Tenant.objects.get(name="Million MSP").pk
        else:
            print(f"building {args.alerts:,} alerts...", flush=True)
            tenant_id = _build(args.alerts)
        with tenant_context(tenant_id):
            total = Alert.objects.count()
            print(f"\nalerts in the database: {total:,}; {args.repeat} runs each, median / best (ms)\n", flush=True)
            print(f"{'query':44} {'median':>9} {'best':>9}  rows")
            for period in metrics.PERIODS:
                for by in metrics.GROUPINGS:
                    med, best, rows = _time(lambda by=by, period=period: metrics.figures(by, period), args.repeat)
                    alerts = sum(r["alerts"] for r in rows)
                    print(f"{'metrics ' + period + ' by ' + by:44} {med:9.1f} {best:9.1f}  {len(rows)} rows, "
                          f"{alerts:,} alerts", flush=True)
            for period in metrics.PERIODS:
                med, best, points = _time(lambda period=period: metrics.series(period), args.repeat)
                print(f"{'chart series ' + period:44} {med:9.1f} {best:9.1f}  {len(points)} buckets", flush=True)
            rule = AlertRule(name="(dry run)", conditions={"severities": ["high", "critical"]}, action="create_ticket")
            med, best, run = _time(lambda: dryrun.dry_run_rule(rule, limit=1000), args.repeat)
            print(f"{'rule dry run, last 1,000':44} {med:9.1f} {best:9.1f}  {run['matched']} matched", flush=True)
            import datetime as dt

            from django.utils import timezone

            start = timezone.now() - dt.timedelta(days=40, hours=3)  # covers the newest alerts' hour of day
            window = MaintenanceWindow(name="(dry run)", scope="all", starts_at=start,
                                       ends_at=start + dt.timedelta(hours=6),
                                       rrule="FREQ=DAILY", timezone="Europe/Berlin")
            med, best, run = _time(lambda: dryrun.dry_run_window(window, limit=1000), args.repeat)
            print(f"{'window dry run, last 1,000 (daily rule)':44} {med:9.1f} {best:9.1f}  {run['matched']} matched",
                  flush=True)
            integrations = list(Integration.objects.all())
            med, best, _ = _time(lambda: health_by_provider(integrations), args.repeat)
            print(f"{'health, RMM tab (3 integrations)':44} {med:9.1f} {best:9.1f}", flush=True)
        from prometheus_client import generate_latest

        med, best, text = _time(lambda: generate_latest(registry()), args.repeat)
        print(f"{'Prometheus scrape (/metrics body)':44} {med:9.1f} {best:9.1f}  {len(text)} bytes", flush=True)
        connection.close()
        return 0
    finally:
        if not args.keep_db:
            from django.db import connections

            from bench.common import drop_database

            connections.close_all()  # drop_database forces the rest
            drop_database(args.database_url)


if __name__ == "__main__":
    raise SystemExit(main())
