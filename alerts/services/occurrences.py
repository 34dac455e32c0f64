"""Occurrence notes that coalesce: every firing counts, at most one "fired again" note per condition per
interval (the rule's ``occurrence_note_minutes``, 5 by default; 0 notes every firing).

The group row (alerts.services.dedup) carries the last note's time and the count it covered, and the first
firing no note has told yet (``unnoted_since``). The decision is taken under the group's row lock (the
upsert holds it until the firing's transaction ends), so concurrent firings never write two notes for one
interval. The first repeat is noted at once; later ones within the interval wait for the next firing after
it, or for ``flush_due`` (beat, every minute), which writes "fired N more times between T1 and T2".
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from alerts.models import Alert, AlertGroup
from alerts.services import rowsql

log = logging.getLogger(__name__)

DEFAULT_MINUTES = 5
MESSAGE_CHARS = 300


def _dt(value):
    return parse_datetime(value) if isinstance(value, str) else value


def _when(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def interval_of(rule) -> dt.timedelta:
    minutes = getattr(rule, "occurrence_note_minutes", DEFAULT_MINUTES) if rule is not None else DEFAULT_MINUTES
    return dt.timedelta(minutes=minutes or 0)


def summary(n: int, first: dt.datetime, last: dt.datetime, upto: int, alert: Alert, describe: str) -> str:
    message = (alert.message or "").strip().replace("\n", " ")
    if len(message) > MESSAGE_CHARS:
        message = message[: MESSAGE_CHARS - 1] + "…"
    last_message = f"{describe}" + (f": {message}" if message else "")
    return (f"Alert fired {n} more time{'s' if n != 1 else ''} between {_when(first)} and {_when(last)} "
            f"(occurrences {upto - n + 1}-{upto}), last message: {last_message}. "
            f"{alert.provider} alert {alert.external_id}.")


def note_for(row, rule, alert: Alert, ctx: dict, now: dt.datetime) -> str | None:
    """The note this firing writes, or None when it is coalesced into a later one."""
    from alerts.services.ticketing import describe

    noted_at = _dt(row.noted_at)
    interval = interval_of(rule)
    if noted_at is not None and interval and now - noted_at < interval:
        return None
    n = row.occurrence_count - (row.noted_count or 1)
    since = _dt(row.unnoted_since)
    if n <= 1 or since is None:
        return (f"Alert fired again (occurrence {row.occurrence_count}): {describe(alert, ctx)} at "
                f"{_when(alert.last_seen)}. {alert.provider} alert {alert.external_id}.")
    return summary(n, since, now, row.occurrence_count, alert, describe(alert, ctx))


def remember(row, noted: bool, now: dt.datetime) -> None:
    """After the occurrence was counted on the ticket: what the group's note state is now (one UPDATE, and
    none at all for a coalesced firing that is not the first since the last note)."""
    if noted:
        rowsql.update_row(AlertGroup, row.id, {"noted_at": now, "noted_count": row.occurrence_count,
                                               "unnoted_since": None})
    elif row.unnoted_since is None:
        rowsql.update_row(AlertGroup, row.id, {"unnoted_since": now})


def flush_due(now: dt.datetime | None = None, limit: int = 500) -> dict[str, int]:
    """Across tenants (beat): write the summary note of groups whose coalesced firings waited an interval."""
    from psa.tenancy import tenant_context

    now = now or timezone.now()
    rows = list(AlertGroup.objects.unscoped().filter(unnoted_since__lte=now - dt.timedelta(minutes=1))
                .order_by("unnoted_since").values_list("pk", "tenant_id")[:limit])
    written = 0
    for pk, tenant_id in rows:
        with tenant_context(tenant_id):
            try:
                written += _flush_one(pk, now)
            except Exception:  # one group must not hold back the others
                log.exception("occurrence note of group %s failed", pk)
    return {"due": len(rows), "written": written}


def _flush_one(group_id: int, now: dt.datetime) -> int:
    from alerts.services.ticketing import describe
    from tickets.models import NoteKind, Ticket
    from tickets.services import add_note

    with transaction.atomic():
        group = (AlertGroup.objects.select_for_update(skip_locked=True, of=("self",)).select_related("rule")
                 .filter(pk=group_id, unnoted_since__isnull=False).first())
        if group is None:
            return 0
        interval = interval_of(group.rule)
        if group.noted_at is not None and now - group.noted_at < interval:
            return 0
        n = group.occurrence_count - group.noted_count
        last = Alert.objects.filter(group_id=group.pk).order_by("-last_seen", "-id").first()
        if n > 0 and group.ticket_id and last is not None:
            add_note(Ticket(pk=group.ticket_id, tenant_id=group.tenant_id), kind=NoteKind.SYSTEM,
                     body=summary(n, group.unnoted_since, group.last_seen, group.occurrence_count, last,
                                  describe(last, {})),
                     savepoint=False)
        AlertGroup.objects.filter(pk=group.pk).update(noted_at=now, noted_count=group.occurrence_count,
                                                      unnoted_since=None)
    return 1 if n > 0 else 0
