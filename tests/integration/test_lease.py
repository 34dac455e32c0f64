"""The drain's short lease and its heartbeat (alerts.services.lease): a live worker keeps its claim however
long its turn takes; a dead worker's claim runs out after one lease and another drain takes the events."""

from __future__ import annotations

import time

import pytest

from alerts.models import InboundEvent
from alerts.services import dispatch
from alerts.services.lease import Heartbeat
from psa.tenancy import tenant_context
from tests.integration.pipeline_support import setup_fake


@pytest.mark.django_db(transaction=True)  # the heartbeat writes from its own thread and connection
def test_a_heartbeat_keeps_a_live_claim_and_a_stopped_one_expires(tenant_a, fake_provider, settings):
    settings.PSA_INBOUND_LEASE_SECONDS = 2  # a beat every 0.5 s
    fx = setup_fake(tenant_a.tenant)
    with tenant_context(fx.tenant):
        ids = [InboundEvent.objects.create(integration=fx.integration, provider="fake", delivery_id=f"d-{i}",
                                           body=b"{}").pk for i in range(2)]
    turn = dispatch.claim_turn()
    assert sorted(c.id for c in turn) == ids
    with Heartbeat(turn[0].fence, ids) as heartbeat:
        time.sleep(3)  # longer than the lease: the heartbeat kept both
        assert dispatch.claim_turn() == []
        assert dispatch.due_backlog() == 0
        heartbeat.done(ids[0])  # finished with the first (as a drain does after each event)
        time.sleep(2.6)
        assert dispatch.due_backlog() == 1
        again = dispatch.claim_turn()
    assert [c.id for c in again] == [ids[0]]  # the one no longer held; the other is still ours
    rows = dict(InboundEvent.objects.unscoped().filter(pk__in=ids).values_list("pk", "attempts"))
    assert rows == {ids[0]: 2, ids[1]: 1}


@pytest.mark.django_db(transaction=True)
def test_a_killed_drains_events_are_due_at_once_when_its_lease_runs_out(tenant_a, fake_provider, settings):
    """No heartbeat (the worker died): the claim expires after the lease and the sweeper finds it, whatever
    the events' age (the sweep_after age is for events never claimed)."""
    settings.PSA_INBOUND_LEASE_SECONDS = 1
    settings.PSA_INBOUND_SWEEP_AFTER_SECONDS = 3600
    fx = setup_fake(tenant_a.tenant)
    with tenant_context(fx.tenant):
        InboundEvent.objects.create(integration=fx.integration, provider="fake", delivery_id="k-1", body=b"{}")
    assert len(dispatch.claim_turn()) == 1
    assert dispatch.due_backlog() == 0
    time.sleep(1.2)
    assert dispatch.due_backlog() == 1
