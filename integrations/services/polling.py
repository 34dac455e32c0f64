"""Polling scheduler: one beat tick dispatches due integrations; a fence keeps one poll per integration.

Two guards, both conditional UPDATEs on the Integration row (no in-process locks):
- dispatch: moving ``next_poll_at`` forward from the value that was read claims this due slot,
  so two beat ticks (or two beat processes) start one job;
- run: ``poll_started_at`` is set only when it is empty or older than the stale timeout, so a
  manual "poll now" and a scheduled poll never run at the same time, and a poll whose worker
  died does not block polling forever.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from integrations import registry, sinks
from integrations.errors import AuthFailed, ReconnectRequired
from integrations.models import Integration, IntegrationStatus, Job
from integrations.records import NormalizedAlert
from psa.tenancy import tenant_context

from . import health
from .config import clamp_interval
from .errors import describe_error
from .jobs import POLL, JobRefused, ProgressReporter, start_job

log = logging.getLogger("integrations.polling")


def poll_stale_after() -> dt.timedelta:
    return dt.timedelta(seconds=int(getattr(settings, "PSA_POLL_STALE_SECONDS", 1800)))


def polling_providers() -> list[str]:
    return [cls.slug for cls in registry.all_providers() if cls.capabilities.polling]


def interval_for(integration: Integration) -> dt.timedelta:
    cls = registry.get_provider_class(integration.provider)
    return dt.timedelta(minutes=clamp_interval(cls, integration.poll_interval_minutes or cls.default_poll_interval_minutes))


def due_integrations(now: dt.datetime) -> list[tuple[int, int, dt.datetime | None]]:
    """(id, tenant_id, next_poll_at) of connected integrations due for a poll, across tenants."""
    return list(
        Integration.objects.unscoped()
        .filter(provider__in=polling_providers(), status=IntegrationStatus.CONNECTED, enabled=True, poll_enabled=True)
        .filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now))
        .order_by("next_poll_at", "id")
        .values_list("pk", "tenant_id", "next_poll_at")
    )


def dispatch_due_polls(now: dt.datetime | None = None) -> list[int]:
    """Start a poll job for every due integration; returns the ids of the jobs started."""
    now = now or timezone.now()
    started: list[int] = []
    for pk, tenant_id, next_poll_at in due_integrations(now):
        with tenant_context(tenant_id):
            integration = Integration.objects.filter(pk=pk).first()
            if integration is None:
                continue
            slot = Integration.objects.filter(pk=pk)
            slot = slot.filter(next_poll_at=next_poll_at) if next_poll_at else slot.filter(next_poll_at__isnull=True)
            if not slot.update(next_poll_at=now + interval_for(integration)):
                continue  # another dispatcher took this slot
            try:
                started.append(start_job(integration, POLL).pk)
            except JobRefused as exc:  # e.g. polling paused until the provider's setup is complete
                log.info("poll of integration %s not started: %s", pk, exc)
            except Exception:  # one tenant's failure must not stop the others' polls
                log.exception("could not start a poll for integration %s", pk)
    return started


def claim_poll(integration: Integration, now: dt.datetime | None = None) -> dt.datetime | None:
    """Set the poll fence; returns its token (the start time) or None when another poll holds it."""
    now = now or timezone.now()
    claimed = (
        Integration.objects.filter(pk=integration.pk)
        .filter(Q(poll_started_at__isnull=True) | Q(poll_started_at__lt=now - poll_stale_after()))
        .update(poll_started_at=now)
    )
    return now if claimed else None


def release_poll(integration: Integration, token: dt.datetime) -> None:
    # Only our own fence: a stale-timeout takeover by another poll is left alone.
    Integration.objects.filter(pk=integration.pk, poll_started_at=token).update(poll_started_at=None)


def run_poll(integration: Integration, job: Job | None = None, reporter: ProgressReporter | None = None) -> dict[str, Any]:
    """Poll the provider once and hand every record to its sink (alerts to the shared pipeline).

    ``result.active`` may be a list or a stream; the provider's new ``cursor`` (a watermark) is stored
    only after a pass in which every record was handled."""
    from alerts.services.pipeline import reconcile  # lazy: alerts depends on us, not back

    token = claim_poll(integration)
    if token is None:
        return {"skipped": True, "reason": "Another poll of this integration is running."}

    provider = registry.get_provider(integration)
    received = ingested = failed = unannounced = 0
    reconciled: Any = None
    try:
        # Reconcile judges "gone" against this moment: alerts that reached us later may postdate the snapshot.
        requested_at = timezone.now()
        result = provider.poll_alerts(integration.poll_cursor or None)
        answered_at = timezone.now()
        if reporter and isinstance(result.active, list):
            reporter.set_total(len(result.active))
        alert_ids: set[str] = set()
        for record in result.active:
            received += 1
            if isinstance(record, NormalizedAlert):
                alert_ids.add(record.external_id)
            try:
                outcome = sinks.deliver(integration, record, source="poll")
                ingested += 1
                # New to us though old enough for its webhook to have come: the quiet alarm counts these.
                unannounced += health.unannounced(record, outcome, answered_at)
            except Exception:  # one bad record must not drop the rest of the poll
                failed += 1
                log.exception("poll of integration %s: %s %s could not be handled", integration.pk,
                              type(record).__name__, getattr(record, "external_id", "?"))
            if reporter:
                reporter.advance()
        if result.complete:
            # A provider's own snapshot stamp wins; a skewed provider clock cannot put it after its answer.
            as_of = min(result.as_of, answered_at) if result.as_of else requested_at
            reconciled = reconcile(integration, alert_ids, as_of=as_of, covers=result.covers)
        error = f"{failed} of {received} records could not be processed." if failed else ""
        # A watermark moves only past records that were all handled: a failed one is read again next time.
        # A provider whose watermark is known only once its stream ran out gives a callable.
        cursor = result.cursor() if callable(result.cursor) else result.cursor
        _record(integration, ok=not failed, error=error, cursor=None if failed else cursor)
    except Exception as exc:
        _record(integration, ok=False, error=describe_error(exc), cursor=None)
        if isinstance(exc, (AuthFailed, ReconnectRequired)):
            from .attention import access_lost

            access_lost(integration, describe_error(exc))
        raise
    finally:
        release_poll(integration, token)
        provider.close()
    summary: dict[str, Any] = {"received": received, "ingested": ingested, "failed": failed,
                               "complete": bool(result.complete), "unannounced": unannounced}
    if reconciled is not None:
        summary["reconciled"] = reconciled
    return summary


def _record(integration: Integration, *, ok: bool, error: str, cursor: str | None) -> None:
    now = timezone.now()
    changes: dict[str, Any] = {"last_poll_at": now, "last_poll_ok": ok, "last_poll_error": error,
                               "next_poll_at": now + interval_for(integration)}
    if cursor is not None:
        changes["poll_cursor"] = cursor
    Integration.objects.filter(pk=integration.pk).update(**changes)
    for k, v in changes.items():
        setattr(integration, k, v)
