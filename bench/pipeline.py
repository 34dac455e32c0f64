"""End-to-end alert pipeline: alerts/s with Celery workers, and alert->ticket latency.

    .venv/bin/python bench/pipeline.py --n 3000 --rate 50 --duration 20

Three measurements, each with distinct conditions (every alert makes its own ticket):

1. end to end: N webhooks posted as fast as the server takes them while the Celery
   worker runs on the same machine; alerts/s = N / (last ticket created - first post).
2. backlog drain: N webhooks stored with no worker running, then the worker starts;
   alerts/s of the pipeline alone (worker ready -> last ticket created).
3. latency: webhooks at a fixed rate (open loop); per alert, ticket.created_at minus the
   moment its POST was sent (same machine clock); p50/p99/max.

Target (issue 3): >= 300 alerts/s end to end on this 2-core machine.
"""

from __future__ import annotations

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
    wait_until,
)

TICKETS_FOR_PREFIX = """
SELECT a.external_id, extract(epoch FROM t.created_at)
FROM alerts_alert a JOIN tickets_ticket t ON t.id = a.ticket_id
WHERE a.external_id LIKE %s
"""


def alert_tickets(db_url: str, prefix: str) -> dict[str, float]:
    return {ext: float(ts) for ext, ts in sql(db_url, TICKETS_FOR_PREFIX, (prefix + "%",))}


def wait_tickets(db_url: str, prefix: str, n: int, timeout: float) -> dict[str, float]:
    def done():
        got = alert_tickets(db_url, prefix)
        return got if len(got) >= n else None

    return wait_until(done, timeout=timeout, interval=0.5, what=f"{n} tickets for {prefix}*")


def main(argv=None) -> int:
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=3000, help="alerts for the throughput measurements")
    p.add_argument("--concurrency", type=int, default=16, help="connections for the throughput measurements")
    p.add_argument("--worker-concurrency", type=int, default=2, help="celery worker -c (prefork processes)")
    p.add_argument("--rate", type=float, default=50.0, help="alerts/s for the latency measurement")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of the latency measurement")
    p.add_argument("--timeout", type=float, default=900.0, help="give up waiting for tickets after this long")
    p.add_argument(
        "--skip", action="append", default=[], choices=["e2e", "drain", "latency"], help="skip a phase"
    )
    args = p.parse_args(argv)

    stack = None
    results: dict[str, dict] = {}
    try:
        stack = prepare(args, start_worker=True, worker_concurrency=args.worker_concurrency)
        stack.start()
        target = setup_generic(stack, orgs=10)
        headers = {"Content-Type": "application/json", target.header_name: target.secret}

        def body_for(prefix: str):
            # Distinct condition per alert, spread over 200 devices in 10 organizations.
            return lambda i: generic_body(f"{prefix}{i}", f"{prefix}cond-{i}", device=i % 200, org=i % 10)

        # Warm the worker and web processes (imports, connections, the org discovery path).
        fire(target.url, headers, body_for("warm-"), 100, 8)
        wait_tickets(args.database_url, "warm-", 100, args.timeout)

        if "e2e" not in args.skip:
            t0 = time.time()
            load = fire(target.url, headers, body_for("e2e-"), args.n, args.concurrency)
            got = wait_tickets(args.database_url, "e2e-", args.n, args.timeout)
            last = max(got.values())
            results["end_to_end"] = {
                "alerts": args.n,
                "post_seconds": round(load.elapsed, 2),
                "intake_accepted_per_s": load.figures()["accepted_per_s"],
                "seconds_to_last_ticket": round(last - t0, 2),
                "alerts_per_s": round(args.n / (last - t0), 1),
                "statuses": dict(load.statuses),
            }
            print_figures("end to end (post + process concurrently)", results["end_to_end"])

        if "drain" not in args.skip:
            stack.worker.stop()
            load = fire(target.url, headers, body_for("drain-"), args.n, args.concurrency)
            stack.start_worker()
            t0 = time.time()
            got = wait_tickets(args.database_url, "drain-", args.n, args.timeout)
            last = max(got.values())
            results["backlog_drain"] = {
                "alerts": args.n,
                "seconds": round(last - t0, 2),
                "alerts_per_s": round(args.n / (last - t0), 1),
                "statuses": dict(load.statuses),
            }
            print_figures("backlog drain (pipeline only, no concurrent intake)", results["backlog_drain"])

        if "latency" not in args.skip:
            n = int(args.rate * args.duration)
            load = fire(target.url, headers, body_for("lat-"), n, 8, rate=args.rate)
            got = wait_tickets(args.database_url, "lat-", n, args.timeout)
            lat = sorted(got[f"lat-{i}"] - sent for i, sent in load.sent_at.items() if f"lat-{i}" in got)
            results["latency"] = {
                "rate_per_s": args.rate,
                "alerts": n,
                "achieved_post_rate": round(n / load.elapsed, 1),
                "p50_ms": round(percentile(lat, 50) * 1000, 1),
                "p99_ms": round(percentile(lat, 99) * 1000, 1),
                "max_ms": round(lat[-1] * 1000, 1),
                "statuses": dict(load.statuses),
            }
            print_figures(f"alert -> ticket latency at {args.rate:g} alerts/s", results["latency"])

        tickets = sql(args.database_url, "SELECT count(*) FROM tickets_ticket WHERE source = 'alert'")[0][0]
        print(f"\nalert tickets in the database: {tickets}")
        if args.json:
            import json

            print(json.dumps(results))
        return 0
    finally:
        cleanup(args, stack)


if __name__ == "__main__":
    raise SystemExit(main())
