"""The generic provider end to end through the real intake and pipeline (eager Celery, PostgreSQL):
org discovery and mapping, catch-all ticket with templated title, redelivery, repeat firing,
resolve, rules and maintenance windows."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import urlparse

import pytest
from django.test import Client as HttpClient
from django.test import TestCase
from django.utils import timezone

from alerts.models import Alert, AlertRule, MaintenanceWindow
from integrations.models import ExternalOrganization, Integration
from psa.tenancy import tenant_context
from tickets.models import Ticket

pytestmark = pytest.mark.django_db
URL = "/api/v1/integrations/generic/"


@pytest.fixture
def generic(api_a, tenant_a):
    r = api_a.put(URL, {}, format="json")
    assert r.status_code == 200, r.content
    card = api_a.get(f"{URL}webhook/").json()
    with tenant_context(tenant_a.tenant):
        integration = Integration.objects.get(provider="generic")
    return card, integration


def post(card, body):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    header = "HTTP_" + card["header_name"].upper().replace("-", "_")
    with TestCase.captureOnCommitCallbacks(execute=True):
        return HttpClient().post(urlparse(card["url"]).path, data=data, content_type="application/json",
                                 **{header: card["secret"]})


def trigger(alert_id, **kw):
    body = {"event": "trigger", "alert_id": alert_id, "condition": "disk_low:C:", "severity": "high",
            "title": "Disk C: low", "message": "4 GB free", "organization": {"id": "acme", "name": "Acme Corp"},
            "device": {"id": "dev-1", "hostname": "ACME-FS01", "serial_number": "SN1"},
            "occurred_at": "2025-01-31T12:00:00Z"}
    body.update(kw)
    return body


def map_org(tenant, integration, make_client):
    client = make_client(tenant, "Acme Client")
    with tenant_context(tenant):
        org = ExternalOrganization.objects.get(integration=integration, external_id="acme")
        org.client, org.mapping = client, "manual"
        org.save()
    return client


def alerts(tenant, **f):
    with tenant_context(tenant):
        return list(Alert.objects.filter(**f).order_by("id"))


def tickets(tenant):
    with tenant_context(tenant):
        return list(Ticket.objects.select_related("board", "priority", "status").order_by("id"))


def test_card_has_the_generic_template_and_curl(generic):
    card, _ = generic
    assert json.loads(card["payload_template"])["event"] == "trigger"
    assert card["url"] in card["curl_example"] and card["secret"] in card["curl_example"]


def test_unmapped_org_is_discovered_then_mapped_alerts_make_one_ticket(generic, tenant_a, make_client):
    card, integration = generic
    tenant = tenant_a.tenant
    assert post(card, trigger("a-1")).status_code == 202
    (first,) = alerts(tenant)
    assert first.state == "unmapped" and tickets(tenant) == []
    client = map_org(tenant, integration, make_client)

    assert post(card, trigger("a-2")).status_code == 202
    (ticket,) = tickets(tenant)
    assert ticket.client_id == client.pk and ticket.board.name == "Alerts" and ticket.priority.name == "High"
    assert ticket.title == "[high] Disk C: low on ACME-FS01"
    # Redelivery of the same trigger: accepted, nothing changes.
    assert post(card, trigger("a-2")).status_code == 202
    # A new firing of the same condition: an occurrence on the same ticket.
    assert post(card, trigger("a-3", message="3 GB free")).status_code == 202
    (ticket,) = tickets(tenant)
    assert ticket.occurrence_count == 2
    assert len(alerts(tenant, ticket=ticket)) == 2


def test_malformed_body_is_400_with_the_reason(generic):
    card, _ = generic
    r = post(card, {"event": "explode", "alert_id": "x"})
    assert r.status_code == 400 and "Unknown event" in r.json()["detail"]
    r = post(card, b"[1,2]")
    assert r.status_code == 400 and "JSON object" in r.json()["detail"]
    r = post(card, trigger("bad", device="ACME-FS01"))
    assert r.status_code == 400 and "'device' must be an object" in r.json()["detail"]


def test_resolve_closes_the_untouched_ticket(generic, tenant_a, make_client):
    card, integration = generic
    tenant = tenant_a.tenant
    post(card, trigger("a-1"))
    map_org(tenant, integration, make_client)
    post(card, trigger("a-2"))
    assert post(card, {"event": "resolve", "alert_id": "a-2"}).status_code == 202
    (ticket,) = tickets(tenant)
    assert ticket.status.is_closed
    assert alerts(tenant, external_id="a-2")[0].state == "resolved"


def test_ignore_rule_and_custom_template(generic, tenant_a, make_client, api_a):
    card, integration = generic
    tenant = tenant_a.tenant
    post(card, trigger("seed"))
    map_org(tenant, integration, make_client)
    r = api_a.post("/api/v1/alert-rules/", {"name": "drop info", "conditions": {"severities": ["info"]},
                                             "action": "ignore"}, format="json")
    assert r.status_code == 201
    r = api_a.post("/api/v1/alert-rules/", {"name": "cpu", "conditions": {"text_regex": r"cpu\s+\d+%"},
                                             "title_template": "{{ client }} / {{ device }}: {{ title }}"},
                   format="json")
    assert r.status_code == 201
    post(card, trigger("i-1", severity="information", condition="noise"))
    assert alerts(tenant, external_id="i-1")[0].state == "ignored" and tickets(tenant) == []
    post(card, trigger("c-1", condition="cpu", title="CPU 99% for 10 min"))
    (ticket,) = tickets(tenant)
    assert ticket.title == "Acme Client / ACME-FS01: CPU 99% for 10 min"
    with tenant_context(tenant):
        assert Alert.objects.get(external_id="c-1").rule == AlertRule.objects.get(name="cpu")


def test_maintenance_window_for_the_generic_integration_suppresses(generic, tenant_a, make_client, api_a):
    card, integration = generic
    tenant = tenant_a.tenant
    post(card, trigger("seed"))
    map_org(tenant, integration, make_client)
    now = timezone.now()
    r = api_a.post("/api/v1/maintenance-windows/", {
        "name": "generic quiet", "scope": "integration", "integration": "generic",
        "starts_at": (now - dt.timedelta(days=7, hours=1)).isoformat(),
        "ends_at": (now - dt.timedelta(days=7) + dt.timedelta(hours=1)).isoformat(),
        "rrule": "FREQ=WEEKLY", "timezone": "Europe/Berlin"}, format="json")
    assert r.status_code == 201 and r.json()["active_now"] is True
    post(card, trigger("s-1"))
    (alert,) = alerts(tenant, external_id="s-1")
    assert alert.state == "suppressed" and tickets(tenant) == []
    with tenant_context(tenant):
        assert alert.suppressed_by == MaintenanceWindow.objects.get()
    assert alert.suppressed_until is not None and alert.suppressed_until > now
