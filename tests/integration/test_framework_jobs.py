"""Jobs: start (deduplicated per kind), run with progress, readable failures, broker outage."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from integrations.errors import AuthFailed, Unavailable
from integrations.models import Integration, IntegrationStatus, Job, JobState
from integrations.records import ExternalOrg
from integrations.services import config, jobs

API_KEY = "fk-0123456789-SECRETVALUE"


@pytest.fixture
def integration(tenant_a, fake_provider, as_tenant):
    with as_tenant(tenant_a.tenant):
        i = config.get_integration("fake", create=True)
        config.update_integration(i, credentials={"api_key": API_KEY})
    return i


def test_job_runs_after_commit_and_records_summary(integration, tenant_a, as_tenant, fake_provider,
                                                   django_capture_on_commit_callbacks):
    fake_provider.state.orgs = [ExternalOrg(f"o{i}", f"Org {i}") for i in range(3)]
    with as_tenant(tenant_a.tenant):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            job = jobs.start_job(integration, jobs.ORG_SYNC, created_by=tenant_a.user)
        assert job.state == JobState.QUEUED and len(callbacks) == 1
        assert "list_organizations" not in fake_provider.state.calls  # nothing runs before the commit
        callbacks[0]()
        job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED and job.progress == 100 and job.created_by == tenant_a.user
    assert job.summary["created"] == 3 and job.started_at and job.finished_at and job.error == ""


def test_same_kind_active_job_is_returned_not_duplicated(integration, tenant_a, as_tenant,
                                                         django_capture_on_commit_callbacks):
    with as_tenant(tenant_a.tenant):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            first = jobs.start_job(integration, jobs.DEVICE_SYNC)
            again = jobs.start_job(integration, jobs.DEVICE_SYNC)
            other_kind = jobs.start_job(integration, jobs.ORG_SYNC)
        assert again.pk == first.pk and other_kind.pk != first.pk
        assert len(callbacks) == 2  # one task per distinct job
        # A running job whose worker died (no heartbeat for too long) is replaced.
        Job.objects.filter(pk=first.pk).update(state=JobState.RUNNING, started_at=timezone.now() - dt.timedelta(hours=3),
                                               progress_detail={})
        with django_capture_on_commit_callbacks(execute=False):
            replacement = jobs.start_job(integration, jobs.DEVICE_SYNC)
        assert replacement.pk != first.pk
        first.refresh_from_db()
        assert first.state == JobState.FAILED and "Abandoned" in first.error
        with pytest.raises(jobs.JobRefused, match="no job 'nonsense'"):
            jobs.start_job(integration, "nonsense")


def test_failure_is_readable_and_secret_free(integration, tenant_a, as_tenant, fake_provider,
                                             django_capture_on_commit_callbacks):
    fake_provider.state.orgs_error = Unavailable("Connection refused by rmm.example.com.")
    with as_tenant(tenant_a.tenant):
        with django_capture_on_commit_callbacks(execute=True):
            job = jobs.start_job(integration, jobs.ORG_SYNC)
        job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.error == "The provider is unreachable or unavailable: Connection refused by rmm.example.com."
    assert API_KEY not in job.error and job.finished_at


def test_unexpected_crash_names_the_type_only(integration, tenant_a, as_tenant, fake_provider,
                                              django_capture_on_commit_callbacks):
    fake_provider.state.orgs_error = RuntimeError(f"boom with {API_KEY}")
    with as_tenant(tenant_a.tenant):
        with django_capture_on_commit_callbacks(execute=True):
            job = jobs.start_job(integration, jobs.ORG_SYNC)
        job.refresh_from_db()
    assert job.state == JobState.FAILED and "RuntimeError" in job.error and API_KEY not in job.error


def test_auth_failure_in_a_job_flags_the_integration(integration, tenant_a, as_tenant, fake_provider,
                                                     django_capture_on_commit_callbacks):
    fake_provider.state.orgs_error = AuthFailed("API key revoked.")
    with as_tenant(tenant_a.tenant):
        with django_capture_on_commit_callbacks(execute=True):
            jobs.start_job(integration, jobs.ORG_SYNC)
        row = Integration.objects.get(pk=integration.pk)
    assert row.status == IntegrationStatus.ERROR and "API key revoked" in row.last_error


def test_finished_job_is_not_rerun_by_a_redelivered_task(integration, tenant_a, as_tenant, fake_provider):
    with as_tenant(tenant_a.tenant):
        job = Job.objects.create(integration=integration, kind=jobs.ORG_SYNC, state=JobState.SUCCEEDED)
        from integrations.tasks import run_job

        run_job.apply(kwargs={"tenant_id": tenant_a.tenant.pk, "job_id": job.pk})
    assert "list_organizations" not in fake_provider.state.calls


def test_progress_written_at_most_every_n_items(integration, tenant_a, as_tenant):
    with as_tenant(tenant_a.tenant):
        job = Job.objects.create(integration=integration, kind=jobs.DEVICE_SYNC)
        reporter = jobs.ProgressReporter(job, every=100, total=1000)
        for i in range(1, 551):
            reporter.advance()
            if i == 299:
                job.refresh_from_db()
                assert job.progress == 20 and job.progress_detail["processed"] == 200
        assert reporter.writes == 5
        job.refresh_from_db()
        assert job.progress == 50 and job.progress_detail["processed"] == 500
        reporter.advance(10_000)
        job.refresh_from_db()
        assert job.progress == 99  # 100 only when the job state says finished


def test_broker_down_marks_job_failed_instead_of_erroring(integration, tenant_a, as_tenant, monkeypatch,
                                                          django_capture_on_commit_callbacks):
    from integrations import tasks

    def refuse(*a, **kw):
        raise ConnectionError("redis down")

    monkeypatch.setattr(tasks.run_job, "apply_async", refuse)
    with as_tenant(tenant_a.tenant):
        with django_capture_on_commit_callbacks(execute=True):
            job = jobs.start_job(integration, jobs.DEVICE_SYNC)
        job.refresh_from_db()
    assert job.state == JobState.FAILED and "could not be queued" in job.error
