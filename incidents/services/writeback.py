"""Write-back: a person closed an incident's ticket -> resolve the incident in the provider (routing
setting ``write_back``, off by default). Runs in a Celery task, outside any transaction; the provider's
answer becomes a ticket note (a refusal says what to do in the provider). The router's own closes
(close-on-resolve) send no ticket-closed signal, so they are never echoed back."""

from __future__ import annotations

import logging

from django.db import transaction

from incidents.models import Incident
from integrations.base import opened
from integrations.errors import ProviderError, RateLimited, Unavailable
from psa.text import clean
from tickets.models import Ticket

from .router import (
    Change,
    locked_ticket,
    new_changes,
    process_incident,
    provider_name,
    record_changes,
    system_note,
)

log = logging.getLogger("incidents")


def incidents_to_write_back(ticket_id: int) -> list[int]:
    """Incidents of this ticket to resolve in their provider: real, still open there, write-back on."""
    return list(Incident.objects.filter(
        ticket_id=ticket_id, is_test=False, is_closed=False, integration__incident_routing__write_back=True,
        integration__enabled=True,
    ).values_list("pk", flat=True))


def write_back(incident_id: int, ticket_id: int, *, final: bool = True) -> str:
    """Resolve one incident in its provider. Huntress down or throttling raises (the task retries) unless
    ``final``; every other failure, and the last one, becomes a ticket note. Returns the outcome code."""
    incident = Incident.objects.select_related("integration").filter(pk=incident_id, ticket_id=ticket_id).first()
    if incident is None or incident.is_closed:
        return "skipped"
    ticket = Ticket.objects.filter(pk=ticket_id).select_related("status").first()
    if ticket is None or not ticket.status.is_closed:
        return "skipped"  # reopened meanwhile: nothing to resolve
    stamp = ticket.closed_at.isoformat() if ticket.closed_at else "?"
    try:
        with opened(incident.integration) as provider:
            result = provider.resolve_incident(incident.external_id)
    except ProviderError as exc:
        if not final and isinstance(exc, (Unavailable, RateLimited)):
            raise  # the task tries again later; anything else will not get better by waiting
        note_failure(incident_id, ticket_id, clean(str(exc), 500) or type(exc).__name__)
        return "failed"
    if not result.ok:
        _note(incident, ticket_id, f"write_back:{result.code}@{stamp}", result.message)
        return result.code
    note = _note(incident, ticket_id, f"write_back:resolved@{stamp}", result.message)
    if result.incident is not None:
        # Its closure is now known and explained by the note above: a later webhook or poll adds nothing.
        process_incident(incident.integration, result.incident, source="write_back", quiet_closure=True)
    else:
        _mark_closed(incident.pk, result.status or "resolved")
    return "resolved" if note is not None else "skipped"


def note_failure(incident_id: int, ticket_id: int, error: str):
    """The ticket note of a write-back that failed for good (also the outbox's give-up: incidents.effects)."""
    incident = Incident.objects.select_related("integration").filter(pk=incident_id).first()
    ticket = Ticket.objects.filter(pk=ticket_id).first()
    if incident is None or ticket is None:
        return None
    name = provider_name(incident.integration)
    stamp = ticket.closed_at.isoformat() if ticket.closed_at else "?"
    return _note(incident, ticket_id, f"write_back:failed@{stamp}",
                 f"Could not resolve the incident in {name}: {error}. Resolve it in the {name} portal.")


def _note(incident: Incident, ticket_id: int, key: str, body: str):
    with transaction.atomic():
        locked = Incident.objects.select_for_update().get(pk=incident.pk)
        change = new_changes([Change("write_back", key, body[:200])], incident=locked)
        ticket = locked_ticket(ticket_id)
        if not change or ticket is None:
            return None  # a redelivered task: already said
        note = system_note(ticket, body)
        record_changes(change, note, "write_back", incident=locked)
        return note


def _mark_closed(incident_id: int, status: str) -> None:
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident_id)
        incident.state = {**(incident.state or {}), "is_closed": True, "status": status}
        incident.is_closed, incident.status = True, status[:50]
        record_changes([Change("closed", f"closed:{status}@write_back")], None, "write_back", incident=incident)
        incident.save()
