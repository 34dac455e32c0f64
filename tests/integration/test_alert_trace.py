"""The pipeline's trace of every alert (alerts/{id}/ ``trace``): attribution, window, rule (and the rules
before it that did not match), dedup, lifecycle; written with the state UPDATE (no statement of its own)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts.models import Alert, AlertRule, MaintenanceWindow
from alerts.services.pipeline import ingest_normalized, reevaluate_ended_windows
from integrations.models import ExternalOrganization
from integrations.records import AlertEventKind
from psa.tenancy import tenant_context
from tests.fakes import alert as fake_alert
from tests.integration.pipeline_support import committed, setup_fake, trigger
from tickets.models import Ticket
from tickets.services import add_note

pytestmark = pytest.mark.django_db


@pytest.fixture
def fx(tenant_a, fake_provider):
    return setup_fake(tenant_a.tenant)


def ingest(fx, na, source="webhook"):
    with committed():
        return ingest_normalized(fx.integration, na, source=source)


def trace_of(api, alert_id) -> list[dict]:
    body = api.get(f"/api/v1/alerts/{alert_id}/").json()
    return body["trace"]


def steps(trace) -> list[tuple[str, str]]:
    return [(e["step"], e["decision"]) for e in trace]


def test_new_alert_trace_names_mapping_window_rule_misses_and_new_ticket(fx, api_a, make_asset):
    make_asset(fx.tenant, fx.client, name="HDG-FRONT-01", provider="fake", external_id="dev-1")
    with tenant_context(fx.tenant):
        crit = AlertRule.objects.create(name="Criticals only", position=1, conditions={"severities": ["critical"]})
        AlertRule.objects.create(name="Backups", position=2, conditions={"text_contains": "backup"})
    a = ingest(fx, fake_alert("a-1", "o1", severity="high", title="Disk low", device_external_id="dev-1"))
    trace = trace_of(api_a, a.pk)
    assert steps(trace) == [("attribute", "mapped"), ("window", "none"), ("rule", "matched"), ("dedup", "new_ticket")]
    attribute, _, rule, dedup = trace
    assert "Harbor Dental Group" in attribute["detail"] and fx.client.name in attribute["detail"]
    assert "HDG-FRONT-01" in attribute["detail"] and "by device id" in attribute["detail"]
    assert "no other rule matched" in rule["detail"] and "Catch-all" in rule["detail"]
    assert [s["name"] for s in rule["skipped"]] == ["Criticals only", "Backups"]
    assert [s["failed"] for s in rule["skipped"]] == ["severity", "text contains"]
    assert rule["skipped"][0]["rule"] == crit.pk
    ticket = Ticket.objects.unscoped().get(pk=a.ticket_id)
    assert f"#{ticket.number}" in dedup["detail"] and dedup["ticket"] == ticket.pk
    assert "board “Alerts”" in dedup["detail"]


def test_matching_rule_says_on_which_condition_and_a_repeat_names_the_ticket_number(fx, api_a):
    with tenant_context(fx.tenant):
        AlertRule.objects.create(name="Disk alerts", position=1,
                                 conditions={"text_contains": "disk", "severities": ["high"]})
    first = ingest(fx, fake_alert("a-1", "o1", condition_key="disk", severity="high", title="Disk C low"))
    again = ingest(fx, fake_alert("a-2", "o1", condition_key="disk", severity="high", title="Disk C low"))
    rule = trace_of(api_a, first.pk)[2]
    assert rule["decision"] == "matched" and "Disk alerts" in rule["detail"]
    assert "severity is high" in rule["detail"] and "text contains “disk”" in rule["detail"]
    dedup = trace_of(api_a, again.pk)[-1]
    number = Ticket.objects.unscoped().get(pk=first.ticket_id).number
    assert dedup["decision"] == "occurrence" and dedup["occurrence"] == 2
    assert f"ticket #{number}" in dedup["detail"] and dedup["ticket_number"] == number


def test_unmapped_and_parent_mapped_organizations(fx, api_a):
    lost = ingest(fx, fake_alert("a-1", "o-unknown", organization_name="Nobody Dental"))
    [entry] = trace_of(api_a, lost.pk)
    assert entry["decision"] == "unmapped" and "“Nobody Dental” (o-unknown) is not mapped" in entry["detail"]
    with tenant_context(fx.tenant):
        ExternalOrganization.objects.create(integration=fx.integration, external_id="o1-child", name="HDG Branch",
                                            parent_external_id="o1")
    child = ingest(fx, fake_alert("a-2", "o1-child"))
    attribute = trace_of(api_a, child.pk)[0]
    assert attribute["decision"] == "mapped" and "through its parent “Harbor Dental Group” (o1)" in attribute["detail"]


def test_serial_number_attribution_and_ignore_rule(fx, api_a, make_asset):
    make_asset(fx.tenant, fx.client, name="HDG-SRV", serial_number="SN-77")
    with tenant_context(fx.tenant):
        AlertRule.objects.create(name="Drop info", position=1, action="ignore", conditions={"severities": ["info"]})
    a = ingest(fx, fake_alert("a-1", "o1", severity="info", serial_number="SN-77", device_name="srv"))
    trace = trace_of(api_a, a.pk)
    assert "asset “HDG-SRV” (by serial number)" in trace[0]["detail"]
    assert trace[-1]["step"] == "rule" and trace[-1]["decision"] == "ignored" and "ignores it" in trace[-1]["detail"]


def test_window_suppression_then_its_end_reevaluates_with_history(fx, api_a):
    now = timezone.now()
    with tenant_context(fx.tenant):
        window = MaintenanceWindow.objects.create(name="Patch night", scope="all", starts_at=now - dt.timedelta(hours=1),
                                                  ends_at=now + dt.timedelta(hours=1))
    a = ingest(fx, fake_alert("a-1", "o1"))
    trace = trace_of(api_a, a.pk)
    assert steps(trace) == [("attribute", "mapped"), ("window", "suppressed")]
    assert "“Patch night”" in trace[1]["detail"] and trace[1]["window"] == window.pk
    with tenant_context(fx.tenant):
        MaintenanceWindow.objects.filter(pk=window.pk).update(ends_at=now - dt.timedelta(minutes=1))
        Alert.objects.filter(pk=a.pk).update(suppressed_until=now - dt.timedelta(minutes=1))
    with committed():
        assert reevaluate_ended_windows()["reevaluated"] == 1
    trace = trace_of(api_a, a.pk)
    assert steps(trace)[:2] == [("attribute", "mapped"), ("window", "suppressed")]
    assert steps(trace)[2:] == [("window", "ended"), ("attribute", "mapped"), ("window", "none"), ("rule", "matched"),
                                ("dedup", "new_ticket")]


def test_resolve_adds_lifecycle_auto_closed_or_held(fx, api_a, tenant_a):
    closed = ingest(fx, fake_alert("a-1", "o1", condition_key="c1"))
    ingest(fx, fake_alert("a-1", "o1", event=AlertEventKind.RESOLVED))
    trace = trace_of(api_a, closed.pk)
    assert steps(trace)[-2:] == [("lifecycle", "resolved"), ("lifecycle", "auto_closed")]
    assert "closed automatically" in trace[-1]["detail"]

    held = ingest(fx, fake_alert("a-2", "o1", condition_key="c2"))
    with tenant_context(fx.tenant):
        add_note(Ticket.objects.get(pk=held.ticket_id), body="On it", author=tenant_a.user)
    ingest(fx, fake_alert("a-2", "o1", event=AlertEventKind.RESOLVED))
    trace = trace_of(api_a, held.pk)
    assert steps(trace)[-1] == ("lifecycle", "held")
    assert "someone has worked on it" in trace[-1]["detail"]
    # A repeated resolve changes nothing, the trace included.
    ingest(fx, fake_alert("a-2", "o1", event=AlertEventKind.RESOLVED))
    assert len(trace_of(api_a, held.pk)) == len(trace)


def test_trace_costs_no_statement_of_its_own(fx):
    """One UPDATE of the alert row per new alert: the state and its trace together."""
    ingest(fx, fake_alert("warm", "o1"))  # configuration loaded, catch-all made
    with CaptureQueriesContext(connection) as ctx, committed():
        ingest_normalized(fx.integration, fake_alert("a-1", "o1"), source="webhook")
    updates = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith('UPDATE "alerts_alert"')]
    assert len(updates) == 1 and '"trace"' in updates[0]


def test_event_detail_page_shows_each_alert_trace(fx, client, tenant_a):
    fx.post(trigger("a-1", condition="c1"))
    client.login(username=tenant_a.user.email, password=tenant_a.password)
    with tenant_context(fx.tenant):
        from alerts.models import InboundEvent

        event = InboundEvent.objects.get()
    page = client.get(f"/settings/integrations/rmm/fake/events/{event.pk}/")
    html = page.content.decode()
    assert page.status_code == 200 and 'data-testid="trace"' in html
    assert "Harbor Dental Group" in html and "new open condition" in html


def test_alert_page_shows_the_trace_to_members_of_the_tenant_only(fx, client, tenant_a, tenant_b):
    a = ingest(fx, fake_alert("a-1", "o1", title="Disk C low"))
    client.login(username=tenant_a.user.email, password=tenant_a.password)
    page = client.get(f"/alerts/{a.pk}/")
    html = page.content.decode()
    assert page.status_code == 200 and "Disk C low" in html and 'data-step="rule"' in html
    assert "Catch-all" in html
    other = client.__class__()
    other.login(username=tenant_b.user.email, password=tenant_b.password)
    assert other.get(f"/alerts/{a.pk}/").status_code == 404
