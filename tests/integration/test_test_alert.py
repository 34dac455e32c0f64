"""integrations/{provider}/test-alert/: a marked alert through the real pipeline (trace, ticket marked as a
test, no notification), closed on request without a reset in the provider; and the panel card."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from alerts.models import Alert, AlertRule, MaintenanceWindow
from alerts.services.pipeline import ingest_normalized
from psa.models import Notification, Role
from psa.tenancy import tenant_context
from tests.conftest import token_client
from tests.fakes import alert as fake_alert
from tests.helpers import committed, ok
from tests.integration.pipeline_support import setup_fake

pytestmark = pytest.mark.django_db
URL = "/api/v1/integrations/fake/test-alert/"


@pytest.fixture
def fx(tenant_a, fake_provider, make_asset):
    setup = setup_fake(tenant_a.tenant)
    setup.asset = make_asset(setup.tenant, setup.client, name="HDG-FRONT-01", provider="fake", external_id="dev-9")
    return setup


def send(api, body):
    with committed():
        return api.post(URL, body, format="json")


def test_test_alert_goes_through_the_pipeline_and_makes_a_marked_ticket(fx, api_a):
    body = ok(send(api_a, {"client": fx.client.pk, "asset": fx.asset.pk}), 201)
    assert body["alert"] and body["ticket"] and body["state"] == "active"
    steps = [(e["step"], e["decision"]) for e in body["trace"]]
    assert steps == [("attribute", "mapped"), ("window", "none"), ("rule", "matched"), ("dedup", "new_ticket")]
    assert "HDG-FRONT-01" in body["trace"][0]["detail"] and "by device id" in body["trace"][0]["detail"]
    ticket = ok(api_a.get(f"/api/v1/tickets/{body['ticket']}/"))
    assert ticket["is_test"] is True and "[TEST]" in ticket["title"] and ticket["asset"] == fx.asset.pk
    alert = ok(api_a.get(f"/api/v1/alerts/{body['alert']}/"))
    assert alert["is_test"] is True and alert["asset"] == fx.asset.pk
    # Each test is its own condition: a second one makes a second ticket.
    again = ok(send(api_a, {"client": fx.client.pk}), 201)
    assert again["ticket"] != body["ticket"] and again["trace"][0]["decision"] == "mapped"


def test_test_ticket_notifies_nobody_while_a_real_one_does(fx, api_a, tenant_a):
    with tenant_context(fx.tenant):
        rule = AlertRule.objects.create(name="Tell the admin", position=1)
        rule.notify_users.add(tenant_a.user)
    ok(send(api_a, {"client": fx.client.pk}), 201)
    assert Notification.objects.unscoped().filter(user=tenant_a.user).count() == 0
    with committed():
        ingest_normalized(fx.integration, fake_alert("real-1", "o1"), source="webhook")
    assert Notification.objects.unscoped().filter(user=tenant_a.user).count() == 1


def test_close_resolves_the_alert_and_closes_the_ticket_without_a_reset(fx, api_a, fake_provider):
    body = ok(send(api_a, {"client": fx.client.pk, "asset": fx.asset.pk}), 201)
    closed = ok(api_a.post(f"{URL}close/", {"ticket": body["ticket"]}, format="json"))
    assert closed["is_closed"] is True and closed["alerts_resolved"] == 1
    assert ok(api_a.get(f"/api/v1/tickets/{body['ticket']}/"))["is_closed"] is True
    trace = ok(api_a.get(f"/api/v1/alerts/{body['alert']}/"))["trace"]
    assert [(e["step"], e["decision"]) for e in trace][-2:] == [("lifecycle", "resolved"), ("lifecycle", "auto_closed")]
    assert fake_provider.state.resets == []  # the provider never heard of it
    # A real ticket is not closed through this endpoint.
    with committed():
        real = ingest_normalized(fx.integration, fake_alert("real-1", "o1"), source="webhook")
    r = api_a.post(f"{URL}close/", {"ticket": real.ticket_id}, format="json")
    assert r.status_code == 400 and "Not a test ticket" in r.json()["ticket"][0]


def test_a_window_or_rule_shows_in_the_answer(fx, api_a):
    now = timezone.now()
    with tenant_context(fx.tenant):
        MaintenanceWindow.objects.create(name="Tonight", scope="client", client=fx.client,
                                         starts_at=now - dt.timedelta(minutes=5), ends_at=now + dt.timedelta(hours=1))
    body = ok(send(api_a, {"client": fx.client.pk}), 201)
    assert body["ticket"] is None and body["state"] == "suppressed"
    assert body["trace"][-1]["decision"] == "suppressed" and "Tonight" in body["trace"][-1]["detail"]


def test_refusals(fx, api_a, tenant_b, make_client, make_asset, make_member):
    other_client = make_client(fx.tenant, "Unmapped Co")
    r = send(api_a, {"client": other_client.pk})
    assert r.status_code == 400 and "No " in r.json()["detail"] and "mapped to Unmapped Co" in r.json()["detail"]
    foreign_asset = make_asset(fx.tenant, other_client, name="Elsewhere")
    r = send(api_a, {"client": fx.client.pk, "asset": foreign_asset.pk})
    assert r.status_code == 400 and "asset" in r.json()
    with tenant_context(tenant_b.tenant):
        from psa.models import Client

        b_client = Client.objects.create(name="B client")
    ghost = send(api_a, {"client": 987654321}).json()
    assert send(api_a, {"client": b_client.pk}).json() == ghost == {"client": ["Unknown client."]}
    assert send(api_a, {"client": fx.client.pk, "bogus": 1}).status_code == 400
    assert send(api_a, {}).status_code == 400
    assert api_a.post("/api/v1/integrations/nope/test-alert/", {"client": 1}, format="json").status_code == 404
    assert send(token_client(tenant_b.api_token), {"client": fx.client.pk}).status_code == 400  # not set up there
    tech = make_member(fx.tenant, Role.TECHNICIAN)
    assert send(token_client(tech.api_token), {"client": fx.client.pk}).status_code == 403
    with tenant_context(fx.tenant):
        assert Alert.objects.filter(is_test=True).count() == 0


def test_panel_card_sends_shows_the_trace_and_closes(fx, client, tenant_a):
    client.login(username=tenant_a.user.email, password=tenant_a.password)
    card = client.get("/settings/integrations/rmm/fake/test-alert/").content.decode()
    assert f'<option value="{fx.client.pk}"' in card and "HDG-FRONT-01" in card
    with committed():
        html = client.post("/settings/integrations/rmm/fake/test-alert/send/",
                           {"client": fx.client.pk, "asset": fx.asset.pk}, HTTP_HX_REQUEST="true").content.decode()
    assert 'data-testid="test-alert-result"' in html and 'data-step="dedup"' in html
    with tenant_context(fx.tenant):
        alert = Alert.objects.get(is_test=True)
    assert f'href="/tickets/{alert.ticket_id}/"' in html
    done = client.post("/settings/integrations/rmm/fake/test-alert/close/", {"ticket": alert.ticket_id},
                       HTTP_HX_REQUEST="true").content.decode()
    assert "Test ticket closed." in done
