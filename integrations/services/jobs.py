"""Long operations recorded in Job rows: start (deduplicated), run with progress, fail readably."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from integrations import registry
from integrations.base import JobKind
from integrations.errors import AuthFailed, ProviderError, ReconnectRequired
from integrations.models import Integration, IntegrationStatus, Job, JobState

from .errors import describe_error

log = logging.getLogger("integrations.jobs")

ORG_SYNC = "organizations.sync"
DEVICE_SYNC = "devices.sync"
POLL = "alerts.poll"

# The framework's own kinds; providers add theirs with ``Provider.job_kinds``. Every kind runs
# through the one Celery task ``integrations.sync.run`` (integrations.tasks).
FRAMEWORK_KINDS: tuple[JobKind, ...] = (
    JobKind(ORG_SYNC, "Organization discovery", "integrations.services.orgs.sync_organizations"),
    JobKind(DEVICE_SYNC, "Device sync", "integrations.services.devices.sync_devices", capability="device_sync",
            requires_connected=True),
    # A poll reads the provider's whole active set and reconciles it: it is also the backfill.
    JobKind(POLL, "Poll", "integrations.services.polling.run_poll", capability="polling", requires_connected=True),
)
RUN_TASK = "integrations.sync.run"

ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING)


class JobRefused(Exception):
    """A job that cannot start now; ``str(exc)`` tells the admin why (the API answers 400)."""


def label(kind: str) -> str:
    for k in FRAMEWORK_KINDS:
        if k.kind == kind:
            return k.label
    for cls in registry.all_providers():
        for k in cls.job_kinds:
            if k.kind == kind:
                return k.label
    return kind


def refusal(integration: Integration, kind: str) -> str | None:
    """Why ``kind`` cannot start for this integration now (None: it can). The API and the pages
    both go through here, so they never disagree."""
    from .config import provider_class, takes_credentials

    cls = provider_class(integration.provider)
    job_kind = registry.job_kind(cls.slug, kind)
    if job_kind is None:
        return f"{cls.name} has no job {kind!r}."
    if job_kind.capability and not getattr(cls.capabilities, job_kind.capability):
        return f"{cls.name} does not support {job_kind.label.lower()}."
    if integration.pk is None:
        return f"{cls.name} is not set up yet: save its connection first."
    if takes_credentials(cls) and not integration.credentials_ciphertext:
        return f"Connect {cls.name} first (enter its credentials)."
    if job_kind.requires_connected and integration.status != IntegrationStatus.CONNECTED:
        return f"{cls.name} is not connected; test the connection first."
    return cls(integration).refuse_job(job_kind)


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
    """Create a Job and enqueue its task after commit; an active job of the same kind is returned instead.

    Raises JobRefused when the job cannot run now (see ``refusal``)."""
    why = refusal(integration, kind)
    if why:
        raise JobRefused(why)
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
        app.tasks[RUN_TASK].apply_async(kwargs={"tenant_id": job.tenant_id, "job_id": job.pk})
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


def run(job_id: int) -> Job | None:
    """Run a job by its kind (the Celery task ``integrations.sync.run``, inside the job's tenant)."""
    job = Job.objects.select_related("integration").filter(pk=job_id).first()
    if job is None or job.integration is None:
        log.warning("job %s vanished (or lost its integration) before it ran", job_id)
        return None
    job_kind = registry.job_kind(job.integration.provider, job.kind)
    if job_kind is None:
        Job.objects.filter(pk=job.pk, state__in=ACTIVE_STATES).update(
            state=JobState.FAILED, finished_at=timezone.now(), error=f"Unknown job kind {job.kind!r}.")
        return None
    fn = job_kind.resolve()
    return run_job(job_id, lambda j, reporter: fn(j.integration, j, reporter))


def run_job(job_id: int, work: Work) -> Job | None:
    """Run ``work`` for a job with state, progress and a readable failure."""
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
        if isinstance(exc, (AuthFailed, ReconnectRequired)) and job.integration is not None:
            # Error (polls and jobs stop until someone reconnects), and the admins hear of it once.
            from .attention import access_lost

            access_lost(job.integration, message)
    else:
        Job.objects.filter(pk=job.pk).update(
            state=JobState.SUCCEEDED, progress=100, summary=summary, finished_at=timezone.now(),
            progress_detail={"processed": reporter.processed, "total": reporter.total,
                             "at": timezone.now().isoformat()},
        )
    job.refresh_from_db()
    return job
