"""Fair share: one tenant's storm against another tenant's trickle, in one invocation.

    .venv/bin/python bench/fairness.py --storm 10000 --concurrency 32

Three phases on one live stack (gunicorn + a Celery worker, PostgreSQL, Redis):
1. idle: tenant B posts single alerts on a quiet system; their alert -> ticket latency is B's floor;
2. alone: tenant A posts the storm (distinct conditions) as fast as it can; how long until drained;
3. together: A posts the storm again while B posts one alert every half second; B's latency
   percentiles during the storm, and A's drain time beside B.
Prints the figures (targets from the fairness issue: B p99 < 1 s, B p50 within 2x of idle, A's
drain no more than 10 % slower than alone). Asserts nothing about speed.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    base_parser,
    cleanup,
    fire,
    generic_body,
    percentile,
    prepare,
    print_figures,
    setup_generic,
    sql,
    wait_processed,
)


def ticketed_at(conn, external_id: str, timeout: float = 120.0) -> float:
    """Wall-clock time at which the alert's ticket was first seen (polled every 5 ms on one open
    connection: a new connection per poll costs a backend start each time, which under load added
    tens of milliseconds to every sample and load of its own)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        row = conn.execute("SELECT ticket_id FROM alerts_alert WHERE external_id = %s", (external_id,)).fetchone()
        if row and row[0]:
            return time.time()
        time.sleep(0.005)
    raise SystemExit(f"alert {external_id} was never ticketed")


def trickle(db_url: str, target, prefix: str, n: int, every: float, stop=None,
            posts: list[float] | None = None, starts: list[float] | None = None) -> list[float]:
    """Post one B alert every ``every`` seconds (at most ``n``); latency of each to its ticket (and, in
    ``posts``, of each webhook's answer: the part of the latency spent in intake; in ``starts``, when
    each was posted)."""
    import httpx
    import psycopg

    latencies = []
    headers = {"Content-Type": "application/json", target.header_name: target.secret}
    with httpx.Client(timeout=30) as http, psycopg.connect(
            db_url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        for i in range(n):
            if stop is not None and stop.is_set():
                break
            t0 = time.time()
            alert_id = f"{prefix}-{i}"
            r = http.post(target.url, content=generic_body(alert_id, alert_id, org=0), headers=headers)
            if r.status_code != 202:
                raise SystemExit(f"B's webhook answered {r.status_code}")
            if posts is not None:
                posts.append(time.time() - t0)
            if starts is not None:
                starts.append(t0)
            latencies.append(ticketed_at(conn, alert_id) - t0)
            time.sleep(max(0.0, every - (time.time() - t0)))
    return latencies


def trickle_process(db_url: str, target, stop, results) -> None:
    """B's trickle during A's storm, in a process of its own; sends (latencies, answers, starts) back."""
    posts: list[float] = []
    starts: list[float] = []
    latencies = trickle(db_url, target, "during", 10_000, 0.5, stop, posts=posts, starts=starts)
    results.put((latencies, posts, starts))


def breakdown(db_url: str, prefix: str, starts: list[float], posts: list[float], latencies: list[float],
              posted_at: float) -> dict:
    """Where B's samples spent their time, from the stored events' own timestamps (the same clock as
    the bench's): median ms per part, while A was posting and while A only drained."""
    import psycopg

    with psycopg.connect(db_url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        found = conn.execute(
            "SELECT convert_from(body, 'UTF8')::jsonb ->> 'alert_id', extract(epoch from received_at),"
            " extract(epoch from claimed_at), extract(epoch from processed_at) FROM alerts_inboundevent"
            " WHERE convert_from(body, 'UTF8') LIKE %s", (f'%"{prefix}-%',)).fetchall()
    stamps = {alert_id: tuple(map(float, times)) for alert_id, *times in found if None not in times}
    parts = {"posting": [], "draining": []}
    for i, (t0, answer, latency) in enumerate(zip(starts, posts, latencies)):
        if f"{prefix}-{i}" not in stamps:
            continue
        stored, claimed, processed = stamps[f"{prefix}-{i}"]
        parts["posting" if t0 < posted_at else "draining"].append(
            (stored - t0, answer, claimed - stored, processed - claimed, t0 + latency - processed))
    names = ("sent_to_stored", "webhook_answer", "stored_to_claimed", "claimed_to_processed", "processed_to_seen")
    return {phase: {name: round(statistics.median(r[k] for r in rows) * 1000, 1) for k, name in enumerate(names)}
            for phase, rows in parts.items() if rows}


def storm(target, prefix: str, n: int, concurrency: int):
    headers = {"Content-Type": "application/json", target.header_name: target.secret}
    return fire(target.url, headers, lambda i: generic_body(f"{prefix}-{i}", f"{prefix}-cond-{i}", org=0,
                                                            device=i % 500), n, concurrency)


def drained(db_url: str, tenant_name: str, prefix: str, n: int, timeout: float) -> None:
    def done():
        rows = sql(db_url, "SELECT count(*) FROM alerts_alert WHERE external_id LIKE %s", (f"{prefix}-%",))
        return rows[0][0] >= n
    from bench.common import wait_until

    wait_until(done, timeout=timeout, interval=0.2, what=f"{tenant_name}'s {n} alerts processed")


def pct(values: list[float]) -> dict:
    s = sorted(values)
    return {"n": len(s), "p50_ms": round(percentile(s, 50) * 1000, 1), "p99_ms": round(percentile(s, 99) * 1000, 1),
            "max_ms": round(max(s) * 1000, 1) if s else None}


def main(argv=None) -> int:
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--storm", type=int, default=10000, help="alerts in tenant A's storm (distinct conditions)")
    p.add_argument("--concurrency", type=int, default=32, help="A's connections")
    p.add_argument("--idle-samples", type=int, default=20, help="B's alerts on the idle system")
    p.add_argument("--worker-concurrency", type=int, default=2, help="celery worker -c")
    p.add_argument("--timeout", type=float, default=1800.0)
    args = p.parse_args(argv)
    stack = None
    try:
        stack = prepare(args, start_worker=True, worker_concurrency=args.worker_concurrency)
        stack.start()
        a = setup_generic(stack, "Storm MSP", orgs=1, email="storm@bench.example")
        b = setup_generic(stack, "Quiet MSP", orgs=1, email="quiet@bench.example")
        load = [os.getloadavg()[0]]

        idle_posts: list[float] = []
        idle = trickle(args.database_url, b, "idle", args.idle_samples, 0.2, posts=idle_posts)
        load.append(os.getloadavg()[0])

        t0 = time.time()
        storm(a, "alone", args.storm, args.concurrency)
        drained(args.database_url, "A", "alone", args.storm, args.timeout)
        alone_s = time.time() - t0
        load.append(os.getloadavg()[0])

        # B posts from its own process: a thread beside the load generator's event loop would wait for
        # the GIL while A posts, and that wait would be counted as B's latency.
        ctx = multiprocessing.get_context("spawn")
        stop = ctx.Event()
        results = ctx.Queue()
        b_proc = ctx.Process(target=trickle_process, args=(args.database_url, b, stop, results), daemon=True)
        b_proc.start()
        t0 = time.time()
        storm(a, "beside", args.storm, args.concurrency)
        posted_at = time.time()
        drained(args.database_url, "A", "beside", args.storm, args.timeout)
        beside_s = time.time() - t0
        stop.set()
        during, during_posts, during_starts = results.get(timeout=60)
        b_proc.join(60)
        load.append(os.getloadavg()[0])
        wait_processed(args.database_url, 0, args.timeout)

        idle_p50 = statistics.median(idle) if idle else float("nan")
        # B's samples split by what A was doing: still posting (A's intake and drain share the cores)
        # or only draining its backlog.
        while_posting = [lat for lat, at in zip(during, during_starts) if at < posted_at]
        while_draining = [lat for lat, at in zip(during, during_starts) if at >= posted_at]
        figures = {
            "storm_alerts": args.storm,
            "B_idle": pct(idle),
            "B_during_A_storm": pct(during),
            "B_during_A_posting": pct(while_posting) if while_posting else None,
            "B_during_A_draining_only": pct(while_draining) if while_draining else None,
            "B_webhook_answer_idle": pct(idle_posts),
            "B_webhook_answer_during": pct(during_posts),
            "B_p50_vs_idle": round(statistics.median(during) / idle_p50, 2) if during and idle else None,
            "B_parts_median_ms": breakdown(args.database_url, "during", during_starts, during_posts, during,
                                           posted_at),
            "A_posting_beside_B_s": round(posted_at - t0, 2),
            "A_drain_alone_s": round(alone_s, 2),
            "A_drain_beside_B_s": round(beside_s, 2),
            "A_slowdown": round(beside_s / alone_s - 1, 3),
            "load_avg_1m (start, idle, alone, together)": [round(x, 2) for x in load],
        }
        print_figures(f"fairness: tenant A storm of {args.storm} vs tenant B every 0.5 s", figures)
        if args.json:
            import json

            print(json.dumps(figures))
        return 0
    finally:
        cleanup(args, stack)


if __name__ == "__main__":
    raise SystemExit(main())
