"""Tickets made and annotated by the pipeline (always through tickets.services)."""

from __future__ import annotations

import datetime as dt

from django.db.models import F, Q
from django.utils import timezone

from alerts.models import Alert, AlertRule
from tickets.models import Board, NoteKind, Status, Ticket, TicketSource
from tickets.services import add_note, create_ticket


def _board_for(rule: AlertRule) -> Board:
    from alerts.services.rules import DEFAULT_BOARD_NAME

    if rule.board_id:
        return rule.board
    return (
        Board.objects.filter(name__iexact=DEFAULT_BOARD_NAME).first() or Board.objects.order_by("id").first()
    )


def _when(value) -> str:
    return (value or timezone.now()).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe(alert: Alert, ctx: dict) -> str:
    device = ctx.get("device") or alert.device_name or alert.device_external_id or "unknown device"
    return f"{alert.title or alert.condition_key} [{alert.severity}] on {device}"


def create_alert_ticket(alert: Alert, rule: AlertRule, ctx: dict) -> Ticket:
    from alerts.services.rules import priority_for
    from alerts.services.templating import render_description, render_title

    ticket = create_ticket(
        board=_board_for(rule),
        title=render_title(rule.title_template, ctx),
        description=render_description(rule.description_template, ctx),
        client_id=alert.client_id,
        asset_id=alert.asset_id,
        priority=priority_for(rule, alert.severity),
        category_id=rule.category_id,
        assignee_id=rule.assignee_id,
        source=TicketSource.ALERT,
        source_ref=f"{alert.provider}:{alert.external_id}"[:255],
    )
    add_note(
        ticket,
        kind=NoteKind.SYSTEM,
        body=(
            f"Created from {alert.provider} alert {alert.external_id}: {describe(alert, ctx)}, "
            f"first seen {_when(alert.first_seen)}. Rule: {rule.name}."
        ),
        touch=False,  # the ticket was inserted a moment ago in this transaction
    )
    return ticket


def record_occurrence(ticket_id: int, alert: Alert, ctx: dict, count: int) -> bool:
    """Count a repeat firing on the open ticket; False (and nothing written) if the ticket is closed."""
    bumped = Ticket.objects.filter(pk=ticket_id, status__is_closed=False).update(
        occurrence_count=F("occurrence_count") + 1, updated_at=timezone.now()
    )
    if not bumped:
        return False
    add_note(
        Ticket(pk=ticket_id, tenant_id=alert.tenant_id),
        kind=NoteKind.SYSTEM,
        body=(
            f"Alert fired again (occurrence {count}): {describe(alert, ctx)} at {_when(alert.last_seen)}. "
            f"{alert.provider} alert {alert.external_id}."
        ),
        touch=False,  # updated_at was written with the occurrence count above
    )
    return True


def closed_status_for(board: Board) -> Status | None:
    """The board's closed status (a board-specific one before a shared one)."""
    return (
        Status.objects.filter(Q(board=board) | Q(board__isnull=True), is_closed=True)
        .order_by(F("board_id").asc(nulls_last=True), "position", "id")
        .first()
    )
