"""Thin Celery entry points of the alert pipeline (ids only; the work is in alerts.services).

Names starting ``alerts.`` run on the ``intake`` queue, ``notifications.`` on ``notifications``.
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from integrations.errors import RateLimited, Unavailable
from psa.tasks import TenantTask


@shared_task(
    base=TenantTask,
    name="alerts.process_inbound_event",
    bind=True,
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError, Unavailable, RateLimited),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=8,
)
def process_inbound_event(self, tenant_id: int, event_id: int):
    from alerts.services.processing import process_event

    result = process_event(event_id)
    return {"actions": result.get("actions", [])} if result else None


@shared_task(name="alerts.drain_inbound", acks_late=True)
def drain_inbound():
    """Cross-tenant: claim waiting inbound events in fair turns and process them (alerts.services.dispatch)."""
    from alerts.services.dispatch import drain

    return drain()


@shared_task(name="alerts.sweep_inbound_events")
def sweep_inbound_events():
    """Cross-tenant: re-enqueue events the broker never got (or a dead worker dropped)."""
    from alerts.services.events import sweep

    return sweep()


@shared_task(name="alerts.reevaluate_ended_windows")
def reevaluate_ended_windows():
    """Cross-tenant: suppressed alerts whose maintenance window ended go through the rules again."""
    from alerts.services.pipeline import reevaluate_ended_windows as run

    return run()


@shared_task(name="alerts.flush_occurrence_notes")
def flush_occurrence_notes():
    """Cross-tenant: the summary note of firings that were coalesced for a whole interval."""
    from alerts.services import occurrences, storm

    return {**occurrences.flush_due(), "storm_notes": storm.flush_due()}


@shared_task(name="alerts.close_stable_flapping")
def close_stable_flapping():
    """Cross-tenant: tickets of flapping conditions that have been stable (resolved) long enough close."""
    from alerts.services.flapping import close_stable

    return close_stable()


@shared_task(base=TenantTask, name="alerts.reset_alerts_for_ticket", bind=True, acks_late=True)
def reset_alerts_for_ticket(self, tenant_id: int, ticket_id: int):
    from alerts.services.lifecycle import reset_alerts_for_ticket as run

    return run(ticket_id)


@shared_task(base=TenantTask, name="notifications.alert_ticket_created", bind=True, acks_late=True)
def alert_ticket_created(self, tenant_id: int, ticket_id: int, rule_id: int):
    from alerts.services.notify import send_ticket_created

    return send_ticket_created(ticket_id, rule_id)
