"""The Huntress panel in a real browser: connect (the status card names the account and counts the
organizations), the mapping table (automap's summary, mapped green / unmapped amber, the unmapped filter),
Poll now refused while routing is incomplete, the routing card's validation error next to its field and
then a saved routing, Poll now making tickets, and Send test landing on the security and triage boards
and closing."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from psa.tenancy import tenant_context
from tests.simulators.huntress import HuntressSimulator, new_signing_secret

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "browser-pass-123"
EMAIL = "admin@huntress-browser.example"


@pytest.fixture
def sim(settings):
    settings.PSA_HUNTRESS_MAX_WAIT = 20
    with HuntressSimulator() as s:
        s.harbor = s.add_org("Harbor Dental Group")
        s.cafe = s.add_org("Café “Ünïcode” & O'Brien")
        s.front = s.add_agent(s.harbor["id"], "HDG-FRONT-01", "7XK2M93")
        s.add_incident(s.harbor["id"], s.front["id"], severity="critical")
        s.add_incident(s.cafe["id"], None, severity="low", remediations=0)
        yield s


@pytest.fixture
def msp(make_tenant, make_client):
    created = make_tenant("Huntress Browser MSP", EMAIL, PASSWORD)
    make_client(created.tenant, "Harbor Dental Group")
    make_client(created.tenant, "Security Triage")
    return created


def _login(page):
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/tickets/"))


def test_huntress_panel_status_routing_mapping_poll_and_send_test(browser_page, shot, live_server, msp, sim):
    page = browser_page
    with tenant_context(msp.tenant):
        from integrations.models import Integration
        from integrations.services import config

        integration = config.get_integration("huntress", create=True)
        Integration.objects.filter(pk=integration.pk).update(base_url=sim.url + "/v1")
    _login(page)
    page.goto("/settings/integrations/rmm/")
    page.locator('[data-provider="huntress"]').click()
    page.wait_for_url(re.compile(r"/settings/integrations/rmm/huntress/$"))

    # Connect: key, secret and the webhook signing secret (all write-only).
    signing = new_signing_secret()
    page.get_by_label("API key", exact=True).fill(sim.api_key)
    page.get_by_label("API secret key").fill(sim.api_secret)
    page.get_by_label("Webhook signing secret").fill(signing)
    page.locator("#card-connection").get_by_role("button", name="Save").click()
    expect(page.locator("#card-connection")).to_contain_text("Connected since")
    assert sim.api_secret not in page.content() and signing not in page.content()
    page.reload()
    status = page.locator("#card-incident-status")
    expect(status.get_by_test_id("incident-connected")).to_have_text("Connected to Example MSP")
    expect(status.get_by_test_id("status-org-count")).to_have_text("2")
    expect(status.get_by_test_id("status-unmapped-count")).to_have_text("2 unmapped")
    expect(status.get_by_test_id("routing-missing")).to_contain_text("choose the security board")
    shot("huntress-01-connected")

    # Poll now while routing is incomplete: refused, saying what is missing.
    status.get_by_role("button", name="Poll now").click()
    expect(page.get_by_test_id("poll-refused")).to_contain_text("routing is complete")

    # Mapping table: automap by exact name, its summary; mapped green, unmapped amber; the unmapped filter.
    orgs = page.locator("#card-organizations")
    orgs.get_by_role("button", name="Automap by exact name").click()
    expect(page.get_by_test_id("automap-summary")).to_contain_text("matched 1 organization")
    expect(page.get_by_test_id("automap-summary")).to_contain_text("1 have no client with the same name")
    expect(orgs.locator("tr.mapped")).to_have_count(1)
    expect(orgs.locator("tr.mapped")).to_contain_text("Harbor Dental Group")
    expect(orgs.locator("tr.unmapped")).to_contain_text("Café “Ünïcode” & O'Brien")
    assert "255, 248, 234" in orgs.locator("tr.unmapped").evaluate("e => getComputedStyle(e).backgroundColor")
    assert "243, 250, 245" in orgs.locator("tr.mapped").evaluate("e => getComputedStyle(e).backgroundColor")
    orgs.get_by_role("link", name="Show only unmapped").click()
    expect(page.locator("#card-organizations tbody tr")).to_have_count(1)
    expect(page.locator("#card-organizations tbody tr")).to_contain_text("Café")
    shot("huntress-02-mapping")

    # Routing: close-on-resolve without a closed status is refused, the error next to its field.
    routing = page.locator("#card-incident-routing")
    routing.get_by_label("Security board").select_option(label="Security")
    routing.get_by_label("Fallback client").select_option(label="Security Triage")
    routing.get_by_label("Fallback (triage) board").select_option(label="Triage")
    routing.get_by_label("Critical severity").select_option(label="Critical")
    routing.get_by_label("High severity").select_option(label="High")
    routing.get_by_label("Low severity").select_option(label="Low")
    routing.get_by_label("Poll interval (minutes)").fill("2")
    routing.get_by_label("Close tickets when the provider closes the incident").check()
    routing.get_by_role("button", name="Save routing configuration").click()
    routing = page.locator("#card-incident-routing")
    error = routing.locator("#id_closed_status_error")
    expect(error).to_contain_text("Choose the status that closes tickets")
    # Next to its field: inside the closed status's own field block.
    assert routing.locator(".field", has=page.locator("#id_closed_status")).locator("#id_closed_status_error").count()
    shot("huntress-03-routing-error")
    routing.get_by_label("Closed status").select_option(label="Closed")
    routing.get_by_role("button", name="Save routing configuration").click()
    expect(page.get_by_test_id("routing-saved")).to_be_visible()
    expect(page.locator("#card-incident-status").get_by_test_id("routing-missing")).to_have_count(0)
    shot("huntress-04-routing-saved")

    # Poll now: both incidents become tickets (eager Celery: done within the request).
    page.locator("#card-incident-status").get_by_role("button", name="Poll now").click()
    status = page.locator("#card-incident-status")
    expect(status.get_by_test_id("incident-poll-job")).to_have_attribute("data-job-state", "succeeded")
    expect(status.get_by_test_id("status-open-incidents")).to_contain_text("2")
    expect(status.get_by_test_id("status-last-poll")).to_contain_text("OK")
    shot("huntress-05-polled")
    with tenant_context(msp.tenant):
        from incidents.models import Incident

        boards = sorted(Incident.objects.values_list("ticket__board__name", flat=True))
    assert boards == ["Security", "Triage"]

    # Send test: a mapped organization -> security board; an unmapped one -> triage; then close it.
    page.reload()
    test_card = page.locator("#card-incident-test")
    test_card.get_by_label("Organization").select_option(label="Harbor Dental Group (mapped to Harbor Dental Group)")
    test_card.get_by_role("button", name="Send test").click()
    test_card = page.locator("#card-incident-test")
    expect(test_card.get_by_test_id("test-landed-board")).to_have_text("Security")
    expect(test_card.get_by_test_id("test-landed-client")).to_have_text("Harbor Dental Group")
    test_card.get_by_label("Organization").select_option(label="Café “Ünïcode” & O'Brien (unmapped: triage)")
    test_card.get_by_role("button", name="Send test").click()
    test_card = page.locator("#card-incident-test")
    expect(test_card.get_by_test_id("test-landed-board")).to_have_text("Triage")
    expect(test_card.get_by_test_id("test-landed-client")).to_have_text("Security Triage")
    expect(test_card.get_by_test_id("test-incident-row")).to_have_count(2)
    shot("huntress-06-send-test")
    test_card.get_by_test_id("test-close").first.click()
    test_card = page.locator("#card-incident-test")
    expect(test_card.get_by_test_id("test-incident-status").first).to_contain_text("closed")
    shot("huntress-07-test-closed")
    page.goto("/tickets/")
    expect(page.get_by_text("[TEST] Test incident from the Huntress settings").first).to_be_visible()
