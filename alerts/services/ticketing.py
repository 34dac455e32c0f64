"""Tickets made and annotated by the pipeline (always through tickets.services)."""

from __future__ import annotations

import datetime as dt

from django.db.models import F, Q
from django.utils import timezone

from alerts.models import Alert, AlertRule
from tickets.models import Board, NoteKind, Status, Ticket, TicketSource
from tickets.services import add_note, create_ticket


def _board_for(rule: AlertRule, cfg) -> Board:
    if rule.board_id:
        return cfg.boards.get(rule.board_id) or Board.objects.get(pk=rule.board_id)
    return cfg.default_board


def _default_status(board: Board, cfg) -> Status | None:
    """tickets.services.default_status_for from the cached statuses (same choice, no query)."""
    usable = [s for s in cfg.statuses if s.board_id is None or s.board_id == board.pk]  # by position, id
    default = next((s for s in usable if s.is_default and s.board_id is not None), None)
    default = default or next((s for s in usable if s.is_default), None)
    return default or next((s for s in usable if not s.is_closed), None)


def _when(value) -> str:
    return (value or timezone.now()).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe(alert: Alert, ctx: dict) -> str:
    device = ctx.get("device") or alert.device_name or alert.device_external_id or "unknown device"
    return f"{alert.title or alert.condition_key} [{alert.severity}] on {device}"


def create_alert_ticket(alert: Alert, rule: AlertRule, ctx: dict) -> Ticket:
    from alerts.services.cache import tenant_config
    from alerts.services.rules import priority_for
    from alerts.services.templating import render_description, render_title

    cfg = tenant_config(alert.tenant_id)
    board = _board_for(rule, cfg)
    ticket = create_ticket(
        board=board,
        status=_default_status(board, cfg) if board is not None else None,
        title=render_title(rule.title_template, ctx),
        description=render_description(rule.description_template, ctx),
        client_id=alert.client_id,
        asset_id=alert.asset_id,
        # The device's last logged-in user, linked to a contact of the client by the device sync.
        contact_id=alert.asset.contact_id if alert.asset_id else None,
        priority=priority_for(rule, alert.severity),
        category_id=rule.category_id,
        assignee_id=rule.assignee_id,
        source=TicketSource.ALERT,
        source_ref=f"{alert.provider}:{alert.external_id}"[:255],
        is_test=alert.is_test,
        savepoint=False,  # the alert's transaction is undone as a whole on any error
    )
    add_note(
        ticket,
        kind=NoteKind.SYSTEM,
        body=(
            f"Created from {alert.provider} alert {alert.external_id}: {describe(alert, ctx)}, "
            f"first seen {_when(alert.first_seen)}. Rule: {rule.name}."
        ),
        touch=False,  # the ticket was inserted a moment ago in this transaction
        savepoint=False,  # the alert's transaction is undone as a whole on any error
    )
    return ticket


def record_occurrence(ticket_id: int, alert: Alert, ctx: dict, count: int, merged: bool = False,
                      note: str | None = "") -> bool:
    """Count a repeat firing on the open ticket; False (and nothing written) if the ticket is closed.

    ``merged``: another condition on the same device, put on this ticket by a rule that merges.
    ``note``: the note to write ("" for the default text, None for none: coalesced, alerts.services.occurrences)."""
    from alerts.services import rowsql

    # One UPDATE by primary key (no ORM query building): only while the ticket is open.
    bumped = rowsql.update_row(
        Ticket,
        ticket_id,
        {"updated_at": timezone.now()},
        raw_set="occurrence_count = occurrence_count + 1",
        where=f"tenant_id = %s AND status_id IN (SELECT id FROM {Status._meta.db_table} WHERE is_closed = %s)",
        params=(alert.tenant_id, False),
    )
    if not bumped:
        return False
    if note is None:
        return True
    if note:
        body = note
    elif merged:
        body = (f"Alert merged into this ticket (the device already had it open): {describe(alert, ctx)} "
                f"at {_when(alert.last_seen)}. {alert.provider} alert {alert.external_id}.")
    else:
        body = (f"Alert fired again (occurrence {count}): {describe(alert, ctx)} at {_when(alert.last_seen)}. "
                f"{alert.provider} alert {alert.external_id}.")
    add_note(
        Ticket(pk=ticket_id, tenant_id=alert.tenant_id),
        kind=NoteKind.SYSTEM,
        body=body,
        touch=False,  # updated_at was written with the occurrence count above
        savepoint=False,
    )
    return True


def add_alert_note(alert: Alert, body: str) -> bool:
    """A provider's note (e.g. an acknowledgement) on the alert's ticket, once: a replayed event whose
    note is already there adds nothing. False when nothing was added."""
    from tickets.models import TicketNote

    if not body or alert.ticket_id is None:
        return False
    if TicketNote.objects.filter(ticket_id=alert.ticket_id, kind=NoteKind.SYSTEM, body=body).exists():
        return False
    add_note(Ticket(pk=alert.ticket_id, tenant_id=alert.tenant_id), kind=NoteKind.SYSTEM, body=body)
    return True


def closed_status_for(board: Board) -> Status | None:
    """The board's closed status (a board-specific one before a shared one)."""
    return (
        Status.objects.filter(Q(board=board) | Q(board__isnull=True), is_closed=True)
        .order_by(F("board_id").asc(nulls_last=True), "position", "id")
        .first()
    )
