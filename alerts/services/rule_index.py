"""Rules compiled once per configuration version, so 500 rules cost about what 5 do.

First match by position still decides. The index answers "which rules can possibly match this
alert" with bit sets: for each discrete condition (provider, severity, alert type, asset type,
client) it keeps, per value, the rules that accept it, plus the rules that do not constrain it;
ANDing those sets leaves the candidates, in position order. Only candidates are checked for the
rest (text contains, regex, "the asset already has an open ticket"), so the cost no longer grows
with the rules that cannot match. Built lazily from the per-process configuration cache
(alerts.services.cache) and dropped with it when the configuration changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# (condition key, alert context field), in the order a miss is reported.
DISCRETE = (("providers", "provider"), ("severities", "severity"), ("alert_types", "alert_type"),
            ("asset_types", "asset_type"), ("clients", "client_id"))


class Misses(list):
    """(rule, failed condition key) of rules tried before the match: the first ``keep`` of them,
    and ``total``, how many there were (a trace shows a few and counts the rest)."""

    def __init__(self, keep: int = 10):
        super().__init__()
        self.keep = keep
        self.total = 0

    def add(self, rule, key: str) -> None:
        self.total += 1
        if len(self) < self.keep:
            self.append((rule, key))


def _norm(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return str(value or "").strip().lower()


@dataclass
class RuleIndex:
    rules: list
    any_of: dict[str, int] = field(default_factory=dict)  # condition key -> rules that do not constrain it
    by_value: dict[str, dict[Any, int]] = field(default_factory=dict)  # condition key -> value -> rules
    residual: list = field(default_factory=list)  # per rule: does it have text/regex/open-ticket conditions

    @classmethod
    def build(cls, rules: list) -> RuleIndex:
        index = cls(rules=list(rules))
        for key, _field in DISCRETE:
            index.any_of[key] = 0
            index.by_value[key] = {}
        for i, rule in enumerate(index.rules):
            bit = 1 << i
            c = rule.conditions or {}
            for key, _field in DISCRETE:
                wanted = c.get(key)
                if not wanted:
                    index.any_of[key] |= bit
                    continue
                values = index.by_value[key]
                for value in wanted:
                    v = _norm(value)
                    values[v] = values.get(v, 0) | bit
            index.residual.append(bool(c.get("text_contains") or c.get("text_regex")
                                       or c.get("asset_has_open_ticket")))
        return index

    def _accepting(self, key: str, ctx_field: str, ctx: dict) -> int:
        return self.any_of[key] | self.by_value[key].get(_norm(ctx.get(ctx_field)), 0)

    def candidates(self, ctx: dict) -> int:
        mask = (1 << len(self.rules)) - 1
        for key, ctx_field in DISCRETE:
            mask &= self._accepting(key, ctx_field, ctx)
            if not mask:
                break
        return mask

    def _discrete_failure(self, i: int, ctx: dict) -> str:
        for key, ctx_field in DISCRETE:
            if not (self._accepting(key, ctx_field, ctx) >> i) & 1:
                return key
        return ""

    def match(self, ctx: dict, misses: Misses | list | None = None) -> Any:
        """The first rule (by position) whose conditions all hold, or None."""
        from alerts.services.rules import first_failure

        cand = self.candidates(ctx)
        tried = 0  # rules before the current candidate already reported as misses
        for i in _bits(cand):
            rule = self.rules[i]
            failed = first_failure(rule.conditions, ctx) if self.residual[i] else None
            if misses is not None:
                self._report(misses, tried, i, ctx)
                tried = i + 1
            if failed is None:
                return rule
            if misses is not None:
                _add(misses, rule, failed)
        if misses is not None:
            self._report(misses, tried, len(self.rules), ctx)
        return None

    def _report(self, misses, start: int, stop: int, ctx: dict) -> None:
        """Misses for rules start..stop-1, which the bit sets ruled out."""
        for j in range(start, stop):
            if isinstance(misses, Misses) and len(misses) >= misses.keep:
                misses.total += stop - j  # counted, not examined
                return
            _add(misses, self.rules[j], self._discrete_failure(j, ctx))


def _add(misses, rule, key: str) -> None:
    if isinstance(misses, Misses):
        misses.add(rule, key)
    else:
        misses.append((rule, key))


def _bits(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low
