"""The NinjaOne panel in a real browser: pick the region and the sign-in kind, save the Web app's client
id and secret, "Connect with NinjaOne" (the browser goes to NinjaOne's consent page and comes back to
our callback), discover organizations and locations, map the organization and a location to a site
created from its name, sync devices, map a node class never seen before, add a field mapping row,
run "Patches and software", and read the patches and software on the asset page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from integrations.ninjaone import connect
from tests.simulators.ninjaone import NinjaOneSimulator

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "browser-pass-123"
EMAIL = "admin@ninja-browser.example"


@pytest.fixture
def sim(live_server, monkeypatch, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    with NinjaOneSimulator(region="eu") as s:
        monkeypatch.setitem(connect.REGION_URLS, "eu", s.url)  # the "eu" region is the simulator
        s.harbor = s.add_org("Harbor Dental Group", ["Main Office", "Annexe"])
        s.main, s.annex = s.locations_of(s.harbor["id"])
        s.add_org("Smith & Sons", ["HQ"])
        s.front = s.add_device(s.harbor["id"], "HDG-FRONT-01", location_id=s.main["id"],
                               fields={"warrantyEnd": "2027-01-31"})
        s.add_device(s.harbor["id"], "HDG-LAB-01", location_id=s.annex["id"], nodeClass="QUANTUM_TOASTER")
        s.software[s.front["id"]] = [{"name": "Mozilla Firefox", "version": "128.0", "publisher": "Mozilla"}]
        s.os_patches[s.front["id"]] = [
            {"id": "p-1", "name": "2025-01 Cumulative Update", "severity": "CRITICAL", "status": "FAILED",
             "type": "SECURITY_UPDATES", "kbNumber": "KB5050009"},
            {"id": "p-2", "name": "Defender definitions", "status": "MANUAL", "type": "DEFINITION_UPDATES"}]
        s.patch_installs[s.front["id"]] = [{"id": "p-0", "name": "2024-12 Cumulative Update",
                                            "installedAt": 1733000000, "kbNumber": "KB5048667"}]
        s.web = s.add_app("cid-web-browser", "secret-web-browser-0123456789", kind="web",
                          redirect_uris=(live_server.url + "/integrations/ninjaone/callback/",))
        yield s


@pytest.fixture
def msp(make_tenant, make_client):
    created = make_tenant("NinjaOne Browser MSP", EMAIL, PASSWORD)
    make_client(created.tenant, "Harbor Dental Group")
    return created


def _login(page):
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/tickets/"))


def test_ninjaone_panel_sign_in_locations_node_classes_and_inventory(browser_page, shot, live_server, msp, sim):
    page = browser_page
    _login(page)
    page.goto("/settings/integrations/rmm/")
    page.locator('[data-provider="ninjaone"]').click()
    page.wait_for_url(re.compile(r"/settings/integrations/rmm/ninjaone/$"))

    # The connection card: region and sign-in kind are selects; the secret never comes back.
    card = page.locator("#card-connection")
    card.get_by_label("Region").select_option("eu")
    card.get_by_label("Sign-in").select_option("authorization_code")
    card.get_by_label("Client ID").fill(sim.web.client_id)
    card.get_by_label("Client secret").fill(sim.web.client_secret)
    card.get_by_role("button", name="Save").click()
    expect(card).to_contain_text("Sign in with NinjaOne")
    assert sim.web.client_secret not in page.content()
    shot("ninjaone-01-saved")

    # Connect with NinjaOne: off to NinjaOne's consent page (automatic here) and back to our callback.
    page.reload()
    ninja = page.locator("#card-ninjaone")
    expect(ninja.get_by_test_id("ninja-callback-url")).to_have_text(
        live_server.url + "/integrations/ninjaone/callback/")
    ninja.get_by_test_id("ninja-connect").click()
    page.wait_for_url(re.compile(r"/settings/integrations/rmm/ninjaone/$"))
    expect(page.locator("body")).to_contain_text("Signed in with NinjaOne")
    expect(page.locator("#card-connection")).to_contain_text("Connected since")
    ninja = page.locator("#card-ninjaone")
    expect(ninja.get_by_test_id("ninja-region")).to_have_text("eu")
    expect(ninja.get_by_test_id("ninja-token")).to_contain_text("valid until")
    expect(ninja.get_by_test_id("ninja-webhook")).to_contain_text("registered")
    assert sim.webhook is not None and sim.webhook["url"].startswith(live_server.url + "/webhooks/ninjaone/")
    shot("ninjaone-02-signed-in")

    # Organizations and their locations; map the organization, then a location to a new site.
    page.get_by_role("button", name="Discover organizations").click()
    orgs = page.locator("#card-organizations")
    expect(orgs.locator('[data-job-state="succeeded"]')).to_be_visible()
    page.reload()
    orgs = page.locator("#card-organizations")
    expect(orgs.locator("tbody tr")).to_have_count(5)
    orgs.get_by_label("Client for Harbor Dental Group", exact=True).select_option(label="Harbor Dental Group")
    expect(orgs.locator("tr.inherited")).to_have_count(2)
    expect(orgs.get_by_test_id("org-sync-now")).to_be_visible()
    orgs.get_by_label("Site for Main Office", exact=True).select_option(label="+ Create site “Main Office”")
    expect(orgs.get_by_label("Site for Main Office", exact=True)).to_have_value(re.compile(r"^\d+$"))
    expect(orgs.get_by_label("Site for Main Office", exact=True).locator("option:checked")).to_have_text(
        "Main Office")
    shot("ninjaone-03-location-site")

    # Devices: the node class nobody knows shows first, as "Other"; map it.
    page.get_by_role("button", name="Run device sync").click()
    expect(page.locator("#card-devices").get_by_test_id("job-summary")).to_contain_text("Created: 2")
    page.reload()
    ninja = page.locator("#card-ninjaone")
    expect(ninja.get_by_test_id("ninja-unknown-count")).to_have_text("1 new")
    row = ninja.locator('tr[data-node-class="QUANTUM_TOASTER"]')
    expect(row).to_have_class("unmapped")
    expect(row.get_by_label("Asset type for QUANTUM_TOASTER")).to_have_value("other")
    row.get_by_label("Asset type for QUANTUM_TOASTER").select_option("server")
    expect(page.locator("#card-ninjaone").get_by_test_id("ninja-notice")).to_contain_text("QUANTUM_TOASTER")
    expect(page.locator('#card-ninjaone tr[data-node-class="QUANTUM_TOASTER"]')).not_to_have_class("unmapped")
    shot("ninjaone-04-node-class")

    # Field mapping: a NinjaOne custom field into a named attribute; the next sync applies it.
    mapping = page.locator("#card-field-mapping")
    rows = mapping.locator("tbody tr").count()
    mapping.get_by_label(f"Target {rows - 2}", exact=True).fill("attr.warranty_end")
    mapping.get_by_label(f"Source path {rows - 2}", exact=True).fill("fields.warrantyEnd")
    mapping.get_by_role("button", name="Save mapping").click()
    expect(page.locator("#card-field-mapping")).to_contain_text("Field mapping saved")
    page.get_by_role("button", name="Run device sync").click()
    expect(page.locator("#card-devices").get_by_test_id("job-summary")).to_contain_text("Updated: 2")

    # Patches and software from NinjaOne's reports, shown on the asset page.
    page.locator("#card-jobs").get_by_role("button", name="Patches and software").click()
    expect(page.locator('#card-jobs [data-kind="ninjaone.inventory"] [data-job-state="succeeded"]')).to_be_visible()
    page.goto("/assets/")
    page.get_by_role("link", name="HDG-LAB-01").wait_for()
    expect(page.locator("tr", has_text="HDG-FRONT-01").get_by_test_id("asset-patches")).to_contain_text("1 failed")
    page.get_by_role("link", name="HDG-FRONT-01").click()
    patches = page.locator("#asset-patches")
    expect(patches.get_by_test_id("patch-states")).to_contain_text("1 failed")
    expect(patches.get_by_test_id("patch-states")).to_contain_text("1 installed")
    expect(patches.get_by_test_id("patch-row").first).to_contain_text("2025-01 Cumulative Update")
    expect(page.locator("body")).to_contain_text("Mozilla Firefox")
    expect(page.locator("#asset-attributes")).to_contain_text("2027-01-31")
    expect(page.get_by_test_id("remote-access-form").get_by_role("button", name="Remote access")).to_be_visible()
    expect(page.locator("body")).to_contain_text("Main Office")  # the site the location mapped to
    shot("ninjaone-05-asset-inventory")
