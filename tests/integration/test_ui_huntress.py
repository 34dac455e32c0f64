"""The Huntress panel in process (Django test client, htmx requests): status card, routing card with
errors next to their fields, Poll now, Send test and its close, escalations, mapping table words."""

from __future__ import annotations

import re

import pytest

from incidents.models import Escalation, Incident, IncidentRouting
from integrations.models import ExternalOrganization, Integration, IntegrationStatus
from psa.models import Client
from psa.tenancy import tenant_context
from tests.helpers import committed
from tickets.models import Board, Priority, Status

PANEL = "/settings/integrations/rmm/huntress/"
HX = {"HTTP_HX_REQUEST": "true"}

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(client, tenant_a):
    client.force_login(tenant_a.user)
    with tenant_context(tenant_a.tenant):
        integration = Integration.objects.create(provider="huntress", status=IntegrationStatus.CONNECTED,
                                                 account_name="Example MSP", last_poll_ok=False,
                                                 last_poll_error="Huntress rejected the API key and secret (401).")
        integration.set_credentials({"api_key": "k", "api_secret": "s"})
        integration.save()
        harbor = Client.objects.create(name="Harbor Dental Group")
        triage = Client.objects.create(name="Security Triage")
        org = ExternalOrganization.objects.create(integration=integration, external_id="1", name="Harbor Dental Group",
                                                  client=harbor, mapping="manual")
        ExternalOrganization.objects.create(integration=integration, external_id="2", name="Unmapped Org")
        ids = {"security": Board.objects.get(name="Security").pk, "triage": Board.objects.get(name="Triage").pk,
               "closed": Status.objects.get(name="Closed").pk,
               **{f"p_{p.name.lower()}": p.pk for p in Priority.objects.all()}}
    return client, integration, harbor, triage, org, ids


def routing_post(ids, triage, **extra):
    data = {"security_board": ids["security"], "fallback_client": triage.pk, "fallback_board": ids["triage"],
            "priority_critical": ids["p_critical"], "priority_high": ids["p_high"], "priority_low": ids["p_low"],
            "poll_interval_minutes": "5"}
    data.update(extra)
    return {k: v for k, v in data.items() if v is not None}


def test_panel_shows_status_routing_test_escalations_and_mapping(setup, tenant_a):
    client, integration, *_ = setup
    with tenant_context(tenant_a.tenant):
        Escalation.objects.create(integration=integration, provider="huntress", external_id="77",
                                  subject="Defender Disabled", organizations=[{"id": "1", "name": "Harbor"}],
                                  status="open", overdue=True)
    page = client.get(PANEL).content.decode()
    for marker in ('id="card-incident-status"', 'id="card-incident-routing"', 'id="card-incident-test"',
                   'id="card-incident-escalations"', 'id="card-organizations"'):
        assert marker in page, marker
    assert "Connected to Example MSP" in page
    assert "Last poll failed: Huntress rejected the API key and secret (401)." in page
    assert "Incident polling is paused until routing is complete: choose the security board" in page
    assert "1 unmapped" in page and "Defender Disabled" in page and "overdue" in page
    assert "still become tickets, on the fallback client" in page  # the mapping card's words for incidents
    assert re.search(r'<tr id="org-\d+" class="mapped', page) and re.search(r'<tr id="org-\d+" class="unmapped', page)
    only = client.get(PANEL + "?unmapped=1").content.decode()
    assert "Unmapped Org" in only and 'class="mapped' not in only


def test_routing_errors_next_to_their_fields_then_saved(setup, tenant_a):
    client, integration, _harbor, triage, _org, ids = setup
    r = client.post("/integrations/huntress/incidents/routing/",
                    routing_post(ids, triage, close_on_resolve="on", poll_interval_minutes="90"), **HX)
    html = r.content.decode()
    assert r.status_code == 200 and "Routing not saved" in html
    assert re.search(r'id="id_closed_status_error">Choose the status that closes tickets', html)
    assert re.search(r'id="id_poll_interval_minutes_error">Choose between 1 and 60 minutes', html)
    with tenant_context(tenant_a.tenant):
        assert not IncidentRouting.objects.filter(integration=integration).exists()
    r = client.post("/integrations/huntress/incidents/routing/",
                    routing_post(ids, triage, close_on_resolve="on", closed_status=ids["closed"]), **HX)
    html = r.content.decode()
    assert 'data-testid="routing-saved"' in html
    assert 'hx-swap-oob="true"' in html and "routing is complete" not in html.split('id="card-incident-status"')[1]
    with tenant_context(tenant_a.tenant):
        assert Integration.objects.get(pk=integration.pk).incident_routing.security_board_id == ids["security"]


def test_poll_now_refused_until_routing_then_started(setup):
    client, _integration, _harbor, triage, _org, ids = setup
    html = client.post("/integrations/huntress/incidents/poll/", **HX).content.decode()
    assert 'data-testid="poll-refused"' in html and "routing is complete" in html
    client.post("/integrations/huntress/incidents/routing/", routing_post(ids, triage), **HX)
    with committed():
        html = client.post("/integrations/huntress/incidents/poll/", **HX).content.decode()
    assert 'data-testid="poll-refused"' not in html and 'data-testid="incident-poll-job"' in html


def test_send_test_shows_where_it_landed_and_closes(setup, tenant_a):
    client, _integration, _harbor, triage, org, ids = setup
    html = client.post("/integrations/huntress/incidents/test/", {"organization": org.pk}, **HX).content.decode()
    assert "No test ticket until routing is complete" in html
    client.post("/integrations/huntress/incidents/routing/",
                routing_post(ids, triage, close_on_resolve="on", closed_status=ids["closed"]), **HX)
    html = client.post("/integrations/huntress/incidents/test/", {"organization": org.pk}, **HX).content.decode()
    assert re.search(r'data-testid="test-landed-board">Security<', html)
    assert re.search(r'data-testid="test-landed-client">Harbor Dental Group<', html)
    html = client.post("/integrations/huntress/incidents/test/", {"organization": ""}, **HX).content.decode()
    assert re.search(r'data-testid="test-landed-board">Triage<', html)
    assert re.search(r'data-testid="test-landed-client">Security Triage<', html)
    with tenant_context(tenant_a.tenant):
        test_incident = Incident.objects.filter(is_test=True).order_by("-id").first()
    html = client.post(f"/integrations/huntress/incidents/test/{test_incident.pk}/close/", **HX).content.decode()
    assert "closed in Huntress" in html
    with tenant_context(tenant_a.tenant):
        assert Incident.objects.get(pk=test_incident.pk).ticket.status.is_closed
    # Another tenant's (or a real) incident id is a 404.
    assert client.post("/integrations/huntress/incidents/test/987654/close/", **HX).status_code == 404


def test_non_admins_cannot_use_the_cards(setup, make_member, tenant_a, client):
    tech = make_member(tenant_a.tenant)
    client.force_login(tech)
    assert client.post("/integrations/huntress/incidents/poll/", **HX).status_code in (302, 403)
    assert client.post("/integrations/huntress/incidents/test/", **HX).status_code in (302, 403)


def test_the_alert_pipelines_test_alert_is_not_offered_for_incident_reports(setup, api_a):
    """Huntress reports incidents, routed by the incident router: "Send test alert" (the alert
    pipeline's) is neither on its panel nor accepted by its API; the routing card has its own test."""
    client, _integration, harbor, *_ = setup
    page = client.get(PANEL).content.decode()
    assert 'id="card-incident-test"' in page and 'id="card-test-alert"' not in page
    r = api_a.post("/api/v1/integrations/huntress/test-alert/", {"client": harbor.pk}, format="json")
    assert r.status_code == 400 and "reports incidents, not alerts" in r.json()["detail"]
