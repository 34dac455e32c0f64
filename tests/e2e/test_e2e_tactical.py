"""Tactical RMM end to end: gunicorn + a Celery worker + PostgreSQL + Redis, against the simulator.

connect -> discover -> map -> device sync -> failure webhook (as Tactical renders it) -> ticket
-> resolved webhook -> ticket closed (untouched) -> a second alert -> a technician closes its
ticket -> the simulator saw the resolve call. Only the REST API and the webhook URL are used.
"""

from __future__ import annotations

import httpx
import pytest

from tests.simulators.tactical import TacticalSimulator, render_webhook

from .flows import (
    WAIT,
    all_pages,
    closed_status,
    create_client,
    ok,
    wait_alert,
    wait_alert_ticket,
    wait_ticket,
)
from .harness import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def sim():
    with TacticalSimulator() as s:
        harbor = s.add_client("Harbor Dental Group", ["Main Office"])
        s.front = s.add_agent(s.site_named(harbor["id"], "Main Office")["id"], "HDG-FRONT-01")
        s.srv = s.add_agent(s.site_named(harbor["id"], "Main Office")["id"], "HDG-SRV-01", monitoring_type="server")
        yield s


def wait_job(api: httpx.Client, job: dict) -> dict:
    return wait_until(
        lambda: (j := ok(api.get(f"jobs/{job['id']}/")))["state"] in ("succeeded", "failed") and j,
        WAIT, 0.25, f"job {job['kind']}",
    )


def send(http: httpx.Client, sim: TacticalSimulator, card: dict, alert_id: int, event: str) -> httpx.Response:
    action = card["actions"][0 if event == "trigger" else 1]
    url, headers, body = render_webhook(sim, alert_id, url=action["pattern"], headers_json=action["rest_headers"],
                                        body_template=action["rest_body"])
    return http.post(url, content=body, headers=headers)


def test_tactical_flow_through_a_running_server_and_worker(tenant, sim):
    api = tenant.api
    ours = create_client(api, "Harbor Dental Group")
    data = ok(api.put("integrations/tactical/", json={"base_url": sim.url, "credentials": {"api_key": sim.api_key}}))
    assert data["status"] == "connected", data
    assert ok(api.post("integrations/tactical/test/"))["ok"] is True

    job = wait_job(api, ok(api.post("integrations/tactical/organizations/sync/"), 202))
    assert job["state"] == "succeeded", job
    ok(api.post("integrations/tactical/organizations/automap/"))
    mapped = [o for o in all_pages(api, "integrations/tactical/organizations/") if o["client"] == ours["id"]]
    assert [o["name"] for o in mapped] == ["Harbor Dental Group"]
    job = wait_job(api, ok(api.post("integrations/tactical/devices/sync/"), 202))
    assert job["state"] == "succeeded" and job["summary"]["created"] == 2, job
    assert {a["name"] for a in all_pages(api, "assets/", {"provider": "tactical"})} == {"HDG-FRONT-01", "HDG-SRV-01"}

    card = ok(api.get("integrations/tactical/webhook/"))
    with httpx.Client(timeout=30) as http:
        first = sim.add_alert(sim.front, check_id=803)
        r = send(http, sim, card, first["id"], "trigger")
        assert r.status_code == 202, r.text
        t1 = wait_alert_ticket(api, "tactical", str(first["id"]))
        assert t1["client"] == ours["id"] and not t1["is_closed"]

        sim.resolve_locally(first["id"])
        assert send(http, sim, card, first["id"], "resolved").status_code == 202
        wait_ticket(api, t1["id"], "the untouched ticket to close", is_closed=True)
        wait_alert(api, "tactical", str(first["id"]), state="resolved")

        second = sim.add_alert(sim.srv, check_id=900, message="HDG-SRV-01 has a cpuload check: CPU that failed.")
        assert send(http, sim, card, second["id"], "trigger").status_code == 202
        t2 = wait_alert_ticket(api, "tactical", str(second["id"]))
        assert t2["id"] != t1["id"]

    ok(api.patch(f"tickets/{t2['id']}/", json={"status": closed_status(api)["id"]}))
    wait_until(lambda: sim.calls_to("PUT", f"/alerts/{second['id']}/"), WAIT, 0.25, "the resolve call in Tactical")
    assert sim.calls_to("PUT", f"/alerts/{second['id']}/")[0].body == {"type": "resolve"}
    assert sim.alerts[second["id"]]["resolved"] is True
    wait_alert(api, "tactical", str(second["id"]), state="resolved")
