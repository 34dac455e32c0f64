"""Celery entry points of the outbox (queue ``notifications``; ids only)."""

from __future__ import annotations

from celery import shared_task

from psa.tasks import TenantTask


@shared_task(base=TenantTask, name="outbox.deliver", bind=True, acks_late=True)
def deliver(self, tenant_id: int, effect_id: int):
    """Deliver one side effect when due (a message delivered twice finds nothing to claim)."""
    from outbox.services import deliver as run

    return run(effect_id)


@shared_task(name="outbox.sweep")
def sweep():
    """Cross-tenant (beat): publish side effects that are due and not in a worker's hands."""
    from outbox.services import sweep as run

    return run()
