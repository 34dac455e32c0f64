"""Flapping: a condition that resolves and fires again more than K times in W minutes does not close its
ticket at each resolve; the ticket waits until the condition has been stable (resolved) for S minutes,
then closes (if nobody touched it) with a note saying so.

Settings: PSA_FLAP_COUNT (K, 2), PSA_FLAP_WINDOW_MINUTES (W, 30), PSA_FLAP_STABLE_MINUTES (S, 10).
The count is the condition's resolves in the window (each one before the latest was followed by a
firing), read from the partial index ``alert_condition_resolves``. A resolve of a flapping condition sets
the group's ``flap_hold_at``; a firing clears it (dedup.upsert_group); ``close_stable`` (beat, every minute)
closes what has stayed resolved for S minutes. A condition's first resolves cannot be told from a normal
one, so its ticket closes then; with the rule's reopen window (alerts.services.reopen) the next firings
reopen that same ticket until the flapping is recognised.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from alerts.models import Alert, AlertGroup, AlertState

log = logging.getLogger(__name__)
NOTE_PREFIX = "Flapping:"


def flap_count() -> int:
    return int(getattr(settings, "PSA_FLAP_COUNT", 2))


def window() -> dt.timedelta:
    return dt.timedelta(minutes=float(getattr(settings, "PSA_FLAP_WINDOW_MINUTES", 30)))


def stable_for() -> dt.timedelta:
    return dt.timedelta(minutes=float(getattr(settings, "PSA_FLAP_STABLE_MINUTES", 10)))


def resolves_in_window(alert: Alert, at: dt.datetime) -> int:
    """Resolves of the alert's condition in the window up to ``at`` (this one included, written already)."""
    return Alert.objects.filter(dedup_key=alert.dedup_key, resolved_at__gte=at - window(),
                                resolved_at__lte=at).count()


def is_flapping(alert: Alert, at: dt.datetime) -> int:
    """The number of flap cycles (resolve then fire again) when it is more than K, else 0."""
    cycles = resolves_in_window(alert, at) - 1
    return cycles if cycles > flap_count() else 0


def _minutes(delta: dt.timedelta) -> str:
    m = delta.total_seconds() / 60
    return f"{m:g} minute{'s' if m != 1 else ''}"


def hold(alert: Alert, ticket, at: dt.datetime, cycles: int) -> str | None:
    """Inside resolve_alert's transaction (group and ticket locked): keep the ticket open. Returns the note to
    write (only the first time: the next resolves of the flapping condition add nothing)."""
    from tickets.models import TicketNote

    if alert.group_id:
        AlertGroup.objects.filter(pk=alert.group_id).update(flap_hold_at=at)
    if TicketNote.objects.filter(ticket_id=ticket.pk, body__startswith=NOTE_PREFIX).exists():
        return None
    return (f"{NOTE_PREFIX} {alert.title or alert.condition_key} resolved and fired again {cycles} times in "
            f"{_minutes(window())}. The ticket stays open until the condition has been stable (resolved) for "
            f"{_minutes(stable_for())}, then closes by itself if nobody has worked on it.")


def close_stable(now: dt.datetime | None = None, limit: int = 500) -> dict[str, int]:
    """Across tenants (beat): close the tickets of flapping conditions stable for S minutes."""
    from psa.tenancy import tenant_context

    now = now or timezone.now()
    rows = list(AlertGroup.objects.unscoped().filter(flap_hold_at__lte=now - stable_for(), state="open")
                .order_by("flap_hold_at").values_list("pk", "tenant_id")[:limit])
    closed = 0
    for pk, tenant_id in rows:
        with tenant_context(tenant_id):
            try:
                closed += _close_one(pk, now)
            except Exception:
                log.exception("closing the stable flapping group %s failed", pk)
    return {"due": len(rows), "closed": closed}


def _close_one(group_id: int, now: dt.datetime) -> int:
    from alerts.services import dedup
    from alerts.services.lifecycle import _closed_status, _rule_of
    from tickets.models import NoteKind, Ticket
    from tickets.services import add_note, human_touched, update_ticket

    with transaction.atomic():  # lock order: group, then ticket (the dedup path's)
        group = AlertGroup.objects.select_for_update(skip_locked=True).filter(
            pk=group_id, flap_hold_at__lte=now - stable_for(), state="open").first()
        if group is None:
            return 0
        AlertGroup.objects.filter(pk=group.pk).update(flap_hold_at=None)
        ticket = (Ticket.objects.select_for_update(of=("self",)).select_related("status", "board")
                  .filter(pk=group.ticket_id).first()) if group.ticket_id else None
        if ticket is None or ticket.status.is_closed:
            return 0
        if Alert.objects.filter(ticket_id=ticket.pk, state=AlertState.ACTIVE).exists() or human_touched(ticket.pk):
            return 0
        last = Alert.objects.filter(group_id=group.pk).order_by("-last_seen", "-id").first()
        rule = _rule_of(last) if last is not None else None
        closed = _closed_status(ticket.board)
        if (rule is not None and not rule.auto_close) or closed is None:
            return 0
        add_note(ticket, kind=NoteKind.SYSTEM, savepoint=False, body=(
            f"Closed automatically: the condition had been flapping and has now been stable (resolved) for "
            f"{_minutes(now - group.flap_hold_at)}, and nobody had worked on the ticket."))
        update_ticket(ticket, actor=None, changes={"status": closed})
        dedup.close_groups_of_ticket(ticket.pk)
    return 1
