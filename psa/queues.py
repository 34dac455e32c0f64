"""The Celery queues, and whether each has a worker consuming it.

Two signals, because a stored webhook answered 202 but never processed is silent otherwise:

- a heartbeat: beat sends ``psa.queue_heartbeat`` to every queue each minute and the worker that
  consumes it stamps "last consumed at" for that queue in the shared cache (Redis). A queue
  whose stamp is older than ``PSA_QUEUE_STALE_SECONDS`` has had no consumer (or beat is down);
- the database, which needs no beat: webhooks no worker has picked up yet (``accepted``, never
  attempted) waiting longer than ``PSA_INTAKE_WAIT_WARN_SECONDS`` mean nobody consumes ``intake``.

When tasks run in-process (embedded mode, no broker) there is nothing to consume: all is well.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.timesince import timesince

DEFAULT, INTAKE, SYNC, NOTIFICATIONS = "default", "intake", "sync", "notifications"
# Every queue a plain ``celery -A psa worker`` consumes (settings.CELERY_TASK_QUEUES is built from it).
QUEUES: tuple[str, ...] = (DEFAULT, INTAKE, SYNC, NOTIFICATIONS)
HEARTBEAT_TASK = "psa.queue_heartbeat"
HEARTBEAT_SECONDS = 60.0

_KEY = "psa:queue-heartbeat:{}"
_FIRST_CHECKED_KEY = "psa:queue-heartbeat:first-checked"
_KEEP = 7 * 24 * 3600  # stamps outlive any outage worth reporting


def stale_after() -> dt.timedelta:
    """No heartbeat for this long: nobody consumes the queue (three missed beats by default)."""
    return dt.timedelta(seconds=int(getattr(settings, "PSA_QUEUE_STALE_SECONDS", 180)))


def intake_wait_warn_after() -> dt.timedelta:
    return dt.timedelta(seconds=int(getattr(settings, "PSA_INTAKE_WAIT_WARN_SECONDS", 120)))


def beat_schedule() -> dict[str, dict[str, Any]]:
    """The beat entries: one heartbeat per queue, sent to that queue, every minute."""
    expires = int(HEARTBEAT_SECONDS) - 5  # a backlog of heartbeats is noise: drop the ones nobody took
    return {
        f"psa-queue-heartbeat-{queue}": {
            "task": HEARTBEAT_TASK,
            "schedule": HEARTBEAT_SECONDS,
            "args": (queue,),
            # "expires" for Celery's own scheduler, "expire_seconds" for django-celery-beat's.
            "options": {"queue": queue, "expires": expires, "expire_seconds": expires},
        }
        for queue in QUEUES
    }


def in_process() -> bool:
    """Tasks run eagerly in the calling process (embedded mode): no queue needs a worker."""
    from psa.celery import app

    return bool(app.conf.task_always_eager)


def record_heartbeat(queue: str, at: dt.datetime | None = None) -> None:
    cache.set(_KEY.format(queue), (at or timezone.now()).timestamp(), _KEEP)


def last_heartbeats() -> dict[str, dt.datetime | None]:
    stored = cache.get_many([_KEY.format(q) for q in QUEUES])
    out: dict[str, dt.datetime | None] = {}
    for queue in QUEUES:
        stamp = stored.get(_KEY.format(queue))
        out[queue] = dt.datetime.fromtimestamp(float(stamp), tz=dt.UTC) if stamp is not None else None
    return out


def _first_checked(now: dt.datetime) -> dt.datetime:
    """When this deployment first asked; a queue never heard from is given one grace period after it."""
    cache.add(_FIRST_CHECKED_KEY, now.timestamp(), _KEEP)
    stamp = cache.get(_FIRST_CHECKED_KEY)
    return dt.datetime.fromtimestamp(float(stamp), tz=dt.UTC) if stamp is not None else now


def intake_backlog(now: dt.datetime | None = None) -> dict[str, Any]:
    """The current tenant's webhooks no worker has picked up yet: {"count", "oldest"}.

    Only events never attempted count: one a worker is retrying (the provider is down) has a worker.
    """
    # Imported here: the pipeline's models depend on psa, never the reverse at import time.
    from django.db.models import Count, Min
    from django.db.models.functions import Coalesce

    from alerts.models import InboundEvent, InboundEventStatus

    row = (
        InboundEvent.objects.filter(status=InboundEventStatus.ACCEPTED, attempts=0, claimed_at__isnull=True)
        # A replay puts an old event back in the queue: it waits since the replay.
        .annotate(waiting_since=Coalesce("replay_requested_at", "received_at"))
        .aggregate(count=Count("id"), oldest=Min("waiting_since"))
    )
    return {"count": row["count"] or 0, "oldest": row["oldest"]}


def _ago(then: dt.datetime, now: dt.datetime) -> str:
    return timesince(then, now).split(",")[0]


def queue_health(now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """One row per queue: {"queue", "last_seen", "ok", "message"}; run in a tenant (intake's backlog)."""
    now = now or timezone.now()
    if in_process():
        return [
            {"queue": q, "last_seen": None, "ok": True, "message": "Tasks run in-process; no worker needed."}
            for q in QUEUES
        ]
    beats = last_heartbeats()
    first = _first_checked(now)
    stale = stale_after()
    rows = []
    for queue in QUEUES:
        seen = beats[queue]
        problems: list[str] = []
        if seen is not None and now - seen <= stale:
            message = f"A worker consumed it {_ago(seen, now)} ago."
        elif seen is None and now - first <= stale:
            message = "Waiting for the first heartbeat."
        else:
            since = f"for {_ago(seen, now)}" if seen else f"since checks began {_ago(first, now)} ago"
            problems.append(
                f"No worker has consumed the {queue} queue {since}. Start one with `celery -A psa worker` "
                f"(it consumes every queue), and make sure `celery -A psa beat` runs: it sends the "
                f"heartbeat this check relies on."
            )
            message = ""
        if queue == INTAKE:
            backlog = intake_backlog(now)
            if backlog["count"] and backlog["oldest"] and now - backlog["oldest"] > intake_wait_warn_after():
                problems.insert(
                    0,
                    f"{backlog['count']} alert{'s' if backlog['count'] != 1 else ''} "
                    f"{'are' if backlog['count'] != 1 else 'is'} waiting for a worker on the intake queue "
                    f"(oldest {_ago(backlog['oldest'], now)} ago): is a worker running?",
                )
        rows.append(
            {"queue": queue, "last_seen": seen, "ok": not problems, "message": " ".join(problems) or message}
        )
    return rows


def pipeline_health() -> dict[str, Any]:
    """What the RMM tab shows: every queue, and the unhealthy ones to warn about."""
    queues = queue_health()
    return {"queues": queues, "problems": [q for q in queues if not q["ok"]]}
