"""Celery entry points of the incident router: ids in, the tenant set by TenantTask."""

from __future__ import annotations

from celery import shared_task

from integrations.errors import RateLimited, Unavailable
from psa.tasks import TenantTask

WRITE_BACK_RETRIES = 5


@shared_task(base=TenantTask, name="incidents.write_back", bind=True, acks_late=True,
             max_retries=WRITE_BACK_RETRIES)
def write_back(self, tenant_id: int, incident_id: int, ticket_id: int) -> str:
    """Resolve a closed ticket's incident in its provider; the provider being down or throttling us is
    retried with a backoff, and after the last try the ticket gets a note saying so."""
    from incidents.services.writeback import write_back as run

    final = self.request.retries >= self.max_retries
    try:
        return run(incident_id, ticket_id, final=final)
    except (Unavailable, RateLimited) as exc:
        raise self.retry(exc=exc, countdown=min(600, 30 * 2 ** self.request.retries)) from None


@shared_task(base=TenantTask, name="incidents.release_held", bind=True, acks_late=True)
def release_held(self, tenant_id: int, integration_id: int) -> dict:
    """Tickets for incidents that arrived while routing was incomplete (routing is now complete)."""
    from incidents.services.router import release_held as run
    from integrations.models import Integration

    integration = Integration.objects.filter(pk=integration_id).first()
    return run(integration) if integration is not None else {"released": 0, "held": 0}
