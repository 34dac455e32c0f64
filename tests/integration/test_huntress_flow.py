"""Huntress in process, through the REST API and the webhook URL only, against the Huntress simulator on
loopback: connect -> organizations -> routing (polling paused until complete) -> polls with a watermark
(kept after a failed pass) -> Svix-signed webhooks (retries keep the svix-id, a bad signature is kept as
failed) -> webhook and poll seeing the same change -> write-back answers (201, 403, 409, 422) -> escalations.
"""

from __future__ import annotations

import json
import secrets
from urllib.parse import urlsplit

import pytest
from django.core.cache import cache
from django.test import Client as HttpClient

from integrations import http as phttp
from integrations import ratelimit
from integrations.models import Integration
from psa.models import Client
from psa.tenancy import tenant_context
from tests.helpers import committed, ok
from tests.simulators.huntress import HuntressSimulator, WebhookSender, new_signing_secret
from tickets.models import Board, Priority, Status

API = "/api/v1"
H = f"{API}/integrations/huntress"
LIMIT, WINDOW = 30, 0.5


@pytest.fixture(autouse=True)
def quick(settings, monkeypatch):
    settings.PSA_HTTP_RETRIES = 2
    settings.PSA_HTTP_BACKOFF = 0.0
    settings.PSA_HUNTRESS_RATE_LIMIT = LIMIT
    settings.PSA_HUNTRESS_RATE_WINDOW = WINDOW + 0.05
    settings.PSA_HUNTRESS_MAX_WAIT = 20
    monkeypatch.setattr(phttp, "_sleep", lambda s: None)


@pytest.fixture
def sim():
    with HuntressSimulator(rate_limit=LIMIT, rate_window=WINDOW, retry_after_integer=False) as s:
        s.harbor = s.add_org("Harbor Dental Group")
        s.front = s.add_agent(s.harbor["id"], "HDG-FRONT-01", "7XK2M93")
        s.cafe = s.add_org("Café “Ünïcode” & O'Brien")
        s.signing_secret = new_signing_secret()
        yield s


class Huntress:
    """The tenant's side: API client, ids, and a webhook sender posting through Django's test client."""

    def __init__(self, api, tenant, sim):
        self.api, self.tenant, self.sim = api, tenant, sim
        with tenant_context(tenant):
            self.harbor = Client.objects.create(name="Harbor Dental Group")
            self.triage_client = Client.objects.create(name="Security Triage")
            self.asset_client = self.harbor
            self.boards = {b.name: b.pk for b in Board.objects.all()}
            self.prio = {p.name: p.pk for p in Priority.objects.all()}
            self.status = {s.name: s.pk for s in Status.objects.all()}
        self.http = HttpClient()

    def connect(self, key=None, secret=None):
        body = {"base_url": self.sim.url + "/v1",
                "credentials": {"api_key": key or self.sim.rw_key, "api_secret": secret or self.sim.rw_secret,
                                "webhook_signing_secret": self.sim.signing_secret}}
        with committed():
            data = ok(self.api.put(f"{H}/", body, format="json"))
        self.integration = Integration.objects.unscoped().get(tenant=self.tenant, provider="huntress")
        cache.delete(f"huntress:portal:{self.integration.pk}")
        self.url = urlsplit(ok(self.api.get(f"{H}/webhook/"))["url"]).path
        return data

    def route(self, **extra):
        body = {"security_board": self.boards["Security"], "fallback_client": self.triage_client.pk,
                "fallback_board": self.boards["Triage"], "priority_critical": self.prio["Critical"],
                "priority_high": self.prio["High"], "priority_low": self.prio["Low"], "poll_interval_minutes": 5,
                "close_on_resolve": True, "closed_status": self.status["Closed"],
                "remediation_approved_status": self.status["In Progress"], **extra}
        with committed():
            return ok(self.api.put(f"{H}/routing/", body, format="json"))

    def poll(self, expect="succeeded"):
        with committed():
            job = ok(self.api.post(f"{H}/alerts/poll/"), 202)
        job = ok(self.api.get(f"{API}/jobs/{job['id']}/"))
        assert job["state"] == expect, job
        return job

    def post(self, payload, msg_id=None, *, secret=None, prefix="svix", headers=None):
        body = json.dumps(payload, ensure_ascii=False).encode()
        msg_id = msg_id or "msg_" + secrets.token_hex(8)
        sender = WebhookSender("unused", secret or self.sim.signing_secret, header_prefix=prefix)
        sent = headers or sender.headers_for(msg_id, body)
        extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in sent.items() if k != "content-type"}
        with committed():
            r = self.http.post(self.url, data=body, content_type="application/json", **extra)
        return r

    def tickets(self, **params):
        return ok(self.api.get(f"{API}/tickets/", {"source": "huntress", **params}))["results"]

    def ticket_of(self, report_id):
        rows = [i for i in ok(self.api.get(f"{H}/incidents/"))["results"] if i["external_id"] == str(report_id)]
        assert rows, f"no incident {report_id}"
        return ok(self.api.get(f"{API}/tickets/{rows[0]['ticket']}/")) if rows[0]["ticket"] else None

    def notes(self, ticket_id):
        return [n["body"] for n in ok(self.api.get(f"{API}/tickets/{ticket_id}/notes/"))["results"]
                if n["kind"] == "system"]

    def map_harbor(self):
        orgs = ok(self.api.get(f"{H}/organizations/"))["results"]
        harbor = next(o for o in orgs if o["name"] == "Harbor Dental Group")
        ok(self.api.patch(f"{H}/organizations/{harbor['id']}/", {"client": self.harbor.pk}, format="json"))
        return harbor


@pytest.fixture
def hx(api_a, tenant_a, sim):
    h = Huntress(api_a, tenant_a.tenant, sim)
    yield h
    if getattr(h, "integration", None) is not None:
        ratelimit.reset(f"huntress:{h.integration.pk}")


def test_connect_discovers_organizations_and_status_tells_what_is_missing(hx, sim):
    data = hx.connect()
    assert data["status"] == "connected" and data["account_name"] == "Example MSP"
    status = ok(hx.api.get(f"{H}/status/"))
    assert (status["account_name"], status["organization_count"], status["unmapped_count"]) == ("Example MSP", 2, 2)
    assert status["routing_complete"] is False and status["last_poll_at"] is None
    assert set(status) >= {"account_name", "organization_count", "unmapped_count", "open_incident_count",
                           "last_poll_at", "last_poll_ok", "last_poll_error", "routing_complete"}
    r = hx.api.post(f"{H}/alerts/poll/")
    assert r.status_code == 400 and "choose the security board, the fallback client" in r.json()["detail"]
    hx.map_harbor()
    automap = ok(hx.api.post(f"{H}/organizations/automap/"))
    assert automap["matched"] == 0 and automap["unmatched"] == 1 and automap["already_mapped"] == 1
    assert ok(hx.api.get(f"{H}/status/"))["unmapped_count"] == 1


def test_polls_route_mapped_and_unmapped_and_keep_the_watermark_after_a_failed_pass(hx, sim):
    hx.connect()
    hx.map_harbor()
    mapped = sim.add_incident(sim.harbor["id"], sim.front["id"], severity="critical")
    unmapped = sim.add_incident(sim.cafe["id"], None, severity="low", remediations=0)
    hx.route()
    job = hx.poll()
    assert job["summary"]["received"] == 2 and job["summary"]["failed"] == 0
    t1, t2 = hx.ticket_of(mapped["id"]), hx.ticket_of(unmapped["id"])
    assert (t1["board"], t1["client"], t1["priority"], t1["source"]) == (
        hx.boards["Security"], hx.harbor.pk, hx.prio["Critical"], "huntress")
    assert (t2["board"], t2["client"], t2["priority"]) == (hx.boards["Triage"], hx.triage_client.pk, hx.prio["Low"])
    assert "Café “Ünïcode” & O'Brien" in t2["title"]
    integration = Integration.objects.unscoped().get(pk=hx.integration.pk)
    mark = json.loads(integration.poll_cursor)
    assert mark["incidents"].startswith("2025-03-19")

    # Huntress fails mid-pass: the job fails, the watermark stays, the status card says why.
    sim.set_severity(mapped["id"], "high")
    sim.fail_next(3, 503)  # every attempt of the first request (PSA_HTTP_RETRIES = 2)
    hx.poll(expect="failed")
    status = ok(hx.api.get(f"{H}/status/"))
    assert status["last_poll_ok"] is False and status["last_poll_message"].startswith("Last poll failed: ")
    assert Integration.objects.unscoped().get(pk=hx.integration.pk).poll_cursor == integration.poll_cursor

    # The next pass heals it: priority and one note.
    hx.poll()
    t1 = hx.ticket_of(mapped["id"])
    assert t1["priority"] == hx.prio["High"]
    assert [n for n in hx.notes(t1["id"]) if "from critical to high" in n]
    assert ok(hx.api.get(f"{H}/status/"))["last_poll_ok"] is True
    hx.poll()  # the overlap re-reads both: nothing new
    assert len(hx.notes(t1["id"])) == 1 and len(hx.tickets()) == 2

    # Closure -> closed with the chosen status; a remediation approved -> the configured status first.
    sim.approve_remediations(mapped["id"])
    hx.poll()
    t1 = hx.ticket_of(mapped["id"])
    assert t1["status"] == hx.status["In Progress"]
    sim.close_incident(mapped["id"])
    hx.poll()
    t1 = hx.ticket_of(mapped["id"])
    assert t1["is_closed"] is True and t1["status"] == hx.status["Closed"]


def test_signed_webhooks_idempotent_on_svix_id_and_one_effect_with_a_poll(hx, sim):
    hx.connect()
    hx.map_harbor()
    report = sim.add_incident(sim.harbor["id"], sim.front["id"], severity="high")
    payload = sim.incident_webhook(report["id"])
    # Routing incomplete: the webhook is accepted and the incident held, not lost.
    assert hx.post(payload, "msg_first").status_code == 202
    assert ok(hx.api.get(f"{H}/status/"))["held_incident_count"] == 1 and hx.tickets() == []
    hx.route()
    ticket = hx.ticket_of(report["id"])
    assert ticket["board"] == hx.boards["Security"] and ticket["asset"] is None
    # Svix retries keep the svix-id: 202, duplicate, nothing more.
    again = hx.post(payload, "msg_first")
    assert again.status_code == 202 and again.json().get("duplicate") is True

    # A severity change seen by a webhook (white-labelled headers) and then by the poll: one note.
    sim.set_severity(report["id"], "critical")
    assert hx.post(sim.incident_webhook(report["id"]), prefix="webhook").status_code == 202
    hx.poll()
    ticket = hx.ticket_of(report["id"])
    assert ticket["priority"] == hx.prio["Critical"]
    assert len([n for n in hx.notes(ticket["id"]) if "severity" in n]) == 1
    assert len(hx.tickets()) == 1

    # A bad signature: 401 and a failed event in the log; a stale one too.
    assert hx.post(payload, "msg_bad", secret=new_signing_secret()).status_code == 401
    events = ok(hx.api.get(f"{H}/events/"))["results"]
    assert any(e["status"] == "failed" and "Signature check failed" in e["error"] for e in events)

    # The closed webhook, its fetch failing: the partial payload still closes the ticket.
    sim.close_incident(report["id"])
    sim.fail_next(10, 503)
    assert hx.post(sim.incident_webhook(report["id"], "incident_report.closed")).status_code == 202
    ticket = hx.ticket_of(report["id"])
    assert ticket["is_closed"] is True


def test_write_back_answers_become_notes(hx, sim):
    hx.connect()
    hx.map_harbor()
    ready = sim.add_incident(sim.harbor["id"], sim.front["id"], remediations=1)
    pending = sim.add_incident(sim.harbor["id"], sim.front["id"], remediations=1)
    gone = sim.add_incident(sim.harbor["id"], None, remediations=0)
    sim.approve_remediations(ready["id"])
    hx.route(write_back=True, close_on_resolve=False)
    hx.poll()
    sim.close_incident(gone["id"], status="dismissed")  # closed in Huntress, not yet seen here

    def close(report):
        t = hx.ticket_of(report["id"])
        with committed():
            ok(hx.api.patch(f"{API}/tickets/{t['id']}/", {"status": hx.status["Closed"]}, format="json"))
        return t["id"]

    t_ready = close(ready)
    assert sim.incidents[ready["id"]]["status"] == "resolved"
    assert any("Resolved in Huntress" in n for n in hx.notes(t_ready))
    t_pending = close(pending)
    assert any("(409)" in n and "approve" in n for n in hx.notes(t_pending))
    t_gone = close(gone)
    assert any("(422)" in n for n in hx.notes(t_gone))
    # The poll that sees the resolution adds nothing to the written-back ticket.
    before = hx.notes(t_ready)
    hx.poll()
    assert hx.notes(t_ready) == before

    # A read-only key: 403 -> the note says what to do.
    hx.connect(sim.api_key, sim.api_secret)
    ro = sim.add_incident(sim.harbor["id"], sim.front["id"], remediations=0)
    hx.poll()
    t_ro = close(ro)
    note = next(n for n in hx.notes(t_ro) if "(403)" in n)
    assert "read-only" in note and "user-based API key" in note
    assert sim.incidents[ro["id"]]["status"] == "sent"


def test_escalations_stored_from_webhooks_and_polls(hx, sim):
    hx.connect()
    hx.map_harbor()
    hx.route()
    esc = sim.add_escalation([sim.harbor["id"]])
    assert hx.post(sim.escalation_webhook(esc["id"])).status_code == 202
    rows = ok(hx.api.get(f"{H}/escalations/"))["results"]
    assert [(r["external_id"], r["subject"], r["ticket"]) for r in rows] == [(str(esc["id"]), "Defender Disabled", None)]
    hx.route(escalation_tickets=True)
    other = sim.add_escalation([sim.cafe["id"]], subject="Firewall off")
    hx.poll()
    rows = {r["external_id"]: r for r in ok(hx.api.get(f"{H}/escalations/"))["results"]}
    assert rows[str(other["id"])]["ticket"] is not None
    t = ok(hx.api.get(f"{API}/tickets/{rows[str(other['id'])]['ticket']}/"))
    assert t["board"] == hx.boards["Triage"] and t["title"] == "Escalation: Firewall off"


def test_write_back_when_huntress_is_down_retries_then_notes_and_a_401_notes_at_once(hx, sim):
    hx.connect()
    hx.map_harbor()
    down = sim.add_incident(sim.harbor["id"], sim.front["id"], remediations=0)
    creds = sim.add_incident(sim.harbor["id"], sim.front["id"], remediations=0)
    hx.route(write_back=True, close_on_resolve=False)
    hx.poll()
    t_down = hx.ticket_of(down["id"])
    sim.fail_next(1000, 503)
    with committed():
        ok(hx.api.patch(f"{API}/tickets/{t_down['id']}/", {"status": hx.status["Closed"]}, format="json"))
    # The first try met Huntress down: the task is retried later (Celery), the ticket says nothing yet.
    assert len(sim.calls_to("POST", f"/v1/incident_reports/{down['id']}/resolution")) == 3  # 1 + 2 HTTP retries
    assert not [n for n in hx.notes(t_down["id"]) if "Huntress" in n and "resolve" in n.lower()]
    # Its last retry, still down: a note says to resolve it in the portal; the ticket stays closed.
    from incidents.models import Incident
    from incidents.tasks import WRITE_BACK_RETRIES, write_back

    incident_id = Incident.objects.unscoped().get(external_id=str(down["id"])).pk
    outcome = write_back.apply(args=[hx.tenant.pk, incident_id, t_down["id"]], retries=WRITE_BACK_RETRIES).get()
    sim._fail.clear()
    assert outcome == "failed"
    assert [n for n in hx.notes(t_down["id"]) if "Could not resolve the incident in Huntress" in n]
    assert ok(hx.api.get(f"{API}/tickets/{t_down['id']}/"))["is_closed"] is True

    t_creds = hx.ticket_of(creds["id"])
    sim.keys.pop(sim.rw_key)  # the key was revoked in Huntress meanwhile: 401, no retry
    with committed():
        ok(hx.api.patch(f"{API}/tickets/{t_creds['id']}/", {"status": hx.status["Closed"]}, format="json"))
    assert len(sim.calls_to("POST", f"/v1/incident_reports/{creds['id']}/resolution")) == 1
    assert [n for n in hx.notes(t_creds["id"]) if "Could not resolve the incident in Huntress" in n]
