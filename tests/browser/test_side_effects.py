"""Side effects and noise control in a real browser: a person closes a ticket, the reset in the provider
fails and the ticket says so with a Retry button that delivers it; a storm ticket's Split button."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from psa.tenancy import tenant_context

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "browser-pass-123"


@pytest.fixture
def msp(make_tenant, fake_provider):
    from tests.integration.pipeline_support import setup_fake

    created = make_tenant("Side Effects MSP", "admin@effects.example", PASSWORD)
    created.fx = setup_fake(created.tenant)
    return created


def _login(page):
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill("admin@effects.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/tickets/"))


def _ingest(msp, *alerts):
    from alerts.services.pipeline import ingest_normalized

    return [ingest_normalized(msp.fx.integration, a, source="webhook") for a in alerts]


def test_a_failed_reset_shows_on_the_ticket_and_retry_delivers_it(browser_page, shot, msp, fake_provider):
    from integrations.errors import AuthFailed
    from tests.fakes import alert

    fake_provider.state.reset_failures = {"a-1": AuthFailed("The API key was rejected.")}
    (a,) = _ingest(msp, alert("a-1", "o1", title="Disk C low"))
    page = browser_page
    _login(page)
    page.goto(f"/tickets/{a.ticket_id}/")
    page.get_by_label("Status").select_option(label="Closed")
    page.get_by_role("button", name="Save changes").click()
    effect = page.get_by_test_id("side-effect").first
    expect(effect).to_have_attribute("data-state", "failed")
    expect(effect).to_contain_text("Reset in Fake RMM:")
    expect(effect).to_contain_text("The API key was rejected.")
    shot("effects-01-reset-failed")
    # The admin fixed the key in the RMM: Retry.
    fake_provider.state.reset_failures = {}
    effect.get_by_test_id("side-effect-retry").click()
    page.wait_for_url(re.compile(rf"/tickets/{a.ticket_id}/$"))
    expect(page.get_by_test_id("side-effect").first).to_have_attribute("data-state", "done")
    expect(page.get_by_test_id("side-effect-retry")).to_have_count(0)
    expect(page.locator("article.note").filter(has_text="alert a-1 after the ticket was closed")).to_have_count(1)
    shot("effects-02-reset-retried")
    assert fake_provider.state.resets == ["a-1", "a-1"]


def test_a_storm_ticket_splits_from_its_page(browser_page, shot, msp, settings):
    from django.core.cache import cache

    from alerts.models import AlertStorm
    from tests.fakes import alert

    cache.clear()
    settings.PSA_STORM_NEW_CONDITIONS_PER_MINUTE = 2
    _ingest(msp, *(alert(f"down-{i}", "o1", condition_key=f"pc-{i}|offline", device_name=f"PC-{i}",
                         title="Device offline") for i in range(5)))
    with tenant_context(msp.tenant):
        storm = AlertStorm.objects.get()
    page = browser_page
    _login(page)
    page.goto(f"/tickets/{storm.ticket_id}/")
    expect(page.get_by_test_id("storm-card")).to_contain_text("5 alerts held here")
    expect(page.get_by_test_id("occurrences")).to_have_text("5")
    expect(page.locator("article.note").filter(has_text="Alert storm:").first).to_contain_text("PC-0: Device offline")
    shot("effects-03-storm-ticket")
    page.get_by_test_id("storm-split").click()
    page.wait_for_url(re.compile(rf"/tickets/{storm.ticket_id}/$"))
    expect(page.locator("article.note").filter(has_text="Storm split by")).to_contain_text("into 5 tickets")
    expect(page.get_by_test_id("ticket-status")).to_have_text("Closed")
    shot("effects-04-storm-split")
