"""Alert rules: the context an alert is judged on, first-match evaluation and the catch-all.

Rules are ordered by ``position``; the first *enabled* rule whose conditions all match
wins. Every condition is optional and an empty one matches everything. The tenant's
catch-all (``is_catch_all``) is evaluated last whatever its position and matches every
alert; a tenant that has none gets a default one, created idempotently (a partial unique
index allows one catch-all per tenant, so concurrent creators converge on one row).

``text_regex`` is evaluated with the ``regex`` library and a hard timeout (plus a cap on
the text searched), so a catastrophic pattern costs at most REGEX_TIMEOUT_SECONDS per alert
and simply does not match, instead of stalling an intake worker.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import regex
from django.db import IntegrityError, transaction

from alerts.models import AlertRule, RuleAction
from integrations.records import SEVERITIES

log = logging.getLogger(__name__)

CONDITION_KEYS = ("providers", "severities", "alert_types", "clients", "asset_types", "text_contains", "text_regex",
                  "asset_has_open_ticket")
LIST_KEYS = ("providers", "severities", "alert_types", "clients", "asset_types")
REGEX_TIMEOUT_SECONDS = 0.05
REGEX_MAX_PATTERN = 500
# Only this much of title + message is searched by text conditions.
TEXT_MAX_CHARS = 20_000
CATCH_ALL_NAME = "Catch-all"
DEFAULT_BOARD_NAME = "Alerts"
# Severity -> priority name used for the default catch-all and when a rule's map lacks a severity.
DEFAULT_PRIORITY_NAMES = {"critical": "Critical", "high": "High", "medium": "Medium", "low": "Low", "info": "Low"}


class ConditionError(ValueError):
    """Invalid rule conditions; ``errors`` maps a condition key to messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


# -- the context --------------------------------------------------------------------


def alert_context(alert) -> dict[str, Any]:
    """The fields rules, templates and windows see for one alert (all strings except the ids)."""
    asset = alert.asset if alert.asset_id else None
    client = alert.client if alert.client_id else None
    org = alert.organization if alert.organization_id else None
    org_name = org.name if org is not None else ""
    if not org_name and isinstance(alert.raw, dict):
        raw_org = alert.raw.get("organization")
        if isinstance(raw_org, dict) and isinstance(raw_org.get("name"), str):
            org_name = raw_org["name"]
    return {
        "title": alert.title or "",
        "message": alert.message or "",
        "severity": alert.severity or "",
        "device": (asset.name if asset is not None else "") or alert.device_name or "",
        "client": client.name if client is not None else "",
        "organization": org_name,
        "provider": alert.provider or "",
        "alert_type": alert.alert_type or "",
        "asset_type": asset.asset_type if asset is not None else "",
        "client_id": alert.client_id,
        "asset_id": alert.asset_id,
    }


# -- conditions ---------------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def compile_regex(pattern: str):
    """Compiled, case-insensitive; raises ``regex.error`` on a bad pattern."""
    return regex.compile(pattern, regex.IGNORECASE | regex.V0)


def clean_conditions(raw: Any) -> dict[str, Any]:
    """Validate and normalize a conditions object; raises ConditionError.

    Client ids are checked for type only: the API checks they belong to the tenant.
    """
    from assets.models import AssetType  # local: keep this module importable from anywhere

    if raw in (None, ""):
        return {}
    if not isinstance(raw, dict):
        raise ConditionError({"conditions": ["Must be an object."]})
    errors: dict[str, list[str]] = {}
    out: dict[str, Any] = {}
    for key in sorted(set(raw) - set(CONDITION_KEYS)):
        errors[key] = [f"Unknown condition. Allowed: {', '.join(CONDITION_KEYS)}."]
    for key in LIST_KEYS:
        value = raw.get(key)
        if value in (None, []):
            continue
        if not isinstance(value, list):
            errors[key] = ["Must be a list."]
            continue
        if key == "clients":
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                errors[key] = ["Must be a list of client ids."]
                continue
            out[key] = sorted(set(value))
            continue
        if not all(isinstance(v, str) and v.strip() for v in value):
            errors[key] = ["Must be a list of non-empty strings."]
            continue
        items = sorted({v.strip().lower() for v in value})
        allowed = {"severities": SEVERITIES, "asset_types": tuple(AssetType.values)}.get(key)
        bad = [v for v in items if allowed is not None and v not in allowed]
        if bad:
            errors[key] = [f"Unknown value(s) {', '.join(bad)}. Allowed: {', '.join(allowed)}."]
            continue
        out[key] = items
    text = raw.get("text_contains")
    if text not in (None, ""):
        if not isinstance(text, str):
            errors["text_contains"] = ["Must be a string."]
        else:
            out["text_contains"] = text
    pattern = raw.get("text_regex")
    if pattern not in (None, ""):
        if not isinstance(pattern, str):
            errors["text_regex"] = ["Must be a string."]
        elif len(pattern) > REGEX_MAX_PATTERN:
            errors["text_regex"] = [f"At most {REGEX_MAX_PATTERN} characters."]
        else:
            try:
                compile_regex(pattern)
            except (regex.error, ValueError, OverflowError) as exc:
                errors["text_regex"] = [f"Invalid regular expression: {exc}"]
            else:
                out["text_regex"] = pattern
    open_ticket = raw.get("asset_has_open_ticket")
    if open_ticket not in (None, False):
        if open_ticket is not True:
            errors["asset_has_open_ticket"] = ["Must be true or false."]
        else:
            out["asset_has_open_ticket"] = True
    if errors:
        raise ConditionError(errors)
    return out


def _text_of(ctx: dict[str, Any]) -> str:
    return f"{ctx.get('title') or ''}\n{ctx.get('message') or ''}"[:TEXT_MAX_CHARS]


def _regex_matches(pattern: str, text: str) -> bool:
    try:
        return compile_regex(pattern).search(text, timeout=REGEX_TIMEOUT_SECONDS) is not None
    except TimeoutError:
        log.warning("alert rule regex timed out; treated as no match")
        return False
    except (regex.error, ValueError):  # saved before validation existed, or edited in the database
        log.warning("alert rule regex is invalid; treated as no match")
        return False


def conditions_match(conditions: dict[str, Any] | None, ctx: dict[str, Any]) -> bool:
    """All present conditions hold for ``ctx`` (an empty condition matches everything)."""
    return first_failure(conditions, ctx) is None


def first_failure(conditions: dict[str, Any] | None, ctx: dict[str, Any]) -> str | None:
    """The key of the first condition that does not hold for ``ctx``; None when all hold (the trace
    names it for the rules that did not match)."""
    c = conditions or {}
    for key, field in (("providers", "provider"), ("severities", "severity"), ("alert_types", "alert_type"),
                       ("asset_types", "asset_type")):
        wanted = c.get(key)
        if wanted and str(ctx.get(field) or "").strip().lower() not in {str(w).lower() for w in wanted}:
            return key
    clients = c.get("clients")
    if clients and ctx.get("client_id") not in set(clients):
        return "clients"
    needle = c.get("text_contains")
    if needle and str(needle).casefold() not in _text_of(ctx).casefold():
        return "text_contains"
    pattern = c.get("text_regex")
    if pattern and not _regex_matches(pattern, _text_of(ctx)):
        return "text_regex"
    # Last: the only condition that may need a query, made only when every other one held.
    if c.get("asset_has_open_ticket") and open_ticket_of(ctx) is None:
        return "asset_has_open_ticket"
    return None


OPEN_TICKET = "open_ticket_id"


def open_ticket_of(ctx: dict[str, Any]) -> int | None:
    """The newest open (non-test) ticket of the alert's asset; asked once per alert and kept in ``ctx``
    (a dry run fills it for many alerts with one query)."""
    if OPEN_TICKET not in ctx:
        from tickets.models import Ticket

        asset_id = ctx.get("asset_id")
        ctx[OPEN_TICKET] = (
            Ticket.objects.filter(asset_id=asset_id, status__is_closed=False, is_test=False)
            .order_by("-created_at", "-id").values_list("pk", flat=True).first()
            if asset_id else None
        )
    return ctx[OPEN_TICKET]


# -- matching and the catch-all -----------------------------------------------------


def match_rule(ctx: dict[str, Any], misses: list | None = None) -> AlertRule:
    """The first enabled rule (by position) matching ``ctx``; else the tenant's catch-all.

    ``misses`` (a list, or a rule_index.Misses that keeps the first few and counts the rest) receives
    ``(rule, failed condition key)`` for each rule before it.
    Rules come from the per-process cache (alerts.services.cache): treat them as read-only.
    """
    from alerts.services.cache import tenant_config
    from psa.tenancy import get_current_tenant_id

    from alerts.services.rule_index import RuleIndex

    cfg = tenant_config(get_current_tenant_id())
    if cfg.rule_index is None:  # compiled once per configuration version (the cache drops it on change)
        cfg.rule_index = RuleIndex.build(cfg.rules)
    rule = cfg.rule_index.match(ctx, misses)
    if rule is not None:
        return rule
    return cfg.catch_all if cfg.catch_all is not None else ensure_catch_all()


def ensure_catch_all() -> AlertRule:
    """The current tenant's catch-all, created with sensible defaults when missing.

    Safe under concurrency: the partial unique index ``one_catch_all_per_tenant`` lets
    exactly one insert win; the losers read the winner's row.
    """
    existing = AlertRule.objects.filter(is_catch_all=True).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return _create_default_catch_all()
    except IntegrityError:
        return AlertRule.objects.get(is_catch_all=True)


def default_board():
    """The board alert tickets go to when a rule names none: "Alerts", else the oldest board."""
    from tickets.models import Board

    return Board.objects.filter(name__iexact=DEFAULT_BOARD_NAME).first() or Board.objects.order_by("id").first()


def _create_default_catch_all() -> AlertRule:
    board = default_board()
    last = AlertRule.objects.filter(is_catch_all=False).order_by("-position").values_list("position", flat=True).first()
    return AlertRule.objects.create(
        name=CATCH_ALL_NAME,
        is_catch_all=True,
        enabled=True,
        position=(last or 0) + 1,
        conditions={},
        action=RuleAction.CREATE_TICKET,
        board=board,
        priority=None,
        priority_map=default_priority_map(),
        auto_close=True,
        reset_on_close=True,
    )


def default_priority_map() -> dict[str, int]:
    """{severity: priority id} by the usual names (critical->Critical, ..., info->Low) where they exist."""
    from tickets.models import Priority

    by_name = {p.name.lower(): p.pk for p in Priority.objects.all()}
    return {sev: by_name[name.lower()] for sev, name in DEFAULT_PRIORITY_NAMES.items() if name.lower() in by_name}


def priority_for(rule: AlertRule, severity: str):
    """The rule's fixed priority; else its map's entry for ``severity``; else the priority named
    for the severity (Critical/High/Medium/Low); None when nothing fits."""
    from alerts.services.cache import tenant_config
    from psa.tenancy import get_current_tenant_id
    from tickets.models import Priority

    priorities = tenant_config(get_current_tenant_id()).priorities  # by position, id
    by_id = {p.pk: p for p in priorities}
    if rule.priority_id:
        return by_id.get(rule.priority_id) or Priority.objects.filter(pk=rule.priority_id).first()
    mapped = (rule.priority_map or {}).get(severity)
    if mapped is not None:
        found = by_id.get(mapped) if isinstance(mapped, int) else Priority.objects.filter(pk=mapped).first()
        if found is not None:
            return found
    name = DEFAULT_PRIORITY_NAMES.get(severity)
    if name is None:
        return None
    return next((p for p in priorities if p.name.lower() == name.lower()), None)



# -- order --------------------------------------------------------------------------
# Positions of ordinary rules are 1..n without gaps; the catch-all sits at n+1. Every
# change takes a row lock on the tenant's catch-all first, which serializes concurrent
# reorders of one tenant without blocking any other tenant.


class OrderError(ValueError):
    pass


def _locked_rules() -> list[AlertRule]:
    catch_all = ensure_catch_all()
    AlertRule.objects.select_for_update().filter(pk=catch_all.pk).values_list("pk", flat=True).first()
    return list(AlertRule.objects.select_for_update().filter(is_catch_all=False).order_by("position", "id"))


def _renumber(rows: list[AlertRule]) -> None:
    for i, rule in enumerate(rows, start=1):
        if rule.position != i:
            AlertRule.objects.filter(pk=rule.pk).update(position=i)
            rule.position = i
    AlertRule.objects.filter(is_catch_all=True).exclude(position=len(rows) + 1).update(position=len(rows) + 1)
    # QuerySet.update sends no signals: tell the pipeline's cache the order changed.
    from alerts.services.cache import config_changed
    from psa.tenancy import get_current_tenant_id

    config_changed(get_current_tenant_id())


@transaction.atomic
def place_rule(rule: AlertRule, position: int | None = None) -> None:
    """Put ``rule`` at 1-based ``position`` (None = last before the catch-all), shifting the others."""
    if rule.is_catch_all:
        return
    rows = [r for r in _locked_rules() if r.pk != rule.pk]
    index = len(rows) if position is None else max(0, min(int(position) - 1, len(rows)))
    rows.insert(index, rule)
    _renumber(rows)


@transaction.atomic
def close_gaps() -> None:
    """Renumber after a delete."""
    _renumber(_locked_rules())


@transaction.atomic
def delete_rule(rule: AlertRule) -> None:
    if rule.is_catch_all:
        raise OrderError("The catch-all rule cannot be deleted; change its action to 'ignore' instead.")
    rule.delete()
    close_gaps()


@transaction.atomic
def reorder(ids: list[int]) -> list[AlertRule]:
    """The listed rules first, in that order; unlisted ones keep their relative order after them.

    The catch-all's id may be listed (it stays last). Unknown ids -> OrderError.
    """
    if len(set(ids)) != len(ids):
        raise OrderError("Each rule id may appear only once.")
    rows = _locked_rules()
    by_id = {r.pk: r for r in rows}
    catch_all_ids = set(AlertRule.objects.filter(is_catch_all=True).values_list("pk", flat=True))
    unknown = [i for i in ids if i not in by_id and i not in catch_all_ids]
    if unknown:
        raise OrderError(f"Unknown rule id(s): {', '.join(map(str, unknown))}.")
    listed = [by_id[i] for i in ids if i in by_id]
    rest = [r for r in rows if r.pk not in set(ids)]
    _renumber(listed + rest)
    return listed + rest


@transaction.atomic
def move(rule: AlertRule, direction: str) -> None:
    """Swap ``rule`` with its neighbour ("up" = earlier); a no-op at either end."""
    if rule.is_catch_all:
        raise OrderError("The catch-all is always evaluated last and cannot be moved.")
    if direction not in ("up", "down"):
        raise OrderError("direction must be 'up' or 'down'.")
    rows = _locked_rules()
    index = next(i for i, r in enumerate(rows) if r.pk == rule.pk)
    other = index - 1 if direction == "up" else index + 1
    if 0 <= other < len(rows):
        rows[index], rows[other] = rows[other], rows[index]
    _renumber(rows)
