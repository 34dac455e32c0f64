"""The dispatcher: intake only stores; drains claim waiting events fairly and process them.

The stored ``InboundEvent`` row is the durable queue. Intake commits it and makes sure a drain is
coming (``wake``): at most one wake message is pending at any time, so a flood of webhooks costs
one Celery publish, not one per webhook.

A drain (Celery task ``alerts.drain_inbound`` on the intake queue) works in turns. Each turn claims,
in one statement, at most ``PER_INTEGRATION`` of the oldest waiting events of *every* integration
that has any (security providers' lane first), interleaved by rank (every integration's oldest, then
every one's second, ...) up to ``TURN`` events, and processes them in that order (within a rank, the
integration with fewer events waiting first). A storm of 10,000
alerts in one tenant therefore delays another tenant's alert by at most one turn, never by the
storm's backlog: the claim order is by rank, not by arrival, so no integration can starve another.
Drains on more workers (more machines) claim disjoint turns (``FOR UPDATE SKIP LOCKED``): the
fairness lives in PostgreSQL, not in one process. A drain that finds a full turn wakes another drain,
so busy periods spread over every idle worker.

A turn in progress gives way to a newcomer (preemption): intake notes in Redis which integrations
stored an event (``ARRIVALS``, in the same round trip as the wake flag); between two events a drain
looks at that set, and when an integration that had nothing waiting at the turn's claim has arrived,
it gives back the turn's unstarted events (their attempt not counted) and claims again, where the
newcomer's event ranks first beside the others' oldest. A quiet tenant's alert thus waits for the
event in hand, not for a whole turn of another tenant's storm. Integrations already waiting at the
claim never preempt (their turn comes by rank), so many busy integrations cannot make drains churn.

Wake coalescing is a flag in the cache ("a drain is on its way"): intake publishes only when it sets
the flag; a drain clears the flag *before* its first claim. An event committed before the clear is
seen by that claim; one committed after it finds the flag gone and publishes a new wake. The sweeper
(beat, every minute) wakes a drain whenever events wait longer than they should (a lost message, a
dead worker's expired claim, an event given back with a backoff), whatever the flag says.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import F, Q
from django.db.models.functions import Greatest
from django.utils import timezone

from alerts.models import InboundEvent, InboundEventStatus
from alerts.services import events
from integrations import registry
from integrations.models import Integration
from integrations.ratelimit import redis_client
from psa.tenancy import tenant_context

log = logging.getLogger(__name__)

WAKE_FLAG = "psa:intake:wake-pending"
# A wake whose message was lost stops blocking new wakes after this long (the sweeper covers the gap).
WAKE_FLAG_TTL = 5
# Integrations that stored an event since a drain last claimed (a Redis set; see "preemption" above).
ARRIVALS = "psa:intake:arrivals"
ARRIVALS_TTL = 60


def turn_size() -> int:
    return int(getattr(settings, "PSA_DISPATCH_TURN", 32))


def per_integration() -> int:
    return int(getattr(settings, "PSA_DISPATCH_PER_INTEGRATION", 8))


def drain_seconds() -> float:
    """How long one drain task runs before handing over to a fresh one (keeps tasks short)."""
    return float(getattr(settings, "PSA_DISPATCH_DRAIN_SECONDS", 10))


def security_providers() -> list[str]:
    return [cls.slug for cls in registry.all_providers() if cls.priority_lane == "security"]


# -- waking -----------------------------------------------------------------------------------------
def wake(force: bool = False, arrival: int | None = None) -> bool:
    """Make sure a drain will run after this moment; True when this call published one. ``arrival``:
    the integration whose event was just stored (noted for preemption)."""
    if not force:
        try:
            if not _set_wake_flag(arrival):
                return False  # a drain is already on its way and has not claimed yet
        except Exception:  # noqa: BLE001 - the cache being down must not stop a webhook: publish anyway
            log.warning("wake flag unavailable; publishing a drain")
    from alerts.tasks import drain_inbound

    try:
        drain_inbound.apply_async()
        return True
    except Exception as exc:  # noqa: BLE001 - broker down: the rows wait for the sweeper, never lost
        log.warning("could not publish a drain (%s); the sweeper will wake one", type(exc).__name__)
        try:
            cache.delete(WAKE_FLAG)
        except Exception:  # noqa: BLE001
            pass
        return False


def _set_wake_flag(arrival: int | None) -> bool:
    """Set the wake flag unless it is set (True when this call set it), and note the arrival: one
    round trip to Redis; without Redis (development) only the flag, through the cache."""
    client = redis_client()
    if client is None:
        return cache.add(WAKE_FLAG, 1, timeout=WAKE_FLAG_TTL)
    pipe = client.pipeline(transaction=False)
    pipe.set(cache.make_key(WAKE_FLAG), 1, nx=True, ex=WAKE_FLAG_TTL)
    if arrival is not None:
        pipe.sadd(cache.make_key(ARRIVALS), arrival)
        pipe.expire(cache.make_key(ARRIVALS), ARRIVALS_TTL)
    return bool(pipe.execute()[0])


def _clear_wake() -> None:
    try:
        cache.delete(WAKE_FLAG)
    except Exception:  # noqa: BLE001 - at worst a later event waits for the flag's TTL or the sweeper
        log.warning("could not clear the wake flag")


# -- claiming ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Claimed:
    id: int
    tenant_id: int
    fence: dt.datetime


_CLAIM_SQL: str | None = None


def _claim_sql() -> str:
    """One statement: the integrations with waiting events (an index skip-scan), each one's oldest
    ``k``, ranked and interleaved, locked with SKIP LOCKED, claimed and returned."""
    global _CLAIM_SQL
    if _CLAIM_SQL is None:
        q = connection.ops.quote_name
        ev, it = q(InboundEvent._meta.db_table), q(Integration._meta.db_table)
        _CLAIM_SQL = f"""
WITH RECURSIVE ints(integration_id) AS (
    (SELECT integration_id FROM {ev} WHERE status = %(accepted)s ORDER BY integration_id LIMIT 1)
    UNION ALL
    SELECT (SELECT e.integration_id FROM {ev} e WHERE e.status = %(accepted)s
            AND e.integration_id > ints.integration_id ORDER BY e.integration_id LIMIT 1)
    FROM ints WHERE ints.integration_id IS NOT NULL
),
cand AS (
    SELECT c.id, c.rn, c.queued, CASE WHEN i.provider = ANY(%(security)s) THEN 0 ELSE 1 END AS lane
    FROM ints
    JOIN {it} i ON i.id = ints.integration_id
    CROSS JOIN LATERAL (
        SELECT w.id, row_number() OVER (ORDER BY w.received_at, w.id) AS rn, count(*) OVER () AS queued FROM (
            -- Locked here, skipping rows another drain is taking right now, so concurrent drains
            -- choose among different rows instead of all choosing (and then skipping) the same ones.
            SELECT e.id, e.received_at FROM {ev} e
            WHERE e.integration_id = ints.integration_id AND e.status = %(accepted)s
              AND (e.claimed_at IS NULL OR COALESCE(e.heartbeat_at, e.claimed_at) < %(stale)s)
            ORDER BY e.received_at, e.id LIMIT %(k)s
            FOR UPDATE OF e SKIP LOCKED
        ) w
    ) c
    ORDER BY lane, c.rn, c.id
    LIMIT %(turn)s
)
UPDATE {ev} AS e SET claimed_at = %(now)s, heartbeat_at = NULL, attempts = e.attempts + 1
FROM cand
WHERE e.id = cand.id AND e.status = %(accepted)s
  AND (e.claimed_at IS NULL OR COALESCE(e.heartbeat_at, e.claimed_at) < %(stale)s)
RETURNING e.id, e.tenant_id, cand.lane, cand.rn, cand.queued,
          (SELECT array_agg(ints.integration_id) FROM ints WHERE ints.integration_id IS NOT NULL)"""
    return _CLAIM_SQL


class Turn(list):
    """The claimed events of one turn, in processing order; ``waiting``: the integrations that had
    events waiting when it was claimed (an arrival from any other one preempts the turn)."""

    waiting: frozenset[int] = frozenset()


def claim_turn(now: dt.datetime | None = None) -> Turn:
    """Claim one fair turn of waiting events across every tenant (cross-tenant by design)."""
    now = now or timezone.now()
    if connection.vendor != "postgresql":
        return Turn(_claim_turn_portable(now))
    _forget_arrivals()  # before the claim: whatever arrives from now on, this claim or a later one sees
    params = {"accepted": InboundEventStatus.ACCEPTED, "security": security_providers(),
              "stale": now - events.lease(), "k": per_integration(), "turn": turn_size(), "now": now}
    with connection.cursor() as cur:
        cur.execute(_claim_sql(), params)
        rows = cur.fetchall()
    # Processing order: lane, rank, then the shorter queue first (a trickle's event before a storm's of
    # the same rank), then age. Which events make the turn was chosen by lane, rank and age alone, so
    # this order within the turn cannot keep any integration out of turns.
    rows.sort(key=lambda r: (r[2], r[3], r[4], r[0]))
    turn = Turn(Claimed(r[0], r[1], now) for r in rows)
    turn.waiting = frozenset(rows[0][5] or ()) if rows else frozenset()
    return turn


def _forget_arrivals() -> None:
    client = redis_client()
    if client is None:
        return
    try:
        client.delete(cache.make_key(ARRIVALS))
    except Exception:  # noqa: BLE001 - no preemption this turn; fairness by rank still holds
        log.warning("could not reset the arrivals set")


def newcomer(turn: Turn) -> bool:
    """Whether an integration that had nothing waiting when ``turn`` was claimed has stored an event
    since (preempt the turn for it)."""
    client = redis_client()
    if client is None or not turn.waiting:
        return False
    try:
        arrived = client.smembers(cache.make_key(ARRIVALS))
    except Exception:  # noqa: BLE001 - Redis trouble: finish the turn as claimed
        return False
    return any(int(member) not in turn.waiting for member in arrived)


def give_back(ids: list[int], fence: dt.datetime) -> int:
    """Release claimed events that were not started (a preempted turn): free to claim again at once,
    the claim's attempt not counted."""
    if not ids:
        return 0
    return (InboundEvent.objects.unscoped()
            .filter(pk__in=ids, claimed_at=fence, status=InboundEventStatus.ACCEPTED)
            .update(claimed_at=None, heartbeat_at=None, attempts=Greatest(F("attempts") - 1, 0)))


def _claim_turn_portable(now: dt.datetime) -> list[Claimed]:
    """The embedded SQLite default: one process, so claim the oldest waiting events one by one."""
    rows = list(
        InboundEvent.objects.unscoped()
        .filter(status=InboundEventStatus.ACCEPTED)
        .exclude(_live(now))
        .order_by("received_at", "id")
        .values_list("pk", "tenant_id")[: turn_size()]
    )
    claimed = []
    for pk, tenant_id in rows:
        taken = (
            InboundEvent.objects.unscoped()
            .filter(pk=pk, status=InboundEventStatus.ACCEPTED)
            .exclude(_live(now))
            .update(claimed_at=now, heartbeat_at=None, attempts=F("attempts") + 1)
        )
        if taken:
            claimed.append(Claimed(pk, tenant_id, now))
    return claimed


def _live(now: dt.datetime) -> Q:
    """A claim still held: claimed, or heartbeat, within the lease."""
    stale = now - events.lease()
    return Q(claimed_at__gte=stale) | Q(heartbeat_at__gte=stale)


# -- draining ---------------------------------------------------------------------------------------
def drain(max_seconds: float | None = None) -> dict[str, int]:
    """Claim and process turns until nothing waits or the time is up (then hand over to a new drain)."""
    with _asynchronous_commit():
        return _drain(max_seconds)


@contextlib.contextmanager
def _asynchronous_commit():
    """The drain's commits do not wait for the WAL flush (PostgreSQL ``synchronous_commit = off``).

    Safe for exactly-once: intake's INSERT (the durable queue) is committed synchronously before its
    202; a crash of PostgreSQL can lose only the last fraction of a second of a drain's commits, in
    commit order, so an event's claim is lost with (or after) its work and the event is processed
    again from where the database stands, which every step tolerates. What it buys: no fsync wait
    for the two or three commits each alert makes."""
    if connection.vendor != "postgresql" or not getattr(settings, "PSA_DRAIN_ASYNC_COMMIT", True):
        yield
        return
    with connection.cursor() as cur:
        cur.execute("SET synchronous_commit TO off")
    try:
        yield
    finally:
        try:
            with connection.cursor() as cur:
                cur.execute("RESET synchronous_commit")
        except Exception:  # noqa: BLE001 - a broken connection is dropped by the task's connection hook
            pass


def _drain(max_seconds: float | None = None) -> dict[str, int]:
    from alerts.services.lease import Heartbeat
    from alerts.services.processing import Deferred, process_claimed

    _clear_wake()
    deadline = time.monotonic() + (drain_seconds() if max_seconds is None else max_seconds)
    totals = {"turns": 0, "processed": 0, "deferred": 0, "failed": 0, "preempted": 0}
    empty_retries = 0
    while True:
        turn = claim_turn()
        if not turn:
            # SKIP LOCKED also skips rows some other statement holds for a moment (a concurrent
            # INSERT .. ON CONFLICT of the same delivery, a replay): if claimable rows are still there,
            # look again shortly instead of leaving them to the sweeper.
            if empty_retries < EMPTY_TURN_RETRIES and claimable_exists():
                empty_retries += 1
                time.sleep(EMPTY_TURN_PAUSE)
                continue
            break
        empty_retries = 0
        totals["turns"] += 1
        if len(turn) >= turn_size():
            wake()  # a backlog: let an idle worker share it
        events_by_id = {
            e.pk: e
            for e in InboundEvent.objects.unscoped().select_related("integration").filter(pk__in=[c.id for c in turn])
        }
        # The turn's events are processed one by one: a heartbeat keeps the claim of those still waiting
        # (and of the one in hand) alive, so the lease can be short and a dead worker's turn comes back fast.
        with Heartbeat(turn[0].fence, [c.id for c in turn]) as heartbeat:
            for position, claimed in enumerate(turn):
                if position and newcomer(turn):
                    rest = [c.id for c in turn[position:]]
                    totals["preempted"] += give_back(rest, claimed.fence)
                    for event_id in rest:
                        heartbeat.done(event_id)
                    break
                event = events_by_id.get(claimed.id)
                if event is None:
                    heartbeat.done(claimed.id)
                    continue
                with tenant_context(claimed.tenant_id):
                    try:
                        process_claimed(event, claimed.fence, defer_transient=True)
                        totals["processed"] += 1
                    except Deferred:
                        totals["deferred"] += 1
                    except Exception:  # one poison event must never stop the others of its turn
                        totals["failed"] += 1
                        log.exception("inbound event %s could not be processed", claimed.id)
                heartbeat.done(claimed.id)
        if time.monotonic() >= deadline:
            wake(force=True)  # more may wait: a fresh task continues (keeps this one short)
            break
    return totals


EMPTY_TURN_RETRIES = 50
EMPTY_TURN_PAUSE = 0.02


def claimable_exists(now: dt.datetime | None = None) -> bool:
    """Whether a waiting event nobody holds a live claim on exists (a plain read: takes no lock)."""
    now = now or timezone.now()
    return (InboundEvent.objects.unscoped().filter(status=InboundEventStatus.ACCEPTED)
            .exclude(_live(now)).exists())


def due_backlog(now: dt.datetime | None = None) -> int:
    """Events that should have been processed by now: older than the sweep age and not held by a live
    claim (a lost wake, a dead worker's expired claim, an event whose backoff is over)."""
    now = now or timezone.now()
    # A claim that ran out (a dead worker, an event given back with a backoff) is due at once; an event
    # never claimed is left to its own wake for sweep_after.
    return (
        InboundEvent.objects.unscoped()
        .filter(Q(received_at__lt=now - events.sweep_after()) | Q(claimed_at__isnull=False),
                status=InboundEventStatus.ACCEPTED)
        .exclude(_live(now))
        .count()
    )


# -- backlog watch ----------------------------------------------------------------------------------
BACKLOG_HISTORY = "psa:intake:backlog-history"
GROWING_SWEEPS = 4  # a tenant's backlog larger at each of this many sweeps in a row is "growing"


def backlog_by_integration() -> dict[int, dict]:
    """{integration id: {"waiting", "oldest_seconds"}} of events not processed yet, across tenants."""
    from django.db.models import Count, Min

    now = timezone.now()
    rows = (InboundEvent.objects.unscoped().filter(status=InboundEventStatus.ACCEPTED)
            .values("integration_id").annotate(waiting=Count("id"), oldest=Min("received_at")))
    return {r["integration_id"]: {"waiting": r["waiting"], "oldest_seconds": (now - r["oldest"]).total_seconds()}
            for r in rows}


def watch_backlogs() -> list[int]:
    """Called by the sweeper every minute: a tenant whose backlog grew at every one of the last
    GROWING_SWEEPS sweeps (and is over PSA_BACKLOG_ALARM events) is reported to the operator, by the
    ``psa.operator`` log and e-mail to ADMINS (PSA_OPERATOR_EMAILS), at most once an hour per tenant.
    Returns the tenants reported."""
    from django.core.mail import mail_admins
    from django.db.models import Count

    threshold = int(getattr(settings, "PSA_BACKLOG_ALARM", 1000))
    now_counts = dict(InboundEvent.objects.unscoped().filter(status=InboundEventStatus.ACCEPTED)
                      .values_list("tenant_id").annotate(n=Count("id")).values_list("tenant_id", "n"))
    try:
        history = cache.get(BACKLOG_HISTORY) or {}
    except Exception:  # noqa: BLE001 - no cache, no history: nothing to compare
        return []
    reported = []
    new_history = {}
    for tenant_id, n in now_counts.items():
        series = [*history.get(tenant_id, [])[-(GROWING_SWEEPS - 1):], n]
        new_history[tenant_id] = series
        growing = len(series) >= GROWING_SWEEPS and all(b > a for a, b in zip(series, series[1:], strict=False))
        if growing and n >= threshold and cache.add(f"psa:intake:backlog-alarm:{tenant_id}", 1, timeout=3600):
            message = (f"Tenant {tenant_id}: {n} inbound events waiting, more at each of the last "
                       f"{GROWING_SWEEPS} sweeps ({series}). Workers are not keeping up: add intake workers "
                       "(celery -A psa worker -Q intake) or look for a flood.")
            logging.getLogger("psa.operator").error(message)
            try:
                mail_admins("Inbound backlog growing", message, fail_silently=True)
            except Exception:  # noqa: BLE001 - the log line stands
                pass
            reported.append(tenant_id)
    cache.set(BACKLOG_HISTORY, new_history, timeout=3600)
    return reported
