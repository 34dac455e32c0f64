"""The Level panel in a real browser: connect (the key's access shows), discover the group tree, map a
top group and watch its subgroups inherit it (greyed, the ancestor named), override a branch, see the
unmapped subtree in amber with its device count, read both webhook routes, preview the field mapping,
and Backfill alerts into tickets."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from psa.tenancy import tenant_context
from tests.simulators.level import LevelSimulator

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "browser-pass-123"


@pytest.fixture
def sim():
    with LevelSimulator() as s:
        s.tops = s.build_tree(clients=2, depth=3, fanout=2)  # "Client 1", "Client 2": 7 groups each
        by_name = {g["name"]: g for g in s.groups.values()}
        s.front = s.add_device(by_name["Client 1 / L2-1 / L3-2"], "HDG-FRONT-01")
        s.add_device(by_name["Client 1 / L2-2"], "HDG-BRANCH-01")
        s.add_many_devices(by_name["Client 2 / L2-1"], 4, prefix="C2")
        s.add_many_devices(s.tops[1], 2, prefix="C2TOP")
        yield s


@pytest.fixture
def msp(make_tenant, make_client):
    created = make_tenant("Level Browser MSP", "admin@level-browser.example", PASSWORD)
    make_client(created.tenant, "Harbor Dental Group")
    make_client(created.tenant, "Harbor Branch LLC")
    return created


def _login(page):
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill("admin@level-browser.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/tickets/"))


def test_level_panel_tree_routes_and_backfill(browser_page, shot, live_server, msp, sim):
    page = browser_page
    # Level is SaaS (no base URL field on the card): point this integration at the simulator first.
    with tenant_context(msp.tenant):
        from integrations.models import Integration
        from integrations.services import config

        integration = config.get_integration("level", create=True)
        Integration.objects.filter(pk=integration.pk).update(base_url=sim.url + "/v2")
    _login(page)
    page.goto("/settings/integrations/rmm/")
    page.locator('[data-provider="level"]').click()
    page.wait_for_url(re.compile(r"/settings/integrations/rmm/level/$"))

    # Connect with the API key.
    page.get_by_label("API key").fill(sim.read_write_key)
    page.locator("#card-connection").get_by_role("button", name="Save").click()
    expect(page.locator("#card-connection")).to_contain_text("Connected since")
    assert sim.read_write_key not in page.content()
    page.reload()  # the other cards read what the connection test learned
    expect(page.get_by_test_id("level-key-access")).to_have_text("Read and write")
    shot("level-01-connected")

    # The group tree: every group, nested; nothing mapped yet.
    page.get_by_role("button", name="Discover organizations").click()
    orgs = page.locator("#card-organizations")
    expect(orgs.locator('[data-job-state="succeeded"]')).to_be_visible()
    page.reload()
    orgs = page.locator("#card-organizations")
    expect(orgs.locator("tbody tr")).to_have_count(14)
    expect(orgs.locator('tr[data-depth="2"]')).to_have_count(8)

    # Map the top group: its subgroups inherit it, greyed, naming the ancestor.
    orgs.get_by_label("Client for Client 1", exact=True).select_option(label="Harbor Dental Group")
    expect(orgs.locator("tr.mapped")).to_have_count(1)
    expect(orgs.locator("tr.inherited")).to_have_count(6)
    deep = orgs.locator("tr", has_text="Client 1 / L2-1 / L3-2")
    expect(deep).to_have_class(re.compile(r"\binherited\b"))
    expect(deep.get_by_test_id("inherited-note")).to_have_text("inherits Harbor Dental Group from Client 1")
    # The unmapped tree: amber, with its device count.
    other = orgs.locator("tr", has_text="Client 2").first
    expect(other).to_have_class(re.compile(r"\bunmapped\b"))
    expect(other.get_by_test_id("unmapped-note")).to_contain_text("6 devices not synced")
    shot("level-02-tree-inherited")

    # Override a branch: its subtree now inherits the other client.
    orgs.get_by_label("Client for Client 1 / L2-2", exact=True).select_option(label="Harbor Branch LLC")
    branch_kid = orgs.locator("tr", has_text="Client 1 / L2-2 / L3-1")
    expect(branch_kid.get_by_test_id("inherited-note")).to_have_text(
        "inherits Harbor Branch LLC from Client 1 / L2-2")
    expect(orgs.locator("tr.mapped")).to_have_count(2)
    shot("level-03-tree-override")

    # Devices: the subgroup devices are synced under the inherited clients.
    page.get_by_role("button", name="Run device sync").click()
    devices = page.locator("#card-devices")
    expect(devices.get_by_test_id("job-summary")).to_contain_text("Created: 2")

    # Both webhook routes: native (URL + Secret + events) and the automation action (its limits).
    routes = page.locator("#card-level-routes")
    expect(routes.get_by_test_id("level-native-route")).to_contain_text("alert_active")
    expect(routes.get_by_test_id("level-native-route")).to_contain_text("group_deleted")
    expect(routes.get_by_test_id("level-automation-route")).to_contain_text("no alert id")
    expect(routes.get_by_test_id("level-severity-map")).to_contain_text("Emergency")
    webhook = page.locator("#card-webhook")
    webhook.get_by_role("button", name="Reveal").click()
    expect(webhook.get_by_role("button", name="Hide")).to_be_visible()
    secret = webhook.locator("#webhook-secret").input_value()
    assert len(secret) > 20
    assert secret in webhook.locator("#revealed-headers").input_value()
    body = webhook.get_by_label("Automation HTTP action (trigger): body").input_value()
    assert "{{level_device_id}}" in body and "{{level_group_name}}" in body
    expect(webhook.get_by_label("Automation HTTP action (resolve): body")).to_be_visible()
    expect(webhook.locator("#webhook-url")).to_have_value(re.compile(r"/webhooks/level/"))
    shot("level-04-webhook-routes")

    # Field mapping: preview one real device before saving.
    mapping = page.locator("#card-field-mapping")
    mapping.get_by_label("Target 1", exact=True).fill("attr.os_eol")  # the first (default) row, changed
    mapping.get_by_label("Source path 1", exact=True).fill("operating_system.end_of_life")
    mapping.get_by_role("button", name="Preview").click()
    preview = page.get_by_test_id("field-mapping-preview")
    expect(preview).to_contain_text("attr.os_eol")
    expect(preview).to_contain_text("HDG-")
    shot("level-05-field-mapping-preview")

    # Backfill: Level's active alerts become tickets now (no webhook was ever sent).
    alert = sim.add_alert(sim.front, "Disk space low", severity="critical")
    page.locator("#card-level-routes").get_by_role("button", name="Backfill alerts").click()
    polling = page.locator("#card-polling")
    expect(polling.locator('[data-job-state="succeeded"]')).to_be_visible()
    expect(polling.get_by_test_id("job-summary")).to_contain_text("Ingested: 1")
    shot("level-06-backfill")
    with tenant_context(msp.tenant):
        from alerts.models import Alert
        from integrations.models import Job

        job = Job.objects.filter(kind="alerts.poll").order_by("-id").first()
        backfilled = Alert.objects.filter(external_id=alert["id"]).first()
        assert backfilled is not None, (job.state, job.summary, job.error) if job else "no poll job"
        assert backfilled.ticket_id is not None and backfilled.client.name == "Harbor Dental Group"
        assert backfilled.severity == "high"
