"""The incident router on its own (records in, tickets out): routing and its validation, held incidents,
content, closing the loop, the ledger, moved tickets, escalations, Send test."""

from __future__ import annotations

import datetime as dt

import pytest

from assets.models import Asset
from incidents.models import Escalation, Incident, IncidentChange, IncidentRouting
from incidents.services import routing as routing_service
from incidents.services.escalations import process_escalation
from incidents.services.router import process_incident
from incidents.services.testing import SendTestRefused, close_test, send_test
from integrations.models import ExternalOrganization, Integration, IntegrationStatus
from integrations.records import EscalationRecord, ExternalOrg, IncidentRecord, RemediationRecord
from psa.models import Client
from psa.tenancy import tenant_context
from tests.conftest import token_client
from tests.helpers import committed, ok
from tickets.models import Board, NoteKind, Priority, Status, Ticket
from tickets.services import update_ticket

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2025, 3, 19, 13, 55, 2, tzinfo=dt.UTC)


def at(seconds: int) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def record(external_id="1502334", *, org="48211", org_name="Harbor Dental Group", severity="high", status="sent",
           updated=0, remediations=None, partial=False, **kw) -> IncidentRecord:
    rems = remediations if remediations is not None else [
        RemediationRecord("90211", type="assisted", action="Delete scheduled task \\Updater", status="unapproved")]
    return IncidentRecord(
        provider="huntress", external_id=external_id, organization_external_id=org, organization_name=org_name,
        agent_external_id="7733021", host_name=kw.pop("host_name", "HDG-FRONT-01"),
        host_serial=kw.pop("host_serial", "7XK2M93"), status=status,
        is_closed=status in ("closed", "dismissed", "resolved"), severity=severity, provider_severity=severity,
        subject=kw.pop("subject", f"{severity.upper()} - Incident on HDG-FRONT-01 (Harbor Dental Group)"),
        summary=kw.pop("summary", "A malicious scheduled task was created."),
        body_text=kw.pop("body_text", "Huntress detected a persistence mechanism."),
        platform="windows", indicator_types=["footholds"], indicator_counts={"footholds": 1, "process_detections": 2},
        remediations=None if partial else rems, remediations_total=None if partial else len(rems),
        url=f"https://examplemsp.huntress.io/org/{org}/incident_reports/{external_id}", updated_at=at(updated),
        partial=partial, **kw)


class World:
    def __init__(self, tenant):
        self.tenant = tenant.tenant
        self.api = token_client(tenant.api_token)
        self.user = tenant.user
        with tenant_context(self.tenant):
            self.integration = Integration.objects.create(provider="huntress", status=IntegrationStatus.CONNECTED,
                                                          account_name="Example MSP")
            self.security = Board.objects.get(name="Security")
            self.triage = Board.objects.get(name="Triage")
            self.general = Board.objects.get(name="General")
            self.prio = {p.name: p for p in Priority.objects.all()}
            self.closed = Status.objects.get(name="Closed")
            self.progress = Status.objects.get(name="In Progress")
            self.harbor = Client.objects.create(name="Harbor Dental Group")
            self.triage_client = Client.objects.create(name="Security Triage")
            self.org = ExternalOrganization.objects.create(integration=self.integration, external_id="48211",
                                                           name="Harbor Dental Group", client=self.harbor,
                                                           mapping="manual")
            self.asset = Asset.objects.create(client=self.harbor, name="HDG-FRONT-01", hostname="hdg-front-01",
                                              serial_number="7xk2m93")

    def route(self, **changes):
        values = {"security_board": self.security, "fallback_client": self.triage_client, "fallback_board": self.triage,
                      "priority_critical": self.prio["Critical"], "priority_high": self.prio["High"],
                      "priority_low": self.prio["Low"], "close_on_resolve": True, "closed_status": self.closed,
                      "remediation_approved_status": self.progress}
        values.update(changes)
        with tenant_context(self.tenant), committed():
            return routing_service.save(self.integration, values)

    def process(self, rec, source="poll", **kw):
        with tenant_context(self.tenant), committed():
            return process_incident(self.integration, rec, source=source, **kw)

    def ticket(self, external_id="1502334") -> Ticket:
        with tenant_context(self.tenant):
            return Incident.objects.select_related("ticket__status", "ticket__board", "ticket__priority").get(
                external_id=external_id).ticket

    def notes(self, ticket) -> list[str]:
        with tenant_context(self.tenant):
            return [n.body for n in ticket.notes.filter(kind=NoteKind.SYSTEM)]


@pytest.fixture
def w(tenant_a):
    return World(tenant_a)


def test_incomplete_routing_holds_incidents_and_completing_it_makes_their_tickets(w):
    out = w.process(record())
    assert out["action"] == "incident:held" and out["ticket"] is None
    assert "the security board" in out["detail"] and "the priority for low incidents" in out["detail"]
    status = ok(w.api.get("/api/v1/integrations/huntress/status/"))
    assert status["routing_complete"] is False and status["held_incident_count"] == 1
    assert "the fallback client" in " ".join(status["routing_missing"])
    w.route(security_board=None)  # still incomplete: still held
    assert w.ticket() is None
    w.route()
    ticket = w.ticket()
    assert ticket is not None and ticket.board == w.security and ticket.client == w.harbor
    with tenant_context(w.tenant):
        assert Incident.objects.get().held is False


def test_mapped_incident_lands_on_the_security_board_with_its_content(w):
    w.route()
    out = w.process(record(severity="critical", subject="CRITICAL - Incident on HDG-FRONT-01 (Harbor Dental Group)"))
    assert out["action"] == "incident:ticket_created"
    t = w.ticket()
    assert (t.board, t.client, t.priority, t.source, t.asset) == (w.security, w.harbor, w.prio["Critical"],
                                                                 "huntress", w.asset)
    assert t.title.startswith("CRITICAL - Incident on HDG-FRONT-01")
    for piece in ("A malicious scheduled task", "persistence mechanism", "footholds: 1", "process detections: 2",
                  "[unapproved] Delete scheduled task \\Updater (assisted)",
                  "https://examplemsp.huntress.io/org/48211/incident_reports/1502334", "serial 7XK2M93",
                  "linked asset: HDG-FRONT-01"):
        assert piece in t.description, piece
    assert t.is_test is False


def test_asset_matched_by_hostname_when_serial_differs_and_never_across_clients(w, make_client):
    w.route()
    w.process(record("1", host_serial="OTHER", host_name="HDG-FRONT-01"))
    assert w.ticket("1").asset == w.asset
    with tenant_context(w.tenant):
        stranger = Client.objects.create(name="Stranger")
        Asset.objects.create(client=stranger, name="SHARED-NAME", hostname="shared-name", serial_number="S1")
    w.process(record("2", host_serial="S1", host_name="SHARED-NAME"))
    assert w.ticket("2").asset is None


def test_unmapped_and_unknown_organizations_go_to_the_fallback_triage_board(w):
    w.route()
    with tenant_context(w.tenant):
        ExternalOrganization.objects.create(integration=w.integration, external_id="77", name="Café “Ünïcode” & O'Brien")
    w.process(record("10", org="77", org_name="Café “Ünïcode” & O'Brien", severity="low"))
    t = w.ticket("10")
    assert (t.board, t.client, t.priority) == (w.triage, w.triage_client, w.prio["Low"])
    assert "Café “Ünïcode” & O'Brien" in t.title and "not mapped to a client" in t.description
    w.process(record("11", org="999", org_name="Never Synced LLC"))
    t = w.ticket("11")
    assert (t.board, t.client) == (w.triage, w.triage_client) and "Never Synced LLC" in t.description
    with tenant_context(w.tenant):
        discovered = ExternalOrganization.objects.get(external_id="999")
    assert discovered.name == "Never Synced LLC" and discovered.client is None
    assert ok(w.api.get("/api/v1/integrations/huntress/status/"))["unmapped_count"] == 2


def test_severity_change_updates_priority_with_one_note_even_when_seen_twice(w):
    w.route()
    w.process(record(severity="high"))
    assert w.process(record(severity="critical", updated=5), source="webhook")["action"] == "incident:updated"
    again = w.process(record(severity="critical", updated=5), source="poll")
    assert again["action"] == "incident:redelivery"
    t = w.ticket()
    assert t.priority == w.prio["Critical"]
    notes = w.notes(t)
    assert len(notes) == 1 and "from high to critical" in notes[0] and "'Critical'" in notes[0]
    # An older version (a late webhook) changes nothing back.
    assert w.process(record(severity="high", updated=2))["action"] == "incident:stale"
    assert w.ticket().priority == w.prio["Critical"] and len(w.notes(t)) == 1


def test_remediations_new_and_approved_notes_and_the_approved_status(w):
    w.route()
    w.process(record())
    rems = [RemediationRecord("90211", type="assisted", action="Delete scheduled task \\Updater", status="unapproved"),
            RemediationRecord("90212", type="manual", action="Reset the user's password", status="unapproved")]
    w.process(record(remediations=rems, updated=3))
    approved = [RemediationRecord("90211", type="assisted", action="Delete scheduled task \\Updater",
                                  status="approved", approved_by_name="Ann Tech"),
                RemediationRecord("90212", type="manual", action="Reset the user's password", status="unapproved")]
    w.process(record(remediations=approved, updated=6))
    w.process(record(remediations=approved, updated=6), source="webhook")
    t = w.ticket()
    notes = w.notes(t)
    assert len(notes) == 2
    assert "New remediation" in notes[0] and "Reset the user's password" in notes[0]
    assert "Remediation now approved" in notes[1] and "approved by Ann Tech" in notes[1]
    assert "'In Progress' (remediation approved)" in notes[1]
    assert t.status == w.progress


def test_closed_closes_with_the_chosen_status_or_notes_when_close_on_resolve_is_off(w):
    w.route()
    w.process(record("1"))
    w.process(record("1", status="closed", updated=9))
    t = w.ticket("1")
    assert t.status == w.closed and t.closed_at is not None
    assert "closed the incident (status: closed)" in w.notes(t)[0] and "'Closed'" in w.notes(t)[0]
    w.route(close_on_resolve=False)
    w.process(record("2"))
    w.process(record("2", status="dismissed", updated=9))
    t2 = w.ticket("2")
    assert not t2.status.is_closed and "close this ticket when your work is done" in w.notes(t2)[0]


def test_first_seen_closed_incident_still_gets_a_ticket(w):
    w.route()
    out = w.process(record("5", status="closed"))
    assert out["action"] == "incident:ticket_created"
    assert w.ticket("5").status == w.closed


def test_change_after_a_technician_closed_the_ticket_adds_a_note_and_does_not_reopen(w):
    w.route()
    w.process(record())
    t = w.ticket()
    with tenant_context(w.tenant), committed():
        update_ticket(t, actor=w.user, changes={"status": w.closed})
    w.process(record(severity="critical", updated=4))
    w.process(record(severity="critical", status="closed", updated=8))
    t = w.ticket()
    assert t.status == w.closed
    notes = w.notes(t)
    assert "stays closed" in notes[0] and "The ticket was already closed" in notes[1]
    with tenant_context(w.tenant):
        assert ok(w.api.get("/api/v1/integrations/huntress/status/"))["open_incident_count"] == 0


def test_updates_follow_a_ticket_moved_to_another_client_and_board(w):
    w.route()
    w.process(record("1", org="999", org_name="New Customer"))
    t = w.ticket("1")
    assert t.board == w.triage
    with tenant_context(w.tenant), committed():
        other = Client.objects.create(name="New Customer")
        general_closed = Status.objects.create(name="Done", board=w.general, is_closed=True)
        Status.objects.filter(name="Closed").update(board=w.security)  # the chosen one no longer fits General
        update_ticket(t, actor=w.user, changes={"client": other, "board": w.general})
    w.process(record("1", org="999", org_name="New Customer", severity="critical", updated=3))
    w.process(record("1", org="999", org_name="New Customer", severity="critical", status="closed", updated=6))
    t = w.ticket("1")
    assert (t.client.name, t.board) == ("New Customer", w.general)
    assert t.priority == w.prio["Critical"] and t.status == general_closed
    with tenant_context(w.tenant):
        assert Ticket.objects.count() == 1


def test_partial_webhook_record_then_the_full_report(w):
    w.route()
    partial = record(partial=True, subject="", summary="Persistence via scheduled task.", body_text="")
    out = w.process(partial, source="webhook")
    t = w.ticket()
    assert out["action"] == "incident:ticket_created" and t.title == "Huntress incident 1502334 (Harbor Dental Group)"
    assert "Built from the webhook alone" in t.description
    w.process(record(updated=0))
    t = w.ticket()
    assert t.title.startswith("HIGH - Incident on HDG-FRONT-01")
    notes = w.notes(t)
    assert len(notes) == 1 and "full report" in notes[0] and "Delete scheduled task" in notes[0]


def test_the_ledger_holds_one_row_per_change(w):
    w.route()
    w.process(record())
    w.process(record(severity="critical", updated=1))
    w.process(record(severity="critical", status="closed", updated=2))
    with tenant_context(w.tenant):
        keys = list(IncidentChange.objects.values_list("key", flat=True))
    assert keys == ["created", f"severity:critical@{at(1).isoformat()}", f"closed:closed@{at(2).isoformat()}"]


# -- routing validation -------------------------------------------------------------------------------
def test_routing_api_get_put_and_poll_interval(w):
    body = {"security_board": w.security.pk, "fallback_client": w.triage_client.pk, "fallback_board": w.triage.pk,
            "priority_critical": w.prio["Critical"].pk, "priority_high": w.prio["High"].pk,
            "priority_low": w.prio["Low"].pk, "poll_interval_minutes": 3, "close_on_resolve": True,
            "closed_status": w.closed.pk}
    data = ok(w.api.put("/api/v1/integrations/huntress/routing/", body, format="json"))
    assert data["complete"] is True and data["missing"] == [] and data["poll_interval_minutes"] == 3
    assert data["write_back"] is False and data["escalation_tickets"] is False and data["category"] is None
    with tenant_context(w.tenant):
        row = Integration.objects.get(pk=w.integration.pk)
    assert row.poll_interval_minutes == 3 and row.next_poll_at is not None
    again = ok(w.api.get("/api/v1/integrations/huntress/routing/"))
    assert {k: again[k] for k in body} == body


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"poll_interval_minutes": 0}, "poll_interval_minutes", "between 1 and 60"),
    ({"poll_interval_minutes": 61}, "poll_interval_minutes", "between 1 and 60"),
    ({"close_on_resolve": True, "closed_status": None}, "closed_status", "Choose the status"),
    ({"closed_status": "open"}, "closed_status", "does not close a ticket"),
    ({"closed_status": "board-only"}, "closed_status", "belongs to another board"),
    ({"remediation_approved_status": "closed"}, "remediation_approved_status", "closes the ticket"),
    ({"fallback_client": "inactive"}, "fallback_client", "inactive"),
    ({"security_board": "no-open-status"}, "security_board", "no open status"),
])
def test_routing_that_could_not_create_a_ticket_is_refused_on_its_field(w, change, field, words):
    with tenant_context(w.tenant):
        lookups = {
            "open": Status.objects.get(name="New").pk, "closed": w.closed.pk,
            "board-only": Status.objects.create(name="Fixed", board=w.general, is_closed=True).pk,
            "inactive": Client.objects.create(name="Gone Ltd", is_active=False).pk,
            "no-open-status": Board.objects.create(name="Empty").pk,
        }
        Status.objects.filter(board__isnull=True, is_closed=False).update(board=w.general)  # only General starts
        Status.objects.filter(name="In Progress").update(board=w.security)
    body = {"security_board": w.security.pk, "fallback_board": w.security.pk, "closed_status": w.closed.pk}
    body.update({k: lookups.get(v, v) if isinstance(v, str) else v for k, v in change.items()})
    r = w.api.put("/api/v1/integrations/huntress/routing/", body, format="json")
    assert r.status_code == 400, r.content
    assert field in r.json() and words in " ".join(r.json()[field]), r.json()
    with tenant_context(w.tenant):
        assert not IncidentRouting.objects.exists()


def test_routing_refuses_another_tenants_ids_like_missing_ones(w, tenant_b):
    with tenant_context(tenant_b.tenant):
        theirs = Board.objects.get(name="Security").pk
    mine = w.api.put("/api/v1/integrations/huntress/routing/", {"security_board": theirs}, format="json")
    ghost = w.api.put("/api/v1/integrations/huntress/routing/", {"security_board": 987654321}, format="json")
    assert mine.status_code == ghost.status_code == 400
    assert mine.json()["security_board"] == [m.replace("987654321", str(theirs)) for m in ghost.json()["security_board"]]
    assert w.api.put("/api/v1/integrations/huntress/routing/", {"board": 1}, format="json").json() == {
        "board": ["Unknown field."]}


def test_polling_is_refused_until_routing_is_complete(w):
    from integrations.services import jobs

    with tenant_context(w.tenant):
        w.integration.set_credentials({"api_key": "k", "api_secret": "s"})
        w.integration.save()
        why = jobs.refusal(w.integration, jobs.POLL)
    assert why.startswith("Incident polling is paused until routing is complete: choose the security board")
    r = w.api.post("/api/v1/integrations/huntress/alerts/poll/")
    assert r.status_code == 400 and "routing is complete" in r.json()["detail"]
    w.route()
    with tenant_context(w.tenant):
        assert jobs.refusal(w.integration, jobs.POLL) is None


# -- Send test ----------------------------------------------------------------------------------------
def test_send_test_through_the_real_routing_and_close_it(w):
    with tenant_context(w.tenant), pytest.raises(SendTestRefused, match="No test ticket until routing is complete"):
        send_test(w.integration, None)
    w.route()
    landed = ok(w.api.post("/api/v1/integrations/huntress/test-incident/", {"organization": w.org.pk},
                           format="json"), 201)
    assert (landed["board"], landed["client"], landed["routed_to"]) == (w.security.pk, w.harbor.pk, "mapped")
    assert landed["title"].startswith("[TEST] ") and landed["board_name"] == "Security"
    unmapped = ok(w.api.post("/api/v1/integrations/huntress/test-incident/", {}, format="json"), 201)
    assert (unmapped["board"], unmapped["client"], unmapped["routed_to"]) == (w.triage.pk, w.triage_client.pk,
                                                                              "fallback")
    with tenant_context(w.tenant):
        t = Ticket.objects.get(pk=unmapped["ticket"])
        assert t.is_test and "TEST TICKET" in t.description
        assert not ExternalOrganization.objects.filter(name__startswith="Test organization").exists()
    closed = ok(w.api.post(f"/api/v1/integrations/huntress/test-incident/{unmapped['incident']}/close/"))
    assert closed["is_closed"] is True and closed["status_name"] == "Closed"
    bad = w.api.post("/api/v1/integrations/huntress/test-incident/", {"organization": 987654}, format="json")
    assert bad.status_code == 400 and "organization" in bad.json()
    with tenant_context(w.tenant):
        incident = Incident.objects.get(pk=landed["incident"])
        assert close_test(incident).is_closed


# -- escalations ----------------------------------------------------------------------------------------
def escalation(status="open", event_type="", updated=0, orgs=(("48211", "Harbor Dental Group"),)):
    return EscalationRecord(provider="huntress", external_id="501", status=status, is_closed=status == "resolved",
                            severity="high", provider_severity="high", subject="Defender Disabled",
                            type="Environmental Issue", organizations=[ExternalOrg(i, n) for i, n in orgs],
                            event_type=event_type, message="Please respond." if "overdue" in event_type else "",
                            updated_at=at(updated))


def test_escalations_are_stored_and_make_tickets_only_when_routing_says_so(w):
    w.route()
    with tenant_context(w.tenant):
        out = process_escalation(w.integration, escalation(), source="webhook")
        assert out["action"] == "escalation:stored" and out["ticket"] is None
        assert Escalation.objects.get().subject == "Defender Disabled"
    listed = ok(w.api.get("/api/v1/integrations/huntress/escalations/"))["results"]
    assert [e["external_id"] for e in listed] == ["501"]
    w.route(escalation_tickets=True)
    with tenant_context(w.tenant), committed():
        out = process_escalation(w.integration, escalation(event_type="escalation.overdue", updated=1), source="poll")
        assert out["action"] == "escalation:ticket_created"
        t = Ticket.objects.get(pk=out["ticket"])
        assert (t.board, t.client) == (w.security, w.harbor) and t.title == "Escalation: Defender Disabled"
        process_escalation(w.integration, escalation(event_type="escalation.overdue", updated=1), source="webhook")
        process_escalation(w.integration, escalation(status="resolved", updated=2), source="poll")
        t.refresh_from_db()
        bodies = [n.body for n in t.notes.all()]
        assert t.status.is_closed and len(bodies) == 2 and "overdue" in bodies[0] and "resolved" in bodies[1]


def test_routing_may_be_saved_before_connecting_and_reads_work_before_setup(tenant_a):
    api = token_client(tenant_a.api_token)
    status = ok(api.get("/api/v1/integrations/huntress/status/"))
    assert status["routing_complete"] is False and status["organization_count"] == 0
    assert status["account_name"] == "" and status["last_poll_at"] is None
    assert ok(api.get("/api/v1/integrations/huntress/routing/"))["complete"] is False
    r = api.post("/api/v1/integrations/huntress/test-incident/", {}, format="json")
    assert r.status_code == 404 and "not set up yet" in r.json()["detail"]
    with tenant_context(tenant_a.tenant):
        board = Board.objects.get(name="Security").pk
    data = ok(api.put("/api/v1/integrations/huntress/routing/", {"security_board": board}, format="json"))
    assert data["security_board"] == board and "the fallback client" in data["missing"]
    with tenant_context(tenant_a.tenant):
        integration = Integration.objects.get(provider="huntress")
    assert integration.status == IntegrationStatus.NOT_CONFIGURED and integration.poll_interval_minutes == 5
