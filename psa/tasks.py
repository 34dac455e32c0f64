"""Celery task base: tasks take ``tenant_id`` explicitly and run inside that tenant. Also the queue
heartbeat (psa.queues) beat sends to every queue.

Usage::

    @shared_task(base=TenantTask, name="alerts.process_inbound_event", bind=True)
    def process_inbound_event(self, tenant_id: int, event_id: int): ...

Arguments are ids only, never payloads or secrets.
"""

from __future__ import annotations

from celery import Task, shared_task

from psa.queues import HEARTBEAT_TASK, record_heartbeat
from psa.tenancy import tenant_context


class TenantTask(Task):
    abstract = True
    acks_late = True
    reject_on_worker_lost = True

    def __call__(self, *args, **kwargs):
        tenant_id = kwargs.get("tenant_id")
        if tenant_id is None and args:
            tenant_id = args[0]
        if tenant_id is None:
            raise ValueError(f"{self.name} needs tenant_id")
        with tenant_context(int(tenant_id)):
            return super().__call__(*args, **kwargs)


@shared_task(name=HEARTBEAT_TASK, acks_late=False, ignore_result=True)
def queue_heartbeat(queue: str) -> None:
    """Beat sends one to each queue every minute; the worker that takes it proves the queue is consumed."""
    record_heartbeat(queue)
