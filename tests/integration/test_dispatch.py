"""The fair dispatcher (alerts.services.dispatch) against the real PostgreSQL: turns interleave every
integration's oldest events by rank, the security lane first; concurrent drains claim disjoint turns;
a storm never starves a trickle; transient trouble backs off."""

from __future__ import annotations

import datetime as dt
import json
import threading
from unittest import mock

import pytest
from django.db import connection
from django.utils import timezone

from alerts.models import InboundEvent
from alerts.services import dispatch, events
from alerts.tasks import drain_inbound
from integrations.errors import Unavailable
from integrations.models import Integration
from psa.tenancy import tenant_context

pytestmark = pytest.mark.django_db(transaction=True)


def store(integration, n: int, prefix: str) -> list[int]:
    """``n`` waiting events (the wake stubbed: nothing drains them yet), oldest first."""
    ids = []
    with tenant_context(integration.tenant_id), mock.patch.object(drain_inbound, "apply_async"):
        for i in range(n):
            body = json.dumps({"event": "trigger", "alert_id": f"{prefix}-{i}", "condition": f"c-{i}"}).encode()
            ids.append(events.store_accepted(integration, body=body, delivery_id=f"{prefix}-{i}").id)
    return ids


@pytest.fixture
def lanes(make_tenant):
    a, b = make_tenant("Storm MSP").tenant, make_tenant("Quiet MSP").tenant
    storm = Integration.objects.unscoped().create(tenant=a, provider="generic", status="connected")
    quiet = Integration.objects.unscoped().create(tenant=b, provider="generic", status="connected")
    security = Integration.objects.unscoped().create(tenant=a, provider="kit", status="connected")
    return storm, quiet, security


def test_a_turn_interleaves_every_integration_by_rank_security_first(lanes, settings):
    settings.PSA_DISPATCH_PER_INTEGRATION, settings.PSA_DISPATCH_TURN = 16, 64
    storm, quiet, security = lanes
    storm_ids, quiet_ids, security_ids = store(storm, 100, "s"), store(quiet, 3, "q"), store(security, 2, "x")
    turn = [c.id for c in dispatch.claim_turn()]
    assert turn[:2] == security_ids
    # Every rank interleaves both; within a rank the shorter queue (the quiet one) goes first.
    assert turn[2:8] == [quiet_ids[0], storm_ids[0], quiet_ids[1], storm_ids[1], quiet_ids[2], storm_ids[2]]
    assert turn[8:] == storm_ids[3:16]  # the storm's share of a turn is bounded
    # Claimed events are not claimed again while their lease lives.
    assert not set(turn) & {c.id for c in dispatch.claim_turn()}


def test_more_integrations_than_a_turn_holds_each_still_gets_its_oldest(make_tenant, settings):
    settings.PSA_DISPATCH_PER_INTEGRATION, settings.PSA_DISPATCH_TURN = 4, 10
    firsts = []
    for n in range(10):
        integration = Integration.objects.unscoped().create(
            tenant=make_tenant(f"MSP {n}").tenant, provider="generic", status="connected")
        firsts.append(store(integration, 5, f"t{n}")[0])
    turn = [c.id for c in dispatch.claim_turn()]
    assert turn == firsts  # rank 1 of every integration comes before rank 2 of any


def test_concurrent_drains_claim_disjoint_turns(lanes, settings):
    settings.PSA_DISPATCH_PER_INTEGRATION, settings.PSA_DISPATCH_TURN = 50, 60
    storm, quiet, _ = lanes
    stored = set(store(storm, 120, "s") + store(quiet, 40, "q"))
    barrier = threading.Barrier(4)
    claimed: list[list[int]] = []
    lock = threading.Lock()

    def claim():
        barrier.wait()
        try:
            got = [c.id for c in dispatch.claim_turn()]
            with lock:
                claimed.append(got)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    flat = [i for turn in claimed for i in turn]
    assert len(flat) == len(set(flat)), "two drains claimed the same event"
    assert set(flat) <= stored and sum(1 for turn in claimed if turn) >= 2  # they shared the work
    # Rows one drain locked but left out of its turn are free again: later turns take the rest.
    while turn := dispatch.claim_turn():
        flat += [c.id for c in turn]
    assert sorted(flat) == sorted(stored)
    attempts = dict(InboundEvent.objects.unscoped().filter(pk__in=flat).values_list("pk", "attempts"))
    assert set(attempts.values()) == {1}


def test_drain_serves_a_trickle_before_the_storm_backlog(lanes, settings):
    settings.PSA_DISPATCH_PER_INTEGRATION, settings.PSA_DISPATCH_TURN = 8, 16
    storm, quiet, _ = lanes
    storm_ids = store(storm, 60, "s")
    [quiet_id] = store(quiet, 1, "q")  # arrives after the whole storm
    with mock.patch.object(drain_inbound, "apply_async"):  # the fan-out wakes: this drain does it all
        totals = dispatch.drain(max_seconds=60)
    assert totals["processed"] == 61 and totals["failed"] == 0
    order = list(InboundEvent.objects.unscoped().filter(pk__in=[*storm_ids, quiet_id])
                 .order_by("processed_at", "id").values_list("pk", flat=True))
    assert order.index(quiet_id) <= 2, "the trickle waited behind the storm"
    assert set(InboundEvent.objects.unscoped().values_list("status", flat=True)) == {"processed"}


def _drain_while(action, until_processed: int, watch: list[int]):
    """Run one drain in a thread; once ``until_processed`` of ``watch`` are processed, call ``action``
    (it stores events: they arrive while a turn is in progress). Returns the drain's totals."""
    totals: dict = {}

    def run():
        try:
            with mock.patch.object(drain_inbound, "apply_async"):
                totals.update(dispatch.drain(max_seconds=60))
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    deadline = timezone.now() + dt.timedelta(seconds=30)
    while InboundEvent.objects.unscoped().filter(pk__in=watch, status="processed").count() < until_processed:
        assert timezone.now() < deadline, "the drain did not start"
    action()
    thread.join(60)
    assert not thread.is_alive()
    return totals


def _processing_order(ids: list[int]) -> list[int]:
    return list(InboundEvent.objects.unscoped().filter(pk__in=ids)
                .order_by("processed_at", "id").values_list("pk", flat=True))


def test_a_newcomer_preempts_the_turn_in_progress(lanes, settings):
    settings.PSA_DISPATCH_PER_INTEGRATION, settings.PSA_DISPATCH_TURN = 40, 40
    storm, quiet, _ = lanes
    storm_ids = store(storm, 40, "s")  # one turn holds the whole storm
    arrived: list[int] = []
    done_at_arrival: list[int] = []

    def arrive():
        arrived.extend(store(quiet, 1, "q"))
        done_at_arrival.append(InboundEvent.objects.unscoped().filter(pk__in=storm_ids, status="processed").count())

    totals = _drain_while(arrive, 3, storm_ids)
    assert totals["processed"] == 41 and totals["failed"] == 0
    assert totals["preempted"] >= 1 and totals["turns"] >= 2
    order = _processing_order([*storm_ids, *arrived])
    position = order.index(arrived[0])
    # It waits for the storm event in hand when it arrived (one more at most, for the check's timing),
    # not for the rest of a 40-event turn: within the new turn's first rank it goes first.
    assert position <= done_at_arrival[0] + 2 < 20, (position, done_at_arrival)
    assert order[:position] == sorted(order[:position])  # the storm kept its own order
    # A turn given back is not an attempt: every event was processed once, on its first attempt.
    rows = InboundEvent.objects.unscoped().filter(pk__in=order)
    assert set(rows.values_list("status", flat=True)) == {"processed"}
    assert set(rows.values_list("attempts", flat=True)) == {1}


def test_integrations_already_waiting_never_preempt(lanes, settings):
    settings.PSA_DISPATCH_PER_INTEGRATION, settings.PSA_DISPATCH_TURN = 40, 40
    storm, quiet, _ = lanes
    storm_ids = store(storm, 30, "s")
    quiet_ids = store(quiet, 10, "q")
    more: list[int] = []
    # Both were waiting at the claim; more of their events arriving mid-turn is no reason to give it back.
    totals = _drain_while(lambda: more.extend(store(storm, 5, "s2") + store(quiet, 5, "q2")), 3,
                          storm_ids + quiet_ids)
    assert totals["processed"] == 50 and totals["preempted"] == 0
    assert set(InboundEvent.objects.unscoped().values_list("attempts", flat=True)) == {1}


def test_a_released_turn_is_claimed_again_at_once(lanes, settings):
    settings.PSA_DISPATCH_PER_INTEGRATION, settings.PSA_DISPATCH_TURN = 8, 8
    storm, _, _ = lanes
    ids = store(storm, 8, "s")
    turn = dispatch.claim_turn()
    assert [c.id for c in turn] == ids and turn.waiting == {storm.pk}
    assert dispatch.claim_turn() == []  # held
    assert dispatch.give_back(ids[2:], turn[0].fence) == 6
    assert dispatch.give_back(ids[2:], turn[0].fence) == 0  # only a claim still held is given back
    again = dispatch.claim_turn()
    assert [c.id for c in again] == ids[2:]
    attempts = dict(InboundEvent.objects.unscoped().filter(pk__in=ids).values_list("pk", "attempts"))
    assert attempts == {pk: 1 for pk in ids}


def test_transient_trouble_gives_the_event_back_with_a_backoff(lanes, settings, monkeypatch):
    storm, _, _ = lanes
    [event_id] = store(storm, 1, "s")
    from integrations.generic.provider import GenericProvider

    def down(self, request):
        raise Unavailable("The RMM is down.")

    monkeypatch.setattr(GenericProvider, "parse_webhook", down)
    with mock.patch.object(drain_inbound, "apply_async"):
        assert dispatch.drain(max_seconds=5)["deferred"] == 1
    event = InboundEvent.objects.unscoped().get(pk=event_id)
    assert event.status == "accepted" and event.attempts == 1
    assert dispatch.claim_turn() == []  # backing off: not claimable yet
    waits_until = event.claimed_at + events.lease()
    assert dt.timedelta(seconds=5) < waits_until - timezone.now() <= dt.timedelta(seconds=10)
    # Once the backoff is over (and the event is older than the sweep age) the sweeper wakes a drain.
    InboundEvent.objects.unscoped().filter(pk=event_id).update(
        claimed_at=timezone.now() - events.lease() - dt.timedelta(seconds=1),
        received_at=timezone.now() - dt.timedelta(minutes=5))
    monkeypatch.undo()
    assert dispatch.due_backlog() == 1
    with mock.patch.object(drain_inbound, "apply_async") as published:
        assert events.sweep() == {"found": 1, "enqueued": 1}
    assert published.call_count == 1  # the sweeper woke a drain; run it here
    assert dispatch.drain(max_seconds=5)["processed"] == 1
    assert InboundEvent.objects.unscoped().get(pk=event_id).status == "processed"


def test_a_backlog_growing_at_every_sweep_is_reported_to_the_operator_once(lanes, settings, mailoutbox):
    from django.core.cache import cache

    settings.PSA_BACKLOG_ALARM = 5
    settings.ADMINS = [("Ops", "ops@example.com")]
    storm, quiet, _ = lanes
    cache.delete(dispatch.BACKLOG_HISTORY)
    cache.delete(f"psa:intake:backlog-alarm:{storm.tenant_id}")
    reported = []
    for sweep in range(6):
        store(storm, 3, f"s{sweep}")  # the storm's backlog grows every minute
        store(quiet, 1, f"q{sweep}") if sweep == 0 else None  # the quiet tenant's stays flat
        reported.append(dispatch.watch_backlogs())
    assert reported[:3] == [[], [], []]  # four sweeps of growth are needed
    assert reported[3] == [storm.tenant_id] and reported[4:] == [[], []]  # once an hour, not every minute
    assert len(mailoutbox) == 1 and "12 inbound events waiting" in mailoutbox[0].body
    waiting = dispatch.backlog_by_integration()
    assert waiting[storm.pk]["waiting"] == 18 and waiting[quiet.pk]["waiting"] == 1
