"""Inbound events card and event detail pages: list, redacted payload, what the pipeline did, replay."""

from __future__ import annotations

import json

import pytest

from alerts.models import InboundEvent
from integrations.services import config
from psa.models import Role
from psa.tenancy import tenant_context

PANEL = "/settings/integrations/rmm/generic/"
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def admin_web(client, tenant_a):
    client.force_login(tenant_a.user)
    return client


@pytest.fixture
def generic(tenant_a):
    with tenant_context(tenant_a.tenant):
        integration = config.update_integration(config.get_integration("generic", create=True))
        secret = integration.get_webhook_secret()
    return integration, secret


def _body(**over):
    body = {"event": "trigger", "alert_id": "a-1", "condition": "disk", "severity": "high",
            "title": "Disk C: full", "message": "C: 1% free", "organization": {"id": "acme", "name": "Acme"},
            "device": {"id": "d1", "hostname": "ACME-FS01", "serial_number": "SN1"}}
    body.update(over)
    return json.dumps(body)


def _post(client, integration, secret, body, capture):
    with capture(execute=True):
        return client.post(f"/webhooks/generic/{integration.webhook_key}/", body, content_type="application/json",
                           HTTP_X_PSA_WEBHOOK_SECRET=secret)


def test_empty_event_log(admin_web, generic):
    r = admin_web.get(PANEL + "events/", **HX)
    assert r.status_code == 200 and b"No events" in r.content and b'id="card-events"' in r.content
    r = admin_web.get(PANEL + "events/")
    assert r.status_code == 200 and b"Inbound events" in r.content


def test_event_shows_ticket_rule_and_redacted_payload(admin_web, tenant_a, make_client, generic,
                                                      django_capture_on_commit_callbacks):
    integration, secret = generic
    acme = make_client(tenant_a.tenant, "Acme")
    # Map the organization first so the alert becomes a ticket.
    from integrations.services import orgs

    with tenant_context(tenant_a.tenant):
        orgs.set_mapping(orgs.discover(integration, "acme", "Acme"), acme)
    r = _post(admin_web, integration, secret, _body(message=f"leaked {secret} here"), django_capture_on_commit_callbacks)
    assert r.status_code == 202
    listing = admin_web.get(PANEL + "events/", **HX).content.decode()
    assert 'data-status="processed"' in listing
    with tenant_context(tenant_a.tenant):
        event = InboundEvent.objects.get()
    html = admin_web.get(PANEL + f"events/{event.pk}/").content.decode()
    assert secret not in html and "[redacted]" in html
    assert 'data-testid="ticket-link"' in html and "Catch-all" in html and "Disk C: full" in html


def test_replay_and_failed_event(admin_web, tenant_a, generic, django_capture_on_commit_callbacks):
    integration, secret = generic
    r = _post(admin_web, integration, secret, "{not json", django_capture_on_commit_callbacks)
    assert r.status_code == 400
    with tenant_context(tenant_a.tenant):
        failed = InboundEvent.objects.get(status="failed")
    html = admin_web.get(PANEL + "events/?status=failed").content.decode()
    assert f'id="event-{failed.pk}"' in html
    _post(admin_web, integration, secret, _body(), django_capture_on_commit_callbacks)
    with tenant_context(tenant_a.tenant):
        ok = InboundEvent.objects.exclude(pk=failed.pk).get()
    with django_capture_on_commit_callbacks(execute=True):
        r = admin_web.post(PANEL + f"events/{ok.pk}/replay/")
    assert r.status_code == 302
    ok.refresh_from_db()
    assert ok.status == "processed" and "replayed_at" in ok.result


def test_events_permissions_and_tenancy(client, tenant_a, tenant_b, make_member, generic):
    with tenant_context(tenant_b.tenant):
        b_int = config.update_integration(config.get_integration("generic", create=True))
        theirs = InboundEvent.objects.create(integration=b_int, provider="generic", body=b"{}")
    client.force_login(make_member(tenant_a.tenant, Role.DISPATCHER))
    assert client.get(PANEL + "events/").status_code == 403
    client.force_login(tenant_a.user)
    assert client.get(PANEL + f"events/{theirs.pk}/").status_code == 404
    assert client.post(PANEL + f"events/{theirs.pk}/replay/").status_code == 404
