"""Storm guard: when one integration reports more than N new conditions in a minute
(PSA_STORM_NEW_CONDITIONS_PER_MINUTE, 50; 0 turns it off), the excess goes into one "alert storm" ticket
per integration and client instead of a ticket each. A site outage taking 500 devices offline becomes one
ticket listing the devices and conditions, every alert linked to it (none dropped), its groups held with
``AlertGroup.storm`` so further firings of those conditions land there too.

- Counting: a per-integration counter per minute in the shared cache (Redis ``INCR``); a cache outage
  turns the guard off (a ticket each, as without it) rather than holding alerts back.
- The storm row is an upsert on the partial unique index ``one_open_storm_per_client`` (as dedup does for
  conditions), so concurrent alerts of a storm share one row and one ticket. When it starts, the tickets
  this integration opened for the same client in the last two minutes, untouched, are merged into it, so
  the outage is one ticket from its first alert.
- Notes coalesce: at most one a minute ("grew to N alerts on D devices ...", with the new ones listed), the
  title carries the counts; ``flush_due`` (beat) writes the last one.
- When a whole minute passes without the storm growing and fewer than N new conditions a minute arrive,
  new conditions get their own tickets again.
- ``split`` (API ``alert-storms/{id}/split/``, the ticket page's button) makes a ticket per condition
  still active and closes the storm ticket.
Locks: group (held by the caller), storm row, ticket; tickets merged at the start are taken with SKIP LOCKED
(never waited for), so no lock order is ever reversed.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from alerts.models import Alert, AlertGroup, AlertState, AlertStorm
from integrations.ratelimit import redis_client

log = logging.getLogger(__name__)

NOTE_EVERY = dt.timedelta(minutes=1)
MERGE_RECENT = dt.timedelta(minutes=2)
LISTED = 50  # devices/conditions named in one note


def threshold() -> int:
    return int(getattr(settings, "PSA_STORM_NEW_CONDITIONS_PER_MINUTE", 50))


def _active_key(integration_id: int) -> str:
    return f"psa:storm:{integration_id}:active"


def count_new_condition(integration_id: int, now: dt.datetime) -> tuple[int, bool]:
    """(new conditions of the integration in the last minute, this one included; whether one of its storms
    grew in the last minute). The count is this minute's counter plus the previous minute's, weighted by
    how much of it is still in the window. (0, False) when the cache is down."""
    minute, into = divmod(now.timestamp(), 60)
    key, previous = f"psa:storm:{integration_id}:{int(minute)}", f"psa:storm:{integration_id}:{int(minute) - 1}"
    try:
        client = redis_client()
        if client is not None:  # one round trip (the cache API takes four); same keys and encoding
            pipe = client.pipeline(transaction=False)
            pipe.incr(cache.make_key(key))
            pipe.expire(cache.make_key(key), 180)
            pipe.mget([cache.make_key(previous), cache.make_key(_active_key(integration_id))])
            current, _, (before, active) = pipe.execute()
        else:
            cache.add(key, 0, timeout=180)
            current = cache.incr(key)
            got = cache.get_many([previous, _active_key(integration_id)])
            before, active = got.get(previous), got.get(_active_key(integration_id))
    except Exception:  # noqa: BLE001 - no counter: no storm guard, never a lost alert
        return 0, False
    return int(current) + int(int(before or 0) * (60 - into) / 60), bool(active)


def _storming(alert: Alert, now: dt.datetime) -> bool:
    """A storm of this integration and client got an alert within the last minute: it goes on."""
    return AlertStorm.objects.filter(integration_id=alert.integration_id, client_id=alert.client_id, state="open",
                                     last_alert_at__gte=now - dt.timedelta(minutes=1)).exists()


def _mark_active(integration_id: int) -> None:
    try:
        cache.set(_active_key(integration_id), 1, timeout=60)
    except Exception:  # noqa: BLE001 - the storm then ends a little sooner
        log.warning("storm flag not set (cache unavailable)")


def _dt(value):
    return parse_datetime(value) if isinstance(value, str) else value


def _upsert(alert: Alert, now: dt.datetime) -> tuple[int, int | None, bool]:
    table = connection.ops.quote_name(AlertStorm._meta.db_table)
    inserted = "(s.xmax = 0)" if connection.vendor == "postgresql" else "s.alert_count = 1"
    newest = "GREATEST" if connection.vendor == "postgresql" else "MAX"
    sql = f"""
        INSERT INTO {table} AS s (tenant_id, integration_id, client_id, ticket_id, state, alert_count,
                                  started_at, last_alert_at, noted_at, noted_count, closed_at)
        VALUES (%s, %s, %s, NULL, 'open', 1, %s, %s, NULL, 0, NULL)
        ON CONFLICT (integration_id, client_id) WHERE state = 'open'
        DO UPDATE SET alert_count = s.alert_count + 1, last_alert_at = {newest}(s.last_alert_at, EXCLUDED.last_alert_at)
        RETURNING s.id, s.ticket_id, {inserted}"""
    with connection.cursor() as cur:
        cur.execute(sql, [alert.tenant_id, alert.integration_id, alert.client_id, now, now])
        sid, ticket_id, fresh = cur.fetchone()
    return sid, ticket_id, bool(fresh)


def join(alert: Alert, rule, ctx: dict, row, now: dt.datetime) -> int | None:
    """Inside the firing's transaction, for a new condition (its group row locked): the storm ticket's id
    when this integration is storming, else None (the condition gets its own ticket)."""
    limit = threshold()
    if not limit or alert.client_id is None or alert.is_test:
        return None
    count, active = count_new_condition(alert.integration_id, now)
    # Below the threshold, a storm still going on (it grew in the last minute) keeps taking new conditions;
    # the database is asked only when the cache says one of this integration's storms is active.
    if count <= limit and not (active and _storming(alert, now)):
        return None
    from alerts.services import rowsql, ticketing

    for _ in range(3):
        storm_id, ticket_id, fresh = _upsert(alert, now)
        if ticket_id is None:
            ticket_id = _storm_ticket(alert, rule, ctx, storm_id)
        if ticketing.record_occurrence(ticket_id, alert, ctx, 0, note=None):
            break
        # Its ticket was closed: this storm is over, the next alert starts a new one.
        AlertStorm.objects.filter(pk=storm_id, state="open").update(state="closed", closed_at=now)
    else:
        return None
    rowsql.update_row(AlertGroup, row.id, {"ticket": ticket_id, "storm": storm_id})
    _mark_active(alert.integration_id)
    if fresh:
        _merge_recent(alert, storm_id, ticket_id, now)
    _maybe_note(storm_id, ticket_id, alert, now)
    return ticket_id


def _title(storm: AlertStorm) -> str:
    from alerts.services.effects import provider_name

    return (f"Alert storm: {storm.alert_count} alerts from {provider_name(storm.integration.provider)} at "
            f"{storm.client.name}")[:500]


def _storm_ticket(alert: Alert, rule, ctx: dict, storm_id: int) -> int:
    from alerts.services import effects, ticketing
    from alerts.services.cache import tenant_config
    from tickets.models import NoteKind, TicketSource
    from tickets.services import add_note, create_ticket

    storm = AlertStorm.objects.select_related("integration", "client").get(pk=storm_id)
    cfg = tenant_config(alert.tenant_id)
    board = ticketing._board_for(rule, cfg)
    from alerts.services.rules import priority_for

    ticket = create_ticket(
        board=board, status=ticketing._default_status(board, cfg), title=_title(storm),
        description=(f"More than {threshold()} new conditions a minute arrived from "
                     f"{storm.integration.provider} for {storm.client.name} (a site outage?). They are held here "
                     "instead of a ticket each; the notes list the devices and conditions as the storm grows. "
                     "Split the storm into a ticket per condition from this ticket when it is over."),
        client_id=alert.client_id, priority=priority_for(rule, alert.severity), category_id=rule.category_id,
        assignee_id=rule.assignee_id, source=TicketSource.ALERT, source_ref=f"storm:{storm.pk}", savepoint=False,
        occurrence_count=0)  # every alert it holds counts one, the first included (join's record_occurrence)
    add_note(ticket, kind=NoteKind.SYSTEM, touch=False, savepoint=False,
             body=f"Alert storm started at {_when(storm.started_at)}: {ticketing.describe(alert, ctx)}.")
    AlertStorm.objects.filter(pk=storm_id).update(ticket=ticket)
    effects.enqueue_ticket_created(alert, ticket.pk, rule)
    return ticket.pk


def _when(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _merge_recent(alert: Alert, storm_id: int, storm_ticket: int, now: dt.datetime) -> int:
    """The storm's first minutes: this integration's untouched tickets for the client, opened moments ago,
    become part of the storm (their alerts and conditions move; the tickets close with a note)."""
    from alerts.services.lifecycle import _closed_status
    from tickets.models import NoteKind, Ticket, TicketSource
    from tickets.services import add_note, human_touched, update_ticket

    recent = (Alert.objects.filter(integration_id=alert.integration_id, client_id=alert.client_id,
                                   ticket__created_at__gte=now - MERGE_RECENT, ticket__source=TicketSource.ALERT,
                                   ticket__status__is_closed=False, ticket__is_test=False)
              .exclude(ticket_id=storm_ticket).values_list("ticket_id", flat=True).distinct())
    merged = 0
    for ticket_id in list(recent)[:1000]:
        groups = list(AlertGroup.objects.select_for_update(skip_locked=True).filter(ticket_id=ticket_id, state="open"))
        if AlertGroup.objects.filter(ticket_id=ticket_id, state="open").count() != len(groups):
            continue  # a firing of it is in flight: leave it alone
        ticket = (Ticket.objects.select_for_update(of=("self",), skip_locked=True).select_related("board", "status")
                  .filter(pk=ticket_id).first())
        if ticket is None or ticket.status.is_closed or human_touched(ticket_id) or ticket.storms.exists():
            continue
        moved = Alert.objects.filter(ticket_id=ticket_id).update(ticket_id=storm_ticket)
        AlertGroup.objects.filter(pk__in=[g.pk for g in groups]).update(ticket_id=storm_ticket, storm_id=storm_id)
        from django.db.models import F

        AlertStorm.objects.filter(pk=storm_id).update(alert_count=F("alert_count") + moved)
        Ticket.objects.filter(pk=storm_ticket).update(occurrence_count=F("occurrence_count") + ticket.occurrence_count)
        closed = _closed_status(ticket.board)
        number = Ticket.objects.filter(pk=storm_ticket).values_list("number", flat=True).first()
        add_note(ticket, kind=NoteKind.SYSTEM, savepoint=False,
                 body=f"Merged into alert storm ticket #{number}: its alerts are held there.")
        if closed is not None:
            update_ticket(ticket, actor=None, changes={"status": closed})
        merged += 1
    return merged


def _maybe_note(storm_id: int, ticket_id: int, alert: Alert | None, now: dt.datetime, force: bool = False) -> bool:
    """At most one note a minute: the storm's size and what is new since the last note; the title follows."""
    from tickets.models import NoteKind, Ticket
    from tickets.services import add_note

    storm = AlertStorm.objects.select_related("integration", "client").get(pk=storm_id)
    noted_at = _dt(storm.noted_at)
    if not force and noted_at is not None and now - noted_at < NOTE_EVERY:
        return False
    linked = Alert.objects.filter(ticket_id=ticket_id)
    total = linked.count() + (1 if alert is not None and alert.ticket_id != ticket_id else 0)
    if total <= storm.noted_count:
        return False
    new = list(linked.order_by("id").values_list("device_name", "device_external_id", "title", "condition_key")
               [storm.noted_count:storm.noted_count + LISTED])
    if alert is not None and alert.ticket_id != ticket_id and len(new) < LISTED:
        new.append((alert.device_name, alert.device_external_id, alert.title, alert.condition_key))
    # One read of three short columns a minute at most; the alert being linked now is counted too.
    rows = list(linked.values_list("device_external_id", "device_name", "dedup_key"))
    if alert is not None and alert.ticket_id != ticket_id:
        rows.append((alert.device_external_id, alert.device_name, alert.dedup_key))
    devices = len({dx or d for dx, d, _ in rows if dx or d})
    conditions = len({k for _, _, k in rows})
    listed = "; ".join(f"{d or dx or 'unknown device'}: {t or c}" for d, dx, t, c in new)
    more = total - storm.noted_count - len(new)
    body = (f"Alert storm: {total} alert{'s' if total != 1 else ''} on {devices} device{'s' if devices != 1 else ''}"
            f" ({conditions} condition{'s' if conditions != 1 else ''}). New since the last note: {listed}"
            + (f"; and {more} more." if more > 0 else "."))
    add_note(Ticket(pk=ticket_id, tenant_id=storm.tenant_id), kind=NoteKind.SYSTEM, body=body, savepoint=False)
    storm.alert_count = max(storm.alert_count, total)
    AlertStorm.objects.filter(pk=storm_id).update(noted_at=now, noted_count=total)
    Ticket.objects.filter(pk=ticket_id).update(title=_title(storm), updated_at=now)
    return True


def flush_due(now: dt.datetime | None = None) -> int:
    """Across tenants (beat): the last note of storms that grew since their last one."""
    from django.db.models import F

    from psa.tenancy import tenant_context

    now = now or timezone.now()
    rows = list(AlertStorm.objects.unscoped().filter(state="open", alert_count__gt=F("noted_count"),
                                                     ticket__isnull=False)
                .exclude(noted_at__gt=now - NOTE_EVERY).values_list("pk", "tenant_id", "ticket_id")[:200])
    written = 0
    for pk, tenant_id, ticket_id in rows:
        with tenant_context(tenant_id), transaction.atomic():
            locked = AlertStorm.objects.select_for_update(skip_locked=True).filter(pk=pk).first()
            if locked is not None:
                written += _maybe_note(pk, ticket_id, None, now)
    return written


# -- splitting ----------------------------------------------------------------------------------------
class NotSplittable(ValueError):
    pass


def split(storm: AlertStorm, actor=None) -> list[int]:
    """A ticket per condition of the storm that is still active (alerts and counts move with it); the storm
    ticket closes with a note naming them. Returns the new tickets' ids."""
    from alerts.services import ticketing
    from alerts.services.lifecycle import _closed_status
    from alerts.services.rules import alert_context, ensure_catch_all
    from tickets.models import NoteKind, Ticket
    from tickets.services import add_note, update_ticket

    made: list[int] = []
    with transaction.atomic():
        storm = AlertStorm.objects.select_for_update().get(pk=storm.pk)
        if storm.ticket_id is None:
            raise NotSplittable("This storm has no ticket.")
        groups = list(AlertGroup.objects.select_for_update().filter(storm_id=storm.pk, ticket_id=storm.ticket_id)
                      .order_by("id"))
        storm_ticket = Ticket.objects.select_for_update(of=("self",)).select_related("board", "status").get(
            pk=storm.ticket_id)
        for group in groups:
            alerts = Alert.objects.filter(group_id=group.pk, ticket_id=storm.ticket_id)
            newest = alerts.filter(state=AlertState.ACTIVE).select_related("asset", "client", "organization", "rule") \
                .order_by("-last_seen", "-id").first()
            if newest is None:
                continue  # resolved meanwhile: it stays on the storm ticket, which closes
            rule = newest.rule or group.rule or ensure_catch_all()
            ticket = ticketing.create_alert_ticket(newest, rule, alert_context(newest))
            count = alerts.update(ticket_id=ticket.pk)
            Ticket.objects.filter(pk=ticket.pk).update(occurrence_count=max(1, count))
            AlertGroup.objects.filter(pk=group.pk).update(ticket_id=ticket.pk, storm_id=None)
            add_note(ticket, kind=NoteKind.SYSTEM, savepoint=False,
                     body=f"Split from alert storm ticket #{storm_ticket.number} ({count} alert{'s' if count != 1 else ''}).")
            made.append(ticket.pk)
        numbers = list(Ticket.objects.filter(pk__in=made).order_by("number").values_list("number", flat=True))
        who = f" by {actor.display_name}" if actor is not None and hasattr(actor, "display_name") else ""
        add_note(storm_ticket, kind=NoteKind.SYSTEM, savepoint=False, body=(
            f"Storm split{who} into {len(made)} ticket{'s' if len(made) != 1 else ''}: "
            + (", ".join(f"#{n}" for n in numbers) or "no condition was still active") + "."))
        AlertStorm.objects.filter(pk=storm.pk).update(state="closed", closed_at=timezone.now())
        closed = _closed_status(storm_ticket.board)
        if closed is not None and not storm_ticket.status.is_closed:
            update_ticket(storm_ticket, actor=None, changes={"status": closed})
    return made
