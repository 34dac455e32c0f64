"""Processing one stored inbound event (the ``alerts.process_inbound_event`` task).

Exactly once, even when a worker dies mid-task:
- the event is *claimed* with a conditional UPDATE (still accepted, and no live lease);
  a message delivered twice, or a sweeper re-enqueue, finds nothing to claim;
- every alert is ingested in its own short transaction whose effects are idempotent
  (alert unique per integration + external id, group upsert), so a rerun after a crash
  skips what was already written and does the rest;
- the final status write is fenced on the claim stamp, so a worker that lost its lease
  cannot overwrite the result of the one that took over.

Parsing may call the provider's API (salvaging a broken body): it runs outside any
transaction.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.utils import timezone

from alerts.models import InboundEvent, InboundEventStatus
from alerts.services import events, rowsql
from integrations import sinks
from integrations.base import WebhookRequest
from integrations.errors import ProviderError, RateLimited, Unavailable, WebhookParseError
from integrations.models import Integration
from integrations.registry import get_provider
from psa.tenancy import get_current_tenant_id
from psa.text import clean

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
TRANSIENT = (OperationalError, InterfaceError)
# The provider is down or throttling us (e.g. while salvaging a broken body): retry later
# instead of failing the event; after MAX_ATTEMPTS it is failed and can be replayed.
PROVIDER_TRANSIENT = (Unavailable, RateLimited)

ACTION_WORDS = {
    "ticket_created": "new ticket",
    "occurrence": "occurrence on an open ticket",
    "suppressed": "suppressed by a maintenance window",
    "ignored": "ignored by rule",
    "unmapped": "unmapped organization",
    "redelivery": "already received",
    "updated": "updated",
    "resolved": "resolved",
    "resolved_ticket_closed": "resolved, ticket closed",
    "resolve_ignored": "resolve changed nothing",
    "resolved_unseen": "resolve for an alert never seen",
    "unhandled": "no handler installed for this record",
    # Live directory changes (integrations.services.directory)
    "organization_created": "organization added",
    "organization_updated": "organization updated",
    "organization_missing": "organization marked missing",
    "asset_created": "asset created",
    "asset_updated": "asset updated",
    "asset_retired": "asset retired",
    "device_unmapped": "device of an unmapped organization",
    "directory_ignored": "nothing to change",
}


def _finish(event_id: int, fence, **changes: Any) -> bool:
    if "error" in changes:
        changes["error"] = clean(changes["error"], 2000)
    if "summary" in changes:
        changes["summary"] = clean(changes["summary"], 500)
    # Fenced on the claim stamp (one UPDATE by primary key, without ORM query building).
    fence_value = InboundEvent._meta.get_field("claimed_at").get_db_prep_value(fence, connection)
    return bool(
        rowsql.update_row(
            InboundEvent,
            event_id,
            {"processed_at": timezone.now(), "replay_requested_at": None, **changes},
            where="status = %s AND claimed_at = %s",
            params=(InboundEventStatus.ACCEPTED, fence_value),
        )
    )


def _claim_sql() -> str:
    """One statement that claims the event and returns it with its integration (PostgreSQL)."""
    global _CLAIM_SQL
    if _CLAIM_SQL is None:
        q = connection.ops.quote_name
        ev, it = InboundEvent._meta, Integration._meta
        ev_cols = ", ".join(f"c.{q(f.column)}" for f in ev.concrete_fields)
        it_cols = ", ".join(f"i.{q(f.column)}" for f in it.concrete_fields)
        _CLAIM_SQL = (
            f"WITH c AS (UPDATE {q(ev.db_table)} SET claimed_at = %s, heartbeat_at = NULL, attempts = attempts + 1"
            f" WHERE id = %s AND tenant_id = %s AND status = %s"
            f" AND (claimed_at IS NULL OR COALESCE(heartbeat_at, claimed_at) < %s)"
            f" RETURNING *)"
            f" SELECT {ev_cols}, {it_cols} FROM c JOIN {q(it.db_table)} i ON i.id = c.integration_id"
        )
    return _CLAIM_SQL


_CLAIM_SQL: str | None = None


def claim_and_load(event_id: int) -> tuple[InboundEvent | None, dt.datetime | None]:
    """Claim the event (same conditions as events.claim) and load it with its integration.

    On PostgreSQL this is one ``UPDATE .. RETURNING`` (in a CTE joined to the integration)
    instead of an UPDATE and a SELECT; elsewhere (the embedded SQLite default) it is those two.
    """
    tenant_id = get_current_tenant_id()
    if connection.vendor != "postgresql" or tenant_id is None:
        fence = events.claim(event_id)
        if fence is None:
            return None, None
        return InboundEvent.objects.select_related("integration").get(pk=event_id), fence
    now = timezone.now()
    with connection.cursor() as cur:
        cur.execute(_claim_sql(), [now, event_id, tenant_id, InboundEventStatus.ACCEPTED, now - events.lease()])
        row = cur.fetchone()
    if row is None:
        return None, None
    n = len(InboundEvent._meta.concrete_fields)
    event = _from_row(InboundEvent, row[:n])
    event.integration = _from_row(Integration, row[n:])
    return event, now


@functools.lru_cache(maxsize=8)
def _converters(model) -> tuple[list[str], list[tuple]]:
    names, convs = [], []
    for f in model._meta.concrete_fields:
        col = f.get_col(model._meta.db_table)
        names.append(f.attname)
        convs.append((col, tuple(connection.ops.get_db_converters(col) + f.get_db_converters(connection))))
    return names, convs


def _from_row(model, values):
    """A model instance from raw column values, with the fields' converters (JSON etc.) applied."""
    names, convs = _converters(model)
    converted = []
    for (col, funcs), value in zip(convs, values, strict=True):
        for conv in funcs:
            value = conv(value, col, connection)
        converted.append(value)
    return model.from_db(connection.alias, names, converted)


def process_event(event_id: int) -> dict | None:
    """Claim one event and process it (the per-event task; transient trouble raises for its retry)."""
    from alerts.services.lease import Heartbeat

    event, fence = claim_and_load(event_id)
    if event is None:
        return None  # processed, failed, duplicate, or another worker holds it
    with Heartbeat(fence, [event_id]):
        return process_claimed(event, fence)


class Deferred(Exception):
    """Transient trouble (database, provider down): the event was given back with a backoff."""


def retry_delay(attempts: int) -> dt.timedelta:
    """Exponential backoff for an event given back after transient trouble (10 s, 20 s, ... 5 min)."""
    return dt.timedelta(seconds=min(300, 10 * 2 ** max(0, attempts - 1)))


def process_claimed(event: InboundEvent, fence: dt.datetime, *, defer_transient: bool = False) -> dict | None:
    """Process an event this worker has claimed (``fence`` is its claim stamp).

    Transient trouble gives the event back and raises: the original exception (for the per-event
    task's Celery retry), or ``Deferred`` when ``defer_transient`` (the dispatcher: the event becomes
    claimable again after ``retry_delay``)."""
    event_id = event.pk

    def give_back(exc: BaseException):
        if defer_transient:
            _release(event_id, fence, delay=retry_delay(event.attempts))
            return Deferred(str(exc))
        _release(event_id, fence)
        return exc

    if event.attempts > MAX_ATTEMPTS:
        _finish(
            event_id,
            fence,
            status=InboundEventStatus.FAILED,
            error=f"Gave up after {MAX_ATTEMPTS} attempts: processing never completed (worker crash?).",
        )
        return None
    replay = event.replay_requested_at is not None
    # The provider's own one-line summary from intake (kept in the result across replays).
    envelope = (event.result or {}).get("envelope", event.summary) or ""
    integration = event.integration
    request = WebhookRequest(
        body=bytes(event.body),
        headers=event.headers or {},
        query=event.query or {},
        extra={"event_id": event.pk},
    )
    provider = get_provider(integration)
    try:
        normalized = list(provider.parse_webhook(request))
    except PROVIDER_TRANSIENT as exc:
        if event.attempts < MAX_ATTEMPTS:
            raise give_back(exc) from None
        _finish(
            event_id,
            fence,
            status=InboundEventStatus.FAILED,
            error=f"{exc} (gave up after {MAX_ATTEMPTS} attempts; replay the event when the provider answers again)",
            summary=envelope or "Provider unavailable",
        )
        return None
    except (WebhookParseError, ProviderError) as exc:
        _finish(
            event_id,
            fence,
            status=InboundEventStatus.FAILED,
            error=str(exc) or type(exc).__name__,
            summary=envelope or "Unreadable webhook",
        )
        return None
    except TRANSIENT as exc:
        raise give_back(exc) from None
    except Exception as exc:
        log.exception("%s parser failed on inbound event %s", integration.provider, event_id)
        _finish(
            event_id,
            fence,
            status=InboundEventStatus.FAILED,
            error=f"The {integration.provider} parser failed ({type(exc).__name__}).",
        )
        return None
    finally:
        try:
            provider.close()
        except Exception:
            pass
    salvaged = bool(request.extra.get("salvaged"))
    source = "replay" if replay else (event.source or "webhook")
    outcomes: list[dict] = []
    try:
        for record in normalized:
            outcomes.append(sinks.deliver(integration, record, source=source, inbound_event=event))
    except TRANSIENT as exc:
        raise give_back(exc) from None
    except Exception as exc:
        log.exception("pipeline failed on inbound event %s", event_id)
        result = build_result(outcomes, replay=replay, envelope=envelope)
        _finish(
            event_id,
            fence,
            status=InboundEventStatus.FAILED,
            result=result,
            salvaged=salvaged,
            error=f"Pipeline error after {len(outcomes)} of {len(normalized)} alert(s) "
            f"({type(exc).__name__}). "
            "Replay the event once the cause is fixed; alerts already ingested are not counted twice.",
            summary=summarize(outcomes, envelope),
        )
        return result
    result = build_result(outcomes, replay=replay, envelope=envelope)
    _finish(
        event_id,
        fence,
        status=InboundEventStatus.PROCESSED,
        result=result,
        error="",
        salvaged=salvaged,
        summary=summarize(outcomes, envelope),
    )
    return result


def _release(event_id: int, fence, delay: dt.timedelta | None = None) -> None:
    """Give the event back (transient trouble): the retry, a drain or the sweeper takes it again.

    With ``delay`` the claim is back-dated so that it expires ``delay`` from now (a claim older
    than the lease is free to take): the event waits that long before the next attempt."""
    claimed_at = None if delay is None else timezone.now() - events.lease() + delay
    try:
        InboundEvent.objects.unscoped().filter(pk=event_id, claimed_at=fence).update(claimed_at=claimed_at,
                                                                                      heartbeat_at=None)
    except DatabaseError:
        pass


def build_result(outcomes: list[dict], *, replay: bool = False, envelope: str = "") -> dict:
    tickets = []
    for o in outcomes:
        if o.get("ticket") and o["ticket"] not in tickets:
            tickets.append(o["ticket"])
    rule = next((o["rule"] for o in outcomes if o.get("rule")), None)
    result = {
        "alerts": [o["alert"] for o in outcomes if o.get("alert")],
        "tickets": tickets,
        "rule": rule,
        "actions": [o["action"] for o in outcomes],
        "details": outcomes,
        "envelope": envelope,
    }
    if replay:
        result["replayed_at"] = timezone.now().isoformat()
    return result


def summarize(outcomes: list[dict], intake_summary: str = "") -> str:
    if not outcomes:
        words = "no alerts in this event"
    elif len(outcomes) == 1:
        action = outcomes[0]["action"]
        words = ACTION_WORDS.get(action.split(":")[-1], action)
        if ":" in action:
            words = f"{action.split(':')[0].replace('_', ' ')}: {words}"
        if outcomes[0].get("ticket"):
            words += f" (ticket {outcomes[0]['ticket']})"
    else:
        counts: dict[str, int] = {}
        for o in outcomes:
            counts[o["action"]] = counts.get(o["action"], 0) + 1
        words = f"{len(outcomes)} alerts: " + ", ".join(
            f"{n} {ACTION_WORDS.get(a.split(':')[-1], a)}" for a, n in sorted(counts.items())
        )
    return f"{intake_summary} - {words}" if intake_summary else words[:1].upper() + words[1:]
