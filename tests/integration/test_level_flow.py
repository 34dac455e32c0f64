"""Level in process, through the REST API, the settings pages and the webhook URL only, against the
Level simulator: connect -> key access -> group tree -> map a top group (+ an override) -> devices
inherit -> field mapping and preview -> contacts -> signed webhooks (replay, bad signature, unknown
event, live device and group events, reopen) -> the automation route -> polls that heal -> resolve on
close with read/write and read-only keys."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from django.test import Client as HttpClient

from psa.models import Contact
from psa.tenancy import tenant_context
from tests.helpers import committed, ok
from tests.simulators.level import LevelSimulator, WebhookSender, render_automation

API = "/api/v1"
L = f"{API}/integrations/level"
HX = {"HTTP_HX_REQUEST": "true"}

pytestmark = pytest.mark.usefixtures("fast")


@pytest.fixture
def admin_web(client, tenant_a):
    client.force_login(tenant_a.user)
    return client


@pytest.fixture
def sim():
    with LevelSimulator() as s:
        s.tops = s.build_tree(clients=2, depth=4, fanout=2)  # "Client 1", "Client 2": 15 groups each
        by_name = {g["name"]: g for g in s.groups.values()}
        s.top = by_name["Client 1"]
        s.mid = by_name["Client 1 / L2-1"]
        s.deep = by_name["Client 1 / L2-1 / L3-1 / L4-2"]
        s.branch = by_name["Client 1 / L2-2"]  # mapped to another client: overrides the top's
        s.other_top = by_name["Client 2"]
        s.front = s.add_device(s.deep, "HDG-FRONT-01", last_logged_in_user="HARBOR\\mlopez")
        s.srv = s.add_device(s.mid, "HDG-SRV-01", role="server")
        s.branch_pc = s.add_device(s.branch, "BR-PC-01")
        s.add_many_devices(s.other_top, 7, prefix="C2")  # never synced (unmapped)
        yield s


def pages(api, path, params=None):
    url, query = path, dict(params or {})
    while url:
        page = ok(api.get(url, query))
        yield from page["results"]
        url, query = page.get("next"), None


def run_job(api, path):
    with committed():
        job = ok(api.post(path), 202)
    job = ok(api.get(f"{API}/jobs/{job['id']}/"))
    assert job["state"] == "succeeded", job
    return job


class Level:
    """Posts to our webhook URL the way Level does (through Django's test client)."""

    def __init__(self, api, sim):
        self.sim = sim
        self.card = ok(api.get(f"{L}/webhook/"))
        self.url = urlsplit(self.card["url"]).path
        self.http = HttpClient()
        self.sender = WebhookSender(secret=self.card["secret"], post=self._post)

    def _post(self, url, body, headers):
        extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items() if k != "Content-Type"}
        with committed():
            return self.http.post(url, data=body, content_type="application/json", **extra).status_code

    def send(self, envelope, **kw):
        return self.sender.deliver(self.url, envelope, **kw)


@pytest.fixture
def setup(api_a, tenant_a, make_client, sim):
    harbor = make_client(tenant_a.tenant, "Harbor Dental Group")
    branch = make_client(tenant_a.tenant, "Harbor Branch LLC")
    with tenant_context(tenant_a.tenant):
        maria = Contact.objects.create(client=harbor, name="Maria Lopez", email="mlopez@harbor.example")
    data = ok(api_a.put(f"{L}/", {"credentials": {"api_key": sim.read_write_key}, "base_url": sim.url + "/v2"},
                        format="json"))
    assert data["status"] == "connected" and sim.read_write_key not in json.dumps(data)
    assert data["provider_state"]["key_access"]["access"] == "read_write"
    assert data["docs"] == "docs/level.md"
    run_job(api_a, f"{L}/organizations/sync/")
    orgs = {o["name"]: o for o in pages(api_a, f"{L}/organizations/")}
    assert len(orgs) == 30
    ok(api_a.patch(f"{L}/organizations/{orgs['Client 1']['id']}/", {"client": harbor.pk}, format="json"))
    ok(api_a.patch(f"{L}/organizations/{orgs['Client 1 / L2-2']['id']}/", {"client": branch.pk}, format="json"))
    return {"harbor": harbor, "branch": branch, "maria": maria, "orgs": orgs}


def test_tree_inheritance_devices_fields_and_contacts(api_a, admin_web, setup, sim):
    harbor, branch = setup["harbor"], setup["branch"]
    tree = {o["name"]: o for o in pages(api_a, f"{L}/organizations/")}
    deep, top = tree["Client 1 / L2-1 / L3-1 / L4-2"], tree["Client 1"]
    assert (deep["client"], deep["effective_client"], deep["mapped_via"]) == (None, harbor.pk, top["id"])
    over = tree["Client 1 / L2-2 / L3-1"]
    assert (over["effective_client"], over["mapped_via"]) == (branch.pk, tree["Client 1 / L2-2"]["id"])
    c2 = tree["Client 2"]
    assert (c2["effective_client"], c2["mapped_via"], c2["device_count"], c2["subtree_device_count"]) == (
        None, None, 7, 7)
    assert top["subtree_device_count"] == 3 and deep["device_count"] == 1

    # The panel's tree: inherited rows greyed with the ancestor named, the unmapped subtree amber with its count.
    html = admin_web.get("/settings/integrations/rmm/level/").content.decode()
    assert "inherits Harbor Dental Group from Client 1" in html
    assert "inherits Harbor Branch LLC from Client 1 / L2-2" in html
    assert "not mapped: 7 devices not synced" in html
    assert 'id="card-level-routes"' in html and "Backfill alerts" in html and 'id="card-field-mapping"' in html

    job = run_job(api_a, f"{L}/devices/sync/")
    assert job["summary"]["created"] == 3 and job["summary"]["skipped_unmapped"] == 0, job
    assets = {a["name"]: a for a in pages(api_a, f"{API}/assets/", {"provider": "level"})}
    assert set(assets) == {"HDG-FRONT-01", "HDG-SRV-01", "BR-PC-01"}
    front = ok(api_a.get(f"{API}/assets/{assets['HDG-FRONT-01']['id']}/"))
    assert (front["client"], front["contact"], front["asset_type"]) == (harbor.pk, setup["maria"].pk, "workstation")
    assert assets["HDG-SRV-01"]["asset_type"] == "server" and assets["BR-PC-01"]["client"] == branch.pk
    assert front["attributes"]["disks"][0]["mount_point"] == "C:" and front["attributes"]["security_risk"] == "low"
    assert front["attributes"]["mac_addresses"] and front["local_ips"]
    # Filter by an attribute.
    servers = list(pages(api_a, f"{API}/assets/", {"attr.role": "SERVER"}))
    assert [a["name"] for a in servers] == ["HDG-SRV-01"]
    assert [a["name"] for a in pages(api_a, f"{API}/assets/", {"attribute": "role:server"})] == ["HDG-SRV-01"]
    assert api_a.get(f"{API}/assets/", {"attr.a__b": "x"}).status_code == 400
    page = admin_web.get(f"/assets/{front['id']}/").content.decode()
    assert "Maria Lopez" in page and 'data-attr="disks"' in page and "237.5 GB" in page

    # Field mapping: the table, a preview on one real device before saving, then save.
    fm = ok(api_a.get(f"{L}/field-mapping/"))
    assert fm["defaults"]["attr.disks"] == "disk_partitions" and fm["mapping"] == {}
    preview = ok(api_a.post(f"{L}/field-mapping/preview/", {
        "mapping": {"name": "nickname", "attr.eol": "operating_system.end_of_life", "attr.disks": ""},
        "device": sim.srv["id"]}, format="json"))
    assert preview["device"]["external_id"] == sim.srv["id"] and preview["device"]["client"] == harbor.pk
    assert preview["asset"]["asset_type"] == "server" and preview["attributes"]["eol"] is False
    assert "disks" not in preview["attributes"] and "operating_system.full_operating_system" in preview["paths"]
    nickname = next(e for e in preview["entries"] if e["target"] == "name")
    assert nickname["used"] is False and nickname["note"] == "Not in this device's record."  # nickname is null
    assert api_a.post(f"{L}/field-mapping/preview/", {"mapping": {"colour": "x"}}, format="json").status_code == 400
    saved = ok(api_a.put(f"{L}/field-mapping/", {"mapping": {"attr.disks": "", "attr.city": "city"}}, format="json"))
    assert saved["effective"]["attr.city"] == "city" and "attr.disks" not in saved["effective"]
    assert api_a.put(f"{L}/field-mapping/", {"mapping": {"bad": "x"}}, format="json").status_code == 400
    run_job(api_a, f"{L}/devices/sync/")
    front = ok(api_a.get(f"{API}/assets/{assets['HDG-FRONT-01']['id']}/"))
    assert "disks" not in front["attributes"] and front["attributes"]["city"] == "Portland"
    # The panel's card previews too.
    card = admin_web.post("/settings/integrations/rmm/level/field-mapping/preview/",
                          {"target": ["attr.eol"], "path": ["operating_system.end_of_life"]}, **HX).content.decode()
    assert 'data-testid="field-mapping-preview"' in card and "attr.eol" in card


def test_webhooks_polls_and_resolve_on_close(api_a, admin_web, setup, sim, tenant_a):
    harbor = setup["harbor"]
    run_job(api_a, f"{L}/devices/sync/")
    level = Level(api_a, sim)
    assert level.card["native"]["events"][:2] == ["alert_active", "alert_resolved"]
    alert = sim.add_alert(sim.front, "Disk space low", severity="critical")
    envelope = sim.alert_event(alert["id"], event_id="ev-1")
    assert level.send(envelope) == [202]
    a = next(pages(api_a, f"{API}/alerts/", {"provider": "level"}))
    assert (a["external_id"], a["severity"], a["client"]) == (alert["id"], "high", harbor.pk)
    ticket = ok(api_a.get(f"{API}/tickets/{a['ticket']}/"))
    assert ticket["contact"] == setup["maria"].pk and ticket["asset"] == a["asset"]
    # Level's manual re-run keeps the event id: no second effect.
    assert level.sender.rerun(level.url, envelope) == 202
    assert len(list(pages(api_a, f"{API}/tickets/", {"source": "alert"}))) == 1
    events = list(pages(api_a, f"{L}/events/"))
    assert [e["status"] for e in events][:2] == ["duplicate", "processed"]
    # A wrong secret in Level: 401, kept as a failed event.
    wrong = WebhookSender(secret="not-the-secret", post=level._post)
    assert wrong.deliver(level.url, sim.alert_event(alert["id"], event_id="ev-x"), attempts=1) == [401]
    failed = next(pages(api_a, f"{L}/events/"))
    assert failed["status"] == "failed" and "Signature check failed" in failed["error"]
    # An event type we do not know: stored, 202, no action.
    assert level.send(sim.envelope("device_flagged", {"id": sim.front["id"]}, event_id="ev-new")) == [202]
    assert next(pages(api_a, f"{L}/events/"))["status"] == "processed"

    # Live: a new group inherits at once; a device moves into the unmapped client's tree -> retired.
    new_group = sim.add_group("Client 1 / New wing", sim.top)
    assert level.send(sim.group_event("group_created", new_group["id"])) == [202]
    tree = {o["name"]: o for o in pages(api_a, f"{L}/organizations/")}
    assert tree["Client 1 / New wing"]["effective_client"] == harbor.pk
    sim.update_device(sim.branch_pc["id"], group_id=sim.other_top["id"])
    assert level.send(sim.device_event("device_updated", sim.branch_pc["id"])) == [202]
    moved = next(pages(api_a, f"{API}/assets/", {"q": "BR-PC-01"}))
    assert moved["retired_at"] is not None
    sim.update_device(sim.srv["id"], hostname="HDG-SRV-02")
    assert level.send(sim.device_event("device_updated", sim.srv["id"])) == [202]
    assert next(pages(api_a, f"{API}/assets/", {"q": "HDG-SRV-02"}))["retired_at"] is None

    # Resolved webhook -> the untouched ticket closes; Level reopens the alert -> a new firing.
    sim.resolve_locally(alert["id"])
    assert level.send(sim.alert_event(alert["id"])) == [202]
    assert ok(api_a.get(f"{API}/tickets/{a['ticket']}/"))["is_closed"] is True
    sim.reopen(alert["id"])
    reopened = sim.alert_event(alert["id"])
    assert level.send(reopened) == [202]
    again = ok(api_a.get(f"{API}/alerts/{a['id']}/"))
    assert again["state"] == "active" and again["ticket"] != a["ticket"] and again["occurrence_count"] == 2

    # The automation route: the card's trigger body as Level renders it, with the shared-secret header.
    body = render_automation(sim, level.card["actions"][0]["body"], sim.front["id"])
    with committed():
        r = level.http.post(level.url, data=body, content_type="application/json",
                            HTTP_X_PSA_WEBHOOK_SECRET=level.card["secret"])
    assert r.status_code == 202, r.content
    auto = next(x for x in pages(api_a, f"{API}/alerts/", {"provider": "level"})
                if x["external_id"].startswith("automation:"))
    assert auto["client"] == harbor.pk and auto["state"] == "active"

    # A poll (Backfill) heals what the webhooks missed and leaves the automation alert alone.
    missed = sim.add_alert(sim.srv, "CPU high", severity="emergency")
    sim.resolve_locally(alert["id"])  # and its alert_resolved never came
    job = run_job(api_a, f"{L}/alerts/poll/")
    assert job["summary"]["reconciled"]["not_covered"] == 1, job
    polled = next(x for x in pages(api_a, f"{API}/alerts/", {"provider": "level"}) if x["external_id"] == missed["id"])
    assert polled["severity"] == "critical" and polled["ticket"]
    assert ok(api_a.get(f"{API}/alerts/{a['id']}/"))["state"] == "resolved"
    assert ok(api_a.get(f"{API}/alerts/{auto['id']}/"))["state"] == "active"

    # A technician closes the polled alert's ticket: Level gets the resolve call.
    closed = next(s for s in pages(api_a, f"{API}/statuses/") if s["is_closed"])
    with committed():
        ok(api_a.patch(f"{API}/tickets/{polled['ticket']}/", {"status": closed["id"]}, format="json"))
    assert sim.calls_to("POST", f"/v2/alerts/{missed['id']}/resolve")
    assert sim.alerts[missed["id"]]["is_resolved"] is True

    # Closing the automation alert's ticket: nothing to resolve in Level, said in a note.
    with committed():
        ok(api_a.patch(f"{API}/tickets/{auto['ticket']}/", {"status": closed["id"]}, format="json"))
    notes = [n["body"] for n in pages(api_a, f"{API}/tickets/{auto['ticket']}/notes/")]
    assert any("was not reset in Level" in n and "automation" in n for n in notes)
    assert ok(api_a.get(f"{API}/alerts/{auto['id']}/"))["reset_status"] == "skipped"


def test_read_only_key_gets_a_note_and_nothing_fails(api_a, setup, sim):
    run_job(api_a, f"{L}/devices/sync/")
    data = ok(api_a.put(f"{L}/", {"credentials": {"api_key": sim.read_only_key}}, format="json"))
    assert data["status"] == "connected" and data["provider_state"]["key_access"]["access"] == "read_only"
    level = Level(api_a, sim)
    assert any("read-only" in w for w in level.card["warnings"])
    alert = sim.add_alert(sim.front, "Disk space low")
    assert level.send(sim.alert_event(alert["id"])) == [202]
    a = next(pages(api_a, f"{API}/alerts/", {"provider": "level"}))
    closed = next(s for s in pages(api_a, f"{API}/statuses/") if s["is_closed"])
    with committed():
        ok(api_a.patch(f"{API}/tickets/{a['ticket']}/", {"status": closed["id"]}, format="json"))
    assert ok(api_a.get(f"{API}/tickets/{a['ticket']}/"))["is_closed"] is True
    notes = [n["body"] for n in pages(api_a, f"{API}/tickets/{a['ticket']}/notes/")]
    assert any("was not reset in Level" in n and "read-only" in n for n in notes)
    a = ok(api_a.get(f"{API}/alerts/{a['id']}/"))
    assert a["reset_status"] == "skipped" and sim.alerts[alert["id"]]["is_resolved"] is False
