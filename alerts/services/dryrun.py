"""Dry runs: what a rule (new or edited) or a maintenance window would have done to the last N alerts.

Nothing is written. The alerts are judged on the same context the pipeline uses (rules.alert_context),
against the rules as they are in the database now (not the per-process cache), with one query for the
alerts and one for the open tickets of their devices (the ``asset_has_open_ticket`` condition).

A rule's run answers, for every alert its conditions match: which rule catches that alert today,
whether the candidate would catch it at its position (an earlier rule may win), and the board and
priority it would give. A window's run answers which alerts it would have suppressed when they
arrived.
"""

from __future__ import annotations

from typing import Any

from alerts.models import Alert, AlertRule, MaintenanceWindow
from alerts.services import rules as rules_svc
from alerts.services import windows as windows_svc

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000


def clamp_limit(value: Any) -> int:
    """``limit`` of a dry-run request: a whole number, 1..MAX_LIMIT (default DEFAULT_LIMIT)."""
    if value in (None, ""):
        return DEFAULT_LIMIT
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError("limit must be a whole number.")  # noqa: TRY004 (answered as a 400)
    try:
        n = int(value)
    except ValueError:
        raise ValueError("limit must be a whole number.") from None
    if not 1 <= n <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}.")
    return n


def recent_alerts(limit: int) -> list[Alert]:
    """The tenant's newest ``limit`` alerts (test alerts left out) with what their context reads."""
    return list(
        Alert.objects.filter(is_test=False)
        .select_related("asset", "client", "organization")
        .order_by("-id")[:limit]  # newest stored first, on the primary key (no sort of the whole table)
    )


def _open_tickets(alerts: list[Alert]) -> dict[int, int]:
    """asset id -> its newest open (non-test) ticket, for all the alerts' assets in one query."""
    from tickets.models import Ticket

    asset_ids = {a.asset_id for a in alerts if a.asset_id}
    out: dict[int, int] = {}
    if not asset_ids:
        return out
    rows = (Ticket.objects.filter(asset_id__in=asset_ids, status__is_closed=False, is_test=False)
            .order_by("asset_id", "-created_at", "-id").values_list("asset_id", "pk"))
    for asset_id, pk in rows:
        out.setdefault(asset_id, pk)
    return out


def _first(rules: list[AlertRule], ctx: dict) -> AlertRule | None:
    return next((r for r in rules if rules_svc.conditions_match(r.conditions, ctx)), None)


def rule_order() -> tuple[list[AlertRule], AlertRule]:
    """Today's enabled ordinary rules by position, and the catch-all (made if missing)."""
    ordinary = list(AlertRule.objects.filter(enabled=True, is_catch_all=False)
                    .select_related("board", "priority").order_by("position", "id"))
    return ordinary, rules_svc.ensure_catch_all()


def dry_run_rule(candidate: AlertRule, *, limit: int = DEFAULT_LIMIT, replaces: int | None = None) -> dict[str, Any]:
    """Run ``candidate`` (unsaved; its ``position`` 1-based, None = last) over the last ``limit`` alerts.

    ``replaces``: the id of the rule being edited (today it is judged as saved; with the candidate in
    its place for ``would_apply``)."""
    from alerts.services.cache import pinned

    with pinned():  # priorities are read once for the whole run, not once per alert
        return _dry_run_rule(candidate, limit, replaces)


def _dry_run_rule(candidate: AlertRule, limit: int, replaces: int | None) -> dict[str, Any]:
    from tickets.models import Board, Priority

    alerts = recent_alerts(limit)
    open_tickets = _open_tickets(alerts)
    today, catch_all = rule_order()
    others = [r for r in today if r.pk != replaces]
    if candidate.is_catch_all:
        order = [*others]
    else:
        index = len(others) if not candidate.position else max(0, min(candidate.position - 1, len(others)))
        order = [*others[:index], candidate, *others[index:]]
    board = candidate.board or rules_svc.default_board()
    boards = {b.pk: b.name for b in Board.objects.all()}
    priorities = {p.pk: p.name for p in Priority.objects.all()}
    matches, would_apply = [], 0
    for alert in alerts:
        if alert.client_id is None:  # unmapped alerts never reach the rules
            continue
        ctx = rules_svc.alert_context(alert)
        ctx[rules_svc.OPEN_TICKET] = open_tickets.get(alert.asset_id)
        if not rules_svc.conditions_match(candidate.conditions, ctx):
            continue
        current = _first(today, ctx) or catch_all
        winner = candidate if candidate.is_catch_all else (_first(order, ctx) or catch_all)
        applies = winner is candidate
        would_apply += applies
        ticketing = candidate.action != "ignore"
        priority = rules_svc.priority_for(candidate, alert.severity) if ticketing else None
        matches.append({
            "alert": alert.pk,
            "title": alert.title,
            "severity": alert.severity,
            "provider": alert.provider,
            "client": alert.client_id,
            "client_name": ctx.get("client", ""),
            "device": ctx.get("device", ""),
            "state": alert.state,
            "ticket": alert.ticket_id,
            "current_rule": current.pk,
            "current_rule_name": current.name,
            "would_apply": applies,
            "action": candidate.action,
            "board": board.pk if ticketing and board is not None else None,
            "board_name": boards.get(board.pk, "") if ticketing and board is not None else "",
            "priority": priority.pk if priority is not None else None,
            "priority_name": priorities.get(priority.pk, "") if priority is not None else "",
        })
    return {"checked": len(alerts), "matched": len(matches), "would_apply": would_apply, "matches": matches}


def dry_run_window(window: MaintenanceWindow, *, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """The last ``limit`` alerts this window (unsaved; ``enabled`` not considered) would have suppressed
    when they arrived."""
    alerts = recent_alerts(limit)
    matches = []
    for alert in alerts:
        if alert.client_id is None:  # unmapped alerts stop before the windows
            continue
        ctx = {"provider": alert.provider, "client_id": alert.client_id, "asset_id": alert.asset_id}
        if not windows_svc.in_scope(window, ctx):
            continue
        at = alert.created_at or alert.first_seen
        occurrence = windows_svc.occurrence_at(window, at)
        if occurrence is None:
            continue
        matches.append({
            "alert": alert.pk,
            "title": alert.title,
            "severity": alert.severity,
            "provider": alert.provider,
            "client": alert.client_id,
            "client_name": alert.client.name if alert.client_id else "",
            "device": alert.asset.name if alert.asset_id else alert.device_name,
            "state": alert.state,
            "ticket": alert.ticket_id,
            "arrived_at": at.isoformat(),
            "occurrence_start": occurrence[0].isoformat(),
            "occurrence_end": occurrence[1].isoformat(),
        })
    return {"checked": len(alerts), "matched": len(matches), "matches": matches}
