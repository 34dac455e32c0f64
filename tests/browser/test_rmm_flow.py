"""The admin's whole RMM setup in a real browser: log in, connect Tactical RMM against the simulator,
test the connection, discover and automap organizations, sync devices, copy the webhook details,
create an alert rule, post a webhook the way Tactical renders it, and find the event and its ticket."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from psa.tenancy import tenant_context
from tests.simulators.tactical import TacticalSimulator, render_webhook

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "browser-pass-123"


@pytest.fixture
def sim():
    with TacticalSimulator() as s:
        client = s.add_client("Harbor Dental Group", ["Main Office"])
        site = s.site_named(client["id"], "Main Office")
        s.front = s.add_agent(site["id"], "HDG-FRONT-01", serial_number="7XK2M93")
        s.add_agent(site["id"], "HDG-SRV-01", monitoring_type="server")
        s.add_client("Nobody We Know")
        yield s


@pytest.fixture
def msp(make_tenant, make_client):
    created = make_tenant("Browser MSP", "admin@browser.example", PASSWORD)
    make_client(created.tenant, "Harbor Dental Group")
    return created


def _login(page, shot):
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill("admin@browser.example")
    page.get_by_label("Password").fill(PASSWORD)
    shot("01-login")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/tickets/"))


def test_tactical_setup_to_ticket(browser_page, shot, live_server, msp, sim):
    page = browser_page
    _login(page, shot)

    # The RMM tab: every provider as a card, Tactical not configured yet.
    page.goto("/settings/integrations/rmm/")
    tactical_card = page.locator('[data-provider="tactical"]')
    expect(tactical_card).to_contain_text("Not configured")
    expect(page.locator('[data-provider="generic"]')).to_be_visible()
    shot("02-rmm-tab")
    tactical_card.click()
    page.wait_for_url(re.compile(r"/settings/integrations/rmm/tactical/$"))

    # Connect: base URL + API key; the first save reloads the panel with every card.
    page.get_by_label("Base URL").fill(sim.url)
    page.get_by_label("API key").fill(sim.api_key)
    page.locator("#card-connection").get_by_role("button", name="Save").click()
    expect(page.locator("#panel-status")).to_contain_text("Connected since")
    expect(page.get_by_test_id("set-cred_api_key")).to_contain_text("set")
    assert sim.api_key not in page.content()  # write-only
    shot("03-connected")

    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_test_id("test-result")).to_contain_text("Connection OK")
    shot("04-test-connection")

    # Organizations: discover, then automap by exact name.
    page.get_by_role("button", name="Discover organizations").click()
    orgs = page.locator("#card-organizations")
    expect(orgs.locator('[data-job-state="succeeded"]')).to_be_visible()
    expect(orgs.locator("tbody tr")).to_have_count(4)  # 2 clients, each with a site
    page.get_by_role("button", name="Automap by exact name").click()
    expect(page.get_by_test_id("automap-summary")).to_contain_text("matched 1 organization")
    expect(orgs.locator("tr.mapped")).to_have_count(1)
    shot("05-organizations-automapped")

    # Devices: run the sync and watch its progress until the summary shows.
    page.get_by_role("button", name="Run device sync").click()
    devices = page.locator("#card-devices")
    expect(devices.locator('[data-job-state="succeeded"]')).to_be_visible()
    expect(devices.get_by_test_id("job-summary")).to_contain_text("Created: 2")
    expect(devices.get_by_test_id("device-count")).to_have_text("2")
    shot("06-device-sync-done")

    # Webhook: copy the URL (clipboard), reveal the secret, read what to paste into Tactical.
    webhook = page.locator("#card-webhook")
    webhook.get_by_role("button", name="Copy").first.click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == webhook.locator("#webhook-url").input_value()
    assert copied.startswith(live_server.url + "/webhooks/tactical/")
    webhook.get_by_role("button", name="Reveal").click()
    expect(webhook.get_by_role("button", name="Hide")).to_be_visible()
    secret = webhook.locator("#webhook-secret").input_value()
    assert len(secret) > 20
    headers_json = webhook.locator("#revealed-headers").input_value()
    assert secret in headers_json
    pattern = webhook.get_by_label("PSA alert (failure): URL pattern").input_value()
    body_template = webhook.get_by_label("PSA alert (failure): body").input_value()
    shot("07-webhook-details")

    # An alert rule: high-severity Tactical alerts go to the Alerts board as High.
    page.goto("/settings/alert-rules/")
    expect(page.locator("#rules-table")).to_contain_text("every other alert")
    page.get_by_role("link", name="New rule").click()
    page.get_by_label("Name").fill("Tactical errors")
    page.get_by_label("Tactical RMM").check()
    page.get_by_label("High", exact=True).first.check()
    page.get_by_label("Board").select_option(label="Alerts")
    page.get_by_label("Fixed priority").select_option(label="High")
    page.get_by_label("Ticket title template").fill("[{{ severity }}] {{ title }} on {{ device }}")
    shot("08-rule-form")
    page.get_by_role("button", name="Save rule").click()
    page.wait_for_url(re.compile(r"/settings/alert-rules/$"))
    first_row = page.locator("#rules-table tbody tr").first
    expect(first_row).to_contain_text("Tactical errors")
    expect(page.locator("#rules-table tbody tr").last).to_contain_text("catch-all")
    shot("09-rules")

    # Tactical fires: render the URL action exactly as Tactical does and post it to the URL from the page.
    alert = sim.add_alert(sim.front, severity="error", message="HDG-FRONT-01 has a diskspace check: C: < 10% that failed.")
    url, headers, body = render_webhook(sim, alert["id"], url=pattern, headers_json=headers_json,
                                        body_template=body_template)
    response = httpx.post(url, content=body, headers=headers, timeout=15)
    assert response.status_code == 202, response.text

    # The event log shows it processed; its detail names the rule and links the ticket.
    page.goto("/settings/integrations/rmm/tactical/")
    events = page.locator("#card-events")
    expect(events.locator('tr[data-status="processed"]')).to_have_count(1)
    shot("10-inbound-events")
    events.locator("tbody tr a").first.click()
    expect(page.get_by_test_id("event-status")).to_contain_text("processed")
    expect(page.locator("body")).to_contain_text("Tactical errors")
    assert secret not in page.content()
    shot("11-event-detail")
    page.get_by_test_id("ticket-link").click()
    page.wait_for_url(re.compile(r"/tickets/\d+/$"))
    expect(page.locator("body")).to_contain_text("HDG-FRONT-01")
    shot("12-ticket")

    with tenant_context(msp.tenant):
        from tickets.models import Ticket

        ticket = Ticket.objects.get()
        assert ticket.board.name == "Alerts" and ticket.priority.name == "High" and ticket.source == "alert"
