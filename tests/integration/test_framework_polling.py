"""Polling: due dispatch, the one-poll-per-integration fence under concurrency, feeding the real pipeline."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection
from django.utils import timezone

from alerts.models import Alert
from integrations.errors import AuthFailed, RateLimited
from integrations.models import Integration, IntegrationStatus, Job, JobState
from integrations.records import AlertEventKind, PollResult
from integrations.services import config, jobs, orgs, polling
from psa.tenancy import tenant_context
from tests.fakes import alert


@pytest.fixture
def integration(tenant_a, fake_provider, as_tenant, make_client):
    client = make_client(tenant_a.tenant, "Acme")
    with as_tenant(tenant_a.tenant):
        i = config.get_integration("fake", create=True)
        config.update_integration(i, credentials={"api_key": "k" * 20}, poll_interval_minutes=10)
        orgs.set_mapping(orgs.discover(i, "o1", "Acme"), client)
        i.refresh_from_db()
    assert i.status == IntegrationStatus.CONNECTED
    return i


def _poll_job(tenant, integration):
    with tenant_context(tenant):
        return jobs.start_job(integration, jobs.POLL)


def test_poll_feeds_pipeline_then_reconciles(integration, tenant_a, as_tenant, fake_provider,
                                             django_capture_on_commit_callbacks):
    fake_provider.state.poll_result = PollResult(active=[alert("a1", severity="high"), alert("a2")], cursor="c-1")
    with django_capture_on_commit_callbacks(execute=True):
        job = _poll_job(tenant_a.tenant, integration)
    with as_tenant(tenant_a.tenant):
        job.refresh_from_db()
        assert job.state == JobState.SUCCEEDED, job.error
        assert job.summary["received"] == 2 and job.summary["ingested"] == 2 and job.summary["failed"] == 0
        alerts = {a.external_id: a for a in Alert.objects.filter(integration=integration)}
        assert set(alerts) == {"a1", "a2"} and all(a.state == "active" for a in alerts.values())
        assert all(a.ticket_id for a in alerts.values())  # the catch-all rule ticketed them
        row = Integration.objects.get(pk=integration.pk)
        assert row.last_poll_ok is True and row.last_poll_at and row.poll_cursor == "c-1"
        assert row.poll_started_at is None  # the fence is released
        assert row.next_poll_at > timezone.now() + dt.timedelta(minutes=9)
    # a2 cleared in the RMM; "Poll now" straight away (no waiting period) resolves it.
    fake_provider.state.poll_result = PollResult(active=[alert("a1", severity="high")], complete=True, cursor="c-2")
    with django_capture_on_commit_callbacks(execute=True):
        job = _poll_job(tenant_a.tenant, integration)
    with as_tenant(tenant_a.tenant):
        job.refresh_from_db()
        assert job.summary["reconciled"]["resolved"] == 1
        assert Alert.objects.get(external_id="a2").state == "resolved"
        assert Alert.objects.get(external_id="a1").state == "active"
    assert fake_provider.state.poll_cursors == [None, "c-1"]


def test_incomplete_poll_does_not_reconcile(integration, tenant_a, as_tenant, fake_provider,
                                            django_capture_on_commit_callbacks):
    fake_provider.state.poll_result = PollResult(active=[alert("a1"), alert("a2")])
    with django_capture_on_commit_callbacks(execute=True):
        _poll_job(tenant_a.tenant, integration)
    fake_provider.state.poll_result = PollResult(active=[], complete=False)
    with django_capture_on_commit_callbacks(execute=True):
        job = _poll_job(tenant_a.tenant, integration)
    with as_tenant(tenant_a.tenant):
        job.refresh_from_db()
        assert "reconciled" not in job.summary
        assert set(Alert.objects.values_list("state", flat=True)) == {"active"}


def test_alert_received_while_the_snapshot_was_taken_survives_the_reconcile(
        integration, tenant_a, as_tenant, fake_provider, monkeypatch, django_capture_on_commit_callbacks):
    """A webhook that reached us after the poll asked for the snapshot: the snapshot may predate it."""
    from alerts.services.pipeline import ingest_normalized

    fake_provider.state.poll_result = PollResult(active=[alert("a1")], complete=True)
    with django_capture_on_commit_callbacks(execute=True):
        _poll_job(tenant_a.tenant, integration)
    snapshot = PollResult(active=[], complete=True)  # a1 cleared; "late" not in it yet

    def poll_alerts(self, cursor=None):
        # The provider's answer is on its way; meanwhile a webhook for a new alert arrives. Its
        # occurred_at is an hour old (the RMM's clock): what counts is when it reached us.
        ingest_normalized(integration, alert("late", occurred_at=timezone.now() - dt.timedelta(hours=1)),
                          source="webhook")
        return snapshot

    monkeypatch.setattr(fake_provider, "poll_alerts", poll_alerts)
    with django_capture_on_commit_callbacks(execute=True):
        job = _poll_job(tenant_a.tenant, integration)
    with as_tenant(tenant_a.tenant):
        job.refresh_from_db()
        assert job.summary["reconciled"] == {"open": 1, "still_active": 0, "resolved": 1, "tickets_closed": 1}
        states = dict(Alert.objects.values_list("external_id", "state"))
    assert states == {"a1": "resolved", "late": "active"}


def test_provider_snapshot_time_is_used_when_given(integration, tenant_a, as_tenant, fake_provider,
                                                   monkeypatch, django_capture_on_commit_callbacks):
    fake_provider.state.poll_result = PollResult(active=[alert("a1"), alert("a2")], complete=True)
    with django_capture_on_commit_callbacks(execute=True):
        _poll_job(tenant_a.tenant, integration)
    with as_tenant(tenant_a.tenant):
        received = Alert.objects.get(external_id="a2").last_seen
    # The provider says its list is from before a2 reached us: a2's absence proves nothing yet.
    fake_provider.state.poll_result = PollResult(active=[], complete=True,
                                                 as_of=received - dt.timedelta(seconds=1))
    with as_tenant(tenant_a.tenant):
        Alert.objects.filter(external_id="a1").update(last_seen=received - dt.timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        _poll_job(tenant_a.tenant, integration)
    with as_tenant(tenant_a.tenant):
        assert dict(Alert.objects.values_list("external_id", "state")) == {"a1": "resolved", "a2": "active"}
    # A stamp from a provider clock running ahead is capped at the moment its answer arrived.
    from alerts.services import pipeline

    seen: list[dt.datetime] = []
    real = pipeline.reconcile
    monkeypatch.setattr(pipeline, "reconcile",
                        lambda i, ids, *, as_of, covers=None: seen.append(as_of) or real(i, ids, as_of=as_of, covers=covers))
    fake_provider.state.poll_result = PollResult(active=[], complete=True,
                                                 as_of=timezone.now() + dt.timedelta(days=1))
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        job = _poll_job(tenant_a.tenant, integration)
    assert len(seen) == 1 and before <= seen[0] <= timezone.now()
    with as_tenant(tenant_a.tenant):
        job.refresh_from_db()
        assert job.summary["reconciled"]["resolved"] == 1
        assert Alert.objects.get(external_id="a2").state == "resolved"


def test_resolved_event_from_poll_goes_through_pipeline(integration, tenant_a, as_tenant, fake_provider,
                                                        django_capture_on_commit_callbacks):
    fake_provider.state.poll_result = PollResult(active=[alert("a1")], complete=False)
    with django_capture_on_commit_callbacks(execute=True):
        _poll_job(tenant_a.tenant, integration)
    fake_provider.state.poll_result = PollResult(active=[alert("a1", event=AlertEventKind.RESOLVED)], complete=False)
    with django_capture_on_commit_callbacks(execute=True):
        _poll_job(tenant_a.tenant, integration)
    with as_tenant(tenant_a.tenant):
        assert Alert.objects.get(external_id="a1").state == "resolved"


def test_poll_failure_recorded(integration, tenant_a, as_tenant, fake_provider, django_capture_on_commit_callbacks):
    fake_provider.state.poll_error = RateLimited("Too many requests.", retry_after=30)
    with django_capture_on_commit_callbacks(execute=True):
        job = _poll_job(tenant_a.tenant, integration)
    with as_tenant(tenant_a.tenant):
        job.refresh_from_db()
        row = Integration.objects.get(pk=integration.pk)
    assert job.state == JobState.FAILED and job.error == "The provider is rate limiting us: Too many requests. (retry after 30 s)"
    assert row.last_poll_ok is False and row.last_poll_error == job.error and row.poll_started_at is None
    assert row.status == IntegrationStatus.CONNECTED  # a rate limit is not a broken connection
    fake_provider.state.poll_error = AuthFailed("Key revoked.")
    with django_capture_on_commit_callbacks(execute=True):
        _poll_job(tenant_a.tenant, integration)
    with as_tenant(tenant_a.tenant):
        assert Integration.objects.get(pk=integration.pk).status == IntegrationStatus.ERROR


def test_dispatch_selects_due_connected_polling_integrations(integration, tenant_a, tenant_b, as_tenant,
                                                             fake_provider, django_capture_on_commit_callbacks):
    now = timezone.now()
    with as_tenant(tenant_b.tenant):  # not connected: never polled
        config.get_integration("fake", create=True)
    with as_tenant(tenant_a.tenant):  # generic does not poll
        config.update_integration(config.get_integration("generic", create=True))
    with django_capture_on_commit_callbacks(execute=True):
        started = polling.dispatch_due_polls(now)
    assert len(started) == 1 and fake_provider.state.calls["poll_alerts"] == 1
    with as_tenant(tenant_a.tenant):
        row = Integration.objects.get(pk=integration.pk)
        assert Job.objects.get(pk=started[0]).integration_id == integration.pk
    assert row.next_poll_at >= now + dt.timedelta(minutes=10)
    # Not due again until the interval passed.
    assert polling.dispatch_due_polls(now + dt.timedelta(minutes=1)) == []
    with django_capture_on_commit_callbacks(execute=True):
        assert len(polling.dispatch_due_polls(now + dt.timedelta(minutes=11))) == 1
    # Disabled polling is skipped.
    with as_tenant(tenant_a.tenant):
        config.update_integration(integration, poll_enabled=False)
    assert polling.dispatch_due_polls(now + dt.timedelta(hours=5)) == []


def test_beat_task_entry_point(integration, fake_provider, django_capture_on_commit_callbacks):
    from integrations.tasks import dispatch_due_polls

    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch_due_polls.apply().get() == 1
    assert fake_provider.state.calls["poll_alerts"] == 1


def test_stale_fence_is_taken_over(integration, tenant_a, as_tenant, fake_provider):
    with as_tenant(tenant_a.tenant):
        Integration.objects.filter(pk=integration.pk).update(poll_started_at=timezone.now() - dt.timedelta(minutes=5))
        assert polling.run_poll(integration)["skipped"] is True
        assert "poll_alerts" not in fake_provider.state.calls
        Integration.objects.filter(pk=integration.pk).update(poll_started_at=timezone.now() - dt.timedelta(hours=2))
        assert polling.run_poll(integration)["received"] == 0
        assert fake_provider.state.calls["poll_alerts"] == 1


def _in_thread(fn, errors):
    def run():
        try:
            fn()
        except BaseException as exc:  # surfaced by the test below
            errors.append(exc)
        finally:
            connection.close()

    t = threading.Thread(target=run)
    t.start()
    return t


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_at_once_start_one_poll(integration, fake_provider, monkeypatch):
    barrier = threading.Barrier(2, timeout=20)
    real_due = polling.due_integrations

    def due_then_wait(now):
        rows = real_due(now)
        barrier.wait()  # both dispatchers have read the same due row before either claims it
        return rows

    monkeypatch.setattr(polling, "due_integrations", due_then_wait)
    results: list[list[int]] = []
    errors: list[BaseException] = []
    threads = [_in_thread(lambda: results.append(polling.dispatch_due_polls()), errors) for _ in range(2)]
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert sorted(len(r) for r in results) == [0, 1]
    assert fake_provider.state.calls["poll_alerts"] == 1
    assert Job.objects.unscoped().filter(kind=jobs.POLL).count() == 1


@pytest.mark.django_db(transaction=True)
def test_manual_poll_while_one_runs_is_skipped(integration, tenant_a, fake_provider):
    fake_provider.state.poll_gate = threading.Event()
    errors: list[BaseException] = []
    outcomes: list[dict] = []

    def first():
        with tenant_context(tenant_a.tenant):
            outcomes.append(polling.run_poll(Integration.objects.get(pk=integration.pk)))

    t = _in_thread(first, errors)
    assert fake_provider.state.poll_entered.wait(20)
    try:
        with tenant_context(tenant_a.tenant):
            second = polling.run_poll(Integration.objects.get(pk=integration.pk))
            # The job path reports the skip as a successful no-op.
            job = Job.objects.create(integration=integration, kind=jobs.POLL)
            from integrations.tasks import run_job

            run_job.apply(kwargs={"tenant_id": tenant_a.tenant.pk, "job_id": job.pk})
            job.refresh_from_db()
    finally:
        fake_provider.state.poll_gate.set()
        t.join(30)
    assert not errors, errors
    assert second["skipped"] is True
    assert job.state == JobState.SUCCEEDED and job.summary["skipped"] is True
    assert fake_provider.state.calls["poll_alerts"] == 1 and outcomes[0]["received"] == 0
    assert Integration.objects.unscoped().get(pk=integration.pk).poll_started_at is None
