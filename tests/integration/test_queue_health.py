"""Queues: a plain worker consumes every queue; the heartbeat and the intake backlog tell the RMM tab
when a queue has no consumer (psa.queues)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.cache import cache
from django.utils import timezone

from alerts.models import InboundEvent, InboundEventStatus
from integrations.services import config
from psa import celery_app, queues
from psa.tenancy import tenant_context

RMM = "/settings/integrations/rmm/"


@pytest.fixture(autouse=True)
def clean_stamps():
    keys = [queues._KEY.format(q) for q in queues.QUEUES] + [queues._FIRST_CHECKED_KEY]
    cache.delete_many(keys)
    yield
    cache.delete_many(keys)


@pytest.fixture
def with_broker():
    """Tasks go through a broker, as in production (tests otherwise run Celery eagerly)."""
    celery_app.conf.task_always_eager = False
    yield
    celery_app.conf.task_always_eager = True


def _all_fresh(now):
    for q in queues.QUEUES:
        queues.record_heartbeat(q, now - dt.timedelta(seconds=30))


def _by_queue(rows):
    return {r["queue"]: r for r in rows}


# -- configuration ---------------------------------------------------------------------------------


def test_every_queue_is_declared_so_a_plain_worker_consumes_them_all():
    declared = celery_app.amqp.queues
    assert set(declared) == set(queues.QUEUES) == {"default", "intake", "sync", "notifications"}
    # What `celery -A psa worker` without -Q consumes: all declared queues.
    assert sorted(declared.consume_from) == sorted(queues.QUEUES)
    # Routes land on declared queues (same exchange and routing key as before).
    router = celery_app.amqp.router
    for task, queue in [("alerts.process_inbound_event", "intake"), ("integrations.sync.poll", "sync"),
                        ("notifications.alert_ticket_created", "notifications"), ("psa.anything", "default")]:
        routed = router.route({}, task)["queue"]
        assert (routed.name, routed.routing_key, routed.exchange.name) == (queue, queue, queue)


def test_beat_sends_a_heartbeat_to_each_queue(db):
    from django_celery_beat.schedulers import ModelEntry

    entries = {k: v for k, v in celery_app.conf.beat_schedule.items() if v["task"] == queues.HEARTBEAT_TASK}
    assert {v["options"]["queue"] for v in entries.values()} == set(queues.QUEUES)
    assert all(v["args"] == (v["options"]["queue"],) and v["schedule"] == 60.0 for v in entries.values())
    # The scheduler the product runs (django-celery-beat) stores each entry as it does at startup and
    # publishes with these options: to the entry's queue, expiring before the next beat.
    for name, entry in entries.items():
        stored = ModelEntry.from_entry(name, app=celery_app, **entry)
        assert stored.options["queue"] == entry["options"]["queue"]
        assert 0 < stored.options["expires"] < 60
        assert stored.model.args == f'["{entry["options"]["queue"]}"]'


def test_the_heartbeat_task_stamps_its_queue():
    from psa.tasks import queue_heartbeat

    before = timezone.now()
    queue_heartbeat.apply(args=("sync",))
    seen = queues.last_heartbeats()
    assert seen["sync"] is not None and before - dt.timedelta(seconds=1) <= seen["sync"] <= timezone.now()
    assert seen["intake"] is None


# -- health ----------------------------------------------------------------------------------------


def test_in_process_mode_needs_no_worker():
    # Eager (embedded mode): nothing to consume, no stamps needed, nothing to warn about.
    rows = queues.queue_health()
    assert [r["queue"] for r in rows] == list(queues.QUEUES)
    assert all(r["ok"] and "in-process" in r["message"] for r in rows)


def test_fresh_heartbeats_are_healthy(with_broker, tenant_a):
    now = timezone.now()
    _all_fresh(now)
    with tenant_context(tenant_a.tenant):
        rows = queues.queue_health(now)
    assert all(r["ok"] for r in rows), rows
    seen = _by_queue(rows)["intake"]["last_seen"]
    assert abs(seen - (now - dt.timedelta(seconds=30))) < dt.timedelta(milliseconds=1)


def test_a_queue_without_consumer_for_a_while_is_reported(with_broker, tenant_a):
    now = timezone.now()
    _all_fresh(now)
    queues.record_heartbeat("intake", now - dt.timedelta(minutes=10))
    with tenant_context(tenant_a.tenant):
        rows = _by_queue(queues.queue_health(now))
    assert [q for q, r in rows.items() if not r["ok"]] == ["intake"]
    assert "No worker has consumed the intake queue for 10" in rows["intake"]["message"]
    assert "celery -A psa worker" in rows["intake"]["message"]


def test_never_heard_of_queues_get_one_grace_period(with_broker, tenant_a):
    start = timezone.now()
    with tenant_context(tenant_a.tenant):
        assert all(r["ok"] for r in queues.queue_health(start))  # beat may not have ticked yet
        later = queues.queue_health(start + dt.timedelta(minutes=5))
    assert not any(r["ok"] for r in later)
    assert "since checks began 5" in later[0]["message"] and "celery -A psa beat" in later[0]["message"]


def _event(tenant, integration, n, received_at, **kw):
    event = InboundEvent.objects.unscoped().create(
        tenant=tenant, integration=integration, provider="generic", delivery_id=f"d-{n}", **kw
    )
    InboundEvent.objects.unscoped().filter(pk=event.pk).update(received_at=received_at)  # auto_now_add
    return event


def test_webhooks_no_worker_picked_up_are_reported_whatever_the_heartbeat(with_broker, tenant_a, tenant_b):
    now = timezone.now()
    _all_fresh(now)  # even with heartbeats fine (or beat down), the database tells
    with tenant_context(tenant_a.tenant):
        integration = config.update_integration(config.get_integration("generic", create=True))
    t = tenant_a.tenant
    _event(t, integration, 1, now - dt.timedelta(minutes=7))
    _event(t, integration, 2, now - dt.timedelta(seconds=20))
    # A worker is retrying this one (the provider is down): it has a worker, it does not count.
    _event(t, integration, 3, now - dt.timedelta(hours=1), attempts=2)
    _event(t, integration, 4, now - dt.timedelta(hours=1), status=InboundEventStatus.PROCESSED)
    with tenant_context(t):
        intake = _by_queue(queues.queue_health(now))["intake"]
    assert intake["ok"] is False
    assert intake["message"] == (
        "2 alerts are waiting for a worker on the intake queue (oldest 7\xa0minutes ago): "
        "is a worker running?"
    )
    with tenant_context(tenant_b.tenant):  # another tenant's backlog is not shown
        assert _by_queue(queues.queue_health(now))["intake"]["ok"] is True


def test_a_young_backlog_and_a_recent_replay_are_not_alarming(with_broker, tenant_a):
    now = timezone.now()
    _all_fresh(now)
    with tenant_context(tenant_a.tenant):
        integration = config.update_integration(config.get_integration("generic", create=True))
    _event(tenant_a.tenant, integration, 1, now - dt.timedelta(seconds=60))
    # Received long ago, replayed just now: waiting since the replay.
    _event(tenant_a.tenant, integration, 2, now - dt.timedelta(days=2),
           replay_requested_at=now - dt.timedelta(seconds=10))
    with tenant_context(tenant_a.tenant):
        assert _by_queue(queues.queue_health(now))["intake"]["ok"] is True


# -- the RMM tab ------------------------------------------------------------------------------------


def test_rmm_tab_is_quiet_when_all_is_well(client, tenant_a, with_broker):
    _all_fresh(timezone.now())
    client.force_login(tenant_a.user)
    html = client.get(RMM).content.decode()
    assert 'data-testid="queue-warning"' not in html


def test_rmm_tab_warns_once_per_unhealthy_queue(client, tenant_a, with_broker):
    now = timezone.now()
    _all_fresh(now)
    queues.record_heartbeat("sync", now - dt.timedelta(hours=2))
    with tenant_context(tenant_a.tenant):
        integration = config.update_integration(config.get_integration("generic", create=True))
    _event(tenant_a.tenant, integration, 1, now - dt.timedelta(minutes=3))
    client.force_login(tenant_a.user)
    html = client.get(RMM).content.decode()
    assert html.count('data-testid="queue-warning"') == 2
    assert 'data-queue="sync"' in html and "No worker has consumed the sync queue for 2" in html
    assert 'data-queue="intake"' in html and "1 alert is waiting for a worker on the intake queue" in html
