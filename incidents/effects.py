"""Write-back through the outbox (outbox.services): a person's close resolves the ticket's incidents in
their provider. One ``incident.write_back`` row per incident, written in the closing transaction
(tickets.signals.ticket_closing) and keyed by the close, so it survives a broker outage or a killed worker
and runs once per close. The provider's answer becomes a ticket note (incidents.services.writeback, which
keeps its own change ledger, so a repeated delivery adds no second note)."""

from __future__ import annotations

from integrations.errors import ProviderError, RateLimited, Unavailable
from outbox import registry
from outbox.models import EffectState
from outbox.registry import Permanent, Skip

WRITE_BACK = "incident.write_back"


def register() -> None:
    registry.register(WRITE_BACK, perform, record=record)


def enqueue(ticket) -> int:
    """Inside the closing transaction (reads only)."""
    from incidents.models import Incident
    from incidents.services.writeback import incidents_to_write_back
    from outbox.services import enqueue as write

    n = 0
    stamp = ticket.closed_at.isoformat() if ticket.closed_at else ""
    for incident_id, integration_id in Incident.objects.filter(pk__in=incidents_to_write_back(ticket.pk)).values_list(
            "pk", "integration_id"):
        n += bool(write(WRITE_BACK, f"incident:{incident_id}:closed:{ticket.pk}@{stamp}", label="Resolve the incident",
                        ticket_id=ticket.pk, integration_id=integration_id, tenant_id=ticket.tenant_id,
                        payload={"incident": incident_id}))
    return n


def perform(effect) -> str:
    from incidents.services.writeback import write_back

    incident_id = (effect.payload or {}).get("incident")
    if not incident_id or not effect.ticket_id:
        raise Skip("The incident or its ticket no longer exists.")
    try:
        code = write_back(incident_id, effect.ticket_id, final=False)
    except (Unavailable, RateLimited):
        raise  # retried with a backoff (Retry-After honoured); the give-up writes the note
    except ProviderError as exc:
        raise Permanent(str(exc) or type(exc).__name__) from None
    if code == "skipped":
        raise Skip("Nothing to resolve: the incident is closed, or the ticket was reopened.")
    return code


def record(effect, state: str, detail: str) -> None:
    from incidents.services.writeback import note_failure

    if state == EffectState.FAILED and effect.ticket_id:
        note_failure((effect.payload or {}).get("incident"), effect.ticket_id, detail)
