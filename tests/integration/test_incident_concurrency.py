"""One ticket per incident and one note per change under real concurrency: threads, each on its own
PostgreSQL connection, hand the same records to the router at the same moment (as a webhook worker and a
poll worker would), phase by phase (new report, severity change, closure)."""

from __future__ import annotations

import pytest

from incidents.models import Incident, IncidentChange
from incidents.services import routing as routing_service
from incidents.services.router import process_incident
from integrations.models import Integration, IntegrationStatus
from psa.models import Client
from psa.tenancy import tenant_context
from tests.helpers import run_together as together
from tickets.models import Board, NoteKind, Priority, Status, Ticket, TicketNote

from .test_incident_router import record

THREADS = 8
INCIDENTS = 12

pytestmark = pytest.mark.django_db(transaction=True)


def run_together(fn, args_per_thread):
    _, errors = together(fn, args_per_thread)
    assert not errors, errors


def test_concurrent_webhook_and_poll_records_make_one_ticket_and_one_note_per_change(make_tenant):
    tenant = make_tenant().tenant
    with tenant_context(tenant):
        integration = Integration.objects.create(provider="huntress", status=IntegrationStatus.CONNECTED)
        prio = {p.name: p for p in Priority.objects.all()}
        routing_service.save(integration, {
            "security_board": Board.objects.get(name="Security"), "fallback_board": Board.objects.get(name="Triage"),
            "fallback_client": Client.objects.create(name="Security Triage"), "priority_critical": prio["Critical"],
            "priority_high": prio["High"], "priority_low": prio["Low"], "close_on_resolve": True,
            "closed_status": Status.objects.get(name="Closed"),
        })

    def handle(rec, source):
        with tenant_context(tenant):
            process_incident(Integration.objects.get(pk=integration.pk), rec, source=source)

    phases = [
        lambda i: record(str(i), org=None, severity="high"),
        lambda i: record(str(i), org=None, severity="critical", updated=10),
        lambda i: record(str(i), org=None, severity="critical", status="closed", updated=20),
    ]
    for phase in phases:
        # Every thread handles every incident, in its own order, half of them as "webhook", half as "poll".
        jobs = []
        for t in range(THREADS):
            ids = list(range(INCIDENTS))
            ids = ids[t % INCIDENTS:] + ids[:t % INCIDENTS]
            jobs.append((ids, "webhook" if t % 2 else "poll"))
        run_together(lambda ids, source, phase=phase: [handle(phase(i), source) for i in ids], jobs)

    with tenant_context(tenant):
        assert Incident.objects.count() == INCIDENTS
        assert Ticket.objects.count() == INCIDENTS
        assert Incident.objects.filter(ticket__isnull=True).count() == 0
        for incident in Incident.objects.select_related("ticket__status", "ticket__priority"):
            notes = list(TicketNote.objects.filter(ticket=incident.ticket, kind=NoteKind.SYSTEM)
                         .values_list("body", flat=True))
            assert len(notes) == 2, notes
            assert "from high to critical" in notes[0] and "closed the incident" in notes[1]
            assert incident.ticket.status.is_closed and incident.ticket.priority == prio["Critical"]
            keys = sorted(IncidentChange.objects.filter(incident=incident).values_list("key", flat=True))
            assert len(keys) == 3 and keys[0].startswith("closed:") and keys[1] == "created"
