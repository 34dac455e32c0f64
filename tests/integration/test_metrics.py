"""metrics/ (per rule, client, integration over 24h/7d/30d) and the Reports > Alerts page with its charts."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from alerts.models import Alert, AlertRule, MaintenanceWindow
from alerts.services.pipeline import ingest_normalized
from psa.tenancy import tenant_context
from tests.fakes import alert as fake_alert
from tests.helpers import committed, ok
from tests.integration.pipeline_support import setup_fake
from tickets.models import Ticket, TicketActivity
from tickets.services import add_note

pytestmark = pytest.mark.django_db


@pytest.fixture
def fx(tenant_a, fake_provider, make_asset):
    setup = setup_fake(tenant_a.tenant)
    quiet_box = make_asset(setup.tenant, setup.client, name="QUIET-01", provider="fake", external_id="dev-q")

    def ingest(alert_id, org="o1", **kw):
        with committed():
            return ingest_normalized(setup.integration, fake_alert(alert_id, org, **kw), source="webhook")

    now = timezone.now()
    with tenant_context(setup.tenant):
        setup.disk_rule = AlertRule.objects.create(name="Disk", position=1, conditions={"text_contains": "disk"})
        setup.info_rule = AlertRule.objects.create(name="Drop info", position=2, action="ignore",
                                                   conditions={"severities": ["info"]})
        MaintenanceWindow.objects.create(name="Quiet box", scope="asset", asset=quiet_box,
                                         starts_at=now - dt.timedelta(hours=1), ends_at=now + dt.timedelta(hours=1))
    disks = [ingest(f"d-{i}", condition_key="disk-c", title="Disk C low") for i in range(3)]
    ingest("c-1", condition_key="cpu", title="CPU busy")
    ingest("i-1", severity="info", title="Heartbeat")
    ingest("q-1", title="Reboot pending", device_external_id="dev-q")
    ingest("u-1", org="o-unknown", title="Who is this")
    old = ingest("old-1", condition_key="old", title="Old alert")
    with tenant_context(setup.tenant):
        Alert.objects.filter(pk=old.pk).update(first_seen=now - dt.timedelta(days=3))
        Ticket.objects.filter(pk=old.ticket_id).update(created_at=now - dt.timedelta(days=3))
        ticket = Ticket.objects.get(pk=disks[0].ticket_id)
        add_note(ticket, body="Looking", author=tenant_a.user)
        TicketActivity.objects.filter(ticket=ticket, actor__isnull=False).update(
            created_at=ticket.created_at + dt.timedelta(seconds=120))
        Ticket.objects.filter(pk=ticket.pk).update(closed_at=ticket.created_at + dt.timedelta(hours=1))
    setup.disk_ticket = ticket
    return setup


def rows(api, **params):
    body = ok(api.get("/api/v1/metrics/", params))
    assert body["count"] == len(body["results"])
    return {r["name"]: r for r in body["results"]}


def test_per_rule_over_24h(fx, api_a):
    # A test alert is left out of every figure.
    ok(api_a.post("/api/v1/integrations/fake/test-alert/", {"client": fx.client.pk}, format="json"), 201)
    got = rows(api_a, period="24h", by="rule")
    disk = got["Disk"]
    assert (disk["key"], disk["alerts"], disk["tickets"]) == (fx.disk_rule.pk, 3, 1)
    assert disk["dedup_ratio"] == pytest.approx(0.6667, abs=1e-3)
    assert disk["mtta_seconds"] == pytest.approx(120, abs=1) and disk["mttr_seconds"] == pytest.approx(3600, abs=1)
    catch_all = got["Catch-all"]
    assert (catch_all["alerts"], catch_all["tickets"], catch_all["dedup_ratio"]) == (1, 1, 0.0)
    assert catch_all["mtta_seconds"] is None and catch_all["mttr_seconds"] is None
    assert (got["Drop info"]["alerts"], got["Drop info"]["ignored"], got["Drop info"]["tickets"]) == (1, 1, 0)
    # The suppressed alert never reached a rule, nor did the unmapped one.
    nobody = got["No rule (unmapped)"]
    assert nobody["key"] is None and nobody["alerts"] == 2 and nobody["suppressed"] == 1
    assert set(got) == {"Disk", "Catch-all", "Drop info", "No rule (unmapped)"}


def test_periods_and_groupings(fx, api_a):
    assert rows(api_a, period="7d", by="rule")["Catch-all"]["alerts"] == 2  # the 3-day-old alert counts now
    assert rows(api_a, period="30d", by="rule")["Catch-all"]["tickets"] == 2
    clients = rows(api_a, period="24h", by="client")
    assert clients[fx.client.name]["alerts"] == 6 and clients[fx.client.name]["tickets"] == 2
    assert clients["Unmapped"]["alerts"] == 1
    integration = rows(api_a, period="24h", by="integration")
    assert list(integration) == ["Fake RMM"] and integration["Fake RMM"]["key"] == "fake"
    assert (integration["Fake RMM"]["alerts"], integration["Fake RMM"]["suppressed"]) == (7, 1)
    assert (integration["Fake RMM"]["ignored"], integration["Fake RMM"]["tickets"]) == (1, 2)


def test_bad_parameters_and_isolation(fx, api_a, api_b):
    assert api_a.get("/api/v1/metrics/", {"period": "1y"}).status_code == 400
    assert api_a.get("/api/v1/metrics/", {"by": "asset"}).status_code == 400
    assert ok(api_b.get("/api/v1/metrics/", {"period": "30d"}))["results"] == []
    assert ok(api_a.get("/api/v1/metrics/"))["period"] == "7d"  # defaults: 7 days, per rule


def test_metrics_page_draws_the_charts(fx, client, tenant_a):
    client.login(username=tenant_a.user.email, password=tenant_a.password)
    html = client.get("/reports/alerts/?period=24h&by=rule").content.decode()
    assert 'data-testid="series-chart"' in html and 'data-testid="metrics-table"' in html
    assert html.count('data-alerts="') == 25  # one bar pair per hour of the last 24 h (and the current one)
    assert '<th scope="row">Disk</th>' in html and "2 min" in html and "1.0 h" in html
    assert "cdn" not in html.lower()
    daily = client.get("/reports/alerts/?period=7d&by=client").content.decode()
    assert daily.count('data-alerts="') == 8 and fx.client.name in daily
