"""The generic provider end to end through the webhook: discover, map, replay, repeat, resolve."""

from __future__ import annotations

import json

import pytest
from django.test import Client as HttpClient

from alerts.models import Alert, InboundEvent
from integrations.models import ExternalOrganization
from integrations.services import config, orgs
from psa.models import Client
from psa.tenancy import tenant_context
from tests.integration.pipeline_support import committed
from tickets.models import Ticket

pytestmark = pytest.mark.django_db


def body(event, alert_id, **kw):
    return {
        "event": event,
        "alert_id": alert_id,
        "condition": "disk_space_low:C:",
        "severity": "high",
        "title": "Disk C: below 10% free",
        "organization": {"id": "acme", "name": "Acme Corp"},
        "device": {"id": "dev-1001", "hostname": "ACME-FS01"},
        **kw,
    }


@pytest.fixture
def generic(tenant_a):
    with tenant_context(tenant_a.tenant):
        integration = config.get_integration("generic", create=True)
        card = config.webhook_card(integration)
    http = HttpClient()

    def post(payload):
        with committed():
            return http.post(
                card["url"],
                data=json.dumps(payload),
                content_type="application/json",
                **{"HTTP_" + card["header_name"].upper().replace("-", "_"): card["secret"]},
            )

    return tenant_a.tenant, integration, post


def test_generic_webhook_end_to_end(generic, api_a):
    tenant, integration, post = generic
    first = post(body("trigger", "chk-1"))
    assert first.status_code == 202, first.content
    with tenant_context(tenant):
        org = ExternalOrganization.objects.get(integration=integration, external_id="acme")
        assert org.client_id is None and org.name == "Acme Corp"
        assert Alert.objects.get().state == "unmapped"
        acme = Client.objects.create(name="Acme Corp")
        orgs.set_mapping(org, acme)
    with committed():
        assert (
            api_a.post(f"/api/v1/integrations/generic/events/{first.json()['event_id']}/replay/").status_code
            == 202
        )
    with tenant_context(tenant):
        (ticket,) = Ticket.objects.all()
        assert ticket.client_id == acme.pk and "ACME-FS01" in ticket.title
    # Same alert id again: redelivery (duplicate at the edge), nothing changes.
    again = post(body("trigger", "chk-1"))
    assert again.json().get("duplicate") is True
    # New alert id, same condition: an occurrence on the open ticket.
    assert post(body("trigger", "chk-2")).status_code == 202
    with tenant_context(tenant):
        ticket.refresh_from_db()
        assert ticket.occurrence_count == 2
    # Resolve one: the other keeps the ticket open; resolve both: closed.
    post(body("resolve", "chk-1"))
    with tenant_context(tenant):
        ticket.refresh_from_db()
        assert not ticket.status.is_closed
    post(body("resolve", "chk-2"))
    with tenant_context(tenant):
        ticket.refresh_from_db()
        assert ticket.status.is_closed
        assert set(Alert.objects.values_list("state", flat=True)) == {"resolved"}
    statuses = list(
        InboundEvent.objects.unscoped().filter(integration=integration).values_list("status", flat=True)
    )
    assert sorted(statuses) == ["duplicate"] + ["processed"] * 4


def test_generic_malformed_body_is_400_and_logged(generic):
    _tenant, integration, post = generic
    r = post({"event": "explode"})
    assert r.status_code == 400
    (event,) = InboundEvent.objects.unscoped().filter(integration=integration)
    assert event.status == "failed" and event.error
