"""NinjaOne end to end: gunicorn + a Celery worker + PostgreSQL + Redis, against the NinjaOne simulator.

Sign in with NinjaOne (authorization code: oauth/start/, the admin's browser at NinjaOne, our callback)
-> the webhook registered in NinjaOne -> organizations and locations -> map (a location to a site
created from its name) -> devices (a token expiring mid-sync is renewed; the field mapping applies on
the next sync) -> a triggered condition, as NinjaOne POSTs it -> a ticket with the device's contact ->
NinjaOne's reset -> ticket closed. Also: a technician's close leads to the reset call seen by the
simulator; a revoked refresh token turns the integration to error with a notification, and no retry
storm. Only the REST API (../shared/API.md), the web callback and the webhook URL are used.
"""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.simulators.ninjaone import NinjaOneSimulator

from .flows import (
    WAIT,
    all_pages,
    closed_status,
    create_client,
    notes,
    ok,
    wait_alert,
    wait_alert_ticket,
    wait_ticket,
)
from .harness import wait_until

pytestmark = pytest.mark.e2e
N = "integrations/ninjaone"


@pytest.fixture
def sim():
    with NinjaOneSimulator(region="app", token_lifetime=3600) as s:
        s.harbor = s.add_org("Harbor Dental Group", ["Main Office", "Annexe"])
        s.main, s.annex = s.locations_of(s.harbor["id"])
        s.smith = s.add_org("Smith & Sons", ["HQ"])
        s.front = s.add_device(s.harbor["id"], "HDG-FRONT-01", location_id=s.main["id"],
                               lastLoggedInUser="HARBOR\\mlopez", fields={"warrantyEnd": "2027-01-31"})
        s.srv = s.add_device(s.harbor["id"], "HDG-SRV-01", location_id=s.annex["id"], nodeClass="WINDOWS_SERVER")
        s.add_device(s.smith["id"], "DC01")  # an unmapped organization's device: skipped and counted
        s.generate_devices(2_500, [s.harbor["id"]])  # three pages: room for a token to expire mid-sync
        yield s


def browser(live, tenant) -> httpx.Client:
    """The admin's browser, signed in (session cookie), as the OAuth callback needs."""
    web = httpx.Client(base_url=live.base_url, timeout=30, follow_redirects=False)
    page = web.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    r = web.post("/accounts/login/", data={"username": tenant.email, "password": tenant.password,
                                          "csrfmiddlewaretoken": token}, headers={"Referer": live.base_url})
    assert r.status_code == 302, r.text[:300]
    return web


def wait_job(api: httpx.Client, job: dict, state: str = "succeeded") -> dict:
    done = wait_until(
        lambda: (j := ok(api.get(f"jobs/{job['id']}/")))["state"] in ("succeeded", "failed") and j,
        WAIT, 0.25, f"job {job['kind']}",
    )
    assert done["state"] == state, done
    return done


def sign_in(api: httpx.Client, web: httpx.Client, sim: NinjaOneSimulator, live) -> None:
    callback = live.base_url.rstrip("/") + "/integrations/ninjaone/callback/"
    app = sim.add_app("cid-web", "secret-web", kind="web", redirect_uris=(callback,))
    ok(api.put(f"{N}/", json={"base_url": sim.url, "settings": {"auth_flow": "authorization_code"},
                              "credentials": {"client_id": app.client_id, "client_secret": app.client_secret}}))
    started = ok(api.get(f"{N}/oauth/start/"))
    assert started["redirect_uri"] == callback
    answer = sim.authorize(started["authorize_url"])  # the admin consents at NinjaOne
    r = web.get("/integrations/ninjaone/callback/", params=answer)
    assert r.status_code == 302 and r.headers["location"] == "/settings/integrations/rmm/ninjaone/", r.text[:300]


def test_ninjaone_flow_through_a_running_server_and_worker(live, tenant, sim):
    api = tenant.api
    web = browser(live, tenant)
    ours = create_client(api, "Harbor Dental Group")
    ok(api.post("contacts/", json={"client": ours["id"], "name": "Maria Lopez", "email": "mlopez@harbor.example"}),
       201)

    # Sign in with NinjaOne: connected, and our webhook registered in NinjaOne with our secret header.
    sign_in(api, web, sim, live)
    data = ok(api.get(f"{N}/"))
    assert data["status"] == "connected", data
    secret = ok(api.get(f"{N}/webhook/"))["secret"]
    assert sim.webhook["url"] == ok(api.get(f"{N}/webhook/"))["url"]
    assert sim.webhook["headers"] == [{"name": "X-PSA-Webhook-Secret", "value": secret}]
    assert data["provider_state"]["webhook"]["registered"] is True

    # Organizations and their locations; map the organization, and a location to a new site.
    wait_job(api, ok(api.post(f"{N}/organizations/sync/"), 202))
    orgs = {o["name"]: o for o in all_pages(api, f"{N}/organizations/")}
    assert orgs["Main Office"]["parent_external_id"] == orgs["Harbor Dental Group"]["external_id"]
    ok(api.patch(f"{N}/organizations/{orgs['Harbor Dental Group']['id']}/", json={"client": ours["id"]}))
    site = ok(api.patch(f"{N}/organizations/{orgs['Main Office']['id']}/", json={"create_site": True}))["site"]
    assert site

    # Devices: the token expires after the first page and is renewed (one refresh, rotated) on the way.
    refreshes = len(sim.grants("refresh_token"))
    sim.expire_tokens_after_pages = 1
    job = wait_job(api, ok(api.post(f"{N}/devices/sync/"), 202))
    assert (job["summary"]["created"], job["summary"]["skipped_unmapped"]) == (2_502, 1), job["summary"]
    assert len(sim.grants("refresh_token")) == refreshes + 1
    front = next(all_pages(api, "assets/", {"q": "HDG-FRONT-01"}))
    assert front["site"] == site and front["contact"] is not None and front["serial_number"]
    # The field mapping applies on the next sync.
    ok(api.put(f"{N}/field-mapping/", json={"mapping": {"attr.warranty_end": "fields.warrantyEnd"}}))
    wait_job(api, ok(api.post(f"{N}/devices/sync/"), 202))
    assert ok(api.get(f"assets/{front['id']}/"))["attributes"]["warranty_end"] == "2027-01-31"

    # A condition triggers: NinjaOne POSTs the activity to our registered URL with our header.
    alert = sim.add_alert(sim.front["id"])
    r = sim.deliver(sim.activity(alert, "TRIGGERED", severity="CRITICAL"))
    assert r.status_code == 202, r.text
    ticket = wait_alert_ticket(api, "ninjaone", alert["uid"])
    assert ticket["contact"] == front["contact"] and ticket["asset"] == front["id"] and ticket["client"] == ours["id"]
    assert wait_alert(api, "ninjaone", alert["uid"])["severity"] == "critical"
    # Acknowledged in NinjaOne: a note, nothing else.
    sim.deliver(sim.activity(alert, "ACKNOWLEDGED", severity=None, priority=None, userId=7))
    wait_until(lambda: any("Acknowledged in NinjaOne" in n["body"] for n in notes(api, ticket["id"])), WAIT, 0.25,
               "the acknowledgement note")
    # NinjaOne resets the condition: resolved, and the ticket closes (nobody worked on it).
    sim.deliver(sim.activity(alert, "RESET", severity=None, priority=None))
    wait_alert(api, "ninjaone", alert["uid"], state="resolved")
    wait_ticket(api, ticket["id"], "the ticket closed by the reset", is_closed=True)

    # A technician closes another alert's ticket: the reset call reaches NinjaOne.
    other = sim.add_alert(sim.srv["id"], message="CPU over 90%")
    sim.deliver(sim.activity(other, "TRIGGERED"))
    second = wait_alert_ticket(api, "ninjaone", other["uid"])
    ok(api.patch(f"tickets/{second['id']}/", json={"status": closed_status(api)["id"]}))
    wait_until(lambda: any(uid == other["uid"] for _, uid, _ in sim.resets), WAIT, 0.25, "the reset call")
    assert other["uid"] not in sim.alerts
    # What NinjaOne then sends back about its reset changes nothing more.
    for activity in list(sim.outbox):
        assert sim.deliver(activity).status_code == 202
    wait_alert(api, "ninjaone", other["uid"], state="resolved")


def test_revoked_refresh_token_errors_notifies_and_stops(live, tenant, sim):
    api = tenant.api
    web = browser(live, tenant)
    sign_in(api, web, sim, live)
    assert ok(api.get(f"{N}/"))["status"] == "connected"
    sim.revoke_refresh_tokens()
    sim.expire_access_tokens()
    wait_job(api, ok(api.post(f"{N}/alerts/poll/"), 202), state="failed")
    data = ok(api.get(f"{N}/"))
    assert data["status"] == "error" and data["last_error"].startswith("Reconnect required"), data
    notifications = list(all_pages(api, "notifications/"))
    assert [n["title"] for n in notifications] == ["NinjaOne: reconnect required"]
    assert notifications[0]["url"] == "/settings/integrations/rmm/ninjaone/"
    # Polling stops until someone reconnects; nothing asks NinjaOne for a token again.
    refused = api.post(f"{N}/alerts/poll/")
    assert refused.status_code == 400 and "not connected" in refused.json()["detail"]
    time.sleep(2)
    assert len(sim.grants("refresh_token", outcome=None)) == 1
    assert ok(api.post(f"{N}/test/"))["ok"] is False
    assert len(sim.grants("refresh_token", outcome=None)) == 1
    # The email to the admin went out (the console mail backend writes it to the worker's log).
    wait_until(lambda: "NinjaOne: reconnect required" in live.worker.log_text(), WAIT, 0.5, "the admin's email")
    # Signing in again reconnects.
    sign_in(api, web, sim, live)
    assert ok(api.get(f"{N}/"))["status"] == "connected"
