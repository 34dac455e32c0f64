"""Lifecycle: resolve closes only untouched tickets with no other active alert; a person's close
resets the alerts in the provider (failures recorded, never blocking); reconcile."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from alerts.models import Alert, AlertGroup, AlertRule
from alerts.services.pipeline import ingest_normalized, reconcile
from integrations.errors import Unavailable
from integrations.records import AlertEventKind
from psa.tenancy import tenant_context
from tests.fakes import alert as fake_alert
from tests.integration.pipeline_support import committed, setup_fake
from tickets.models import Status, Ticket, TicketNote
from tickets.services import add_note, add_time_entry, update_ticket

pytestmark = pytest.mark.django_db

RESOLVED = AlertEventKind.RESOLVED


@pytest.fixture
def fx(tenant_a, fake_provider):
    return setup_fake(tenant_a.tenant)


def ingest(fx, na, source="webhook"):
    with committed():
        return ingest_normalized(fx.integration, na, source=source)


def ticket_of(fx, alert) -> Ticket:
    with tenant_context(fx.tenant):
        return Ticket.objects.select_related("status").get(pk=alert.ticket_id)


def notes(fx, ticket) -> list[str]:
    with tenant_context(fx.tenant):
        return list(TicketNote.objects.filter(ticket=ticket).order_by("id").values_list("body", flat=True))


def test_resolve_closes_an_untouched_ticket_and_the_next_firing_opens_a_new_one(fx):
    a = ingest(fx, fake_alert("a-1", "o1", condition_key="disk"))
    r = ingest(fx, fake_alert("a-1", "o1", event=RESOLVED))
    assert r.outcome["action"] == "resolved_ticket_closed" and r.state == "resolved"
    t = ticket_of(fx, a)
    assert t.status.is_closed and t.status.name == "Closed" and t.closed_at is not None
    assert "Closed automatically" in notes(fx, t)[-1]
    with tenant_context(fx.tenant):
        assert AlertGroup.objects.get().state == "closed"
    nxt = ingest(fx, fake_alert("a-2", "o1", condition_key="disk"))
    assert nxt.outcome["action"] == "ticket_created" and nxt.ticket_id != a.ticket_id


@pytest.mark.parametrize("touch", ["note", "time", "assign"])
def test_resolve_on_a_touched_ticket_adds_a_note_only(fx, tenant_a, touch):
    a = ingest(fx, fake_alert("a-1", "o1", condition_key="disk"))
    t = ticket_of(fx, a)
    with tenant_context(fx.tenant):
        if touch == "note":
            add_note(t, body="Looking into it", author=tenant_a.user)
        elif touch == "time":
            add_time_entry(t, user=tenant_a.user, minutes=5)
        else:
            update_ticket(t, actor=tenant_a.user, changes={"assignee": tenant_a.user})
    r = ingest(fx, fake_alert("a-1", "o1", event=RESOLVED))
    assert r.outcome["action"] == "resolved" and r.state == "resolved"
    t = ticket_of(fx, a)
    assert not t.status.is_closed
    assert "stays open because someone has worked on it" in notes(fx, t)[-1]
    # The ticket is still the condition's open ticket: a re-firing lands on it.
    again = ingest(fx, fake_alert("a-2", "o1", condition_key="disk"))
    assert again.outcome["action"] == "occurrence" and again.ticket_id == t.pk


def test_other_active_alert_on_the_ticket_keeps_it_open(fx):
    a = ingest(fx, fake_alert("a-1", "o1", condition_key="disk"))
    ingest(fx, fake_alert("a-2", "o1", condition_key="disk"))
    ingest(fx, fake_alert("a-1", "o1", event=RESOLVED))
    t = ticket_of(fx, a)
    assert not t.status.is_closed
    assert "1 other alert(s) on it are still active" in notes(fx, t)[-1]
    last = ingest(fx, fake_alert("a-2", "o1", event=RESOLVED))
    assert last.outcome["action"] == "resolved_ticket_closed"
    assert ticket_of(fx, a).status.is_closed


def test_rule_without_auto_close_only_notes(fx):
    with tenant_context(fx.tenant):
        AlertRule.objects.create(name="Keep", position=1, auto_close=False)
    a = ingest(fx, fake_alert("a-1", "o1"))
    ingest(fx, fake_alert("a-1", "o1", event=RESOLVED))
    t = ticket_of(fx, a)
    assert not t.status.is_closed and "does not close tickets automatically" in notes(fx, t)[-1]


def test_duplicate_and_stale_resolves_change_nothing(fx):
    t0 = timezone.now() - dt.timedelta(hours=1)
    a = ingest(fx, fake_alert("a-1", "o1", occurred_at=t0))
    stale = ingest(fx, fake_alert("a-1", "o1", event=RESOLVED, occurred_at=t0 - dt.timedelta(minutes=1)))
    assert stale.outcome["action"] == "resolve_ignored"
    with tenant_context(fx.tenant):
        assert Alert.objects.get().state == "active"
    ingest(fx, fake_alert("a-1", "o1", event=RESOLVED, occurred_at=t0 + dt.timedelta(minutes=1)))
    count = len(notes(fx, ticket_of(fx, a)))
    dup = ingest(fx, fake_alert("a-1", "o1", event=RESOLVED, occurred_at=t0 + dt.timedelta(minutes=1)))
    assert dup.outcome["action"] == "resolve_ignored"
    assert len(notes(fx, ticket_of(fx, a))) == count


def test_resolve_before_trigger_is_remembered(fx):
    t0 = timezone.now() - dt.timedelta(minutes=30)
    r = ingest(fx, fake_alert("a-1", "o1", event=RESOLVED, occurred_at=t0 + dt.timedelta(minutes=5)))
    assert r.outcome["action"] == "resolved_unseen" and r.state == "resolved"
    late_trigger = ingest(fx, fake_alert("a-1", "o1", occurred_at=t0))
    assert late_trigger.outcome["action"] == "redelivery"
    assert fx.tickets() == []


# -- a person closes the ticket -----------------------------------------------------------------------


def _close_as(fx, user, ticket_id, api=None):
    with tenant_context(fx.tenant):
        closed = Status.objects.get(name="Closed")
    with committed():
        r = api.patch(f"/api/v1/tickets/{ticket_id}/", {"status": closed.pk}, format="json")
    assert r.status_code == 200, r.content
    return r


def test_close_by_a_person_resets_alerts_and_records_failures_without_blocking(
    fx, fake_provider, tenant_a, api_a, settings
):
    # No time to retry (tests/integration/test_outbox.py covers the retries): the first failure is final.
    settings.PSA_OUTBOX_GIVE_UP_SECONDS = 0
    fake_provider.state.reset_failures = {"a-2": Unavailable("RMM is down")}
    a1 = ingest(fx, fake_alert("a-1", "o1", condition_key="disk"))
    ingest(fx, fake_alert("a-2", "o1", condition_key="disk"))
    _close_as(fx, tenant_a.user, a1.ticket_id, api=api_a)
    assert sorted(fake_provider.state.resets) == ["a-1", "a-2"]
    # One side effect per alert, each with its own provider session, closed after its call.
    assert fake_provider.state.closed == 2
    with tenant_context(fx.tenant):
        ok, failed = Alert.objects.order_by("external_id")
        assert (ok.reset_status, ok.state, ok.reset_error) == ("done", "resolved", "")
        assert (failed.reset_status, failed.state) == ("failed", "active")
        assert failed.reset_error == "Gave up after 1 attempt over 0 s: RMM is down"
        assert AlertGroup.objects.get().state == "closed"
    t = ticket_of(fx, a1)
    assert t.status.is_closed  # the failure did not undo the close
    bodies = notes(fx, t)
    assert any("Could not reset fake alert a-2: Gave up after 1 attempt over 0 s: RMM is down" in b for b in bodies)
    assert any("Reset fake alert a-1" in b for b in bodies)
    # The condition fires again: a new ticket.
    nxt = ingest(fx, fake_alert("a-3", "o1", condition_key="disk"))
    assert nxt.outcome["action"] == "ticket_created" and nxt.ticket_id != a1.ticket_id


def test_rule_without_reset_on_close_skips_the_provider(fx, fake_provider, tenant_a, api_a):
    with tenant_context(fx.tenant):
        AlertRule.objects.create(name="No reset", position=1, reset_on_close=False)
    a = ingest(fx, fake_alert("a-1", "o1"))
    _close_as(fx, tenant_a.user, a.ticket_id, api=api_a)
    assert fake_provider.state.resets == []
    with tenant_context(fx.tenant):
        a.refresh_from_db()
    assert a.reset_status == "skipped" and a.state == "active"


def test_provider_without_reset_capability_is_skipped(fx, fake_provider, tenant_a, api_a):
    from integrations.base import Capabilities

    fake_provider.capabilities = Capabilities(webhooks=True, reset_on_close=False)
    a = ingest(fx, fake_alert("a-1", "o1"))
    _close_as(fx, tenant_a.user, a.ticket_id, api=api_a)
    assert fake_provider.state.resets == []
    with tenant_context(fx.tenant):
        a.refresh_from_db()
    assert a.reset_status == "skipped"


def test_system_close_by_resolve_does_not_call_reset(fx, fake_provider):
    ingest(fx, fake_alert("a-1", "o1"))
    ingest(fx, fake_alert("a-1", "o1", event=RESOLVED))
    assert fake_provider.state.resets == []


# -- reconcile -----------------------------------------------------------------------------------------


def test_reconcile_resolves_what_the_provider_no_longer_reports(fx):
    # Received seconds ago (no waiting period), one of them raised in the RMM long before.
    a1 = ingest(fx, fake_alert("a-1", "o1", condition_key="c1"))
    an_hour_ago = timezone.now() - dt.timedelta(hours=1)
    ingest(fx, fake_alert("a-2", "o1", condition_key="c2", occurred_at=an_hour_ago))
    ingest(fx, fake_alert("a-3", "o-unmapped", condition_key="c3"))
    snapshot_requested = timezone.now()
    # Reached us after the snapshot was asked for, though the RMM raised it earlier: left alone.
    earlier = snapshot_requested - dt.timedelta(minutes=5)
    fresh = ingest(fx, fake_alert("a-4", "o1", condition_key="c4", occurred_at=earlier))
    with committed(), tenant_context(fx.tenant):
        summary = reconcile(fx.integration, {"a-2"}, as_of=snapshot_requested)
    assert summary == {"open": 3, "still_active": 1, "resolved": 2, "tickets_closed": 1}
    with tenant_context(fx.tenant):
        states = dict(Alert.objects.values_list("external_id", "state"))
    assert states == {"a-1": "resolved", "a-2": "active", "a-3": "resolved", "a-4": "active"}
    assert ticket_of(fx, a1).status.is_closed
    assert not ticket_of(fx, fresh).status.is_closed
    with tenant_context(fx.tenant):
        assert reconcile(fx.integration, {"a-2"}, as_of=snapshot_requested)["resolved"] == 0
        # A later complete snapshot (default as_of: now) without a-4 resolves it too.
        assert reconcile(fx.integration, {"a-2"})["resolved"] == 1
        assert Alert.objects.get(external_id="a-4").state == "resolved"
