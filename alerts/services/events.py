"""The inbound event log: store once, wake the dispatcher after commit, sweep what was left behind.

Idempotency at the edge is the partial unique index ``(integration, delivery_id)``:
the insert ignores conflicts and only the inserting request enqueues processing.
A redelivery is still written down (status ``duplicate``, no delivery id,
``duplicate_of`` set) so the log shows every request that arrived.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from alerts.models import InboundEvent, InboundEventStatus
from alerts.services import dispatch
from alerts.services.sql import insert_returning_id
from psa.text import clean, clean_json

log = logging.getLogger(__name__)

def sweep_after() -> dt.timedelta:
    """Accepted events younger than this are left to their first delivery; older ones are swept."""
    return dt.timedelta(seconds=getattr(settings, "PSA_INBOUND_SWEEP_AFTER_SECONDS", 60))



def lease() -> dt.timedelta:
    """How long a claimed event belongs to its worker without a heartbeat (alerts.services.lease)."""
    from alerts.services.lease import lease as inbound_lease

    return inbound_lease()


def body_delivery_id(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


@dataclass
class StoredEvent:
    id: int
    duplicate_of: int | None = None

    @property
    def is_duplicate(self) -> bool:
        return self.duplicate_of is not None


def _row(integration, **values: Any) -> dict[str, Any]:
    now = timezone.now()
    row = {
        "tenant_id": integration.tenant_id,
        "integration_id": integration.pk,
        "provider": integration.provider,
        "received_at": now,
        "headers": {},
        "query": {},
        "result": {},
    }
    row.update(values)
    for key in ("error", "summary"):
        if key in row:
            row[key] = clean(row[key], 500 if key == "summary" else None)
    for key in ("headers", "query", "result"):
        row[key] = clean_json(row[key])
    return row


def store_failed(integration, *, body: bytes, error: str, summary: str = "", **request_meta: Any) -> int:
    """Keep a request we refused (unparseable, oversized) so the admin can see why."""
    now = timezone.now()
    return insert_returning_id(
        InboundEvent,
        _row(
            integration,
            status=InboundEventStatus.FAILED,
            delivery_id=None,
            body=bytes(body),
            error=error,
            summary=summary,
            processed_at=now,
            **request_meta,
        ),
    )


def store_accepted(
    integration,
    *,
    body: bytes,
    delivery_id: str | None,
    summary: str = "",
    source: str = "webhook",
    **request_meta: Any,
) -> StoredEvent:
    """Insert the event once per delivery id and enqueue it after commit.

    ``enqueued_at`` is written optimistically with the insert (saves a statement on the
    hot path) and cleared again if the broker refuses the message.
    """
    delivery_id = clean(delivery_id, 255) if delivery_id else body_delivery_id(body)
    now = timezone.now()
    values = _row(
        integration,
        status=InboundEventStatus.ACCEPTED,
        delivery_id=delivery_id,
        source=source,
        body=bytes(body),
        summary=summary,
        enqueued_at=now,
        **request_meta,
    )
    # One statement in autocommit (no atomic block: BEGIN/COMMIT and the savepoint machinery
    # cost as much as the insert): the row is committed when execute returns, so on_commit
    # publishes at once; inside a caller's transaction it still waits for that commit.
    event_id = insert_returning_id(
        InboundEvent,
        values,
        "ON CONFLICT (integration_id, delivery_id) WHERE delivery_id IS NOT NULL DO NOTHING",
    )
    if event_id is not None:
        # The committed row is the queue: a drain claims it (alerts.services.dispatch).
        transaction.on_commit(lambda: dispatch.wake(arrival=integration.pk))
        return StoredEvent(event_id)
    # Redelivery: the first row (committed, or its inserter waited on) is the event of record.
    original = (
        InboundEvent.objects.unscoped()
        .filter(integration_id=integration.pk, delivery_id=delivery_id)
        .values_list("pk", flat=True)
        .first()
    )
    dup_values = dict(
        values,
        status=InboundEventStatus.DUPLICATE,
        delivery_id=None,
        duplicate_of_id=original,
        enqueued_at=None,
        processed_at=now,
        summary=clean(f"Redelivery of event {original}" + (f": {summary}" if summary else ""), 500),
    )
    dup_id = insert_returning_id(InboundEvent, dup_values)
    return StoredEvent(dup_id, duplicate_of=original or 0)


def enqueue(tenant_id: int, event_id: int) -> bool:
    """Publish the per-event processing task (kept for callers that want one event processed on its
    own); a broker failure leaves the event for the sweeper."""
    from alerts.tasks import process_inbound_event

    try:
        process_inbound_event.apply_async(args=[tenant_id, event_id])
        return True
    except Exception as exc:  # kombu OperationalError, redis ConnectionError, ...: never fail the request
        log.warning(
            "inbound event %s not enqueued (%s); the sweeper will pick it up", event_id, type(exc).__name__
        )
        InboundEvent.objects.unscoped().filter(pk=event_id, status=InboundEventStatus.ACCEPTED).update(
            enqueued_at=None
        )
        return False


def sweep(now: dt.datetime | None = None) -> dict[str, int]:
    """Wake a drain when events wait longer than they should: never handed to a worker (the broker
    was down), a dead worker's expired claim, or an event whose retry backoff is over. The drain's
    claim takes them (FOR UPDATE SKIP LOCKED), so two sweepers never cause double processing."""
    found = dispatch.due_backlog(now)
    woke = dispatch.wake(force=True) if found else False
    if _minute_passed():  # the backlog watch compares sweeps a minute apart
        dispatch.watch_backlogs()
    if found:
        log.info("swept: %d inbound events waiting, drain %s", found, "woken" if woke else "not published")
    return {"found": found, "enqueued": found if woke else 0}


def _minute_passed() -> bool:
    from django.core.cache import cache

    try:
        return bool(cache.add("psa:intake:backlog-watch", 1, timeout=55))
    except Exception:  # noqa: BLE001 - no cache: no history to compare either
        return False


def claim(event_id: int) -> dt.datetime | None:
    """Take the event for processing: returns the claim stamp (the fence for the final write),
    or None when it is done, failed, or another worker holds a live lease."""
    now = timezone.now()
    taken = (
        InboundEvent.objects.filter(pk=event_id, status=InboundEventStatus.ACCEPTED)
        .filter(Q(claimed_at__isnull=True) | (Q(claimed_at__lt=now - lease())
                                              & (Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=now - lease()))))
        .update(claimed_at=now, heartbeat_at=None, attempts=F("attempts") + 1)
    )
    return now if taken else None


def request_replay(event: InboundEvent) -> bool:
    """Put an event back in the queue for another run (any status but duplicate)."""
    if event.status == InboundEventStatus.DUPLICATE:
        return False
    now = timezone.now()
    InboundEvent.objects.filter(pk=event.pk).update(
        status=InboundEventStatus.ACCEPTED,
        claimed_at=None,
        heartbeat_at=None,
        replay_requested_at=now,
        enqueued_at=now,
        attempts=0,
    )
    transaction.on_commit(dispatch.wake)
    return True
