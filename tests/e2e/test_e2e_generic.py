"""The generic webhook provider end to end: gunicorn + a Celery worker + PostgreSQL + Redis.

Everything goes through the documented surface: the ``createtenant`` CLI, the REST API
and ``POST /webhooks/generic/{key}/``.
"""

from __future__ import annotations

import json
import time

import pytest

from .flows import (
    WAIT,
    GenericWebhook,
    alert,
    alert_tickets,
    create_client,
    events,
    map_org,
    notes,
    ok,
    ticket,
    wait_alert,
    wait_alert_ticket,
    wait_events_settled,
    wait_ticket,
)
from .harness import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def generic(tenant):
    hook = GenericWebhook(tenant.api)
    yield hook
    hook.close()


@pytest.fixture
def mapped(tenant, generic):
    """Org ``org-1`` discovered from a first (unmapped) event, then mapped to client Acme."""
    client = create_client(tenant.api, "Acme")
    r = generic.send("trigger", "probe-1", "probe")
    assert r.status_code == 202, r.text
    probe = wait_alert(tenant.api, "generic", "probe-1", state="unmapped")
    assert probe["ticket"] is None
    map_org(tenant.api, "generic", "org-1", client["id"])
    return client


def test_trigger_repeat_redelivery_resolve_closes_the_untouched_ticket(tenant, generic, mapped):
    api = tenant.api
    r = generic.send("trigger", "a-1")
    assert r.status_code == 202 and r.json()["status"] == "accepted", r.text

    first = wait_alert_ticket(api, "generic", "a-1")
    assert first["source"] == "alert"
    assert first["client"] == mapped["id"]
    assert first["is_closed"] is False
    assert first["occurrence_count"] == 1

    # A repeat firing: new alert id, same condition -> an occurrence on the same ticket.
    assert generic.send("trigger", "a-2").status_code == 202
    assert wait_alert_ticket(api, "generic", "a-2")["id"] == first["id"]
    wait_ticket(api, first["id"], "occurrence_count 2", occurrence_count=2)
    # A redelivery of a-2 is accepted and changes nothing.
    again = generic.send("trigger", "a-2")
    assert again.status_code == 202, again.text
    assert [t["id"] for t in alert_tickets(api)] == [first["id"]]

    # Resolving one of two active alerts keeps the ticket open.
    assert generic.send("resolve", "a-1").status_code == 202
    wait_alert(api, "generic", "a-1", state="resolved")
    assert ticket(api, first["id"])["is_closed"] is False

    # Resolving the last one closes it: nobody touched it.
    assert generic.send("resolve", "a-2").status_code == 202
    closed = wait_ticket(api, first["id"], "the untouched ticket to close", is_closed=True)
    assert closed["occurrence_count"] == 2, "the redelivery must not count as an occurrence"
    assert closed["closed_at"]
    assert all(n["author"] is None for n in notes(api, first["id"])), (
        "only system notes on an untouched ticket"
    )
    # Every request is in the log; nothing is left unprocessed.
    logged = wait_events_settled(api, "generic", 6)
    assert sorted(e["status"] for e in logged).count("duplicate") == 1


def test_touched_ticket_only_gets_a_note_when_its_alert_resolves(tenant, generic, mapped):
    api = tenant.api
    assert generic.send("trigger", "t-1", "cpu-high").status_code == 202
    t = wait_alert_ticket(api, "generic", "t-1")
    ok(api.post(f"tickets/{t['id']}/notes/", json={"body": "Looking into it.", "kind": "internal"}), 201)
    before = notes(api, t["id"])

    assert generic.send("resolve", "t-1").status_code == 202
    wait_alert(api, "generic", "t-1", state="resolved")
    after = wait_until(
        lambda: (n := notes(api, t["id"])) and len(n) > len(before) and n,
        WAIT,
        0.25,
        "a note saying the alert resolved",
    )
    new = [n for n in after if n["id"] not in {b["id"] for b in before}]
    assert new and all(n["author"] is None and n["kind"] == "system" for n in new)
    assert ticket(api, t["id"])["is_closed"] is False, "a person worked on it: the resolve must not close it"


def test_technician_close_then_new_firing_opens_a_new_ticket(tenant, generic, mapped):
    api = tenant.api
    assert generic.send("trigger", "c-1", "svc-down").status_code == 202
    t1 = wait_alert_ticket(api, "generic", "c-1")
    closed = next(s for s in ok(api.get("statuses/"))["results"] if s["is_closed"])
    ok(api.patch(f"tickets/{t1['id']}/", json={"status": closed["id"]}))
    assert ticket(api, t1["id"])["is_closed"] is True

    assert generic.send("trigger", "c-2", "svc-down").status_code == 202
    t2 = wait_alert_ticket(api, "generic", "c-2")
    assert t2["id"] != t1["id"] and t2["is_closed"] is False and t2["occurrence_count"] == 1


def test_replay_after_mapping_tickets_the_unmapped_alert(tenant, generic, mapped):
    api = tenant.api
    event = next(e for e in events(api, "generic") if "probe-1" in (e.get("summary") or ""))
    ok(api.post(f"integrations/generic/events/{event['id']}/replay/"), 200, 202)
    t = wait_alert_ticket(api, "generic", "probe-1")
    assert t["client"] == mapped["id"]
    assert wait_alert(api, "generic", "probe-1", state="active")["ticket"] == t["id"]


def test_bad_requests_through_the_live_server(tenant, generic):
    body = json.dumps({"event": "trigger", "alert_id": "x-1", "condition": "c"}).encode()
    wrong = generic.post_raw(body, secret="not-the-secret")
    assert wrong.status_code == 401 and set(wrong.json()) == {"detail"}
    assert generic.secret not in wrong.text
    unknown = generic.post_raw(body, url=generic.url.rstrip("/").rsplit("/", 1)[0] + "/no-such-key/")
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith("application/json")

    broken = generic.post_raw(b'{"event": "trigger", "alert_id": ')
    assert broken.status_code == 400 and "detail" in broken.json()
    logged = wait_until(lambda: events(tenant.api, "generic"), WAIT, 0.25, "the failed event in the log")
    assert [e["status"] for e in logged] == ["failed"]
    assert logged[0]["error"]
    assert generic.secret not in json.dumps(logged)


def test_worker_killed_mid_processing_every_event_processed_exactly_once(live, tenant, generic, mapped):
    """kill -9 the worker while events are queued and some are in flight; restart it.

    Messages the dead worker held come back (Redis visibility timeout, shortened in
    tests/e2e/live_settings.py) and claims it held expire (processing lease, shortened too);
    the idempotent steps must make every event count exactly once.
    """
    api = tenant.api
    wait_events_settled(api, "generic", 1)  # the probe
    # Enough queued work that the worker cannot finish it all between "some processed" and the kill.
    conditions, firings = 8, 10
    live.kill_worker()
    for k in range(firings):
        for c in range(conditions):
            r = generic.send(
                "trigger", f"k-{c}-{k}", f"cond-{c}", device=(f"dev-{c}", f"host-{c}", f"SN-{c}")
            )
            assert r.status_code == 202, r.text
    total = conditions * firings
    # The stored rows are the queue; one coalesced wake message waits for a worker.
    waiting = [e for e in events(api, "generic") if e["status"] == "accepted"]
    assert len(waiting) >= total and live.queue_depth() >= 1, "events must wait while no worker runs"

    live.start_worker()
    # Let it get going, then crash it with work still queued.
    wait_until(
        lambda: sum(1 for e in events(api, "generic") if e["status"] == "processed") >= 3,
        WAIT,
        0.05,
        "some processing",
    )
    live.kill_worker()
    remaining = sum(1 for e in events(api, "generic") if e["status"] == "accepted")
    assert remaining > 0, "the crash must leave work behind for the test to mean anything"
    time.sleep(1)
    live.start_worker()

    # What beat does every minute in production, here every few seconds: claims the dead worker
    # held expire after the (shortened) lease and the sweeper hands those events out again.
    last_sweep = 0.0

    def settled():
        nonlocal last_sweep
        if time.monotonic() - last_sweep > 3:
            live.send_task("alerts.sweep_inbound_events")
            last_sweep = time.monotonic()
        evs = events(api, "generic")
        return evs if len(evs) >= total + 1 and all(e["status"] != "accepted" for e in evs) else None

    logged = wait_until(settled, 120, 0.5, f"{total + 1} generic events processed")
    assert {e["status"] for e in logged} == {"processed"}, [e for e in logged if e["status"] != "processed"]
    tickets = alert_tickets(api)
    assert len(tickets) == conditions
    assert sorted(t["occurrence_count"] for t in tickets) == [firings] * conditions
    for c in range(conditions):
        for k in range(firings):
            a = alert(api, "generic", f"k-{c}-{k}")
            assert a is not None and a["occurrence_count"] == 1 and a["state"] == "active"
    assert len({alert(api, "generic", f"k-{c}-0")["ticket"] for c in range(conditions)}) == conditions
