"""Rule evaluation cost per alert with 1, 5 and 500 enabled rules, in process (no database).

    .venv/bin/python bench/rules.py --alerts 20000

Rules that do not match the alert (the worst case: every alert falls through to the catch-all) are
evaluated by the plain first-match loop and by the compiled index (alerts.services.rule_index), in
the same run. Target (throughput issue): cost per alert flat within 20 % from 1 to 500 rules.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "psa.settings")

import django  # noqa: E402

django.setup()

from alerts.models import AlertRule  # noqa: E402
from alerts.services.rule_index import Misses, RuleIndex  # noqa: E402
from alerts.services.rules import first_failure  # noqa: E402


def rules(n: int) -> list[AlertRule]:
    rng = random.Random(n)
    out = []
    for i in range(n):  # realistic shapes, none of which match the alerts below
        c = {"providers": [rng.choice(["level", "tactical"])], "severities": rng.sample(["critical", "high"], 1)}
        if i % 3 == 0:
            c["text_contains"] = f"needle-{i}"
        if i % 7 == 0:
            c["clients"] = [10_000 + i]
        out.append(AlertRule(pk=i + 1, name=f"r{i}", position=i, conditions=c))
    return out


def contexts(n: int) -> list[dict]:
    rng = random.Random(1)
    return [{"provider": rng.choice(["ninjaone", "generic"]), "severity": rng.choice(["medium", "low"]),
             "alert_type": "disk", "asset_type": "server", "client_id": rng.randint(1, 50),
             "title": f"Disk C: {rng.randint(80, 99)}% full", "message": "x" * 200} for _ in range(n)]


def loop(rule_list, ctxs) -> float:
    t0 = time.perf_counter()
    for ctx in ctxs:
        misses = []
        for rule in rule_list:
            failed = first_failure(rule.conditions, ctx)
            if failed is None:
                break
            misses.append((rule, failed))
    return (time.perf_counter() - t0) / len(ctxs)


def indexed(rule_list, ctxs) -> float:
    index = RuleIndex.build(rule_list)
    t0 = time.perf_counter()
    for ctx in ctxs:
        index.match(ctx, Misses(keep=10))
    return (time.perf_counter() - t0) / len(ctxs)


def main() -> int:
    n_alerts = int(sys.argv[sys.argv.index("--alerts") + 1]) if "--alerts" in sys.argv else 20000
    ctxs = contexts(n_alerts)
    print(f"rule evaluation, {n_alerts} alerts, none matching (catch-all), with the trace's misses kept")
    print(f"{'rules':>6} {'loop us/alert':>14} {'index us/alert':>15}")
    base = None
    for n in (1, 5, 50, 500):
        rl = rules(n)
        a, b = loop(rl, ctxs), indexed(rl, ctxs)
        base = base or b
        print(f"{n:>6} {a * 1e6:>14.1f} {b * 1e6:>15.1f}   index vs 1 rule: {b / base:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
