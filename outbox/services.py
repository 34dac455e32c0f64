"""Writing, delivering and retrying side effects.

- ``enqueue`` inserts the row inside the caller's transaction (so it exists exactly when its cause
  does) and publishes a delivery after commit. A second enqueue for the same cause changes nothing.
- ``deliver`` claims a due row with a conditional UPDATE (a lease: a dead worker's claim expires),
  performs the handler's call outside any transaction, then writes the outcome in one transaction
  fenced on the claim, with the handler's ``record`` (notes, mirrors): a row is finished once.
- Failures are retried with exponential backoff and jitter, never sooner than a provider's Retry-After,
  until ``give_up_at`` (created + PSA_OUTBOX_GIVE_UP_SECONDS); then the row is failed with the reason.
- ``sweep`` (beat) publishes every due row again: a broker outage, a lost message or a killed worker
  costs a delay, never the effect.

How close to once: a provider call (reset, write-back) is at least once and idempotent in the provider
(an already reset alert is not an error). An in-app notification is exactly once (written in the same
transaction as the row's ``done``). An email is at most once: a worker that dies between the mail
server's answer and the ``done`` leaves the row "in doubt", which is failed as "may have been sent"
rather than sent again; a retry by a person sends it with the same Message-ID, which mail clients
use to drop a duplicate.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from outbox.models import EffectState, SideEffect
from outbox.registry import Permanent, Skip, handler
from psa.tenancy import get_current_tenant_id, tenant_context
from psa.text import clean

log = logging.getLogger(__name__)

# A task published for a retry may run a moment before the row's due time.
EARLY = dt.timedelta(seconds=2)


def _seconds(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def lease() -> dt.timedelta:
    """How long a claimed row belongs to its worker (longer than any one provider call with its retries)."""
    return dt.timedelta(seconds=_seconds("PSA_OUTBOX_LEASE_SECONDS", 120))


def give_up_after() -> dt.timedelta:
    return dt.timedelta(seconds=_seconds("PSA_OUTBOX_GIVE_UP_SECONDS", 6 * 3600))


def backoff(attempts: int, retry_after: float | None = None) -> dt.timedelta:
    """Exponential (base * 2^(n-1), capped) with "equal jitter" (half fixed, half random), and never
    sooner than the provider's Retry-After."""
    base = _seconds("PSA_OUTBOX_RETRY_BASE_SECONDS", 10)
    cap = _seconds("PSA_OUTBOX_RETRY_MAX_SECONDS", 600)
    ceiling = min(cap, base * 2 ** max(0, attempts - 1))
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)
    if retry_after:
        delay = max(delay, float(retry_after))
    return dt.timedelta(seconds=delay)


# -- writing --------------------------------------------------------------------------------------
def enqueue(kind: str, key: str, *, label: str = "", payload: dict | None = None, ticket_id: int | None = None,
            alert_id: int | None = None, integration_id: int | None = None, tenant_id: int | None = None,
            now: dt.datetime | None = None) -> int | None:
    """Write one side effect in the caller's transaction; its delivery is published after commit.
    Returns the new row's id, or None when this cause already has its row."""
    from alerts.services.sql import insert_returning_id

    handler(kind)  # an unknown kind is a programming error: fail before anything is written
    now = now or timezone.now()
    tenant_id = tenant_id or get_current_tenant_id()
    pk = insert_returning_id(SideEffect, {
        "tenant_id": tenant_id, "kind": kind, "key": key[:255], "label": clean(label, 200),
        "state": EffectState.PENDING, "attempts": 0, "last_error": "", "payload": payload or {},
        "ticket_id": ticket_id, "alert_id": alert_id, "integration_id": integration_id,
        "created_at": now, "next_attempt_at": now, "give_up_at": now + give_up_after(),
        "claimed_at": None, "in_doubt_since": None, "done_at": None,
    }, "ON CONFLICT (tenant_id, kind, key) DO NOTHING")
    if pk is not None:
        transaction.on_commit(lambda: publish(tenant_id, pk))
    return pk


def publish(tenant_id: int, effect_id: int, countdown: float | None = None) -> bool:
    """Hand the row to a worker; a broker outage is logged and left to the sweeper."""
    from outbox.tasks import deliver as deliver_task

    try:
        deliver_task.apply_async(args=[tenant_id, effect_id], countdown=countdown)
        return True
    except Exception as exc:  # noqa: BLE001 - the row is the queue: the sweeper publishes it again
        log.warning("side effect %s not published (%s); the sweeper will", effect_id, type(exc).__name__)
        return False


# -- delivering -----------------------------------------------------------------------------------
def _claim(effect_id: int, now: dt.datetime) -> SideEffect | None:
    """Take a due row (pending, due, no live claim); the claim stamp is the fence of the final write."""
    taken = (
        SideEffect.objects.filter(pk=effect_id, state=EffectState.PENDING, next_attempt_at__lte=now + EARLY)
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - lease()))
        .update(claimed_at=now, attempts=F("attempts") + 1)
    )
    if not taken:
        return None
    return SideEffect.objects.select_related("integration").get(pk=effect_id)


def _finish(effect: SideEffect, fence: dt.datetime, state: str, detail: str, **changes: Any) -> bool:
    """The outcome and the handler's record in one transaction, only while the claim is still ours."""
    h = handler(effect.kind)
    now = timezone.now()
    values = {"state": state, "last_error": clean(detail, 2000) if state != EffectState.DONE else "",
              "claimed_at": None, "in_doubt_since": None, **changes}
    if state in (EffectState.DONE, EffectState.SKIPPED, EffectState.FAILED):
        values["done_at"] = now
    with transaction.atomic():
        if not SideEffect.objects.filter(pk=effect.pk, state=EffectState.PENDING, claimed_at=fence).update(**values):
            return False  # another worker took over (our lease expired): its outcome stands
        if h.record is not None:
            for name, value in values.items():
                setattr(effect, name, value)
            h.record(effect, state, detail)
    return True


def deliver(effect_id: int) -> str | None:
    """Deliver one side effect if it is due; returns the state it reached (None: not ours to deliver)."""
    now = timezone.now()
    effect = _claim(effect_id, now)
    if effect is None:
        return None
    fence = effect.claimed_at
    h = handler(effect.kind)
    if h.at_most_once and effect.in_doubt_since is not None:
        detail = ("The worker stopped while this was being sent, so it may have gone out; it is not sent again "
                  "by itself. Retry to send it again.")
        _finish(effect, fence, EffectState.FAILED, detail)
        return EffectState.FAILED
    if h.at_most_once:
        SideEffect.objects.filter(pk=effect.pk, claimed_at=fence).update(in_doubt_since=now)
    try:
        detail = h.perform(effect) or ""
    except Skip as exc:
        _finish(effect, fence, EffectState.SKIPPED, str(exc) or "Nothing to do.")
        return EffectState.SKIPPED
    except Permanent as exc:
        _finish(effect, fence, EffectState.FAILED, str(exc) or type(exc).__name__)
        return EffectState.FAILED
    except Exception as exc:  # noqa: BLE001 - anything else may pass: retried until give_up_at
        return _retry_later(effect, fence, exc)
    _finish(effect, fence, EffectState.DONE, detail)
    return EffectState.DONE


def _describe(exc: BaseException) -> str:
    text = clean(str(exc), 1000)
    return text or f"{type(exc).__name__}"


def _retry_later(effect: SideEffect, fence: dt.datetime, exc: BaseException) -> str:
    from integrations.errors import ProviderError

    if not isinstance(exc, (ProviderError, OSError)) and not _is_database_error(exc):
        log.warning("side effect %s (%s) raised %s; retrying", effect.pk, effect.kind, type(exc).__name__,
                    exc_info=exc)
    error = _describe(exc)
    now = timezone.now()
    delay = backoff(effect.attempts, getattr(exc, "retry_after", None))
    if now + delay > effect.give_up_at:
        took = _words(now - effect.created_at)
        _finish(effect, fence, EffectState.FAILED,
                f"Gave up after {effect.attempts} attempt{'s' if effect.attempts != 1 else ''} over {took}: {error}")
        return EffectState.FAILED
    # Short waits are published with a countdown; long ones are left to the sweeper.
    short = delay <= dt.timedelta(seconds=_seconds("PSA_OUTBOX_COUNTDOWN_MAX_SECONDS", 300))
    if _finish(effect, fence, EffectState.PENDING, error, next_attempt_at=now + delay) and short:
        publish(effect.tenant_id, effect.pk, countdown=delay.total_seconds())
    return EffectState.PENDING


def _is_database_error(exc: BaseException) -> bool:
    from django.db import DatabaseError

    return isinstance(exc, DatabaseError)


def _words(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


# -- the sweeper and retries by a person --------------------------------------------------------------
def sweep(now: dt.datetime | None = None, limit: int = 500) -> dict[str, int]:
    """Across tenants: publish every pending row that is due and not held by a live claim."""
    now = now or timezone.now()
    rows = list(
        SideEffect.objects.unscoped()
        .filter(state=EffectState.PENDING, next_attempt_at__lte=now)
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - lease()))
        .order_by("next_attempt_at", "id").values_list("pk", "tenant_id")[:limit]
    )
    published = sum(1 for pk, tenant_id in rows if publish(tenant_id, pk))
    if rows:
        log.info("outbox sweep: %d due, %d published", len(rows), published)
    return {"due": len(rows), "published": published}


class NotRetryable(ValueError):
    pass


def retry(effect: SideEffect) -> SideEffect:
    """A person asks again (API or UI): a failed (or skipped) row is pending again, due now, with a fresh
    time budget; a pending row is made due now. A done row is refused."""
    if effect.state == EffectState.DONE:
        raise NotRetryable("This side effect is done; there is nothing to retry.")
    now = timezone.now()
    with transaction.atomic():
        changed = SideEffect.objects.filter(pk=effect.pk).exclude(state=EffectState.DONE).update(
            state=EffectState.PENDING, next_attempt_at=now, give_up_at=now + give_up_after(), attempts=0,
            claimed_at=None, in_doubt_since=None, done_at=None)
        if not changed:
            raise NotRetryable("This side effect is done; there is nothing to retry.")
        effect.refresh_from_db()
        h = handler(effect.kind)
        if h.record is not None:
            h.record(effect, EffectState.PENDING, "")
        tenant_id, pk = effect.tenant_id, effect.pk
        transaction.on_commit(lambda: publish(tenant_id, pk))
    return effect


# -- figures ----------------------------------------------------------------------------------------
def failed_count(integration_id: int) -> int:
    return SideEffect.objects.filter(integration_id=integration_id, state=EffectState.FAILED).count()


def failed_by_integration() -> dict[int, int]:
    rows = (SideEffect.objects.filter(state=EffectState.FAILED, integration_id__isnull=False)
            .values("integration_id").annotate(n=Count("id")))
    return {r["integration_id"]: r["n"] for r in rows}


def depth() -> dict[str, int]:
    """Across tenants (operators' metrics): side effects pending and failed."""
    row = SideEffect.objects.unscoped().filter(state__in=(EffectState.PENDING, EffectState.FAILED)).aggregate(
        pending=Count("id", filter=Q(state=EffectState.PENDING)), failed=Count("id", filter=Q(state=EffectState.FAILED)))
    return {"pending": row["pending"] or 0, "failed": row["failed"] or 0}


def run_for_tenant(tenant_id: int, effect_id: int) -> str | None:
    with tenant_context(tenant_id):
        return deliver(effect_id)

