"""Alert storm: many firings of ONE condition from many connections at once.

    .venv/bin/python bench/storm.py --n 10000 --concurrency 64

Posts N generic-provider triggers with distinct alert ids and the same condition
(same organization, device and condition) while the Celery worker runs, waits until
every event is processed, then prints the tickets created (must be 1) and the
ticket's occurrence count (must be N), with how long accepting and processing took.
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
    prepare,
    print_figures,
    setup_generic,
    sql,
    wait_processed,
)


def main(argv=None) -> int:
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=10000, help="firings of the one condition")
    p.add_argument("--concurrency", type=int, default=64, help="concurrent connections")
    p.add_argument("--worker-concurrency", type=int, default=2, help="celery worker -c (prefork processes)")
    p.add_argument(
        "--timeout", type=float, default=1800.0, help="give up waiting for processing after this long"
    )
    args = p.parse_args(argv)

    stack = None
    try:
        stack = prepare(args, start_worker=True, worker_concurrency=args.worker_concurrency)
        stack.start()
        target = setup_generic(stack, orgs=10)
        headers = {"Content-Type": "application/json", target.header_name: target.secret}

        t0 = time.time()
        load = fire(
            target.url,
            headers,
            lambda i: generic_body(f"storm-{i}", "disk-full", org=7, device=42),
            args.n,
            args.concurrency,
        )
        accept_s = time.time() - t0
        events = wait_processed(args.database_url, args.n, args.timeout)
        done_s = time.time() - t0

        tickets = sql(
            args.database_url, "SELECT id, occurrence_count FROM tickets_ticket WHERE source = 'alert'"
        )
        alerts = sql(args.database_url, "SELECT count(*), count(DISTINCT ticket_id) FROM alerts_alert")[0]
        groups = sql(
            args.database_url, "SELECT count(*), coalesce(sum(occurrence_count), 0) FROM alerts_alertgroup"
        )[0]
        notes = sql(args.database_url, "SELECT count(*) FROM tickets_ticketnote WHERE kind = 'system'")
        figures = {
            "firings_posted": args.n,
            "accepted_202": load.accepted,
            "http_statuses": dict(load.statuses),
            "post_seconds": round(accept_s, 2),
            "accepted_per_s": round(load.accepted / accept_s, 1),
            "p99_post_ms": load.figures()["p99_ms"],
            "event_statuses": events,
            "seconds_until_all_processed": round(done_s, 2),
            "tickets_created": len(tickets),
            "occurrence_count": tickets[0][1] if len(tickets) == 1 else [t[1] for t in tickets],
            "alert_rows": alerts[0],
            "tickets_linked_from_alerts": alerts[1],
            "alert_groups": groups[0],
            "system_notes": notes[0][0] if notes else None,
        }
        print_figures(
            f"storm: {args.n} firings of one condition from {args.concurrency} connections", figures
        )
        ok = len(tickets) == 1 and tickets[0][1] == args.n
        print(
            f"\n  tickets created = {len(tickets)} (must be 1); occurrence count = {figures['occurrence_count']} "
            f"(must be {args.n}): {'OK' if ok else 'WRONG'}"
        )
        if args.json:
            import json

            print(json.dumps(figures))
        return 0 if ok else 1
    finally:
        cleanup(args, stack)


if __name__ == "__main__":
    raise SystemExit(main())
