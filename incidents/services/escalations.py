"""Escalations: stored and shown always; a ticket when the routing's ``escalation_tickets`` is on.

Same discipline as incidents (row lock, state comparison, ledger keys). The ticket goes to the client of
the one organization named, when it is mapped (security board), else to the fallback client's triage board.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from incidents.models import Escalation, IncidentRouting
from integrations.models import Integration
from integrations.records import EscalationRecord
from integrations.services import orgs

from . import content
from .router import (
    Change,
    close_ticket,
    load_routing,
    locked_ticket,
    new_changes,
    new_ticket,
    provider_name,
    record_changes,
    system_note,
)
from .routing import missing, priority_for


def _locked(integration: Integration, external_id: str) -> Escalation:
    Escalation.objects.bulk_create([Escalation(
        tenant_id=integration.tenant_id, integration=integration, provider=integration.provider,
        external_id=external_id,
    )], ignore_conflicts=True)
    return Escalation.objects.select_for_update().get(integration=integration, external_id=external_id)


def _state(record: EscalationRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if record.status:
        out["status"] = record.status
    if record.status or not record.partial or record.is_closed:
        out["is_closed"] = record.is_closed
    if record.severity:
        out["severity"] = record.severity
    if record.event_type.endswith(".overdue"):
        out["overdue"] = True
    return out


def process_escalation(integration: Integration, record: EscalationRecord, *, source: str,
                       inbound_event=None) -> dict[str, Any]:
    external_id = (record.external_id or "")[:255]
    if not external_id:
        return {"action": "escalation:ignored", "ticket": None}
    routing = load_routing(integration)
    name = provider_name(integration)
    with transaction.atomic():
        row = _locked(integration, external_id)
        known = row.provider_updated_at
        if record.updated_at and known and record.updated_at < known:
            return {"action": "escalation:stale", "ticket": row.ticket_id, "escalation": row.pk}
        old = dict(row.state or {})
        new = _state(record)
        first_sight = not old and row.ticket_id is None
        action = None
        ticket = locked_ticket(row.ticket_id)
        if ticket is None and _wants_ticket(routing, record, new):
            ticket = _create(integration, routing, record, name)
            row.ticket = ticket
            record_changes([Change("created", "created", f"ticket #{ticket.number}")], None, source, escalation=row)
            action = "ticket_created"
            old = {**new, "is_closed": False, "overdue": False}
        applied: list[Change] = []
        if ticket is not None:
            applied = _apply(row, ticket, routing, old, new, record, name, source)
        _describe(row, record)
        row.state = {**(row.state or {}), **new}
        row.is_closed = bool(row.state.get("is_closed"))
        row.overdue = bool(row.state.get("overdue")) and not row.is_closed
        if record.updated_at and (known is None or record.updated_at > known):
            row.provider_updated_at = record.updated_at
        row.save()
    if action is None:
        changed = any(old.get(k) != v for k, v in new.items())
        action = "stored" if first_sight else "updated" if applied or changed else "redelivery"
    return {"action": f"escalation:{action}", "ticket": row.ticket_id, "escalation": row.pk}


def _wants_ticket(routing: IncidentRouting | None, record: EscalationRecord, state: dict[str, Any]) -> bool:
    # Only open escalations: one resolved before we saw it asks nothing of anyone.
    return bool(routing and routing.escalation_tickets and not missing(routing) and not state.get("is_closed"))


def _create(integration: Integration, routing: IncidentRouting, record: EscalationRecord, name: str):
    resolved = None
    if len(record.organizations) == 1:
        org = record.organizations[0]
        resolved = orgs.resolve_organization(integration, org.external_id)
        if resolved is None:
            orgs.discover(integration, org.external_id, org.name)
    if resolved is not None:
        client, site, board = resolved.client, resolved.site, routing.security_board
    else:
        client, site, board = routing.fallback_client, None, routing.fallback_board
    ticket = new_ticket(
        title=content.escalation_title(record, name), description=content.escalation_description(record, name),
        client=client, site=site, board=board, priority=priority_for(routing, record.severity or "high"),
        category=routing.category, asset=None, provider=integration.provider,
        ref=f"{integration.provider}:escalation:{record.external_id}", test=False,
    )
    return locked_ticket(ticket.pk)


def _apply(row: Escalation, ticket, routing, old, new, record: EscalationRecord, name: str, source: str):
    stamp = record.updated_at.isoformat() if record.updated_at else f"n{row.changes.count()}"
    changes: list[Change] = []
    if new.get("is_closed") and not old.get("is_closed"):
        changes.append(Change("closed", f"closed:{new.get('status') or 'resolved'}@{stamp}"))
    if new.get("overdue") and not old.get("overdue") and not new.get("is_closed"):
        changes.append(Change("overdue", f"overdue@{stamp}"))
    changes = new_changes(changes, escalation=row)
    closed_by_person = ticket.status.is_closed
    for c in changes:
        if c.kind == "overdue":
            body = f"{name} says this escalation is overdue." + (f"\n{record.message}" if record.message else "")
        elif closed_by_person:
            body = f"{name} resolved the escalation. The ticket was already closed."
        elif routing is not None and routing.close_on_resolve:
            body = f"{name} resolved the escalation. " + close_ticket(ticket, routing.closed_status)
        else:
            body = f"{name} resolved the escalation: close this ticket when your work is done."
        record_changes([c], system_note(ticket, body), source, escalation=row)
    return changes


def _describe(row: Escalation, record: EscalationRecord) -> None:
    values = {"subject": record.subject[:500], "type": record.type[:255], "subtype": record.subtype[:255],
              "message": record.message, "severity": record.severity[:10], "status": record.status[:50],
              "url": record.url[:1000]}
    for attr, value in values.items():
        if value:
            setattr(row, attr, value)
    if record.organizations:
        row.organizations = [{"id": o.external_id, "name": o.name} for o in record.organizations[:50]]
