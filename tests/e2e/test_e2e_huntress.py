"""Huntress end to end: gunicorn + TWO Celery workers + PostgreSQL + Redis, against the Huntress simulator.

connect -> organizations discovered -> map one -> routing incomplete: no poll (Poll now refused, the
scheduler's tick starts nothing) -> routing complete -> Poll now: the mapped incident on the security board
with its priority, the unmapped one on the fallback client's triage board -> a severity change seen by a
Svix-signed webhook and a poll at the same moment (two workers): priority updated, one note -> Svix retries
of one svix-id: one event -> closed: the ticket closed with the chosen status -> every simulator incident
has its ticket. Only the REST API (../shared/API.md) and the webhook URL are used.
"""

from __future__ import annotations

import threading

import pytest

from tests.simulators.huntress import HuntressSimulator, WebhookSender, new_signing_secret

from .flows import WAIT, all_pages, create_client, notes, ok, ticket, wait_ticket
from .harness import ARTIFACTS, tail, wait_until

pytestmark = pytest.mark.e2e
H = "integrations/huntress"


@pytest.fixture
def second_worker(live):
    """A second `celery -A psa worker` on the same broker and database (the stack starts one)."""
    proc = live._worker_proc()
    proc.name = "celery-worker-2"
    proc.log_path = ARTIFACTS / f"celery-{live.label}-second.log"
    proc.start()

    def ready():
        if not proc.alive:
            raise RuntimeError(f"second worker exited:\n{tail(proc.log_path)}")
        return " ready." in proc.log_text()

    try:
        wait_until(ready, 60, 0.2, "the second Celery worker to be ready")
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def sim():
    with HuntressSimulator() as s:
        s.harbor = s.add_org("Harbor Dental Group")
        s.cafe = s.add_org("Café “Ünïcode” & O'Brien")
        s.front = s.add_agent(s.harbor["id"], "HDG-FRONT-01", "7XK2M93")
        s.signing_secret = new_signing_secret()
        yield s


def wait_job(api, job: dict) -> dict:
    done = wait_until(lambda: (j := ok(api.get(f"jobs/{job['id']}/")))["state"] in ("succeeded", "failed") and j,
                      WAIT, 0.25, f"job {job['kind']}")
    assert done["state"] == "succeeded", done
    return done


def poll_job(api) -> dict | None:
    return next(r for r in ok(api.get(f"{H}/jobs/"))["results"] if r["kind"] == "alerts.poll")


def incident_ticket(api, report_id) -> dict | None:
    row = next((i for i in all_pages(api, f"{H}/incidents/") if i["external_id"] == str(report_id)), None)
    return ticket(api, row["ticket"]) if row and row["ticket"] else None


def system_notes(api, ticket_id) -> list[str]:
    return [n["body"] for n in notes(api, ticket_id) if n["kind"] == "system"]


def test_huntress_flow_through_a_running_server_and_two_workers(live, tenant, sim, second_worker):
    api = tenant.api
    assert second_worker.alive
    harbor = create_client(api, "Harbor Dental Group")
    triage_client = create_client(api, "Security Triage")
    boards = {b["name"]: b["id"] for b in all_pages(api, "boards/")}
    prio = {p["name"]: p["id"] for p in all_pages(api, "priorities/")}
    closed = next(s for s in all_pages(api, "statuses/") if s["is_closed"])

    data = ok(api.put(f"{H}/", json={"base_url": sim.url + "/v1", "credentials": {
        "api_key": sim.rw_key, "api_secret": sim.rw_secret, "webhook_signing_secret": sim.signing_secret}}))
    assert data["status"] == "connected" and data["account_name"] == "Example MSP", data
    orgs = wait_until(lambda: (o := list(all_pages(api, f"{H}/organizations/"))) and len(o) == 2 and o,
                      WAIT, 0.25, "organization discovery after connecting")
    by_name = {o["name"]: o for o in orgs}
    ok(api.patch(f"{H}/organizations/{by_name['Harbor Dental Group']['id']}/", json={"client": harbor["id"]}))

    mapped = sim.add_incident(sim.harbor["id"], sim.front["id"], severity="critical")
    unmapped = sim.add_incident(sim.cafe["id"], None, severity="low", remediations=0)

    # Routing incomplete: no polling, whoever asks.
    refused = api.post(f"{H}/alerts/poll/")
    assert refused.status_code == 400 and "routing is complete" in refused.json()["detail"]
    live.send_task("integrations.dispatch_due_polls")
    wait_until(lambda: live.queue_depth() == 0, WAIT, 0.25, "the scheduler's tick to be handled")
    job_row = poll_job(api)
    assert job_row["latest"] is None and "choose the security board" in job_row["unavailable_reason"]
    status = ok(api.get(f"{H}/status/"))
    assert status["routing_complete"] is False and status["organization_count"] == 2
    assert status["unmapped_count"] == 1 and status["last_poll_at"] is None
    assert not list(all_pages(api, "tickets/", {"source": "huntress"}))

    # Complete routing, then Poll now.
    routing = ok(api.put(f"{H}/routing/", json={
        "security_board": boards["Security"], "fallback_client": triage_client["id"],
        "fallback_board": boards["Triage"], "priority_critical": prio["Critical"], "priority_high": prio["High"],
        "priority_low": prio["Low"], "poll_interval_minutes": 1, "close_on_resolve": True,
        "closed_status": closed["id"]}))
    assert routing["complete"] is True
    wait_job(api, ok(api.post(f"{H}/alerts/poll/"), 202))
    t1, t2 = incident_ticket(api, mapped["id"]), incident_ticket(api, unmapped["id"])
    assert (t1["board"], t1["client"], t1["priority"], t1["source"]) == (
        boards["Security"], harbor["id"], prio["Critical"], "huntress")
    assert (t2["board"], t2["client"], t2["priority"]) == (boards["Triage"], triage_client["id"], prio["Low"])
    assert "Café “Ünïcode” & O'Brien" in t2["title"]
    assert ok(api.get(f"{H}/status/"))["last_poll_ok"] is True

    # A severity change, seen at the same moment by a signed webhook and by a poll (two workers).
    url = ok(api.get(f"{H}/webhook/"))["url"]
    sender = WebhookSender(url, sim.signing_secret)
    sim.set_severity(mapped["id"], "high")
    results: dict[str, object] = {}

    def deliver():
        results["webhook"] = sender.send(sim.incident_webhook(mapped["id"]))

    def poll():
        results["poll"] = wait_job(api, ok(api.post(f"{H}/alerts/poll/"), 202))

    threads = [threading.Thread(target=deliver), threading.Thread(target=poll)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(WAIT)
    assert results["webhook"].delivered
    wait_ticket(api, t1["id"], "the priority to follow the severity", priority=prio["High"])
    wait_until(lambda: all(e["status"] != "accepted" for e in all_pages(api, f"{H}/events/")), WAIT, 0.25,
               "the webhook to be processed")
    wait_until(lambda: live.queue_depth() == 0, WAIT, 0.25, "the workers to be idle")
    severity_notes = [n for n in system_notes(api, t1["id"]) if "severity" in n]
    assert len(severity_notes) == 1 and "from critical to high" in severity_notes[0]

    # Svix retries keep the svix-id: one event processed, the retry a duplicate, still one note.
    again = sender.send(sim.incident_webhook(mapped["id"]), msg_id=results["webhook"].msg_id)
    assert again.delivered
    wait_until(lambda: any(e["status"] == "duplicate" for e in all_pages(api, f"{H}/events/")), WAIT, 0.25,
               "the redelivery logged as a duplicate")
    assert len([n for n in system_notes(api, t1["id"]) if "severity" in n]) == 1

    # Closed in Huntress -> the ticket closes with the chosen status (the next poll; the webhook may be first).
    sim.close_incident(mapped["id"])
    sender.send(sim.incident_webhook(mapped["id"], "incident_report.closed"))
    wait_job(api, ok(api.post(f"{H}/alerts/poll/"), 202))
    t1 = wait_ticket(api, t1["id"], "the closed incident's ticket to close", is_closed=True)
    assert t1["status"] == closed["id"]
    assert len([n for n in system_notes(api, t1["id"]) if "closed the incident" in n]) == 1

    # No incident from the simulator without a ticket; one ticket each.
    rows = {i["external_id"]: i for i in all_pages(api, f"{H}/incidents/")}
    assert set(rows) == {str(i) for i in sim.incidents}
    assert all(r["ticket"] for r in rows.values())
    assert len(list(all_pages(api, "tickets/", {"source": "huntress"}))) == len(sim.incidents)
    assert second_worker.alive and live.worker.alive
