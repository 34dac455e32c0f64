"""The pipeline's own cost per alert, in process (no HTTP, no Celery): ``ingest_normalized`` for new
conditions (a ticket each), repeats (an occurrence each) and resolves (the ticket is held open: the repeat is
still active).

    .venv/bin/python bench/inprocess.py --n 300 --rounds 5

Measures small differences (e.g. what the alert trace costs) better than the end-to-end bench: one
process, one connection, the same database. Run it from two trees (``git archive`` of each) and
alternate. Builds a throwaway database (``--database-url``, name starting with psa_bench), migrated;
the shared cache is Redis (``--redis-url``, flushed) as in production, so the per-process
configuration cache is on. Prints ms per alert (median of the rounds) and statements per alert.
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


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/psa_bench_inprocess")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    p.add_argument("--n", type=int, default=300, help="alerts per phase and round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--without-index", action="append", default=[],
                   help="DROP this index after migrating (what an index costs the pipeline)")
    args = p.parse_args(argv)

    from bench.common import drop_database, flush_redis, recreate_database

    recreate_database(args.database_url)
    flush_redis(args.redis_url)
    env = {**os.environ, "DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url,
           "DJANGO_SETTINGS_MODULE": "psa.settings", "LOG_LEVEL": "WARNING"}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO, env=env, check=True,
                   capture_output=True, timeout=900)
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "LOG_LEVEL")})
    if args.without_index:
        from bench.common import sql

        for name in args.without_index:
            sql(args.database_url, f'DROP INDEX IF EXISTS "{name}"')
    import django

    django.setup()
    from django.db import connection

    from alerts.services.pipeline import ingest_normalized
    from integrations.models import ExternalOrganization, Integration
    from integrations.records import AlertEventKind, NormalizedAlert
    from psa.models import Client
    from psa.services.tenants import create_tenant
    from psa.tenancy import tenant_context

    created = create_tenant("Inprocess MSP", "admin@inprocess.example", "pw-secret-123")
    with tenant_context(created.tenant):
        integration = Integration.objects.create(provider="generic", status="connected")
        client = Client.objects.create(name="Harbor Dental")
        ExternalOrganization.objects.create(integration=integration, external_id="o1", name="Harbor", client=client,
                                            mapping="manual")

    def alert(i: str, cond: str, event=AlertEventKind.TRIGGERED):
        return NormalizedAlert(provider="generic", external_id=i, condition_key=cond, event=event, severity="high",
                               title=f"Disk low {cond}", organization_external_id="o1", device_external_id=f"d{cond}")

    def phase(make, n: int) -> tuple[float, float]:
        executed = [0]

        def count(execute, sql, params, many, context):
            executed[0] += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            t = time.perf_counter()
            for i in range(n):
                ingest_normalized(integration, make(i), source="webhook")
            took = time.perf_counter() - t
        return took * 1000 / n, executed[0] / n

    results: dict[str, list[tuple[float, float]]] = {"new ticket": [], "repeat": [], "resolve (held)": []}
    try:
        ingest_normalized(integration, alert("warm", "warm"), source="webhook")
        for r in range(args.rounds):
            results["new ticket"].append(phase(lambda i, r=r: alert(f"n{r}-{i}", f"c{r}-{i}"), args.n))
            results["repeat"].append(phase(lambda i, r=r: alert(f"r{r}-{i}", f"c{r}-{i}"), args.n))
            results["resolve (held)"].append(
                phase(lambda i, r=r: alert(f"n{r}-{i}", f"c{r}-{i}", AlertEventKind.RESOLVED), args.n))
        print(f"{'per alert':18} {'median ms':>10} {'best ms':>9} {'statements':>11}")
        for name, runs in results.items():
            ms = [m for m, _ in runs]
            print(f"{name:18} {statistics.median(ms):10.2f} {min(ms):9.2f} {runs[-1][1]:11.1f}")
        return 0
    finally:
        connection.close()
        flush_redis(args.redis_url)
        drop_database(args.database_url)


if __name__ == "__main__":
    raise SystemExit(main())
