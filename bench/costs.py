"""What one webhook and one alert cost, in process: wall time, our CPU, PostgreSQL's CPU, round trips.

    .venv/bin/python bench/costs.py --n 1500

No gunicorn, no Celery worker, no load generator: the Django test client posts to the webhook view
and ``dispatch.drain`` runs in this process, against PostgreSQL and Redis, so every millisecond is
the product's own. It prints:

1. intake: ms per webhook beside the bare-INSERT floor (the same view stack doing one INSERT), and
   the marginal cost of each of intake's extra steps (the integration lookup, the wake, the JSON
   screen), each measured by leaving that step out;
2. processing, for a storm (every alert a repeat of one condition) and for distinct conditions
   (every alert a new ticket): ms per alert, this process's CPU and this connection's PostgreSQL
   backend CPU per alert, and the SQL statements (BEGIN/COMMIT not counted) and Redis round trips
   per alert, by kind.

Where the end-to-end figures of bench/pipeline.py go: on two cores, alerts/s is bounded by
2 cores / (intake CPU + processing CPU + PostgreSQL CPU per alert). Asserts nothing about speed.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    CREATE_BARE_TABLE,
    REPO,
    base_parser,
    drop_database,
    generic_body,
    recreate_database,
    sql,
)

DB_URL = "postgres://postgres@127.0.0.1:5432/psa_bench_costs"


def _setup(args) -> str:
    """Fresh database, a tenant with the generic provider enabled; returns its API token."""
    recreate_database(args.database_url)
    env = {**os.environ, "DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url,
           "DJANGO_SETTINGS_MODULE": args.settings}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=REPO, check=True, env=env)
    sql(args.database_url, CREATE_BARE_TABLE)
    out = subprocess.run([sys.executable, "manage.py", "createtenant", "--name", "Costs MSP", "--admin-email",
                          "costs@bench.example", "--admin-password", "bench-costs-pw-2026"],
                         cwd=REPO, check=True, env=env, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["api_token"]


class Product:
    """The product in this process: the webhook URL and headers of an enabled, mapped generic integration."""

    def __init__(self, token: str):
        from django.test import Client

        from alerts.services import dispatch
        from alerts.tasks import drain_inbound

        self.dispatch, self.drain_task = dispatch, drain_inbound
        api = Client(HTTP_AUTHORIZATION=f"Token {token}")
        api.put("/api/v1/integrations/generic/", "{}", content_type="application/json")
        card = api.get("/api/v1/integrations/generic/webhook/").json()
        path = card["url"].split("://", 1)[1]
        self.url = path[path.index("/"):]
        self.key = self.url.rstrip("/").rsplit("/", 1)[1]
        header = (card.get("header_name") or "X-PSA-Webhook-Secret").upper().replace("-", "_")
        self.headers = {f"HTTP_{header}": card["secret"]}
        self.web = Client()
        api.post("/api/v1/clients/", {"name": "Org 0"}, content_type="application/json")
        with self.quiet():  # the organization is discovered by a first alert, then mapped
            self.post(generic_body("setup-0", "setup", org=0))
            dispatch.drain(max_seconds=30)
        assert api.post("/api/v1/integrations/generic/organizations/automap/").status_code == 200

    def quiet(self):
        """No drain task is published: this process drains when it chooses."""
        return mock.patch.object(self.drain_task, "apply_async")

    def post(self, body: bytes, path: str | None = None) -> None:
        headers = self.headers if path is None else {}
        r = self.web.post(path or self.url, body, content_type="application/json", **headers)
        assert r.status_code == 202, r.content


def _per_request(fn, n: int) -> float:
    """ms per call, best of three runs of ``n``."""
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        fn(n)
        best = min(best, (time.perf_counter() - t) / n * 1e3)
    return best


def intake(product: Product, n: int) -> dict:
    from alerts.services import dispatch
    from alerts.services import intake as intake_module

    seq = iter(range(10**9))

    def webhooks(count: int) -> None:
        for _ in range(count):
            i = next(seq)
            product.post(generic_body(f"in-{i}", f"cond-{i % 500}", org=0))

    def bare(count: int) -> None:
        for _ in range(count):
            i = next(seq)
            product.post(generic_body(f"bare-{i}", "c", org=0), path="/bench/bare-insert/")

    with product.quiet():
        floor, full = _per_request(bare, n), _per_request(webhooks, n)
        known = intake_module._lookup("generic", product.key)
        marginal = {}
        for label, target, name, stub in (
            ("integration lookup", intake_module, "_lookup", lambda slug, key: known),
            ("wake (Redis)", dispatch, "wake", lambda *a, **k: False),
            ("JSON safety screen", intake_module, "unsafe_reason", lambda body: None),
        ):
            with mock.patch.object(target, name, stub):
                marginal[label] = round(full - _per_request(webhooks, n), 3)
        floor_again = _per_request(bare, n)
    return {"bare_insert_ms": round(min(floor, floor_again), 3), "intake_ms": round(full, 3),
            "ratio": round(min(floor, floor_again) / full, 2), "marginal_ms (full minus without)": marginal}


def _backend_cpu() -> float:
    """CPU seconds of this connection's PostgreSQL backend (same machine: /proc)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def processing(product: Product, n: int, kind: str) -> dict:
    import redis.client
    from django.db import connection

    with product.quiet():
        for i in range(n):
            condition = "storm-cond" if kind == "storm" else f"{kind}-{i}"
            product.post(generic_body(f"{kind}-{i}", condition, org=0, device=7))
        commands: collections.Counter = collections.Counter()
        execute, pipeline_execute = redis.client.Redis.execute_command, redis.client.Pipeline.execute

        def counted(self, *args, **kw):
            commands[str(args[0]).upper()] += 1
            return execute(self, *args, **kw)

        def counted_pipeline(self, *args, **kw):
            commands["pipeline(" + ",".join(str(c[0][0]).upper() for c in self.command_stack) + ")"] += 1
            return pipeline_execute(self, *args, **kw)

        statements: collections.Counter = collections.Counter()

        def counted_sql(execute_sql, sql_text, params, many, context):
            statements[" ".join(sql_text.split()[:2])[:48]] += 1
            return execute_sql(sql_text, params, many, context)

        with mock.patch.object(redis.client.Redis, "execute_command", counted), \
                mock.patch.object(redis.client.Pipeline, "execute", counted_pipeline), \
                connection.execute_wrapper(counted_sql):
            pg0, cpu0, t0 = _backend_cpu(), time.process_time(), time.perf_counter()
            totals = product.dispatch.drain(max_seconds=3600)
            wall, cpu, pg = time.perf_counter() - t0, time.process_time() - cpu0, _backend_cpu() - pg0
    return {
        "alerts": n, "processed": totals["processed"], "failed": totals["failed"],
        "ms_per_alert": round(wall / n * 1e3, 2),
        "our_cpu_ms_per_alert": round(cpu / n * 1e3, 2),
        "postgresql_cpu_ms_per_alert": round(pg / n * 1e3, 2),
        "sql_statements_per_alert": round(sum(statements.values()) / n, 2),
        "redis_round_trips_per_alert": round(sum(commands.values()) / n, 2),
        "statements": {k: round(v / n, 2) for k, v in statements.most_common(14)},
        "redis": {k: round(v / n, 2) for k, v in commands.most_common(8)},
    }


def main(argv=None) -> int:
    p = base_parser(__doc__.split("\n\n")[0])
    p.set_defaults(database_url=os.environ.get("BENCH_COSTS_DATABASE_URL", DB_URL))
    p.add_argument("--n", type=int, default=1500, help="webhooks per intake measurement, alerts per processing run")
    args = p.parse_args(argv)
    token = _setup(args)
    os.environ.update(DATABASE_URL=args.database_url, REDIS_URL=args.redis_url, DJANGO_SETTINGS_MODULE=args.settings,
                      PSA_WEBHOOK_FLOOD_PER_MINUTE="100000000", LOG_LEVEL="WARNING", CELERY_TASK_ALWAYS_EAGER="0")
    import django

    django.setup()
    try:
        product = Product(token)
        figures = {"load_avg_1m_start": round(os.getloadavg()[0], 2), "intake": intake(product, args.n)}
        from alerts.models import InboundEvent

        InboundEvent.objects.unscoped().filter(status="accepted").delete()  # intake's, never to be processed
        for kind in ("storm", "distinct"):
            figures[f"processing_{kind}"] = processing(product, args.n, kind)
        figures["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
        for section, values in figures.items():
            if isinstance(values, dict):
                print(f"\n== {section}")
                for key, value in values.items():
                    print(f"  {key:>36}: {value}")
            else:
                print(f"{section}: {values}")
        if args.json:
            print(json.dumps(figures))
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep_db:
            drop_database(args.database_url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
