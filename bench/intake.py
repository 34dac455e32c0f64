"""Webhook intake throughput against gunicorn + PostgreSQL, next to a bare-INSERT floor.

    .venv/bin/python bench/intake.py --n 5000 --concurrency 32

Posts N generic-provider webhooks (distinct alert ids over a pool of conditions) from C
keep-alive connections and prints accepted/s and p50/p99 latency; then the same against
``/bench/bare-insert/`` (bench-only URLconf: the same Django stack doing one INSERT),
and the ratio intake / bare. Target (issue 3): ratio >= 0.6. Then webhooks at a fixed rate
(``--rate``, 300/s) for their latency (target: p99 < 50 ms).

No Celery worker runs during the measurement: events are stored and their processing
messages accumulate in Redis (the intake still publishes them), so the figure is the
cost of authenticate + size check + store + enqueue + 202, without the pipeline
competing for the two cores.
"""

from __future__ import annotations

import sys
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
)


def main(argv=None) -> int:
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=5000, help="requests per measurement")
    p.add_argument("--concurrency", type=int, default=32, help="concurrent connections")
    p.add_argument("--warmup", type=int, default=300, help="unmeasured requests first (connections, caches)")
    p.add_argument("--conditions", type=int, default=500, help="distinct conditions the alerts cycle over")
    p.add_argument(
        "--rounds", type=int, default=2, help="alternate bare/intake this many times; best of each is kept"
    )
    p.add_argument("--only", choices=["intake", "bare"], help="measure one side only")
    p.add_argument("--rate", type=float, default=300.0,
                   help="webhooks/s of the fixed-rate latency run after the rounds (0: skip it)")
    p.add_argument("--rate-seconds", type=float, default=10.0, help="length of the fixed-rate run")
    p.add_argument("--rate-concurrency", type=int, default=8,
                   help="connections of the fixed-rate run (an RMM sends over a few; 300/s at ~5 ms needs 2)")
    args = p.parse_args(argv)

    stack = None
    try:
        stack = prepare(args, start_worker=False)
        stack.start()
        bare_url = f"{stack.base_url}/bench/bare-insert/"
        json_headers = {"Content-Type": "application/json"}
        target = setup_generic(stack) if args.only != "bare" else None
        seq = {"n": 0}

        def intake_body(_i: int) -> bytes:
            seq["n"] += 1
            n = seq["n"]
            c = n % args.conditions
            return generic_body(f"bench-{n}", f"cond-{c}", device=c % 50, org=c % 5)

        def measure(side: str):
            if side == "bare":
                url, headers, body = bare_url, json_headers, (lambda i: generic_body(f"bare-{i}", "cond"))
            else:
                url, headers, body = (
                    target.url,
                    {**json_headers, target.header_name: target.secret},
                    intake_body,
                )
            fire(url, headers, body, args.warmup, args.concurrency)
            return fire(url, headers, body, args.n, args.concurrency)

        sides = [s for s in ("bare", "intake") if args.only in (None, s)]
        best: dict[str, dict] = {}
        for rnd in range(1, args.rounds + 1):
            for side in sides:
                figures = measure(side).figures()
                print_figures(f"round {rnd}: {side}", figures)
                if side not in best or figures["accepted_per_s"] > best[side]["accepted_per_s"]:
                    best[side] = figures

        stored_bare = sql(args.database_url, "SELECT count(*) FROM bench_bare_event")[0][0]
        print(f"\nbare rows stored: {stored_bare}")
        if target:
            stored = sql(args.database_url, "SELECT count(*) FROM alerts_inboundevent")[0][0]
            print(f"inbound events stored: {stored}")
        print("\n== summary (best round of each)")
        for side, f in best.items():
            print(
                f"  {side:>6}: {f['accepted_per_s']:8.1f} accepted/s  p50 {f['p50_ms']:7.2f} ms  p99 {f['p99_ms']:7.2f} ms"
                f"  statuses {f['statuses']}"
            )
        if len(best) == 2 and best["bare"]["accepted_per_s"]:
            ratio = best["intake"]["accepted_per_s"] / best["bare"]["accepted_per_s"]
            print(f"  ratio intake/bare: {ratio:.2f} (target >= 0.60: {'met' if ratio >= 0.6 else 'MISSED'})")
        fixed = None
        if target and args.rate:
            # Open loop: the schedule does not wait for answers, so a slow answer shows as latency.
            headers = {**json_headers, target.header_name: target.secret}
            fixed = fire(target.url, headers, intake_body, int(args.rate * args.rate_seconds), args.rate_concurrency,
                         rate=args.rate).figures()
            print_figures(f"intake at a fixed {args.rate:.0f} webhooks/s for {args.rate_seconds:.0f} s "
                          f"over {args.rate_concurrency} connections", fixed)
            print(f"  p99 {fixed['p99_ms']:.1f} ms (target < 50 ms: {'met' if fixed['p99_ms'] < 50 else 'MISSED'})")
        if args.json:
            import json

            print(json.dumps({"intake": best.get("intake"), "bare": best.get("bare"), "fixed_rate": fixed}))
        return 0
    finally:
        cleanup(args, stack)


if __name__ == "__main__":
    raise SystemExit(main())
