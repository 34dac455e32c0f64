"""Ticket workflows. Every human action is written to TicketActivity."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from psa.tenancy import get_current_tenant_id
from tickets.models import (
    ActivityKind,
    Board,
    NoteKind,
    Status,
    Ticket,
    TicketActivity,
    TicketNote,
    TimeEntry,
)
from tickets.signals import ticket_closed_by_user, ticket_closing

from .numbering import next_ticket_number


class TicketError(ValueError):
    """A ticket change that breaks a rule; ``field`` names the offending field."""

    def __init__(self, message: str, field: str = "detail"):
        super().__init__(message)
        self.field = field


def default_status_for(board: Board) -> Status:
    status = (
        Status.objects.filter(Q(board=board) | Q(board__isnull=True), is_default=True)
        .order_by("board_id")  # board-specific default wins over the shared one (NULLs last)
        .first()
    )
    if status is None:
        status = Status.objects.filter(Q(board=board) | Q(board__isnull=True), is_closed=False).first()
    if status is None:
        raise TicketError(f"Board {board.name!r} has no open status to start tickets in.", "status")
    return status


def _check_status(board: Board, status: Status) -> None:
    if not status.applies_to(board):
        raise TicketError(f"Status {status.name!r} does not belong to board {board.name!r}.", "status")


def _record(ticket: Ticket, actor, activity_kind: str, /, **data: Any) -> None:
    # Positional-only kind: ``data`` may itself carry a "kind" (a note's kind).
    TicketActivity.objects.create(tenant_id=ticket.tenant_id, ticket=ticket, actor=actor, kind=activity_kind, data=data)


def create_ticket(
    *, actor=None, board: Board, title: str, status: Status | None = None, savepoint: bool = True, **fields: Any
) -> Ticket:
    """``savepoint=False`` for a caller whose own transaction is undone as a whole on any error
    (the alert pipeline): the writes then need no savepoint of their own (two fewer statements)."""
    tenant_id = get_current_tenant_id()
    status = status or default_status_for(board)
    _check_status(board, status)
    with transaction.atomic(savepoint=savepoint):
        ticket = Ticket(tenant_id=tenant_id, board=board, status=status, title=title, **fields)
        ticket.number = next_ticket_number(tenant_id)
        if status.is_closed:
            ticket.closed_at = timezone.now()
        ticket.save()
        _record(ticket, actor, ActivityKind.CREATED, source=ticket.source)
    return ticket


TRACKED = {"status": ActivityKind.STATUS, "assignee": ActivityKind.ASSIGNMENT, "priority": ActivityKind.PRIORITY}


@transaction.atomic
def update_ticket(ticket: Ticket, *, actor, changes: dict[str, Any]) -> Ticket:
    """Apply field changes under a row lock, recording one activity per tracked change."""
    locked = Ticket.objects.select_for_update().get(pk=ticket.pk)
    board = changes.get("board", locked.board)
    was_closed = Status.objects.get(pk=locked.status_id).is_closed
    if "board" in changes and "status" not in changes and not locked.status.applies_to(board):
        changes["status"] = default_status_for(board)
    if "status" in changes:
        _check_status(board, changes["status"])
    other = []
    for name, value in changes.items():
        old = getattr(locked, name)
        if old == value:
            continue
        setattr(locked, name, value)
        if name in TRACKED:
            _record(locked, actor, TRACKED[name], old=getattr(old, "pk", old), new=getattr(value, "pk", value))
        else:
            other.append(name)
    if other:
        _record(locked, actor, ActivityKind.UPDATE, fields=sorted(other))
    now_closed = locked.status.is_closed
    if now_closed and not was_closed:
        locked.closed_at = timezone.now()
    elif was_closed and not now_closed:
        locked.closed_at = None
    locked.save()
    if now_closed and not was_closed and actor is not None:
        ticket_closing.send(sender=Ticket, ticket=locked, actor=actor)  # side effects, in this transaction
        tid, tenant_id, actor_id = locked.pk, locked.tenant_id, actor.pk
        transaction.on_commit(
            lambda: ticket_closed_by_user.send(sender=Ticket, ticket_id=tid, tenant_id=tenant_id, actor_id=actor_id)
        )
    return locked


def add_note(
    ticket: Ticket, *, body: str, kind: str = NoteKind.INTERNAL, author=None, touch: bool = True, savepoint: bool = True
) -> TicketNote:
    """``touch=False``: the caller has just written the ticket's ``updated_at`` itself (saves an UPDATE).
    ``savepoint=False``: as for create_ticket."""
    if author is None and kind != NoteKind.SYSTEM:
        raise TicketError("Only system notes have no author.", "kind")
    if author is not None and kind == NoteKind.SYSTEM:
        raise TicketError("People cannot write system notes.", "kind")
    with transaction.atomic(savepoint=savepoint):
        note = TicketNote.objects.create(tenant_id=ticket.tenant_id, ticket=ticket, body=body, kind=kind, author=author)
        if author is not None:
            _record(ticket, author, ActivityKind.NOTE, note=note.pk, kind=kind)
        if touch:
            Ticket.objects.filter(pk=ticket.pk).update(updated_at=timezone.now())
    return note


@transaction.atomic
def add_time_entry(ticket: Ticket, *, user, minutes: int, note: str = "") -> TimeEntry:
    if minutes <= 0:
        raise TicketError("Minutes must be positive.", "minutes")
    entry = TimeEntry.objects.create(tenant_id=ticket.tenant_id, ticket=ticket, user=user, minutes=minutes, note=note)
    _record(ticket, user, ActivityKind.TIME, entry=entry.pk, minutes=minutes)
    return entry


def human_touched(ticket_id: int) -> bool:
    """Has a person touched this ticket since it was created? One query."""
    return (
        TicketActivity.objects.filter(ticket_id=ticket_id, actor__isnull=False)
        .exclude(kind=ActivityKind.CREATED)
        .exists()
    )
