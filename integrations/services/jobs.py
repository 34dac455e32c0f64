"""Long operations recorded in Job rows: start (deduplicated), run with progress, fail readably."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from integrations.errors import AuthFailed, ProviderError, ReconnectRequired
from integrations.models import Integration, IntegrationStatus, Job, JobState

from .errors import describe_error

log = logging.getLogger("integrations.jobs")

ORG_SYNC = "organizations.sync"
DEVICE_SYNC = "devices.sync"
POLL = "alerts.poll"

# kind -> Celery task name; each task takes (tenant_id, job_id).
JOB_TASKS: dict[str, str] = {
    ORG_SYNC: "integrations.sync.organizations",
    DEVICE_SYNC: "integrations.sync.devices",
    POLL: "integrations.sync.poll",
}

ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING)


def stale_after() -> dt.timedelta:
    """A queued/running job with no heartbeat for this long is taken as abandoned (worker died)."""
    return dt.timedelta(seconds=int(getattr(settings, "PSA_JOB_STALE_SECONDS", 3600)))


def _last_heartbeat(job: Job) -> dt.datetime:
    at = (job.progress_detail or {}).get("at")
    if at:
        try:
            return dt.datetime.fromisoformat(at)
        except ValueError:
            pass
    return job.started_at or job.created_at


def is_stale(job: Job, now: dt.datetime | None = None) -> bool:
    return (now or timezone.now()) - _last_heartbeat(job) > stale_after()


def start_job(integration: Integration, kind: str, created_by=None) -> Job:
    """Create a Job and enqueue its task after commit; an active job of the same kind is returned instead."""
    if kind not in JOB_TASKS:
        raise ValueError(f"unknown job kind {kind!r}")
    now = timezone.now()
    with transaction.atomic():
        # The integration row lock serializes concurrent "start" clicks for this integration.
        Integration.objects.select_for_update().filter(pk=integration.pk).first()
        for active in Job.objects.filter(integration=integration, kind=kind, state__in=ACTIVE_STATES):
            if not is_stale(active, now):
                return active
            Job.objects.filter(pk=active.pk).update(
                state=JobState.FAILED, finished_at=now,
                error="Abandoned: no progress for too long (the worker probably stopped). Started again.",
            )
        job = Job.objects.create(
            integration=integration, kind=kind, created_by=created_by if getattr(created_by, "pk", None) else None
        )
        transaction.on_commit(lambda: _enqueue(job))
    return job


def _enqueue(job: Job) -> None:
    import integrations.tasks  # noqa: F401  (registers the task names)
    from psa.celery import app

    try:
        app.tasks[JOB_TASKS[job.kind]].apply_async(kwargs={"tenant_id": job.tenant_id, "job_id": job.pk})
    except Exception as exc:  # broker down: say so on the job instead of failing the request
        log.warning("could not enqueue job %s (%s): %s", job.pk, job.kind, type(exc).__name__)
        Job.objects.unscoped().filter(pk=job.pk, state=JobState.QUEUED).update(
            state=JobState.FAILED, finished_at=timezone.now(),
            error="The job could not be queued (task broker unavailable); try again.",
        )


class ProgressReporter:
    """Writes progress to the Job at most every ``every`` items (one UPDATE each time)."""

    def __init__(self, job: Job, every: int = 250, total: int | None = None):
        self.job = job
        self.every = max(1, every)
        self.total = total
        self.processed = 0
        self._written_at = 0
        self.writes = 0

    def set_total(self, total: int | None) -> None:
        self.total = total
        self.flush()

    def advance(self, n: int = 1) -> None:
        self.processed += n
        if self.processed - self._written_at >= self.every:
            self.flush()

    def percent(self) -> int:
        if not self.total:
            return 0
        # 100 is reserved for "finished": a job is done when its state says so.
        return max(0, min(99, self.processed * 100 // self.total))

    def flush(self) -> None:
        self._written_at = self.processed
        self.writes += 1
        detail = {"processed": self.processed, "total": self.total, "at": timezone.now().isoformat()}
        Job.objects.filter(pk=self.job.pk).update(progress=self.percent(), progress_detail=detail)


Work = Callable[[Job, ProgressReporter], dict[str, Any] | None]


def run_job(job_id: int, work: Work) -> Job | None:
    """Run ``work`` for a job (called by the Celery task, inside the job's tenant)."""
    job = Job.objects.select_related("integration").filter(pk=job_id).first()
    if job is None:
        log.warning("job %s vanished before it ran", job_id)
        return None
    if job.state not in ACTIVE_STATES:  # a redelivered task for a finished job
        return job
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(
        state=JobState.RUNNING, started_at=now, error="", progress_detail={"at": now.isoformat()}
    )
    job.state, job.started_at = JobState.RUNNING, now
    reporter = ProgressReporter(job)
    try:
        summary = work(job, reporter) or {}
    except Exception as exc:
        message = describe_error(exc)
        if isinstance(exc, ProviderError):
            log.info("job %s (%s) failed: %s", job.pk, job.kind, message)
        else:
            log.exception("job %s (%s) crashed", job.pk, job.kind)
        Job.objects.filter(pk=job.pk).update(state=JobState.FAILED, error=message, finished_at=timezone.now())
        if isinstance(exc, (AuthFailed, ReconnectRequired)) and job.integration_id:
            Integration.objects.filter(pk=job.integration_id).update(status=IntegrationStatus.ERROR, last_error=message)
    else:
        Job.objects.filter(pk=job.pk).update(
            state=JobState.SUCCEEDED, progress=100, summary=summary, finished_at=timezone.now(),
            progress_detail={"processed": reporter.processed, "total": reporter.total,
                             "at": timezone.now().isoformat()},
        )
    job.refresh_from_db()
    return job
