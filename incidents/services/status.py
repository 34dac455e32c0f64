"""The status card's figures (and ``integrations/{provider}/status/``), in a few grouped queries."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q

from incidents.models import Escalation, Incident
from integrations.models import ExternalOrganization, Integration

from .routing import missing, missing_sentence, routing_for


def status_of(integration: Integration) -> dict[str, Any]:
    routing = routing_for(integration)
    lacking = missing(routing if routing.pk else None)
    org = ExternalOrganization.objects.filter(integration_id=integration.pk).aggregate(
        n=Count("id"), unmapped=Count("id", filter=Q(client__isnull=True)))
    real = Incident.objects.filter(integration_id=integration.pk, is_test=False)
    inc = real.aggregate(
        open=Count("id", filter=Q(is_closed=False)),
        held=Count("id", filter=Q(held=True)),
        open_closed_ticket=Count("id", filter=Q(is_closed=False, ticket__status__is_closed=True)),
        total=Count("id"),
    )
    esc = Escalation.objects.filter(integration_id=integration.pk).aggregate(
        open=Count("id", filter=Q(is_closed=False)), overdue=Count("id", filter=Q(overdue=True, is_closed=False)))
    failed = integration.last_poll_ok is False
    return {
        "account_name": integration.account_name,
        "connection_status": integration.status,
        "organization_count": org["n"],
        "unmapped_count": org["unmapped"],
        "open_incident_count": inc["open"],
        "incident_count": inc["total"],
        "held_incident_count": inc["held"],
        "open_incidents_with_closed_ticket": inc["open_closed_ticket"],
        "open_escalation_count": esc["open"],
        "overdue_escalation_count": esc["overdue"],
        "last_poll_at": integration.last_poll_at,
        "last_poll_ok": integration.last_poll_ok,
        "last_poll_error": integration.last_poll_error,
        "last_poll_message": f"Last poll failed: {integration.last_poll_error or 'unknown reason'}" if failed else "",
        "next_poll_at": integration.next_poll_at if not lacking else None,
        "poll_interval_minutes": integration.poll_interval_minutes,
        "routing_complete": not lacking,
        "routing_missing": lacking,
        "routing_message": missing_sentence(lacking),
    }
