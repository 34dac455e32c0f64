"""The compiled rule index picks exactly the rule the plain first-match loop picks, and reports the
same misses, for random rule sets and alerts."""

from __future__ import annotations

import random

from alerts.models import AlertRule
from alerts.services.rule_index import Misses, RuleIndex
from alerts.services.rules import first_failure

PROVIDERS = ["ninjaone", "tactical", "level", "generic"]
SEVERITIES = ["critical", "high", "medium", "low", "info"]
TYPES = ["disk", "cpu", "offline", "patch"]


def random_rule(rng: random.Random, pk: int) -> AlertRule:
    c: dict = {}
    if rng.random() < 0.5:
        c["providers"] = rng.sample(PROVIDERS, rng.randint(1, 2))
    if rng.random() < 0.5:
        c["severities"] = rng.sample(SEVERITIES, rng.randint(1, 3))
    if rng.random() < 0.3:
        c["alert_types"] = rng.sample(TYPES, 1)
    if rng.random() < 0.2:
        c["clients"] = rng.sample([1, 2, 3], 1)
    if rng.random() < 0.2:
        c["text_contains"] = rng.choice(["C:", "disk", "DOWN"])
    if rng.random() < 0.1:
        c["text_regex"] = rng.choice([r"\d+%", r"^Disk"])
    return AlertRule(pk=pk, name=f"r{pk}", position=pk, conditions=c)


def random_ctx(rng: random.Random) -> dict:
    return {"provider": rng.choice(PROVIDERS), "severity": rng.choice(SEVERITIES),
            "alert_type": rng.choice(TYPES), "asset_type": "server", "client_id": rng.randint(1, 4),
            "title": rng.choice(["Disk C: 93%", "CPU high", "Host DOWN"]), "message": ""}


def naive(rules, ctx):
    misses = []
    for rule in rules:
        failed = first_failure(rule.conditions, ctx)
        if failed is None:
            return rule, misses
        misses.append((rule, failed))
    return None, misses


def test_index_agrees_with_the_first_match_loop():
    rng = random.Random(7)
    for trial in range(200):
        rules = [random_rule(rng, i + 1) for i in range(rng.randint(0, 40))]
        index = RuleIndex.build(rules)
        for _ in range(20):
            ctx = random_ctx(rng)
            expected, expected_misses = naive(rules, ctx)
            misses: list = []
            assert index.match(ctx, misses) is expected, (trial, ctx)
            assert [(r.pk, k) for r, k in misses] == [(r.pk, k) for r, k in expected_misses]


def test_misses_keep_a_few_and_count_the_rest():
    rules = [AlertRule(pk=i, name=f"r{i}", position=i, conditions={"providers": ["level"]}) for i in range(1, 501)]
    rules.append(AlertRule(pk=999, name="any", position=999, conditions={}))
    misses = Misses(keep=10)
    matched = RuleIndex.build(rules).match({"provider": "ninjaone", "severity": "high"}, misses)
    assert matched.pk == 999
    assert len(misses) == 10 and misses.total == 500
    assert misses[0][1] == "providers"
