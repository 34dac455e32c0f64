"""Thin Celery entry points: ids in, tenant set by TenantTask, work in integrations.services."""

from __future__ import annotations

from celery import shared_task

from psa.tasks import TenantTask

from .services import devices, jobs, orgs, polling


def _integration_work(fn):
    def work(job, reporter):
        if job.integration is None:
            raise ValueError("job has no integration")
        return fn(job.integration, job, reporter)

    return work


@shared_task(base=TenantTask, name="integrations.sync.organizations", bind=True)
def sync_organizations(self, tenant_id: int, job_id: int) -> None:
    jobs.run_job(job_id, _integration_work(orgs.sync_organizations))


@shared_task(base=TenantTask, name="integrations.sync.devices", bind=True)
def sync_devices(self, tenant_id: int, job_id: int) -> None:
    jobs.run_job(job_id, _integration_work(devices.sync_devices))


@shared_task(base=TenantTask, name="integrations.sync.poll", bind=True)
def poll_alerts(self, tenant_id: int, job_id: int) -> None:
    jobs.run_job(job_id, _integration_work(polling.run_poll))


@shared_task(name="integrations.dispatch_due_polls", acks_late=False)
def dispatch_due_polls() -> int:
    """Beat tick (every minute): cross-tenant by design, each job then runs inside its tenant."""
    return len(polling.dispatch_due_polls())
