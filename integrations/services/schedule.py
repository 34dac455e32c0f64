"""Scheduled device syncs: every connected device provider is synced again when its last device sync
is older than ``PSA_DEVICE_SYNC_HOURS`` (default 6; 0 turns the schedule off), so an organization
mapped later, a renamed device or a retired one shows up without anyone pressing "Run device sync".
Inventory jobs a provider declares (e.g. NinjaOne's) follow the same schedule.

One beat tick (every 15 minutes) looks at the newest job of each kind per integration; start_job
refuses a second active job of a kind, and jobs.refusal() its preconditions (connected, capability),
so a tick never doubles a sync or starts one that could not run.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from integrations import registry
from integrations.models import Integration, IntegrationStatus, Job
from psa.tenancy import tenant_context

from .jobs import DEVICE_SYNC, JobRefused, start_job

log = logging.getLogger("integrations.schedule")


def every() -> dt.timedelta | None:
    hours = float(getattr(settings, "PSA_DEVICE_SYNC_HOURS", 6))
    return dt.timedelta(hours=hours) if hours > 0 else None


def scheduled_kinds(cls) -> list[str]:
    """Device sync, plus the provider's own inventory-like kinds (declared with capability
    device_sync, software or patches)."""
    kinds = [DEVICE_SYNC] if cls.capabilities.device_sync else []
    kinds += [k.kind for k in cls.job_kinds if k.capability in ("device_sync", "software", "patches")]
    return kinds


def dispatch_due_device_syncs(now: dt.datetime | None = None) -> list[int]:
    """Start the scheduled syncs that are due, across tenants; returns the ids of the jobs started."""
    period = every()
    if period is None:
        return []
    now = now or timezone.now()
    slugs = [cls.slug for cls in registry.all_providers() if scheduled_kinds(cls)]
    started: list[int] = []
    rows = (Integration.objects.unscoped()
            .filter(provider__in=slugs, status=IntegrationStatus.CONNECTED, enabled=True)
            .values_list("pk", "tenant_id", "provider"))
    for pk, tenant_id, slug in rows:
        kinds = scheduled_kinds(registry.get_provider_class(slug))
        with tenant_context(tenant_id):
            last = dict(Job.objects.filter(integration_id=pk, kind__in=kinds)
                        .values_list("kind").annotate(at=Max("created_at")).values_list("kind", "at"))
            integration = None
            for kind in kinds:
                if last.get(kind) and now - last[kind] < period:
                    continue
                integration = integration or Integration.objects.filter(pk=pk).first()
                try:
                    started.append(start_job(integration, kind).pk)
                except JobRefused as exc:
                    log.info("scheduled %s of integration %s not started: %s", kind, pk, exc)
                except Exception:  # one tenant's failure must not stop the others' syncs
                    log.exception("could not start a scheduled %s for integration %s", kind, pk)
    return started
