"""Lifecycle: an alert resolves -> note, maybe close; a person closes -> reset in the provider (an outbox
side effect written in the closing transaction: alerts.services.effects).

Resolve is a conditional UPDATE (only an open alert, only if the event is not older than
what we already know), so stale and duplicate resolves change nothing. The ticket is closed
only when the rule allows it, nobody has touched the ticket, and no other alert on it is
still active, all checked under row locks taken in the same order as the dedup path
(group, then ticket) so the two never deadlock.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone

from alerts.models import Alert, AlertGroup, AlertState
from alerts.services import dedup, flapping, trace
from tickets.models import NoteKind, Ticket
from tickets.services import add_note, human_touched, update_ticket

log = logging.getLogger(__name__)

RESOLVABLE = (AlertState.ACTIVE, AlertState.SUPPRESSED, AlertState.UNMAPPED)


def _when(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def resolve_alert(alert: Alert, *, at: dt.datetime, why: str = "the provider reported it resolved") -> dict:
    """Resolve one alert and follow through on its ticket. Returns what happened."""
    outcome = {
        "alert": alert.pk,
        "action": "resolve_ignored",
        "ticket": alert.ticket_id,
        "rule": alert.rule_id,
    }
    with transaction.atomic():
        changed = Alert.objects.filter(pk=alert.pk, state__in=RESOLVABLE, last_event_at__lte=at).update(
            state=AlertState.RESOLVED, resolved_at=at, last_event_at=at, last_seen=timezone.now(),
            trace=trace.append(trace.resolved_entry(at, why)),
        )
        if not changed:
            return outcome  # already resolved, ignored, or this event is older than one we applied
        alert.state, alert.resolved_at, alert.last_event_at = AlertState.RESOLVED, at, at
        outcome["action"] = "resolved"
        if alert.group_id:  # lock order: group, then ticket (the dedup path's order)
            AlertGroup.objects.select_for_update().filter(pk=alert.group_id).first()
        if alert.ticket_id is None:
            if (
                alert.group_id
                and not Alert.objects.filter(group_id=alert.group_id, state=AlertState.ACTIVE).exists()
            ):
                AlertGroup.objects.filter(pk=alert.group_id, state="open").update(
                    state="closed", closed_at=timezone.now()
                )
            return outcome
        ticket = (
            Ticket.objects.select_for_update(of=("self",))
            .select_related("status", "board")
            .filter(pk=alert.ticket_id)
            .first()
        )
        if ticket is None:
            return outcome
        note = f"Alert resolved at {_when(at)} ({why}): {alert.title or alert.condition_key}."
        if ticket.status.is_closed:
            add_note(ticket, kind=NoteKind.SYSTEM, body=note, savepoint=False)
            _decided(alert, "ticket_already_closed", f"Its ticket #{ticket.number} was already closed.")
            return outcome
        rule = _rule_of(alert)
        others = (
            Alert.objects.filter(ticket_id=ticket.pk, state=AlertState.ACTIVE).exclude(pk=alert.pk).count()
        )
        touched = human_touched(ticket.pk)
        if rule is not None and not rule.auto_close:
            held = " The rule does not close tickets automatically."
        elif others:
            held = f" The ticket stays open: {others} other alert(s) on it are still active."
        elif touched:
            held = " The ticket stays open because someone has worked on it."
        elif cycles := flapping.is_flapping(alert, at):
            # Flapping: no close (and no note) at each resolve; it closes once stable (flapping.close_stable).
            flap_note = flapping.hold(alert, ticket, at, cycles)
            if flap_note:
                add_note(ticket, kind=NoteKind.SYSTEM, body=flap_note, savepoint=False)
            _decided(alert, "held", f"Ticket #{ticket.number} not closed: the condition is flapping.")
            return outcome
        else:
            closed = _closed_status(ticket.board)
            if closed is None:
                held = " The board has no closed status, so the ticket stays open."
            else:
                add_note(
                    ticket,
                    kind=NoteKind.SYSTEM,
                    body=note + " Closed automatically: nobody had worked on it.",
                    savepoint=False,
                )
                update_ticket(ticket, actor=None, changes={"status": closed})
                dedup.close_groups_of_ticket(ticket.pk)
                _decided(alert, "auto_closed", f"Ticket #{ticket.number} closed automatically: nobody had worked on it.")
                outcome["action"] = "resolved_ticket_closed"
                return outcome
        add_note(ticket, kind=NoteKind.SYSTEM, body=note + held, savepoint=False)
        _decided(alert, "held", f"Ticket #{ticket.number} not closed:{held}")
    return outcome


def _decided(alert: Alert, decision: str, detail: str) -> None:
    """The ticket's fate in the alert's trace (one UPDATE, only for an alert that has a ticket)."""
    Alert.objects.filter(pk=alert.pk).update(
        trace=trace.append(trace.ticket_decision_entry(decision, detail, alert.ticket_id)))


def _rule_of(alert: Alert):
    """The alert's rule, from the per-process configuration cache when it is there."""
    if not alert.rule_id:
        return None
    from alerts.services.cache import tenant_config

    cfg = tenant_config(alert.tenant_id)
    cached = next((r for r in (*cfg.rules, cfg.catch_all) if r is not None and r.pk == alert.rule_id), None)
    return cached or alert.rule


def _closed_status(board):
    """ticketing.closed_status_for from the cached statuses (same order: board's own, then shared)."""
    from alerts.services.cache import tenant_config

    statuses = tenant_config(board.tenant_id).statuses  # by position, id
    own = [s for s in statuses if s.is_closed and s.board_id == board.pk]
    shared = [s for s in statuses if s.is_closed and s.board_id is None]
    return (own or shared or [None])[0]


# -- a person closed the ticket ---------------------------------------------------------


def ticket_closed_by_user(ticket_id: int) -> bool:
    """Close the ticket's open groups now (the next firing opens a new ticket); True when
    there are active alerts to reset in their providers."""
    dedup.close_groups_of_ticket(ticket_id)
    return Alert.objects.filter(ticket_id=ticket_id, state=AlertState.ACTIVE).exists()


def mark_not_reset(ticket_id: int) -> int:
    """After a person's close: alerts whose rule or provider does not reset are recorded as skipped (the
    others have a reset side effect, alerts.services.effects)."""
    from integrations.registry import get_provider_class

    n = 0
    for alert in Alert.objects.filter(ticket_id=ticket_id, state=AlertState.ACTIVE).select_related("rule"):
        try:
            capable = get_provider_class(alert.provider).capabilities.reset_on_close
        except LookupError:
            capable = False
        if alert.rule_id and not alert.rule.reset_on_close:
            n += _mark(alert, "skipped", "The rule does not reset alerts on close.") == "skipped"
        elif not capable:
            n += _mark(alert, "skipped", "This provider cannot reset alerts.") == "skipped"
    return n


def reset_alerts_for_ticket(ticket_id: int) -> dict[str, int]:
    """Queue the resets of a closed ticket's still-active alerts (kept for the legacy task; a close writes
    them itself in its transaction). Returns how many side effects were written."""
    from alerts.services.effects import enqueue_resets

    with transaction.atomic():
        ticket = Ticket.objects.select_related("status").filter(pk=ticket_id).first()
        if ticket is None or not ticket.status.is_closed:
            return {"queued": 0}
        return {"queued": enqueue_resets(ticket, ticket.closed_at or timezone.now())}


def _mark(alert: Alert, status: str, reason: str) -> str:
    Alert.objects.filter(pk=alert.pk).exclude(reset_status="done").update(
        reset_status=status, reset_error=reason
    )
    return status
