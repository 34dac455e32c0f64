"""The pipeline steps: attribute, suppress, rules, dedup, tickets, notifications, crash safety, replay."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.utils import timezone

from alerts.models import Alert, AlertGroup, AlertRule, InboundEvent, MaintenanceWindow
from alerts.services import processing
from alerts.services.pipeline import ingest_normalized, reevaluate_ended_windows
from alerts.tasks import drain_inbound
from integrations.models import ExternalOrganization
from integrations.records import AlertEventKind
from psa.models import Client, Notification
from psa.tenancy import tenant_context
from tests.fakes import alert as fake_alert
from tests.integration.pipeline_support import committed, setup_fake, trigger
from tickets.models import Board, Priority, Ticket, TicketNote

pytestmark = pytest.mark.django_db


@pytest.fixture
def fx(tenant_a, fake_provider):
    return setup_fake(tenant_a.tenant)


def ingest(fx, na, source="webhook"):
    with committed():
        return ingest_normalized(fx.integration, na, source=source)


# -- attribute ------------------------------------------------------------------------------


def test_device_is_attributed_to_the_asset_by_provider_identity(fx, make_asset):
    asset = make_asset(fx.tenant, fx.client, name="HDG-FRONT-01", provider="fake", external_id="dev-1")
    a = ingest(fx, fake_alert("a-1", "o1", device_external_id="dev-1"))
    assert a.asset_id == asset.pk and a.client_id == fx.client.pk and a.state == "active"
    with tenant_context(fx.tenant):
        ticket = Ticket.objects.get(pk=a.ticket_id)
    assert ticket.asset_id == asset.pk and ticket.client_id == fx.client.pk
    assert "HDG-FRONT-01" in ticket.title


def test_serial_number_matches_only_within_the_resolved_client(fx, make_asset, make_client):
    other = make_client(fx.tenant)
    make_asset(fx.tenant, other, name="OTHER", serial_number="SN-1")
    a = ingest(fx, fake_alert("a-1", "o1", device_external_id="unknown", serial_number="SN-1"))
    assert a.asset_id is None  # never across clients
    mine = make_asset(fx.tenant, fx.client, name="MINE", serial_number="SN-1")
    b = ingest(fx, fake_alert("a-2", "o1", device_external_id="unknown", serial_number="SN-1"))
    assert b.asset_id == mine.pk


def test_alert_without_organization_takes_the_client_of_its_asset(fx, make_asset):
    asset = make_asset(fx.tenant, fx.client, provider="fake", external_id="dev-9")
    a = ingest(fx, fake_alert("a-1", None, device_external_id="dev-9"))
    assert a.client_id == fx.client.pk and a.asset_id == asset.pk and a.ticket_id is not None


def test_unknown_organization_is_discovered_and_the_alert_kept_unmapped(fx):
    a = ingest(fx, fake_alert("a-1", "o-new", organization_name="New Clinic"))
    assert a.state == "unmapped" and a.client_id is None and a.ticket_id is None
    with tenant_context(fx.tenant):
        org = ExternalOrganization.objects.get(external_id="o-new")
        assert org.name == "New Clinic" and org.client_id is None
        assert a.organization_id == org.pk
        assert Ticket.objects.count() == 0


def test_mapped_parent_organization_attributes_a_child(fx):
    with tenant_context(fx.tenant):
        ExternalOrganization.objects.create(
            integration=fx.integration, external_id="site-1", name="Site", parent_external_id="o1"
        )
    a = ingest(fx, fake_alert("a-1", "site-1"))
    assert a.client_id == fx.client.pk and a.state == "active"


# -- rules and suppression ----------------------------------------------------------------------


def test_ignore_rule_keeps_the_alert_as_ignored(fx):
    with tenant_context(fx.tenant):
        rule = AlertRule.objects.create(
            name="Ignore info", position=1, action="ignore", conditions={"severities": ["info"]}
        )
    a = ingest(fx, fake_alert("a-1", "o1", severity="info"))
    assert a.state == "ignored" and a.rule_id == rule.pk and a.ticket_id is None
    b = ingest(fx, fake_alert("a-2", "o1", severity="high"))
    assert b.state == "active" and b.ticket_id is not None


def test_rule_sets_board_priority_template_assignee_and_notifies(fx, make_member):
    tech = make_member(fx.tenant, email="tech@alpha.example")
    with tenant_context(fx.tenant):
        security = Board.objects.get(name="Security")
        high = Priority.objects.get(name="High")
        rule = AlertRule.objects.create(
            name="Servers",
            position=1,
            conditions={"severities": ["critical"]},
            board=security,
            priority_map={"critical": high.pk},
            assignee=tech,
            title_template="SRV {{ title }} @ {{ client }}",
            description_template="{{ message }} / {{ nosuchfield }}",
            notify_email=True,
        )
        rule.notify_users.set([tech])
    a = ingest(fx, fake_alert("a-1", "o1", severity="critical", title="CPU", message="hot"))
    with tenant_context(fx.tenant):
        t = Ticket.objects.get(pk=a.ticket_id)
        assert (t.board_id, t.priority_id, t.assignee_id) == (security.pk, high.pk, tech.pk)
        assert t.title == f"SRV CPU @ {fx.client.name}" and t.description == "hot /"
        (n,) = Notification.objects.filter(user=tech)
        assert n.url == f"/tickets/{t.pk}/" and f"#{t.number}" in n.title
        assert TicketNote.objects.filter(
            ticket=t, kind="system", body__startswith="Created from fake alert a-1"
        ).exists()
    assert [m.to for m in mail.outbox] == [["tech@alpha.example"]]
    # A repeat firing notifies nobody again.
    ingest(fx, fake_alert("a-2", "o1", severity="critical", title="CPU", condition_key=a.condition_key))
    assert len(mail.outbox) == 1


def test_matching_window_suppresses_and_its_end_reevaluates(fx):
    now = timezone.now()
    with tenant_context(fx.tenant):
        window = MaintenanceWindow.objects.create(
            name="Patch night",
            scope="client",
            client=fx.client,
            starts_at=now - dt.timedelta(hours=1),
            ends_at=now + dt.timedelta(hours=1),
        )
    a = ingest(fx, fake_alert("a-1", "o1"))
    assert a.state == "suppressed" and a.suppressed_by_id == window.pk
    assert a.suppressed_until == window.ends_at and a.ticket_id is None
    # The window is still on: nothing to re-evaluate.
    assert reevaluate_ended_windows()["due"] == 0
    # Time passes: the occurrence ended while the alert is still active.
    with tenant_context(fx.tenant):
        MaintenanceWindow.objects.filter(pk=window.pk).update(ends_at=now - dt.timedelta(minutes=1))
        Alert.objects.filter(pk=a.pk).update(suppressed_until=now - dt.timedelta(minutes=1))
    with committed():
        assert reevaluate_ended_windows() == {"due": 1, "reevaluated": 1}
    with tenant_context(fx.tenant):
        a.refresh_from_db()
        assert a.state == "active" and a.ticket_id is not None and a.suppressed_until is None
        assert Ticket.objects.count() == 1
    assert reevaluate_ended_windows()["due"] == 0


def test_resolved_while_suppressed_never_makes_a_ticket(fx):
    now = timezone.now()
    with tenant_context(fx.tenant):
        MaintenanceWindow.objects.create(
            name="All",
            scope="all",
            starts_at=now - dt.timedelta(hours=1),
            ends_at=now + dt.timedelta(hours=1),
        )
    ingest(fx, fake_alert("a-1", "o1"))
    r = ingest(fx, fake_alert("a-1", "o1", event=AlertEventKind.RESOLVED))
    assert r.state == "resolved"
    with tenant_context(fx.tenant):
        Alert.objects.filter(pk=r.pk).update(suppressed_until=now - dt.timedelta(minutes=1))
    assert reevaluate_ended_windows()["due"] == 0
    assert fx.tickets() == []


# -- dedup -----------------------------------------------------------------------------------------


def test_repeat_firing_is_an_occurrence_and_closed_ticket_opens_a_new_one(fx):
    first = ingest(fx, fake_alert("a-1", "o1", condition_key="disk"))
    second = ingest(fx, fake_alert("a-2", "o1", condition_key="disk"))
    assert second.outcome["action"] == "occurrence" and second.ticket_id == first.ticket_id
    with tenant_context(fx.tenant):
        t = Ticket.objects.get(pk=first.ticket_id)
        assert t.occurrence_count == 2
        assert (
            TicketNote.objects.filter(ticket=t, body__startswith="Alert fired again (occurrence 2)").count()
            == 1
        )
        # Closed behind the pipeline's back (no signal): the next firing still opens a new ticket.
        closed = t.board.statuses.model.objects.get(name="Closed")
        Ticket.objects.filter(pk=t.pk).update(status=closed)
    third = ingest(fx, fake_alert("a-3", "o1", condition_key="disk"))
    assert third.outcome["action"] == "ticket_created" and third.ticket_id != first.ticket_id
    with tenant_context(fx.tenant):
        groups = list(AlertGroup.objects.order_by("id").values_list("state", "occurrence_count"))
    assert groups == [("closed", 2), ("open", 1)]


def test_dedup_key_is_versioned_and_per_provider(fx):
    a = ingest(fx, fake_alert("a-1", "o1", condition_key="disk"))
    assert a.dedup_key.startswith("v1:") and len(a.dedup_key) <= 64


def test_template_with_missing_fields_never_breaks_the_pipeline(fx):
    with tenant_context(fx.tenant):
        AlertRule.objects.create(
            name="T",
            position=1,
            title_template="{{ device }}{{ nope }}",
            description_template="{{ organization.__class__ }}",
        )
    a = ingest(fx, fake_alert("a-1", "o1", title="X"))
    with tenant_context(fx.tenant):
        t = Ticket.objects.get(pk=a.ticket_id)
    assert t.title  # never empty, never a crash


def test_updated_event_refreshes_fields_without_an_occurrence(fx):
    a = ingest(fx, fake_alert("a-1", "o1", severity="low", title="Disk 80%"))
    u = ingest(fx, fake_alert("a-1", "o1", event=AlertEventKind.UPDATED, severity="high", title="Disk 95%"))
    assert u.outcome["action"] == "updated"
    with tenant_context(fx.tenant):
        a.refresh_from_db()
        assert (a.severity, a.title) == ("high", "Disk 95%")
        assert Ticket.objects.get().occurrence_count == 1


def test_same_alert_id_firing_again_after_resolve_is_a_new_firing(fx):
    t0 = timezone.now() - dt.timedelta(hours=2)
    ingest(fx, fake_alert("a-1", "o1", occurred_at=t0))
    ingest(
        fx, fake_alert("a-1", "o1", event=AlertEventKind.RESOLVED, occurred_at=t0 + dt.timedelta(minutes=5))
    )
    # A late copy of the original trigger: nothing.
    late = ingest(fx, fake_alert("a-1", "o1", occurred_at=t0))
    assert late.outcome["action"] == "redelivery" and late.state == "resolved"
    again = ingest(fx, fake_alert("a-1", "o1", occurred_at=t0 + dt.timedelta(hours=1)))
    assert again.outcome["action"] == "refired:ticket_created" and again.state == "active"
    assert again.occurrence_count == 2
    assert len(fx.tickets()) == 2


# -- crash safety ------------------------------------------------------------------------------------


class WorkerKilled(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing in the task handles it."""


def _stored_event(fx, payload):
    from unittest import mock

    with mock.patch.object(drain_inbound, "apply_async"):  # stored and "enqueued", not yet run
        r = fx.post(payload)
    return InboundEvent.objects.unscoped().get(pk=r.json()["event_id"])


def test_worker_killed_between_alerts_then_rerun_processes_each_alert_once(fx, fake_provider, monkeypatch):
    # One delivery carrying two firings of one condition.
    monkeypatch.setattr(
        fake_provider,
        "parse_webhook",
        lambda self, request: [
            fake_alert("m-1", "o1", condition_key="disk"),
            fake_alert("m-2", "o1", condition_key="disk"),
        ],
    )
    event = _stored_event(fx, trigger("ignored-by-patched-parser"))
    real = processing.sinks.deliver
    calls = []

    def dies_after_first(*args, **kwargs):
        if calls:
            raise WorkerKilled
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(processing.sinks, "deliver", dies_after_first)
    with tenant_context(fx.tenant), pytest.raises(WorkerKilled):
        processing.process_event(event.pk)
    monkeypatch.setattr(processing.sinks, "deliver", real)
    event.refresh_from_db()
    assert event.status == "accepted" and event.claimed_at is not None
    assert len(fx.tickets()) == 1
    # The message comes back while the dead worker's lease still runs: nothing happens yet.
    with tenant_context(fx.tenant):
        assert processing.process_event(event.pk) is None
    # Lease over (the sweeper re-enqueues it): processed once, m-1 is not counted twice.
    InboundEvent.objects.unscoped().filter(pk=event.pk).update(
        claimed_at=timezone.now() - dt.timedelta(hours=1)
    )
    with tenant_context(fx.tenant):
        result = processing.process_event(event.pk)
    assert result["actions"] == ["redelivery", "occurrence"]
    event.refresh_from_db()
    assert event.status == "processed" and event.attempts == 2
    (ticket,) = fx.tickets()
    assert ticket.occurrence_count == 2
    with tenant_context(fx.tenant):
        assert AlertGroup.objects.get().occurrence_count == 2
    # Any further copy of the message changes nothing.
    with tenant_context(fx.tenant):
        assert processing.process_event(event.pk) is None


def test_worker_killed_inside_the_ticket_transaction_leaves_nothing(fx, monkeypatch):
    from alerts.services import ticketing

    event = _stored_event(fx, trigger("k-1"))
    real = ticketing.create_alert_ticket

    def dies_after_ticket(*args, **kwargs):
        real(*args, **kwargs)
        raise WorkerKilled

    monkeypatch.setattr(ticketing, "create_alert_ticket", dies_after_ticket)
    with tenant_context(fx.tenant), pytest.raises(WorkerKilled):
        processing.process_event(event.pk)
    monkeypatch.setattr(ticketing, "create_alert_ticket", real)
    with tenant_context(fx.tenant):
        assert (Alert.objects.count(), AlertGroup.objects.count(), Ticket.objects.count()) == (0, 0, 0)
    InboundEvent.objects.unscoped().filter(pk=event.pk).update(
        claimed_at=timezone.now() - dt.timedelta(hours=1)
    )
    with tenant_context(fx.tenant):
        assert processing.process_event(event.pk)["actions"] == ["ticket_created"]
    assert len(fx.tickets()) == 1


def test_parser_crash_marks_the_event_failed_and_keeps_it(fx, fake_provider, monkeypatch):
    def broken(self, request):
        raise KeyError("alert_id")

    monkeypatch.setattr(fake_provider, "parse_webhook", broken)
    r = fx.post(trigger("p-1"))
    assert r.status_code == 202
    event = InboundEvent.objects.unscoped().get(pk=r.json()["event_id"])
    assert event.status == "failed" and "parser failed (KeyError)" in event.error
    assert bytes(event.body)


def test_poison_event_gives_up_after_max_attempts(fx):
    event = _stored_event(fx, trigger("z-1"))
    InboundEvent.objects.unscoped().filter(pk=event.pk).update(attempts=processing.MAX_ATTEMPTS)
    with tenant_context(fx.tenant):
        assert processing.process_event(event.pk) is None
    event.refresh_from_db()
    assert event.status == "failed" and "Gave up" in event.error


# -- replay -----------------------------------------------------------------------------------------


def test_replay_after_mapping_fix_creates_the_ticket_once(fx, api_a):
    r = fx.post(trigger("u-1", org="o-late"))
    event_id = r.json()["event_id"]
    with tenant_context(fx.tenant):
        alert = Alert.objects.get(external_id="u-1")
        assert alert.state == "unmapped"
        # The admin maps the organization, then replays the event.
        ExternalOrganization.objects.filter(external_id="o-late").update(client=fx.client, mapping="manual")
    url = f"/api/v1/integrations/fake/events/{event_id}/replay/"
    with committed():
        resp = api_a.post(url)
    assert resp.status_code == 202 and resp.json() == {"status": "accepted", "event_id": event_id}
    event = InboundEvent.objects.unscoped().get(pk=event_id)
    assert event.status == "processed" and event.result["actions"] == ["reevaluated:ticket_created"]
    assert "replayed_at" in event.result and event.replay_requested_at is None
    (ticket,) = fx.tickets()
    assert ticket.client_id == fx.client.pk
    # Replaying again (or a processed trigger) does not count the alert twice.
    with committed():
        assert api_a.post(url).status_code == 202
    event.refresh_from_db()
    assert event.result["actions"] == ["redelivery"]
    (ticket,) = fx.tickets()
    assert ticket.occurrence_count == 1


def test_replay_of_a_failed_event_runs_the_fixed_parser(fx, fake_provider, monkeypatch, api_a):
    original = fake_provider.parse_webhook
    monkeypatch.setattr(
        fake_provider, "parse_webhook", lambda self, request: (_ for _ in ()).throw(ValueError("bug"))
    )
    event_id = fx.post(trigger("r-1")).json()["event_id"]
    assert InboundEvent.objects.unscoped().get(pk=event_id).status == "failed"
    monkeypatch.setattr(fake_provider, "parse_webhook", original)
    with committed():
        assert api_a.post(f"/api/v1/integrations/fake/events/{event_id}/replay/").status_code == 202
    event = InboundEvent.objects.unscoped().get(pk=event_id)
    assert event.status == "processed" and event.error == ""
    assert len(fx.tickets()) == 1


def test_replay_after_rule_fix_reevaluates_an_ignored_alert(fx, api_a):
    with tenant_context(fx.tenant):
        rule = AlertRule.objects.create(name="Ignore all", position=1, action="ignore")
    event_id = fx.post(trigger("i-1")).json()["event_id"]
    with tenant_context(fx.tenant):
        assert Alert.objects.get().state == "ignored"
        AlertRule.objects.filter(pk=rule.pk).update(enabled=False)
    with committed():
        api_a.post(f"/api/v1/integrations/fake/events/{event_id}/replay/")
    with tenant_context(fx.tenant):
        assert Alert.objects.get().state == "active"
    assert len(fx.tickets()) == 1


def test_poll_reingest_picks_up_a_newly_mapped_organization(fx):
    ingest(fx, fake_alert("p-1", "o-later"), source="poll")
    with tenant_context(fx.tenant):
        ExternalOrganization.objects.filter(external_id="o-later").update(client=fx.client, mapping="manual")
    again = ingest(fx, fake_alert("p-1", "o-later"), source="poll")
    assert again.outcome["action"] == "reevaluated:ticket_created"
    # A webhook redelivery of an unmapped alert does not re-run it (replay does).
    ingest(fx, fake_alert("w-1", "o-none"))
    assert ingest(fx, fake_alert("w-1", "o-none")).outcome["action"] == "redelivery"


def test_client_model_is_tenant_scoped_in_attribution(fx, tenant_b, fake_provider):
    other = setup_fake(tenant_b.tenant)
    a = ingest(fx, fake_alert("x-1", "o1"))
    b = ingest(other, fake_alert("x-1", "o1"))
    assert a.pk != b.pk and a.client_id == fx.client.pk and b.client_id == other.client.pk
    with tenant_context(fx.tenant):
        assert Client.objects.filter(pk=b.client_id).count() == 0


# -- notes (e.g. NinjaOne ACKNOWLEDGED) -----------------------------------------------------------


def _notes(fx, ticket_id):
    with tenant_context(fx.tenant):
        return list(TicketNote.objects.filter(ticket_id=ticket_id).order_by("id").values_list("body", flat=True))


def test_a_note_event_adds_the_note_and_leaves_state_severity_and_title_alone(fx):
    a = ingest(fx, fake_alert("a-1", "o1", severity="high", title="Disk 95%"))
    n = ingest(fx, fake_alert("a-1", "o1", event=AlertEventKind.UPDATED, severity="medium", title="",
                              note="Acknowledged in NinjaOne by user 7."))
    assert n.outcome["action"] == "note_added" and n.outcome["ticket"] == a.ticket_id
    with tenant_context(fx.tenant):
        a.refresh_from_db()
        assert (a.state, a.severity, a.title) == ("active", "high", "Disk 95%")
        assert Ticket.objects.get().occurrence_count == 1
    assert _notes(fx, a.ticket_id)[-1] == "Acknowledged in NinjaOne by user 7."
    # The same note again (a replayed event) is not written twice.
    again = ingest(fx, fake_alert("a-1", "o1", event=AlertEventKind.UPDATED, note="Acknowledged in NinjaOne by user 7."))
    assert again.outcome["action"] == "note_redelivery"
    assert _notes(fx, a.ticket_id).count("Acknowledged in NinjaOne by user 7.") == 1


def test_a_note_for_a_series_never_seen_opens_nothing(fx):
    n = ingest(fx, fake_alert("never-seen", "o1", event=AlertEventKind.UPDATED, note="Acknowledged."))
    assert n.pk is None and n.outcome["action"] == "note_for_unseen_alert" and n.outcome["alert"] is None
    with tenant_context(fx.tenant):
        assert not Alert.objects.filter(external_id="never-seen").exists()
        assert Ticket.objects.count() == 0
    # A trigger arriving afterwards is a normal new alert.
    t = ingest(fx, fake_alert("never-seen", "o1"))
    assert t.outcome["action"] == "ticket_created"


def test_a_note_on_an_alert_without_a_ticket_changes_nothing(fx):
    u = ingest(fx, fake_alert("a-9", "o-unmapped"))
    assert u.state == "unmapped"
    n = ingest(fx, fake_alert("a-9", "o-unmapped", event=AlertEventKind.UPDATED, note="Acknowledged."))
    assert n.outcome["action"] == "note_without_ticket"
    with tenant_context(fx.tenant):
        u.refresh_from_db()
        assert u.state == "unmapped" and Ticket.objects.count() == 0
