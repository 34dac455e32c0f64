"""Tactical RMM end to end, in process, through the REST API and the webhook URL only.

connect (PUT) -> test -> discover -> automap -> device sync -> webhook card -> a failure
webhook rendered exactly as Tactical sends it -> ticket -> resolved webhook -> ticket closed
(untouched) -> a second alert -> a technician closes the ticket -> the simulator saw the
resolve call. Plus: a body broken by a double quote is salvaged through the API, and polling
ingests alerts whose webhook never came and resolves ours that Tactical no longer reports.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import pytest
from django.test import Client as HttpClient

from tests.helpers import committed, ok
from tests.simulators.tactical import TacticalSimulator, render_webhook

API = "/api/v1"
T = f"{API}/integrations/tactical"


pytestmark = pytest.mark.usefixtures("fast")


@pytest.fixture
def sim():
    with TacticalSimulator() as s:
        harbor = s.add_client("Harbor Dental Group", ["Main Office", "Annex"])
        s.harbor, s.main = harbor, s.site_named(harbor["id"], "Main Office")
        s.front = s.add_agent(s.main["id"], "HDG-FRONT-01", serial_number="7XK2M93")
        s.srv = s.add_agent(s.main["id"], "HDG-SRV-01", monitoring_type="server")
        s.add_client("Unmatched Ltd", ["HQ"])
        s.software[s.front.agent_id] = [{"name": "7-Zip", "version": "19.00", "publisher": "Igor Pavlov",
                                         "install_date": "2019-06-09 00:00:00 +0000 UTC", "size": "5.2 MB"}]
        yield s


def run_job(api, path):
    with committed():
        job = ok(api.post(path), 202)
    job = ok(api.get(f"{API}/jobs/{job['id']}/"))
    assert job["state"] == "succeeded", job
    return job


@pytest.fixture
def connected(api_a, tenant_a, make_client, sim):
    """Connected, discovered, automapped and device-synced through the API."""
    ours = make_client(tenant_a.tenant, "Harbor Dental Group")
    data = ok(api_a.put(f"{T}/", {"base_url": sim.url, "credentials": {"api_key": sim.api_key}}, format="json"))
    assert data["status"] == "connected", data
    assert sim.api_key not in str(data)  # write-only
    test = ok(api_a.post(f"{T}/test/"))
    assert test["ok"] and "2 clients" in test["message"]
    run_job(api_a, f"{T}/organizations/sync/")
    orgs = {o["external_id"]: o for o in ok(api_a.get(f"{T}/organizations/"))["results"]}
    assert orgs[f"site:{sim.main['id']}"]["parent_external_id"] == f"client:{sim.harbor['id']}"
    ok(api_a.post(f"{T}/organizations/automap/"))
    orgs = {o["external_id"]: o for o in ok(api_a.get(f"{T}/organizations/"))["results"]}
    assert orgs[f"client:{sim.harbor['id']}"]["client"] == ours.pk
    job = run_job(api_a, f"{T}/devices/sync/")
    assert job["summary"]["created"] == 2, job
    return ours


class Tactical:
    """Sends webhooks the way Tactical's REST URL actions do, using the card's values."""

    def __init__(self, api, sim):
        self.sim = sim
        self.card = ok(api.get(f"{T}/webhook/"))
        self.http = HttpClient()

    def send(self, alert_id: int, event: str = "trigger", body_template: str | None = None):
        action = self.card["actions"][0 if event == "trigger" else 1]
        url, headers, body = render_webhook(self.sim, alert_id, url=action["pattern"],
                                            headers_json=action["rest_headers"],
                                            body_template=body_template or action["rest_body"])
        parts = urlsplit(url)
        extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items() if k.lower() != "content-type"}
        with committed():
            return self.http.post(f"{parts.path}?{parts.query}", data=body,
                                  content_type=headers.get("Content-Type", ""), **extra)


def alerts_of(api, external_id):
    rows = ok(api.get(f"{API}/alerts/", {"provider": "tactical"}))["results"]
    return next((a for a in rows if a["external_id"] == str(external_id)), None)


def ticket(api, ticket_id):
    return ok(api.get(f"{API}/tickets/{ticket_id}/"))


def test_assets_after_device_sync(api_a, connected, sim):
    assets = ok(api_a.get(f"{API}/assets/", {"provider": "tactical"}))["results"]
    by_name = {a["name"]: a for a in assets}
    assert set(by_name) == {"HDG-FRONT-01", "HDG-SRV-01"}
    front = by_name["HDG-FRONT-01"]
    assert (front["serial_number"], front["asset_type"], front["client"]) == ("7XK2M93", "workstation", connected.pk)
    assert {"provider": "tactical", "external_id": sim.front.agent_id} in front["external_ids"]
    assert by_name["HDG-SRV-01"]["asset_type"] == "server"
    software = ok(api_a.get(f"{API}/assets/{front['id']}/software/"))["results"]
    assert [(s["name"], s["version"]) for s in software] == [("7-Zip", "19.00")]
    detail = ok(api_a.get(f"{API}/assets/{front['id']}/"))
    assert detail["remote_access_url"].startswith("https://mesh.example.test/")


def test_webhook_card(api_a, connected, sim):
    card = ok(api_a.get(f"{T}/webhook/"))
    assert card["header_name"] == "X-PSA-Webhook-Secret" and card["secret"]
    assert card["url"].endswith("?alert_id={{alert.id}}") and "/webhooks/tactical/" in card["url"]
    assert card["secret"] in card["rest_headers"] and '"event": "trigger"' in card["payload_template"]


def test_alert_lifecycle_webhook_resolve_and_close_resets(api_a, connected, sim):
    tactical = Tactical(api_a, sim)
    first = sim.add_alert(sim.front, check_id=803)
    r = tactical.send(first["id"])
    assert r.status_code == 202, r.content
    a1 = alerts_of(api_a, first["id"])
    assert a1 and a1["state"] == "active" and a1["severity"] == "high" and a1["ticket"], a1
    t1 = ticket(api_a, a1["ticket"])
    assert t1["source"] == "alert" and not t1["is_closed"] and t1["asset"] is not None
    # A second failing check on the same agent is a different condition: its own ticket.
    other = sim.add_alert(sim.front, check_id=804, message="HDG-FRONT-01 has a cpuload check: CPU that failed.")
    assert tactical.send(other["id"]).status_code == 202
    assert alerts_of(api_a, other["id"])["ticket"] != a1["ticket"]
    # Redelivery of the same failure changes nothing.
    assert tactical.send(first["id"]).status_code == 202
    assert ticket(api_a, a1["ticket"])["occurrence_count"] == t1["occurrence_count"]

    # The check passes: Tactical resolves the alert and sends the resolved webhook.
    sim.resolve_locally(first["id"])
    assert tactical.send(first["id"], "resolved").status_code == 202
    assert alerts_of(api_a, first["id"])["state"] == "resolved"
    assert ticket(api_a, a1["ticket"])["is_closed"] is True  # untouched -> closed

    # The reverse: a technician closes the other alert's ticket -> resolve in Tactical.
    ticket_id = alerts_of(api_a, other["id"])["ticket"]
    closed = next(s for s in ok(api_a.get(f"{API}/statuses/"))["results"] if s["is_closed"])
    sim.reset_calls()
    with committed():
        ok(api_a.patch(f"{API}/tickets/{ticket_id}/", {"status": closed["id"]}, format="json"))
    calls = sim.calls_to("PUT", f"/alerts/{other['id']}/")
    assert [c.body for c in calls] == [{"type": "resolve"}]
    assert sim.alerts[other["id"]]["resolved"] is True
    assert alerts_of(api_a, other["id"])["state"] == "resolved"


def test_failure_body_pasted_into_the_resolved_action_still_closes_the_ticket(api_a, connected, sim):
    tactical = Tactical(api_a, sim)
    failure_body = tactical.card["actions"][0]["rest_body"]
    alert = sim.add_alert(sim.front, check_id=803)
    assert tactical.send(alert["id"]).status_code == 202
    found = alerts_of(api_a, alert["id"])
    assert found["state"] == "active" and found["ticket"]
    sim.resolve_locally(alert["id"])
    # The resolved action's URL with the failure body ("event": "trigger") in it.
    r = tactical.send(alert["id"], "resolved", body_template=failure_body)
    assert r.status_code == 202, r.content
    assert alerts_of(api_a, alert["id"])["state"] == "resolved"
    assert ticket(api_a, found["ticket"])["is_closed"] is True
    events = ok(api_a.get(f"{T}/events/"))["results"]
    assert [e["status"] for e in events] == ["processed", "processed"]  # not dropped as a duplicate


def test_body_broken_by_a_double_quote_is_salvaged(api_a, connected, sim):
    tactical = Tactical(api_a, sim)
    alert = sim.add_alert(sim.front, message='HDG-FRONT-01 has a ping check: Core router "gw-1" that failed.')
    r = tactical.send(alert["id"])
    assert r.status_code == 202, r.content
    assert sim.calls_to("GET", f"/alerts/{alert['id']}/")  # fetched from the API
    found = alerts_of(api_a, alert["id"])
    assert found and found["ticket"] and 'Core router "gw-1"' in found["message"]
    events = ok(api_a.get(f"{T}/events/"))["results"]
    assert events[0]["status"] == "processed" and events[0]["salvaged"] is True


def test_unsalvageable_body_is_kept_as_failed(api_a, connected, sim):
    tactical = Tactical(api_a, sim)
    alert = sim.add_alert(sim.front, message='Service "Spooler" stopped')
    url, _headers, body = render_webhook(sim, alert["id"], url=tactical.card["actions"][0]["pattern"],
                                        headers_json=tactical.card["rest_headers"],
                                        body_template=tactical.card["failure_body"])
    del sim.alerts[alert["id"]]  # deleted in Tactical before we could fetch it
    parts = urlsplit(url)
    with committed():
        r = tactical.http.post(f"{parts.path}?{parts.query}", data=body, content_type="application/json",
                               HTTP_X_PSA_WEBHOOK_SECRET=tactical.card["secret"])
    assert r.status_code == 202  # accepted at intake (alert id in the URL), failed in processing
    events = ok(api_a.get(f"{T}/events/"))["results"]
    assert events[0]["status"] == "failed" and "No Alert matches" in events[0]["error"]
    assert alerts_of(api_a, alert["id"]) is None


def test_no_alert_id_anywhere_is_400(api_a, connected, sim):
    card = ok(api_a.get(f"{T}/webhook/"))
    path = urlsplit(card["url"]).path
    with committed():
        r = HttpClient().post(path, data=b'"{broken', content_type="",
                              HTTP_X_PSA_WEBHOOK_SECRET=card["secret"])
    assert r.status_code == 400
    assert ok(api_a.get(f"{T}/events/"))["results"][0]["status"] == "failed"


def test_polling_ingests_missed_alerts_and_reconciles(api_a, connected, sim):
    # Raised an hour ago in Tactical; reconciliation goes by when alerts reached us, not by alert_time.
    missed = sim.add_alert(sim.srv, alert_type="availability", message="HDG-SRV-01 in Harbor, Main is overdue.",
                           alert_time=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    run_job(api_a, f"{T}/alerts/poll/")
    found = alerts_of(api_a, missed["id"])
    assert found and found["state"] == "active" and found["ticket"]
    assert sim.calls_to("PATCH", "/alerts/")[-1].body == {"resolvedFilter": False}
    # Tactical resolved it while our resolved webhook was lost: the next poll closes ours.
    sim.resolve_locally(missed["id"])
    run_job(api_a, f"{T}/alerts/poll/")
    assert alerts_of(api_a, missed["id"])["state"] == "resolved"
    assert ticket(api_a, found["ticket"])["is_closed"] is True
