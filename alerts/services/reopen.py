"""Reopen window: a condition firing again within the rule's ``reopen_window_hours`` of the automatic close
of its ticket reopens that ticket instead of opening a new one, when nobody has touched it (a person's close
or a person's work means the next firing is news: a new ticket). 0 hours keeps a new ticket every time.
"""

from __future__ import annotations

import datetime as dt

from alerts.models import Alert, AlertGroup


def try_reopen(alert: Alert, rule, ctx: dict, now: dt.datetime) -> int | None:
    """Inside the firing's transaction, holding the new group's lock: reopen the condition's recently
    auto-closed ticket and return its id, or None."""
    from alerts.services import ticketing
    from tickets.models import NoteKind, Ticket
    from tickets.services import add_note, default_status_for, human_touched, update_ticket

    hours = getattr(rule, "reopen_window_hours", 0) or 0
    if not hours:
        return None
    previous = (AlertGroup.objects.filter(dedup_key=alert.dedup_key, state="closed", ticket_id__isnull=False,
                                          closed_at__gte=now - dt.timedelta(hours=hours))
                .order_by("-closed_at", "-id").values_list("ticket_id", flat=True).first())
    if previous is None:
        return None
    ticket = (Ticket.objects.select_for_update(of=("self",)).select_related("status", "board")
              .filter(pk=previous).first())
    if ticket is None or not ticket.status.is_closed or human_touched(ticket.pk) or not _closed_by_system(ticket):
        return None
    update_ticket(ticket, actor=None, changes={"status": default_status_for(ticket.board)})
    ticketing.record_occurrence(ticket.pk, alert, ctx, 0, note=None)
    add_note(ticket, kind=NoteKind.SYSTEM, savepoint=False, body=(
        f"Reopened automatically: the condition fired again within {hours} hour{'s' if hours != 1 else ''} of "
        f"the automatic close ({ticketing.describe(alert, ctx)}). {alert.provider} alert {alert.external_id}."))
    return ticket.pk


def _closed_by_system(ticket) -> bool:
    from tickets.models import ActivityKind, TicketActivity

    last = (TicketActivity.objects.filter(ticket_id=ticket.pk, kind=ActivityKind.STATUS)
            .order_by("-created_at", "-id").values_list("actor_id", flat=True).first())
    return last is None
