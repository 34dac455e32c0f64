"""Level end to end: gunicorn + a Celery worker + PostgreSQL + Redis, against the Level simulator.

connect -> the key's access -> discover the group tree -> map a top group -> subgroup devices inherit
it -> a signed alert_active (as Level's sender posts it) -> ticket -> alert_resolved -> ticket closed.
Also: a bad signature is 401 and kept as a failed event; a replayed event_id has no second effect; a
technician's close leads to the resolve call, and with a read-only key to a note; a poll heals a
missed alert_resolved. Only the REST API (../shared/API.md) and the webhook URL are used.
"""

from __future__ import annotations

import httpx
import pytest

from tests.simulators.level import LevelSimulator, WebhookSender

from .flows import (
    WAIT,
    alert_tickets,
    all_pages,
    closed_status,
    create_client,
    events,
    notes,
    ok,
    wait_alert,
    wait_alert_ticket,
    wait_events_settled,
    wait_ticket,
)
from .harness import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def sim():
    with LevelSimulator() as s:
        s.tops = s.build_tree(clients=2, depth=4, fanout=2)
        by_name = {g["name"]: g for g in s.groups.values()}
        s.top, s.other_top = by_name["Client 1"], by_name["Client 2"]
        s.front = s.add_device(by_name["Client 1 / L2-1 / L3-1 / L4-2"], "HDG-FRONT-01")  # four levels down
        s.srv = s.add_device(by_name["Client 1 / L2-2"], "HDG-SRV-01", role="server")
        s.add_many_devices(s.other_top, 5, prefix="C2")
        yield s


def wait_job(api: httpx.Client, job: dict) -> dict:
    done = wait_until(
        lambda: (j := ok(api.get(f"jobs/{job['id']}/")))["state"] in ("succeeded", "failed") and j,
        WAIT, 0.25, f"job {job['kind']}",
    )
    assert done["state"] == "succeeded", done
    return done


def test_level_flow_through_a_running_server_and_worker(tenant, sim):
    api = tenant.api
    ours = create_client(api, "Harbor Dental Group")
    data = ok(api.put("integrations/level/", json={"base_url": sim.url + "/v2",
                                                   "credentials": {"api_key": sim.read_write_key}}))
    assert data["status"] == "connected", data
    assert ok(api.post("integrations/level/test/"))["ok"] is True
    assert ok(api.get("integrations/level/"))["provider_state"]["key_access"]["access"] == "read_write"

    # The tree: every group, four levels deep; map the top group only.
    wait_job(api, ok(api.post("integrations/level/organizations/sync/"), 202))
    tree = {o["name"]: o for o in all_pages(api, "integrations/level/organizations/")}
    assert len(tree) == 30
    deep = tree["Client 1 / L2-1 / L3-1 / L4-2"]
    assert deep["parent_external_id"] == tree["Client 1 / L2-1 / L3-1"]["external_id"]
    ok(api.patch(f"integrations/level/organizations/{tree['Client 1']['id']}/", json={"client": ours["id"]}))
    tree = {o["name"]: o for o in all_pages(api, "integrations/level/organizations/")}
    assert (tree[deep["name"]]["effective_client"], tree[deep["name"]]["mapped_via"]) == (
        ours["id"], tree["Client 1"]["id"])
    assert tree["Client 2"]["effective_client"] is None and tree["Client 2"]["subtree_device_count"] == 5

    # Subgroup devices inherit the top group's client; the unmapped tree's devices are not synced.
    job = wait_job(api, ok(api.post("integrations/level/devices/sync/"), 202))
    assert job["summary"]["created"] == 2, job
    assets = {a["name"]: a for a in all_pages(api, "assets/", {"provider": "level"})}
    assert set(assets) == {"HDG-FRONT-01", "HDG-SRV-01"}
    assert {a["client"] for a in assets.values()} == {ours["id"]}
    assert assets["HDG-SRV-01"]["asset_type"] == "server"

    card = ok(api.get("integrations/level/webhook/"))
    url = card["url"]
    with httpx.Client(timeout=30) as http:
        level = WebhookSender(secret=card["secret"], post=lambda u, b, h: http.post(u, content=b, headers=h).status_code)

        # A signed alert_active, as Level posts it -> a ticket for the mapped client.
        first = sim.add_alert(sim.front, "Disk space low", severity="critical")
        envelope = sim.alert_event(first["id"], event_id="7d3f0c2e-5a61-4b8e-9c2d-1e4f6a7b8c90")
        assert level.deliver(url, envelope) == [202]
        t1 = wait_alert_ticket(api, "level", first["id"])
        assert t1["client"] == ours["id"] and t1["asset"] == assets["HDG-FRONT-01"]["id"] and not t1["is_closed"]

        # Level's manual re-run keeps the event_id: 202, no second effect.
        assert level.rerun(url, envelope) == 202
        evs = wait_events_settled(api, "level", 2)
        assert sorted(e["status"] for e in evs) == ["duplicate", "processed"]
        assert len(alert_tickets(api)) == 1
        assert ok(api.get(f"tickets/{t1['id']}/"))["occurrence_count"] == 1

        # A wrong secret: 401, and the event log keeps it as failed.
        bad = WebhookSender(secret="mistyped-secret", post=level.post)
        assert bad.deliver(url, sim.alert_event(first["id"], event_id="ev-bad"), attempts=1) == [401]
        failed = [e for e in events(api, "level") if e["status"] == "failed"]
        assert len(failed) == 1 and "Signature check failed" in failed[0]["error"]
        assert len(alert_tickets(api)) == 1

        # alert_resolved -> the untouched ticket closes.
        sim.resolve_locally(first["id"])
        assert level.deliver(url, sim.alert_event(first["id"])) == [202]
        wait_ticket(api, t1["id"], "the untouched ticket to close", is_closed=True)
        wait_alert(api, "level", first["id"], state="resolved")

        # A technician closes a second alert's ticket -> POST /v2/alerts/{id}/resolve in Level.
        second = sim.add_alert(sim.srv, "CPU high", severity="warning")
        assert level.deliver(url, sim.alert_event(second["id"])) == [202]
        t2 = wait_alert_ticket(api, "level", second["id"])
        assert t2["id"] != t1["id"]
        ok(api.patch(f"tickets/{t2['id']}/", json={"status": closed_status(api)["id"]}))
        wait_until(lambda: sim.calls_to("POST", f"/v2/alerts/{second['id']}/resolve"), WAIT, 0.25,
                   "the resolve call in Level")
        assert sim.alerts[second["id"]]["is_resolved"] is True
        wait_alert(api, "level", second["id"], state="resolved")

        # A poll heals a missed alert_resolved: Level resolved it, the webhook never came.
        third = sim.add_alert(sim.front, "Reboot pending", severity="information")
        assert level.deliver(url, sim.alert_event(third["id"])) == [202]
        t3 = wait_alert_ticket(api, "level", third["id"])
        sim.resolve_locally(third["id"])
        job = wait_job(api, ok(api.post("integrations/level/alerts/poll/"), 202))
        assert job["summary"]["reconciled"]["resolved"] == 1, job
        wait_alert(api, "level", third["id"], state="resolved")
        wait_ticket(api, t3["id"], "the healed alert's ticket to close", is_closed=True)

        # With a read-only key, a technician's close leaves a note saying why; nothing fails.
        data = ok(api.put("integrations/level/", json={"credentials": {"api_key": sim.read_only_key}}))
        assert data["status"] == "connected" and data["provider_state"]["key_access"]["access"] == "read_only"
        fourth = sim.add_alert(sim.srv, "Service stopped", severity="emergency")
        assert level.deliver(url, sim.alert_event(fourth["id"])) == [202]
        t4 = wait_alert_ticket(api, "level", fourth["id"])
        ok(api.patch(f"tickets/{t4['id']}/", json={"status": closed_status(api)["id"]}))
        note = wait_until(
            lambda: next((n["body"] for n in notes(api, t4["id"]) if "was not reset in Level" in n["body"]), None),
            WAIT, 0.25, "the read-only note on the ticket",
        )
        assert "read-only" in note and "Read and write" in note
        wait_alert(api, "level", fourth["id"], reset_status="skipped")
        assert ok(api.get(f"tickets/{t4['id']}/"))["is_closed"] is True
        assert sim.alerts[fourth["id"]]["is_resolved"] is False
    assert not [e for e in all_pages(api, "integrations/level/events/") if e["status"] == "accepted"]
