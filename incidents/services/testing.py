""""Send test": a clearly marked test incident through the real routing, and its closure as the provider
would send it (so close-on-resolve can be checked too)."""

from __future__ import annotations

import uuid

from django.utils import timezone

from incidents.models import Incident
from integrations.models import ExternalOrganization, Integration
from integrations.records import IncidentRecord, RemediationRecord

from .router import load_routing, process_incident, provider_name
from .routing import missing, missing_sentence

TEST_PREFIX = "test-"


class SendTestRefused(Exception):
    """Why no test ticket can be made now (shown to the admin)."""


def send_test(integration: Integration, organization: ExternalOrganization | None) -> Incident:
    """Route a test incident of ``organization`` (None: an unmapped one) and return its incident row."""
    lacking = missing(load_routing(integration))
    if lacking:
        raise SendTestRefused(missing_sentence(lacking).replace("Incident polling is paused", "No test ticket"))
    name = provider_name(integration)
    now = timezone.now()
    org_name = organization.name if organization is not None else f"Test organization (not mapped in {name})"
    record = IncidentRecord(
        provider=integration.provider,
        external_id=f"{TEST_PREFIX}{uuid.uuid4().hex[:12]}",
        # An unmapped test names no organization id: it must not join the mapping table.
        organization_external_id=organization.external_id if organization is not None else None,
        organization_name=org_name,
        status="sent", severity="high", provider_severity="high",
        subject=f"Test incident from the {name} settings",
        summary=f"This is a test sent from the {name} panel to check where incident tickets land.",
        body_text="Nothing happened on any host. Close this ticket when you have checked it.",
        indicator_counts={"footholds": 1}, indicator_types=["footholds"],
        remediations=[RemediationRecord(external_id="test-1", type="manual", action="No action: this is a test",
                                        status="unapproved")],
        remediations_total=1, created_at=now, updated_at=now, sent_at=now, status_updated_at=now,
    )
    process_incident(integration, record, source="test", test=True)
    return Incident.objects.select_related("ticket", "ticket__board", "ticket__client", "ticket__priority",
                                           "ticket__status").get(integration=integration,
                                                                 external_id=record.external_id)


def close_test(incident: Incident) -> Incident:
    """The provider closes the test incident: the ticket follows the routing's close-on-resolve."""
    if not incident.is_test:
        raise SendTestRefused("Only test incidents can be closed from here.")
    now = timezone.now()
    record = IncidentRecord(provider=incident.provider, external_id=incident.external_id, status="closed",
                            is_closed=True, organization_external_id=incident.organization_external_id or None,
                            organization_name=incident.organization_name, subject=incident.subject,
                            updated_at=now, closed_at=now, status_updated_at=now)
    process_incident(incident.integration, record, source="test", test=True)
    incident.refresh_from_db()
    return incident
