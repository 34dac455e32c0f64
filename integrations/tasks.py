"""Thin Celery entry points: ids in, tenant set by TenantTask, work in integrations.services."""

from __future__ import annotations

from celery import shared_task

from psa.tasks import TenantTask

from .services import jobs, polling


@shared_task(base=TenantTask, name=jobs.RUN_TASK, bind=True)
def run_job(self, tenant_id: int, job_id: int) -> None:
    """Every job kind (the framework's and the providers'), dispatched by the job's kind."""
    jobs.run(job_id)


@shared_task(name="integrations.dispatch_due_polls", acks_late=False)
def dispatch_due_polls() -> int:
    """Beat tick (every minute): cross-tenant by design, each job then runs inside its tenant."""
    return len(polling.dispatch_due_polls())


@shared_task(name="integrations.dispatch_due_device_syncs", acks_late=False)
def dispatch_due_device_syncs() -> int:
    """Beat tick (every 15 minutes): device syncs older than PSA_DEVICE_SYNC_HOURS run again."""
    from .services.schedule import dispatch_due_device_syncs as dispatch

    return len(dispatch())


@shared_task(name="integrations.check_quiet_providers", acks_late=False)
def check_quiet_providers() -> dict:
    """Beat tick: raise or clear each integration's quiet-provider alarm (admins notified once per alarm)."""
    from .services.health import check_all_quiet

    return check_all_quiet()
