"""Shared pieces of the benchmarks: a throwaway database, the live stack, a load generator.

The benches run the product as real processes (the same harness as tests/e2e) on
their own database ``psa_bench`` (dropped and re-created, migrated) and their own
Redis db (flushed). They print figures; they assert nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import psycopg

from tests.e2e.harness import LiveStack, flush_redis, product_env, wait_until  # noqa: F401

DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/psa_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
ARTIFACTS = REPO / "test-artifacts" / "bench"
SETTINGS = "bench.bench_settings"
# The bare-INSERT floor's table (bench/bench_urls.py writes it): shaped like an inbound event row.
CREATE_BARE_TABLE = """
CREATE TABLE IF NOT EXISTS bench_bare_event (
    id bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    body bytea NOT NULL,
    headers jsonb NOT NULL
)
"""


def base_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB_URL),
        help="database to DROP, create and migrate (env BENCH_DATABASE_URL)",
    )
    p.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL),
        help="Redis db to FLUSH and use as broker (env BENCH_REDIS_URL)",
    )
    p.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes")
    p.add_argument("--web-threads", type=int, default=4, help="threads per gunicorn worker")
    p.add_argument("--keep-db", action="store_true", help="leave the bench database behind for inspection")
    p.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    p.add_argument(
        "--settings",
        default=SETTINGS,
        help="Django settings module for the processes (to try a change: a module importing bench.bench_settings)",
    )
    return p


# -- database ------------------------------------------------------------------------------
def _admin_conninfo(db_url: str) -> tuple[str, str]:
    parts = urlsplit(db_url)
    name = parts.path.lstrip("/")
    if not name.startswith("psa_bench"):
        # This database is dropped: refuse anything that does not look like a bench database.
        raise SystemExit(f"refusing to drop {name!r}: the bench database name must start with psa_bench")
    admin = parts._replace(path="/postgres").geturl().replace("postgres://", "postgresql://", 1)
    return admin, name


def recreate_database(db_url: str) -> None:
    admin, name = _admin_conninfo(db_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(db_url: str) -> None:
    admin, name = _admin_conninfo(db_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sql(db_url: str, query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(db_url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def prepare(args, *, start_worker: bool, worker_concurrency: int = 2, label: str = "bench") -> LiveStack:
    """Fresh database (migrated + the bare table), flushed Redis, then the stack (not started)."""
    install_signal_handlers()
    print(f"preparing {args.database_url} (drop, create, migrate)...", flush=True)
    recreate_database(args.database_url)
    flush_redis(args.redis_url)
    stack = LiveStack(
        args.database_url,
        args.redis_url,
        artifacts=ARTIFACTS,
        web_workers=args.web_workers,
        web_threads=args.web_threads,
        worker_concurrency=worker_concurrency,
        # The flood guard stays in the path (its cost is part of intake) but must never shed here.
        extra_env={
            "DJANGO_SETTINGS_MODULE": args.settings,
            "LOG_LEVEL": "WARNING",
            "PSA_WEBHOOK_FLOOD_PER_MINUTE": "100000000",
        },
        start_worker=start_worker,
        label=label,
    )
    stack.manage("migrate", "--noinput", timeout=600)
    sql(args.database_url, CREATE_BARE_TABLE)
    return stack


def cleanup(args, stack: LiveStack | None) -> None:
    if stack is not None:
        stack.stop()
    flush_redis(args.redis_url)
    if not args.keep_db:
        drop_database(args.database_url)


# -- the generic provider ------------------------------------------------------------------
@dataclass
class GenericTarget:
    api_token: str
    url: str
    header_name: str
    secret: str


def setup_generic(stack: LiveStack, name: str = "Bench MSP", orgs: int = 0, email: str = "admin@bench.example") -> GenericTarget:
    """Tenant via the CLI, then the documented API: enable generic, read its webhook card.

    With ``orgs`` (needs the worker running), organizations ``org-0`` .. ``org-{orgs-1}`` are
    discovered from one probe event each and automapped to clients of the same names, so
    the alerts of the measurement are attributed and ticketed (unmapped ones are not).
    """
    created = stack.create_tenant(name, email)
    with stack.api(created["api_token"]) as api:
        api.put("integrations/generic/", json={}).raise_for_status()
        card = api.get("integrations/generic/webhook/")
        card.raise_for_status()
        card = card.json()
        target = GenericTarget(
            created["api_token"],
            card["url"],
            card.get("header_name") or "X-PSA-Webhook-Secret",
            card["secret"],
        )
        if orgs:
            for i in range(orgs):
                api.post("clients/", json={"name": f"Org {i}"}).raise_for_status()
            headers = {"Content-Type": "application/json", target.header_name: target.secret}
            fire(target.url, headers, lambda i: generic_body(f"setup-{i}", "setup", org=i), orgs, 4)

            def discovered():
                r = api.get("integrations/generic/organizations/", params={"page_size": 500})
                r.raise_for_status()
                return r.json()["count"] >= orgs

            wait_until(discovered, timeout=120, what=f"{orgs} organizations discovered")
            api.post("integrations/generic/organizations/automap/").raise_for_status()
            r = api.get("integrations/generic/organizations/", params={"page_size": 500}).json()
            unmapped = [o["external_id"] for o in r["results"] if not o["client"]]
            if unmapped:
                raise SystemExit(f"automap left organizations unmapped: {unmapped}")
    return target


def install_signal_handlers() -> None:
    """SIGTERM/SIGHUP (``timeout``, a closed terminal) unwind through ``finally``: no orphans."""
    import signal

    def _exit(signum, _frame):
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit)


def generic_body(
    alert_id: str,
    condition: str,
    event: str = "trigger",
    *,
    org: int = 1,
    device: int = 1,
    severity: str = "high",
) -> bytes:
    return json.dumps(
        {
            "event": event,
            "alert_id": alert_id,
            "condition": condition,
            "severity": severity,
            "title": f"{condition} on host-{device}",
            "message": f"Bench alert {alert_id}: {condition}",
            "organization": {"id": f"org-{org}", "name": f"Org {org}"},
            "device": {
                "id": f"dev-{device}",
                "hostname": f"host-{device}",
                "serial_number": f"SN{device:06d}",
            },
            "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    ).encode()


# -- load generation ---------------------------------------------------------------------
@dataclass
class LoadResult:
    n: int
    concurrency: int
    elapsed: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    sent_at: dict[int, float] = field(default_factory=dict)  # request index -> wall clock at send
    errors: Counter = field(default_factory=Counter)

    @property
    def accepted(self) -> int:
        return self.statuses.get(202, 0)

    def figures(self) -> dict:
        lat = sorted(self.latencies)
        return {
            "requests": self.n,
            "concurrency": self.concurrency,
            "seconds": round(self.elapsed, 3),
            "accepted": self.accepted,
            "accepted_per_s": round(self.accepted / self.elapsed, 1) if self.elapsed else 0.0,
            "p50_ms": round(percentile(lat, 50) * 1000, 2),
            "p99_ms": round(percentile(lat, 99) * 1000, 2),
            "statuses": dict(self.statuses),
            "errors": dict(self.errors),
        }


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    if len(sorted_values) == 1:
        return sorted_values[0]
    return (
        statistics.quantiles(sorted_values, n=100, method="inclusive")[int(p) - 1]
        if p < 100
        else sorted_values[-1]
    )


class _Conn:
    """A minimal HTTP/1.1 keep-alive client connection (asyncio streams).

    The load generator shares the two cores with gunicorn, PostgreSQL and Celery: httpx's
    per-request cost saturated a whole core at ~300 req/s and capped the measurement, so
    the hot loop speaks plain HTTP/1.1 itself (setup and checks still use httpx).
    """

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self):
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None

    async def post(self, head: bytes, body: bytes) -> int:
        """Send one request; return the status. Reconnects once if a kept-alive socket was closed."""
        for attempt in (1, 2):
            fresh = self.writer is None
            if fresh:
                await self._open()
            try:
                self.writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
                resp_head = await self.reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                await self.close()
                if fresh or attempt == 2:
                    raise
                continue
            status = int(resp_head[9:12])
            lower = resp_head.lower()
            idx = lower.find(b"\r\ncontent-length:")
            if idx >= 0:
                end = lower.index(b"\r\n", idx + 2)
                await self.reader.readexactly(int(lower[idx + 17 : end]))
            elif b"transfer-encoding: chunked" in lower:
                while True:
                    size = int((await self.reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                    await self.reader.readexactly(size + 2)
                    if size == 0:
                        break
            if b"connection: close" in lower:
                await self.close()
            return status
        raise ConnectionError("unreachable")


async def _fire(
    url: str, headers: dict, make_body: Callable[[int], bytes], n: int, concurrency: int, rate: float | None
) -> LoadResult:
    result = LoadResult(n=n, concurrency=concurrency, elapsed=0.0)
    counter = itertools.count()
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    head = (
        f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        + "Content-Length: "
    ).encode()
    # Connections are opened before the clock starts: their setup is not a request's latency.
    conns = [_Conn(parts.hostname, parts.port or 80) for _ in range(concurrency)]
    await asyncio.gather(*(conn._open() for conn in conns))
    start = time.perf_counter()

    async def worker(conn: _Conn):
        try:
            while True:
                i = next(counter)
                if i >= n:
                    return
                if rate:  # open-loop schedule: request i goes out at start + i / rate
                    delay = start + i / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                body = make_body(i)
                result.sent_at[i] = time.time()
                t0 = time.perf_counter()
                try:
                    status = await conn.post(head, body)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    result.errors[type(exc).__name__] += 1
                    await conn.close()
                    continue
                result.latencies.append(time.perf_counter() - t0)
                result.statuses[status] += 1
        finally:
            await conn.close()

    await asyncio.gather(*(worker(conn) for conn in conns))
    result.elapsed = time.perf_counter() - start
    return result


def fire(
    url: str,
    headers: dict,
    make_body: Callable[[int], bytes],
    n: int,
    concurrency: int,
    rate: float | None = None,
) -> LoadResult:
    """POST ``make_body(i)`` for i in range(n) over ``concurrency`` keep-alive connections.

    With ``rate`` the requests follow a fixed schedule (open loop), else as fast as the
    server answers (closed loop).
    """
    return asyncio.run(_fire(url, headers, make_body, n, concurrency, rate))


def print_figures(title: str, figures: dict) -> None:
    print(f"\n== {title}")
    for k, v in figures.items():
        print(f"  {k:>22}: {v}")


def wait_processed(db_url: str, expected: int, timeout: float, what: str = "events processed") -> dict:
    """Wait until ``expected`` inbound events exist and none is still ``accepted``; return status counts."""

    def done():
        counts = dict(sql(db_url, "SELECT status, count(*) FROM alerts_inboundevent GROUP BY status"))
        total = sum(counts.values())
        return counts if total >= expected and not counts.get("accepted") else None

    return wait_until(done, timeout=timeout, interval=0.5, what=what)
