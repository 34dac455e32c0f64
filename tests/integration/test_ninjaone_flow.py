"""NinjaOne in process, through the REST API, the settings pages and the webhook URL only, against the
NinjaOne simulator: sign in (both OAuth flows) -> organizations and locations -> map (a location to a
site, a site created from a location's name) -> devices (skipped and counted, node classes, field
mapping, contacts, serials, duplicate hostnames) -> patches and software -> remote access -> webhook
registration -> alerts (trigger, acknowledge, reset) -> reset on close -> poll reconciliation."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail

from assets.models import Patch, Software
from integrations.models import Integration
from psa.models import ClientSite, Contact, Notification
from psa.tenancy import tenant_context
from tests.helpers import committed, ok
from tests.simulators.ninjaone import DIFFERENT_PSA, NinjaOneSimulator

API = "/api/v1"
N = f"{API}/integrations/ninjaone"
BASE = "https://psa.example"
CALLBACK = BASE + "/integrations/ninjaone/callback/"
HX = {"HTTP_HX_REQUEST": "true"}

pytestmark = pytest.mark.usefixtures("fast")


@pytest.fixture(autouse=True)
def public_base(settings):
    settings.PUBLIC_BASE_URL = BASE


@pytest.fixture
def admin_web(client, tenant_a):
    client.force_login(tenant_a.user)
    return client


@pytest.fixture
def sim():
    with NinjaOneSimulator(region="app") as s:
        s.harbor = s.add_org("Harbor Dental Group", ["Main Office", "Annexe «Nord»"])
        s.main, s.annex = s.locations_of(s.harbor["id"])
        s.smith = s.add_org("Smith & Sons", ["HQ"])
        s.front = s.add_device(s.harbor["id"], "HDG-FRONT-01", location_id=s.main["id"],
                               lastLoggedInUser="HARBOR\\mlopez", fields={"warrantyEnd": "2027-01-31"},
                               system={"manufacturer": "Dell Inc.", "model": "OptiPlex 7010",
                                       "serialNumber": "7XK2M93", "domain": "harbor.local"})
        s.srv = s.add_device(s.harbor["id"], "HDG-SRV-01", location_id=s.annex["id"], nodeClass="WINDOWS_SERVER",
                             offline=True, lastContact=1742412252)
        s.dc_harbor = s.add_device(s.harbor["id"], "DC01", location_id=s.main["id"], nodeClass="QUANTUM_TOASTER")
        s.esx = s.add_device(s.harbor["id"], "esx01", location_id=s.annex["id"], nodeClass="VMWARE_VM_HOST",
                             os=None, system=None, vendor="Dell Inc.", model="PowerEdge R640", serviceTag="9ZX8Y7W",
                             releaseName="VMware ESXi 7.0.3", deviceType="VMHost", lastLoggedInUser=None)
        s.dc_smith = s.add_device(s.smith["id"], "DC01")  # the same hostname in another client: normal
        s.app = s.add_app("cid-harbor", "secret-harbor")
        yield s


def pages(api, path, params=None):
    url, query = path, dict(params or {})
    while url:
        page = ok(api.get(url, query))
        yield from page["results"]
        url, query = page.get("next"), None


def run_job(api, path, body=None):
    with committed():
        job = ok(api.post(path, body or {}, format="json"), 202)
    job = ok(api.get(f"{API}/jobs/{job['id']}/"))
    assert job["state"] == "succeeded", job
    return job


def deliver(client, sim, activity, *, channel_secret: str | None = None):
    """POST an activity to our webhook as NinjaOne would (registered webhook, or a notification channel)."""
    if channel_secret is None:
        url, headers, body = sim.render_webhook(activity)
    else:
        hook = sim.webhook or {}
        url = hook.get("url", "") + "?" + "secret=" + channel_secret
        headers, body = {}, json.dumps(activity).encode()
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items() if k.lower() != "content-type"}
    parts = urlsplit(url)
    with committed():
        return client.post(parts.path + (f"?{parts.query}" if parts.query else ""), data=body,
                           content_type="application/json", **extra)


@pytest.fixture
def connected(api_a, tenant_a, make_client, sim):
    """Client credentials, organizations synced, Harbor mapped (a location to a site), Smith unmapped."""
    harbor = make_client(tenant_a.tenant, "Harbor Dental Group")
    with tenant_context(tenant_a.tenant):
        maria = Contact.objects.create(client=harbor, name="Maria Lopez", email="mlopez@harbor.example")
    data = ok(api_a.put(f"{N}/", {"credentials": {"client_id": sim.app.client_id,
                                                  "client_secret": sim.app.client_secret},
                                  "base_url": sim.url}, format="json"))
    assert data["status"] == "connected", data
    assert sim.app.client_secret not in json.dumps(data)
    run_job(api_a, f"{N}/organizations/sync/")
    orgs = {o["name"]: o for o in pages(api_a, f"{N}/organizations/")}
    return {"harbor": harbor, "maria": maria, "orgs": orgs}


# -- connect ------------------------------------------------------------------------------------------------
def test_authorization_code_sign_in_through_start_and_callback(api_a, admin_web, sim, tenant_a, make_member):
    web = sim.add_app("cid-web", "secret-web", kind="web", redirect_uris=(CALLBACK,))
    data = ok(api_a.put(f"{N}/", {"credentials": {"client_id": web.client_id, "client_secret": web.client_secret},
                                  "base_url": sim.url, "settings": {"auth_flow": "authorization_code"}},
                        format="json"))
    assert data["status"] == "error" and "Sign in with NinjaOne" in data["last_error"]
    started = ok(api_a.get(f"{N}/oauth/start/"))
    assert started["redirect_uri"] == CALLBACK
    query = parse_qs(urlsplit(started["authorize_url"]).query)
    assert query["code_challenge_method"] == ["S256"] and "offline_access" in query["scope"][0].split()
    assert "code_verifier" not in started["authorize_url"]
    answer = sim.authorize(started["authorize_url"])

    # Another admin's browser cannot finish it; the admin who started can, once.
    other = make_member(tenant_a.tenant, role="admin")
    from django.test import Client as WebClient

    intruder = WebClient()
    intruder.force_login(other)
    r = intruder.get("/integrations/ninjaone/callback/", answer, follow=True)
    assert "started by another account" in r.content.decode()
    r = admin_web.get("/integrations/ninjaone/callback/", answer)
    assert r.status_code == 302 and r["Location"] == "/settings/integrations/rmm/ninjaone/"
    integration = ok(api_a.get(f"{N}/"))
    assert integration["status"] == "connected", integration
    assert integration["provider_state"]["webhook"]["registered"] is True
    assert len(sim.grants("authorization_code")) == 1
    again = admin_web.get("/integrations/ninjaone/callback/", answer, follow=True)
    assert "already used" in again.content.decode() and len(sim.grants("authorization_code")) == 1
    # A state we never issued: refused, nothing asked of NinjaOne.
    forged = admin_web.get("/integrations/ninjaone/callback/", {"code": "x", "state": "forged"}, follow=True)
    assert "was not started here" in forged.content.decode()

    # The registered webhook: our URL, condition activities, device + organization + location, our header.
    secret = ok(api_a.get(f"{N}/webhook/"))["secret"]
    hook = sim.webhook
    assert hook["url"].startswith(BASE + "/webhooks/ninjaone/")
    assert set(hook["activities"]) == {"CONDITION", "CONDITION_ACTIONSET"}
    assert {"TRIGGERED", "RESET", "ACKNOWLEDGED"} <= set(hook["activities"]["CONDITION"])
    assert {"device", "organization", "location"} <= set(hook["expand"])
    assert hook["headers"] == [{"name": "X-PSA-Webhook-Secret", "value": secret}]

    # The panel: the Connect button (a POST that sends the browser to NinjaOne) and the callback URL.
    page = admin_web.get("/settings/integrations/rmm/ninjaone/").content.decode()
    assert 'data-testid="ninja-connect"' in page and CALLBACK in page
    go = admin_web.post("/integrations/ninjaone/connect/")
    assert go.status_code == 302 and go["Location"].startswith(sim.url + "/ws/oauth/authorize?")


def test_oauth_start_refuses_client_credentials(api_a, sim):
    ok(api_a.put(f"{N}/", {"credentials": {"client_id": sim.app.client_id, "client_secret": sim.app.client_secret},
                           "base_url": sim.url}, format="json"))
    r = api_a.get(f"{N}/oauth/start/")
    assert r.status_code == 400 and "client credentials" in r.json()["detail"]


def test_revoked_refresh_token_errors_notifies_once_and_pauses_polling(api_a, admin_web, sim, tenant_a):
    web = sim.add_app("cid-web", "secret-web", kind="web", redirect_uris=(CALLBACK,))
    ok(api_a.put(f"{N}/", {"credentials": {"client_id": web.client_id, "client_secret": web.client_secret},
                           "base_url": sim.url, "settings": {"auth_flow": "authorization_code"}}, format="json"))
    admin_web.get("/integrations/ninjaone/callback/", sim.authorize(ok(api_a.get(f"{N}/oauth/start/"))["authorize_url"]))
    assert ok(api_a.get(f"{N}/"))["status"] == "connected"
    sim.revoke_refresh_tokens()
    sim.expire_access_tokens()
    with committed():
        job = ok(api_a.post(f"{N}/alerts/poll/"), 202)
    assert ok(api_a.get(f"{API}/jobs/{job['id']}/"))["state"] == "failed"
    data = ok(api_a.get(f"{N}/"))
    assert data["status"] == "error" and data["last_error"].startswith("Reconnect required")
    with tenant_context(tenant_a.tenant):
        assert Notification.objects.filter(title="NinjaOne: reconnect required").count() == 1
    assert [m.subject for m in mail.outbox] == ["NinjaOne: reconnect required"]
    # Polling stops (the job is refused) and nothing asks NinjaOne again: no retry storm.
    refused = api_a.post(f"{N}/alerts/poll/")
    assert refused.status_code == 400 and "not connected" in refused.json()["detail"]
    assert len(sim.grants("refresh_token", outcome=None)) == 1
    page = admin_web.get("/settings/integrations/rmm/ninjaone/").content.decode()
    assert 'data-testid="ninja-reconnect"' in page


# -- organizations, locations, devices ------------------------------------------------------------------
def test_locations_map_to_sites_and_devices_follow(api_a, admin_web, connected, sim, tenant_a):
    harbor, orgs = connected["harbor"], connected["orgs"]
    org, main, annex = orgs["Harbor Dental Group"], orgs["Main Office"], orgs["Annexe «Nord»"]
    assert (main["parent_external_id"], main["kind"]) == (org["external_id"], "location")
    assert set(orgs) == {"Harbor Dental Group", "Main Office", "Annexe «Nord»", "Smith & Sons", "HQ"}
    # Automap: exact name.
    assert ok(api_a.post(f"{N}/organizations/automap/"))["matched"] == 1
    # Main Office -> a site created from its name; the Annexe -> an existing site of the client.
    with tenant_context(tenant_a.tenant):
        lab = ClientSite.objects.create(client=harbor, name="Lab wing")
    mapped = ok(api_a.patch(f"{N}/organizations/{main['id']}/", {"create_site": True}, format="json"))
    with tenant_context(tenant_a.tenant):
        site = ClientSite.objects.get(pk=mapped["site"])
    assert (site.name, site.client_id, mapped["client"]) == ("Main Office", harbor.pk, harbor.pk)
    ok(api_a.patch(f"{N}/organizations/{annex['id']}/", {"site": lab.pk}, format="json"))
    bad = api_a.patch(f"{N}/organizations/{orgs['HQ']['id']}/", {"create_site": True}, format="json")
    assert bad.status_code == 400 and "Map a client first" in json.dumps(bad.json())

    job = run_job(api_a, f"{N}/devices/sync/")
    s = job["summary"]
    assert (s["created"], s["skipped_unmapped"], s["unknown_node_classes"]) == (4, 1, ["QUANTUM_TOASTER"]), s
    assets = {a["name"]: a for a in pages(api_a, f"{API}/assets/", {"provider": "ninjaone"})}
    assert set(assets) == {"HDG-FRONT-01", "HDG-SRV-01", "DC01", "esx01"}
    front, srv, esx = assets["HDG-FRONT-01"], assets["HDG-SRV-01"], assets["esx01"]
    assert (front["site"], srv["site"], esx["site"]) == (site.pk, lab.pk, lab.pk)
    assert front["contact"] == connected["maria"].pk and front["serial_number"] == "7XK2M93"
    assert front["attributes"]["domain"] == "harbor.local" and "macAddresses" not in front["attributes"]
    assert (srv["asset_type"], srv["status"]) == ("server", "offline")
    assert (esx["serial_number"], esx["os"], esx["make_model"]) == ("9ZX8Y7W", "VMware ESXi 7.0.3",
                                                                   "Dell Inc. PowerEdge R640")
    assert assets["DC01"]["asset_type"] == "other"

    # The card lists the new node class first; the admin maps it, the next sync applies it.
    page = admin_web.get("/settings/integrations/rmm/ninjaone/").content.decode()
    assert 'data-node-class="QUANTUM_TOASTER" class="unmapped"' in page and "new: not in the table" in page
    card = admin_web.post("/integrations/ninjaone/node-classes/", {"node_class": "QUANTUM_TOASTER",
                                                                   "asset_type": "server"}, **HX).content.decode()
    assert 'data-node-class="QUANTUM_TOASTER" class="unmapped"' not in card and "QUANTUM_TOASTER" in card
    assert ok(api_a.get(f"{N}/"))["settings"]["node_class_map"] == {"QUANTUM_TOASTER": "server"}

    # Field mapping: a custom field into an attribute, the next sync.
    ok(api_a.put(f"{N}/field-mapping/", {"mapping": {"attr.warranty_end": "fields.warrantyEnd"}}, format="json"))
    # Smith is mapped later: its devices arrive with this sync (import order does not matter).
    smith = ok(api_a.post(f"{API}/clients/", {"name": "Smith & Sons Ltd"}, format="json"), 201)
    ok(api_a.patch(f"{N}/organizations/{orgs['Smith & Sons']['id']}/", {"client": smith["id"]}, format="json"))
    s = run_job(api_a, f"{N}/devices/sync/")["summary"]
    assert (s["created"], s["skipped_unmapped"], s["unknown_node_classes"]) == (1, 0, []), s
    dcs = [a for a in pages(api_a, f"{API}/assets/", {"q": "DC01"})]
    assert sorted(a["client"] for a in dcs) == sorted([harbor.pk, smith["id"]])  # two DC01s, never merged
    assert {a["asset_type"] for a in dcs if a["client"] == harbor.pk} == {"server"}
    front = ok(api_a.get(f"{API}/assets/{front['id']}/"))
    assert front["attributes"]["warranty_end"] == "2027-01-31"
    # Gone from NinjaOne: retired, not deleted.
    sim.remove_device(sim.srv["id"])
    assert run_job(api_a, f"{N}/devices/sync/")["summary"]["retired"] == 1
    assert ok(api_a.get(f"{API}/assets/{srv['id']}/"))["retired_at"] is not None


def test_the_org_rows_offer_sites_and_a_sync_right_after_mapping(admin_web, connected, tenant_a):
    harbor, orgs = connected["harbor"], connected["orgs"]
    card = admin_web.post(f"/settings/integrations/rmm/ninjaone/organizations/{orgs['Harbor Dental Group']['id']}/",
                          {"client": harbor.pk}, **HX).content.decode()
    assert 'data-testid="org-sync-now"' in card
    assert f'id="org-site-{orgs["Main Office"]["id"]}"' in card and "+ Create site “Main Office”" in card
    card = admin_web.post(f"/settings/integrations/rmm/ninjaone/organizations/{orgs['Main Office']['id']}/",
                          {"client": harbor.pk, "site": "new", "inherit": "1"}, **HX).content.decode()
    with tenant_context(tenant_a.tenant):
        site = ClientSite.objects.get(client=harbor, name="Main Office")
    assert f'<option value="{site.pk}" selected>Main Office</option>' in card
    # Back to no site: an inheriting row goes back to inheriting.
    admin_web.post(f"/settings/integrations/rmm/ninjaone/organizations/{orgs['Main Office']['id']}/",
                   {"client": harbor.pk, "site": "", "inherit": "1"}, **HX)
    with tenant_context(tenant_a.tenant):
        row = Integration.objects.get(provider="ninjaone").organizations.get(pk=orgs["Main Office"]["id"])
    assert (row.client_id, row.site_id) == (None, None)


def test_patches_software_and_remote_access(api_a, admin_web, connected, sim, tenant_a):
    harbor, orgs = connected["harbor"], connected["orgs"]
    ok(api_a.patch(f"{N}/organizations/{orgs['Harbor Dental Group']['id']}/", {"client": harbor.pk}, format="json"))
    run_job(api_a, f"{N}/devices/sync/")
    fid, sid = sim.front["id"], sim.srv["id"]
    sim.software[fid] = [{"name": "Mozilla Firefox", "version": "128.0", "publisher": "Mozilla",
                          "installDate": "2024-05-01T00:00:00Z", "size": 250_000_000}, {"name": "7-Zip"}]
    sim.os_patches[fid] = [
        {"id": "p-1", "name": "2025-01 Cumulative Update", "severity": "CRITICAL", "status": "MANUAL",
         "type": "SECURITY_UPDATES", "kbNumber": "KB5050009"},
        {"id": "p-2", "name": "Driver update", "status": "FAILED", "type": "DRIVER_UPDATES"},
        {"id": "p-3", "name": "Feature pack", "status": "REJECTED"}]
    sim.patch_installs[fid] = [{"id": "p-0", "name": "2024-12 Cumulative Update", "status": "INSTALLED",
                                "installedAt": 1733000000.5, "kbNumber": "KB5048667"}]
    sim.os_patches[sid] = [{"id": "s-1", "name": "Server update", "status": "APPROVED"}]
    sim.os_patches[999_999] = [{"id": "x", "name": "A device we have no asset for"}]
    sim.expire_cursors_after_pages = 1  # the first walk's cursor dies: the walk restarts
    job = run_job(api_a, f"{N}/jobs/", {"kind": "ninjaone.inventory"})
    s = job["summary"]
    assert s["patches"]["written"] == 2 and s["software"]["written"] == 1, s
    front = next(a for a in pages(api_a, f"{API}/assets/", {"q": "HDG-FRONT-01"}))
    assert front["patch_counts"] == {"pending": 1, "approved": 0, "failed": 1, "rejected": 1, "installed": 1}
    patches = {p["external_id"]: p for p in pages(api_a, f"{API}/assets/{front['id']}/patches/")}
    assert patches["p-0"]["state"] == "installed" and patches["p-0"]["installed_at"].startswith("2024-11-30")
    assert (patches["p-1"]["kb"], patches["p-1"]["severity"], patches["p-1"]["kind"]) == (
        "KB5050009", "critical", "security_updates")
    failed = list(pages(api_a, f"{API}/assets/{front['id']}/patches/", {"state": "failed"}))
    assert [p["external_id"] for p in failed] == ["p-2"]
    software = {x["name"]: x for x in pages(api_a, f"{API}/assets/{front['id']}/software/")}
    assert software["Mozilla Firefox"]["version"] == "128.0" and software["Mozilla Firefox"]["source"] == "ninjaone"

    # Nothing changed: nothing rewritten (the rows keep their ids).
    with tenant_context(tenant_a.tenant):
        before = set(Patch.objects.values_list("id", flat=True)) | set(Software.objects.values_list("id", flat=True))
    s = run_job(api_a, f"{N}/jobs/", {"kind": "ninjaone.inventory"})["summary"]
    assert (s["patches"]["written"], s["patches"]["unchanged"]) == (0, 2)
    with tenant_context(tenant_a.tenant):
        after = set(Patch.objects.values_list("id", flat=True)) | set(Software.objects.values_list("id", flat=True))
    assert before == after
    # One device changes, another loses its inventory.
    sim.os_patches[fid][0]["status"] = "FAILED"
    del sim.os_patches[sid]
    s = run_job(api_a, f"{N}/jobs/", {"kind": "ninjaone.inventory"})["summary"]
    assert (s["patches"]["written"], s["patches"]["cleared"], s["software"]["written"]) == (1, 1, 0), s

    # The asset page and the client's asset list.
    page = admin_web.get(f"/assets/{front['id']}/").content.decode()
    assert "2025-01 Cumulative Update" in page and 'data-state="failed">2 failed' in page
    assert 'data-testid="remote-access-form"' in page and "Mozilla Firefox" in page
    listing = admin_web.get("/assets/", {"client": harbor.pk}).content.decode()
    assert 'data-testid="client-patches"' in listing and 'data-state="failed">2 failed' in listing

    # Remote access: a fresh dashboard link each time, never stored on the asset.
    first = ok(api_a.post(f"{API}/assets/{front['id']}/remote-access/"))
    second = ok(api_a.post(f"{API}/assets/{front['id']}/remote-access/"))
    assert first["provider"] == "ninjaone" and first["url"] != second["url"] and first["expires"]
    assert f"/deviceDashboard/{fid}/" in first["url"]
    assert ok(api_a.get(f"{API}/assets/{front['id']}/"))["remote_access_url"] == ""
    assert len(sim.calls_to("GET", f"/v2/device/{fid}/dashboard-url")) == 2
    go = admin_web.post(f"/assets/{front['id']}/remote-access/", {"provider": "ninjaone"})
    assert go.status_code == 302 and go["Location"].startswith("https://app.ninjarmm.com/#/deviceDashboard/")


# -- alerts ---------------------------------------------------------------------------------------------
def test_webhook_alerts_acknowledge_reset_and_close(api_a, client, connected, sim, tenant_a):
    harbor, orgs = connected["harbor"], connected["orgs"]
    ok(api_a.patch(f"{N}/organizations/{orgs['Harbor Dental Group']['id']}/", {"client": harbor.pk}, format="json"))
    run_job(api_a, f"{N}/devices/sync/")
    registered = ok(api_a.post(f"{N}/webhook/register/"))
    assert registered["registered"] is True and sim.webhook["url"] == registered["url"]

    alert = sim.add_alert(sim.front["id"])
    r = deliver(client, sim, sim.activity(alert, "TRIGGERED", severity="MAJOR"))
    assert r.status_code == 202, r.content
    a = next(pages(api_a, f"{API}/alerts/", {"provider": "ninjaone"}))
    assert (a["external_id"], a["severity"], a["client"], a["state"]) == (alert["uid"], "high", harbor.pk, "active")
    ticket = ok(api_a.get(f"{API}/tickets/{a['ticket']}/"))
    assert ticket["contact"] == connected["maria"].pk and ticket["asset"] == a["asset"]
    # Acknowledged: a note on the ticket, the alert stays as it was.
    deliver(client, sim, sim.activity(alert, "ACKNOWLEDGED", severity=None, priority=None, userId=42))
    notes = [n["body"] for n in pages(api_a, f"{API}/tickets/{ticket['id']}/notes/")]
    assert any(n.startswith("Acknowledged in NinjaOne by user 42") for n in notes)
    assert ok(api_a.get(f"{API}/alerts/{a['id']}/"))["severity"] == "high"
    # An ack for a series never seen, and an activity we take no action on: stored, nothing opened.
    ghost = {**alert, "uid": "00000000-0000-0000-0000-00000000dead"}
    deliver(client, sim, sim.activity(ghost, "ACKNOWLEDGED"))
    deliver(client, sim, sim.activity(alert, "NODE_CREATED", activity_type="SYSTEM"))
    assert len(list(pages(api_a, f"{API}/alerts/", {"provider": "ninjaone"}))) == 1
    # A notification-channel webhook (no custom header, the secret in the URL; device not expanded).
    secret = ok(api_a.get(f"{N}/webhook/"))["secret"]
    other = sim.add_alert(sim.srv["id"], message="CPU over 90%")
    r = deliver(client, sim, sim.activity(other, "TRIGGERED", channel=True, severity=None, priority=None), channel_secret=secret)
    assert r.status_code == 202
    cpu = next(x for x in pages(api_a, f"{API}/alerts/", {"provider": "ninjaone"}) if x["external_id"] == other["uid"])
    assert (cpu["client"], cpu["severity"]) == (harbor.pk, "medium")  # through the device; absent severity
    assert deliver(client, sim, sim.activity(other, "TRIGGERED"), channel_secret="wrong").status_code == 401

    # NinjaOne resets the first: the alert resolves (the ticket closes: nobody worked on it).
    deliver(client, sim, sim.activity(alert, "RESET", severity=None, priority=None))
    assert ok(api_a.get(f"{API}/alerts/{a['id']}/"))["state"] == "resolved"
    assert ok(api_a.get(f"{API}/tickets/{ticket['id']}/"))["is_closed"] is True

    # A technician closes the CPU ticket: the reset call reaches NinjaOne.
    closed = next(s for s in pages(api_a, f"{API}/statuses/") if s["is_closed"])
    with committed():
        ok(api_a.patch(f"{API}/tickets/{cpu['ticket']}/", {"status": closed["id"]}, format="json"))
    assert [(m, uid) for m, uid, _ in sim.resets] == [("DELETE", other["uid"])]
    assert other["uid"] not in sim.alerts
    # NinjaOne then reports the reset it made: stored, nothing reopened.
    for activity in sim.outbox:
        assert deliver(client, sim, activity).status_code == 202
    assert ok(api_a.get(f"{API}/alerts/{cpu['id']}/"))["state"] == "resolved"


def test_poll_reconciles_by_uid(api_a, connected, sim, client):
    harbor, orgs = connected["harbor"], connected["orgs"]
    ok(api_a.patch(f"{N}/organizations/{orgs['Harbor Dental Group']['id']}/", {"client": harbor.pk}, format="json"))
    run_job(api_a, f"{N}/devices/sync/")
    ok(api_a.post(f"{N}/webhook/register/"))
    seen = sim.add_alert(sim.front["id"])
    deliver(client, sim, sim.activity(seen, "TRIGGERED"))
    missed = sim.add_alert(sim.srv["id"], message="Service stopped", source_name="")
    job = run_job(api_a, f"{N}/alerts/poll/")
    assert job["summary"]["received"] == 2
    alerts = {a["external_id"]: a for a in pages(api_a, f"{API}/alerts/", {"provider": "ninjaone"})}
    assert alerts[missed["uid"]]["state"] == "active" and alerts[missed["uid"]]["client"] == harbor.pk
    del sim.alerts[seen["uid"]]  # NinjaOne no longer reports it
    run_job(api_a, f"{N}/alerts/poll/")
    alerts = {a["external_id"]: a for a in pages(api_a, f"{API}/alerts/", {"provider": "ninjaone"})}
    assert (alerts[seen["uid"]]["state"], alerts[missed["uid"]]["state"]) == ("resolved", "active")
    integration = ok(api_a.get(f"{N}/"))
    assert integration["poll_interval_minutes"] == 15 and integration["poll_interval_bounds"] == [5, 60]
    assert api_a.put(f"{N}/", {"poll_interval_minutes": 2}, format="json").status_code == 400


def test_webhook_refusals_are_shown_as_ninjaone_wrote_them(api_a, admin_web, connected, sim):
    sim.other_psa = True
    r = api_a.post(f"{N}/webhook/register/")
    assert r.status_code == 400 and DIFFERENT_PSA in r.json()["detail"]
    assert r.json()["provider_message"] == DIFFERENT_PSA and r.json()["provider_status"] == 403
    state = ok(api_a.get(f"{N}/"))["provider_state"]["webhook"]
    assert state["registered"] is False and DIFFERENT_PSA in state["error"]
    card = admin_web.post("/integrations/ninjaone/webhook/", {"action": "remove"}, **HX).content.decode()
    assert DIFFERENT_PSA in card
    sim.other_psa = False
    assert ok(api_a.delete(f"{N}/webhook/register/"))["registered"] is False
    # Disconnecting (clearing the credentials) removes our webhook from NinjaOne.
    ok(api_a.post(f"{N}/webhook/register/"))
    assert sim.webhook is not None
    ok(api_a.put(f"{N}/", {"credentials": {"client_id": None, "client_secret": None}}, format="json"))
    assert sim.webhook is None
