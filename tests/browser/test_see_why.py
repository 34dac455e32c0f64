"""See why, in a real browser: an alert's trace on the event and alert pages, rule and window dry runs in the
settings forms, "Send test alert" from a provider panel (trace, ticket, close), and the health card with
the quiet-provider warning."""

from __future__ import annotations

import datetime as dt
import re

import httpx
import pytest
from django.utils import timezone
from playwright.sync_api import expect

from psa.tenancy import tenant_context

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "browser-pass-123"
SECRET = "browser-webhook-secret-0123456789"


@pytest.fixture
def msp(make_tenant, make_client, make_asset):
    from integrations.models import ExternalOrganization, Integration

    created = make_tenant("See Why MSP", "admin@seewhy.example", PASSWORD)
    client = make_client(created.tenant, "Harbor Dental Group")
    created.asset = make_asset(created.tenant, client, name="HDG-FRONT-01", provider="generic", external_id="dev-1")
    with tenant_context(created.tenant):
        integration = Integration.objects.create(provider="generic", status="connected")
        integration.set_webhook_secret(SECRET)
        integration.save(update_fields=["webhook_secret_ciphertext"])
        ExternalOrganization.objects.create(integration=integration, external_id="org-1", name="Harbor Dental Group",
                                            client=client, mapping="manual")
    created.integration, created.client = integration, client
    return created


def _login(page):
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill("admin@seewhy.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/tickets/"))


def _post(live_server, msp, alert_id: str, condition: str, severity: str = "high", title: str = "Disk C low"):
    body = {"event": "trigger", "alert_id": alert_id, "condition": condition, "severity": severity, "title": title,
            "organization": {"id": "org-1", "name": "Harbor Dental Group"},
            "device": {"id": "dev-1", "hostname": "HDG-FRONT-01"}}
    r = httpx.post(f"{live_server.url}/webhooks/generic/{msp.integration.webhook_key}/", json=body,
                   headers={"X-PSA-Webhook-Secret": SECRET}, timeout=15)
    assert r.status_code == 202, r.text
    return r.json()["event_id"]


def test_trace_on_event_and_alert_pages(browser_page, shot, live_server, msp):
    from alerts.models import AlertRule

    with tenant_context(msp.tenant):
        AlertRule.objects.create(name="Criticals only", position=1, conditions={"severities": ["critical"]})
    page = browser_page
    _login(page)
    event_id = _post(live_server, msp, "a-1", "disk-c")
    page.goto(f"/settings/integrations/rmm/generic/events/{event_id}/")
    trace = page.get_by_test_id("trace").first
    expect(trace.locator('[data-step="attribute"]')).to_contain_text("Harbor Dental Group")
    expect(trace.locator('[data-step="attribute"]')).to_contain_text("HDG-FRONT-01")
    expect(trace.locator('[data-step="rule"]')).to_contain_text("“Criticals only” (severity)")
    expect(trace.locator('[data-step="dedup"]')).to_contain_text("ticket #")
    shot("why-01-event-trace")
    page.get_by_role("link", name="Disk C low").last.click()
    page.wait_for_url(re.compile(r"/alerts/\d+/$"))
    expect(page.locator('[data-step="window"]')).to_contain_text("No maintenance window")
    expect(page.locator('[data-step="rule"]')).to_contain_text("Catch-all")
    shot("why-02-alert-page")
    # A second firing: the trace names the open ticket it was counted on.
    _post(live_server, msp, "a-2", "disk-c")
    page.get_by_test_id("ticket-link").click()
    page.wait_for_url(re.compile(r"/tickets/\d+/$"))
    alerts = page.get_by_test_id("ticket-alerts")
    expect(alerts.locator("a")).to_have_count(2)
    alerts.locator("a").first.click()
    page.wait_for_url(re.compile(r"/alerts/\d+/$"))
    expect(page.locator('[data-step="dedup"]')).to_contain_text("occurrence 2 counted on ticket #")
    shot("why-03-occurrence-trace")


def test_rule_and_window_dry_runs_in_the_forms(browser_page, shot, live_server, msp):
    page = browser_page
    _login(page)
    _post(live_server, msp, "a-1", "disk-c", severity="high", title="Disk C low")
    _post(live_server, msp, "a-2", "cpu", severity="low", title="CPU busy")
    page.goto("/settings/alert-rules/new/")
    page.get_by_label("Name").fill("High disk")
    page.get_by_label("High", exact=True).first.check()
    page.get_by_label("Board").select_option(label="Triage")
    page.get_by_role("button", name="Dry run").click()
    result = page.get_by_test_id("dry-run-result")
    expect(result.get_by_test_id("dry-run-matched")).to_have_text("1")
    expect(result).to_contain_text("Disk C low")
    expect(result).to_contain_text("Catch-all")
    expect(result).to_contain_text("Triage")
    shot("why-04-rule-dry-run")
    from alerts.models import AlertRule

    with tenant_context(msp.tenant):
        assert not AlertRule.objects.filter(name="High disk").exists()  # nothing saved

    page.goto("/settings/maintenance-windows/new/")
    page.get_by_label("Name").fill("Patch night")
    now = timezone.now()
    page.get_by_label("Starts").fill((now - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Ends").fill((now + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Time zone").fill("UTC")
    page.get_by_role("button", name="Dry run").click()
    expect(page.get_by_test_id("dry-run-matched")).to_have_text("2")
    shot("why-05-window-dry-run")


def test_send_test_alert_from_the_panel_then_close_it(browser_page, shot, live_server, msp):
    page = browser_page
    _login(page)
    page.goto("/settings/integrations/rmm/generic/")
    card = page.get_by_test_id("test-alert-card")
    card.get_by_label("Client").select_option(label="Harbor Dental Group")
    card.get_by_label("Asset (optional)").select_option(label="Harbor Dental Group / HDG-FRONT-01")
    card.get_by_role("button", name="Send test alert").click()
    result = page.get_by_test_id("test-alert-result")
    expect(result.locator('[data-step="dedup"]')).to_contain_text("ticket #")
    expect(result.locator('[data-step="attribute"]')).to_contain_text("HDG-FRONT-01")
    shot("why-06-test-alert-sent")
    href = result.get_by_test_id("test-ticket-link").get_attribute("href")
    page.get_by_role("button", name="Close test ticket").click()
    expect(page.get_by_test_id("test-alert-message")).to_contain_text("Test ticket closed.")
    shot("why-07-test-alert-closed")
    page.goto(href)
    expect(page.get_by_test_id("ticket-status")).to_contain_text("Closed")
    expect(page.get_by_test_id("test-ticket")).to_be_visible()
    shot("why-08-test-ticket")


def test_health_card_and_quiet_warning(browser_page, shot, live_server, msp):
    from alerts.models import InboundEvent
    from integrations.models import Integration

    page = browser_page
    _login(page)
    for i in range(12):
        _post(live_server, msp, f"h-{i}", f"c-{i}")
    r = httpx.post(f"{live_server.url}/webhooks/generic/{msp.integration.webhook_key}/", content=b"{broken",
                   headers={"X-PSA-Webhook-Secret": SECRET, "Content-Type": "application/json"}, timeout=15)
    assert r.status_code == 400
    page.goto("/settings/integrations/rmm/generic/")
    health = page.get_by_test_id("health-card")
    expect(health.get_by_test_id("health-failures")).to_contain_text("1 of 13")
    expect(health.get_by_test_id("quiet-warning")).to_have_count(0)
    shot("why-09-health-card")
    # The webhooks came every 10 minutes, and then nothing for three hours.
    now = timezone.now()
    with tenant_context(msp.tenant):
        ids = list(InboundEvent.objects.order_by("-received_at", "-id").values_list("pk", flat=True))
        for i, pk in enumerate(ids):
            InboundEvent.objects.filter(pk=pk).update(received_at=now - dt.timedelta(hours=3, minutes=10 * i))
        Integration.objects.filter(pk=msp.integration.pk).update(last_webhook_at=now - dt.timedelta(hours=3))
    health.get_by_role("button", name="Refresh").click()
    expect(page.get_by_test_id("quiet-warning")).to_contain_text("No webhook for 3 hours")
    shot("why-10-quiet-warning")
    page.goto("/settings/integrations/rmm/")
    expect(page.locator('[data-provider="generic"]').get_by_test_id("quiet-warning")).to_be_visible()
    shot("why-11-rmm-tab-quiet")
