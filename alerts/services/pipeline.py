"""The shared alert pipeline: everything after "a provider said something".

``ingest_normalized`` takes one NormalizedAlert (from a webhook, a poll or a replay) through
attribute -> suppress -> rules -> dedup -> ticket. Idempotency rests on two constraints:
the alert itself is unique per ``(integration, external_id)`` (a redelivered trigger finds its
row and changes nothing) and the open group per ``(tenant, dedup_key)`` (see dedup.py). A new
alert's row, its group upsert and its ticket are written in one short transaction, so a worker
killed half-way leaves nothing behind and the rerun does the work exactly once.

Every returned Alert carries ``alert.outcome``: {"alert", "action", "ticket", "rule"} where
action is one of ticket_created, occurrence, suppressed, ignored, unmapped, redelivery,
updated, reevaluated:<action>, refired:<action>, resolved, resolved_ticket_closed,
resolve_ignored, resolved_unseen, note_added, note_redelivery, note_without_ticket,
note_for_unseen_alert (an UPDATED event carrying a ``note``: no alert row is made for it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from alerts.models import Alert, AlertGroup, AlertState
from alerts.services import cache as config_cache
from alerts.services import dedup, effects, lifecycle, occurrences, reopen, rowsql, storm, ticketing, trace
from alerts.services.attribution import Attribution, attribute
from alerts.services.rule_index import Misses
from alerts.services.sql import insert_returning_id
from integrations.records import SEVERITIES, AlertEventKind, NormalizedAlert
from psa.tenancy import tenant_context
from psa.text import clean, clean_json

log = logging.getLogger(__name__)

# Sources: webhook | poll | replay. A replay re-evaluates unmapped and ignored alerts (after a
# mapping or rule fix); a poll re-evaluates unmapped ones (the admin mapped the organization).
REEVALUATE_ON = {"replay": (AlertState.UNMAPPED, AlertState.IGNORED), "poll": (AlertState.UNMAPPED,)}


def _sanitized(alert: NormalizedAlert) -> NormalizedAlert:
    severity = (alert.severity or "medium").lower()
    return dataclasses.replace(
        alert,
        external_id=clean(alert.external_id, 255),
        condition_key=clean(alert.condition_key, 500) or clean(alert.external_id, 500),
        severity=severity if severity in SEVERITIES else "medium",
        title=clean(alert.title, 500),
        message=clean(alert.message),
        alert_type=clean(alert.alert_type, 100),
        device_external_id=clean(alert.device_external_id, 255) or None,
        device_name=clean(alert.device_name, 255),
        serial_number=clean(alert.serial_number, 255),
        organization_external_id=clean(alert.organization_external_id, 255) or None,
        organization_name=clean(alert.organization_name, 500),
        organization_parent_external_id=clean(alert.organization_parent_external_id, 255) or None,
        raw=clean_json(alert.raw or {}),
    )


def ingest_normalized(integration, alert: NormalizedAlert, *, source: str, inbound_event=None) -> Alert:
    """Take one normalized alert through the pipeline; returns its Alert row (with ``.outcome``)."""
    with tenant_context(integration.tenant_id), config_cache.pinned():
        na = _sanitized(alert)
        if not na.external_id:
            raise ValueError(f"{integration.provider}: normalized alert without an external id")
        now = timezone.now()
        # A clock ahead of ours must not put the alert out of reach of resolves and reconcile.
        at = min(na.occurred_at, now) if na.occurred_at else now
        if na.event == AlertEventKind.UPDATED and na.note:
            return _note(integration, na)
        # A webhook trigger is nearly always a new alert id: try the insert (ON CONFLICT DO
        # NOTHING) straight away and read the existing row only when it conflicts. Polls and
        # replays mostly carry known ids: read first there.
        if na.event == AlertEventKind.RESOLVED or source != "webhook":
            existing = Alert.objects.filter(integration=integration, external_id=na.external_id).first()
            if na.event == AlertEventKind.RESOLVED:
                return _resolve_event(integration, na, existing, at)
            if existing is not None:
                return _known(integration, existing, na, source, at)
        attribution = attribute(integration, na)
        with transaction.atomic():
            created = _insert(integration, na, attribution, at, now, is_test=source == "test")
            if created is not None:
                created.outcome = evaluate(created, now=now)
                return created
        # A known alert id (a redelivery, an update, a re-fire), or a race lost to a concurrent
        # delivery of the same id that did the work.
        return _known(
            integration,
            Alert.objects.get(integration=integration, external_id=na.external_id),
            na,
            source,
            at,
        )


def _insert(
    integration, na: NormalizedAlert, attribution: Attribution, at, now, state=AlertState.ACTIVE, is_test=False
) -> Alert | None:
    values = {
        "tenant_id": integration.tenant_id,
        "integration_id": integration.pk,
        "provider": integration.provider,
        "external_id": na.external_id,
        "condition_key": na.condition_key,
        "dedup_key": dedup.dedup_key(integration.provider, na.condition_key),
        "severity": na.severity,
        "title": na.title,
        "message": na.message,
        "alert_type": na.alert_type,
        "state": state,
        "device_external_id": na.device_external_id or "",
        "device_name": na.device_name,
        "organization_external_id": na.organization_external_id or "",
        "organization_id": getattr(attribution.organization, "pk", None),
        "asset_id": attribution.asset_id,
        "client_id": attribution.client_id,
        "first_seen": at,
        "last_seen": now,
        "last_event_at": at,
        "resolved_at": at if state == AlertState.RESOLVED else None,
        "raw": na.raw,
        "is_test": is_test,
        "created_at": now,
    }
    pk = insert_returning_id(Alert, values, "ON CONFLICT (integration_id, external_id) DO NOTHING")
    if pk is None:
        return None
    alert = Alert(pk=pk, **values)
    alert._state.adding = False
    alert._attribution = attribution  # how it was attributed, for the trace
    # Cache the related rows we already hold (rules and templates read them).
    if attribution.organization is not None:
        alert.organization = attribution.organization
    if attribution.client is not None:
        alert.client = attribution.client
    if attribution.asset is not None:
        alert.asset = attribution.asset
    return alert


def evaluate(alert: Alert, *, now: dt.datetime, prelude: list | None = None) -> dict:
    """Suppress -> rules -> dedup for an attributed alert, inside the caller's transaction.

    Every decision is added to the alert's trace (alerts.services.trace), written with the state."""
    from alerts.services.rules import alert_context, match_rule
    from alerts.services.windows import matching_window

    steps = list(prelude or [])
    outcome = {"alert": alert.pk, "action": "", "ticket": None, "rule": None}
    alert.suppressed_by, alert.suppressed_until = None, None
    if alert.client_id is None:
        steps.append(trace.attribute_entry(alert, getattr(alert, "_attribution", None)))
        alert.state = AlertState.UNMAPPED
        _save_state(alert, steps)
        outcome["action"] = "unmapped"
        return outcome
    ctx = alert_context(alert)
    steps.append(trace.attribute_entry(alert, getattr(alert, "_attribution", None)))
    window = matching_window(alert.tenant_id, ctx, now)
    steps.append(trace.window_entry(window))
    if window is not None:
        alert.state = AlertState.SUPPRESSED
        alert.suppressed_by, alert.suppressed_until = window
        _save_state(alert, steps)
        outcome.update(action="suppressed", window=window[0].pk, until=window[1].isoformat())
        return outcome
    misses = Misses(keep=trace.MAX_SKIPPED)  # a few named, the rest counted: flat cost with 500 rules
    rule = match_rule(ctx, misses)
    steps.append(trace.rule_entry(rule, ctx, misses))
    alert.rule = rule
    outcome["rule"] = rule.pk
    if rule.action == "ignore":
        alert.state = AlertState.IGNORED
        _save_state(alert, steps)
        outcome["action"] = "ignored"
        return outcome
    ticket_id, created = _attach(alert, rule, ctx, now, steps)
    alert.state = AlertState.ACTIVE
    alert.ticket_id = ticket_id
    _save_state(alert, steps)
    outcome.update(action="ticket_created" if created else "occurrence", ticket=ticket_id)
    return outcome


def _save_state(alert: Alert, steps: list) -> None:
    """What evaluate decided, with its trace (one UPDATE by primary key, without ORM query building)."""
    alert.trace = trace.capped([*(alert.trace or []), *steps])
    rowsql.update_row(
        Alert,
        alert.pk,
        {
            "state": alert.state,
            "rule": alert.rule_id,
            "group": alert.group_id,
            "ticket": alert.ticket_id,
            "suppressed_by": alert.suppressed_by_id,
            "suppressed_until": alert.suppressed_until,
            "trace": alert.trace,
        },
    )


def _attach(alert: Alert, rule, ctx: dict, now, steps: list) -> tuple[int, bool]:
    """Count the firing on the condition's open group; make its ticket when the group is new.

    A rule with the ``asset_has_open_ticket`` condition puts a new group on the device's open ticket
    instead of making one."""
    from alerts.services import correlation
    from alerts.services.rules import OPEN_TICKET

    merge_into = ctx.get(OPEN_TICKET) if (rule.conditions or {}).get("asset_has_open_ticket") else None
    reopened = False
    for _ in range(5):
        row = dedup.upsert_group(
            tenant_id=alert.tenant_id,
            key=alert.dedup_key,
            condition_key=alert.condition_key,
            provider=alert.provider,
            rule_id=rule.pk,
            at=now,
        )
        alert.group_id = row.id
        if row.ticket_id is None and merge_into is not None:
            if ticketing.record_occurrence(merge_into, alert, ctx, row.occurrence_count, merged=True):
                rowsql.update_row(AlertGroup, row.id, {"ticket": merge_into})
                steps.append(trace.merged_entry(merge_into))
                return merge_into, False
            merge_into = None  # closed meanwhile: this condition gets its own ticket
        if row.ticket_id is None and not alert.is_test:
            # A new condition: its recently auto-closed ticket reopens (the rule's reopen window), or an
            # integration's burst of new conditions goes into one storm ticket (alerts.services.storm).
            held = reopen.try_reopen(alert, rule, ctx, now)
            decision = "reopened" if held else "storm"
            held = held or storm.join(alert, rule, ctx, row, now)
            if held:
                if decision == "reopened":
                    rowsql.update_row(AlertGroup, row.id, {"ticket": held})
                steps.append(trace.entry("dedup", decision, f"Ticket #{_number(held)} "
                                         + ("reopened: the condition fired again soon after its automatic close."
                                            if decision == "reopened" else
                                            "holds this integration's alert storm (too many new conditions a minute).")
                                         , ticket=held))
                return held, False
        if row.ticket_id is None:  # a new group (or its ticket was deleted): make the ticket now
            ticket = ticketing.create_alert_ticket(alert, rule, ctx)
            rowsql.update_row(AlertGroup, row.id, {"ticket": ticket.pk})
            steps.append(trace.new_ticket_entry(ticket, reopened=reopened))
            related = correlation.link_new_ticket(ticket, alert, ctx)
            if related:
                steps.append(trace.related_entry(related))
            if not alert.is_test:  # a test ticket notifies nobody
                effects.enqueue_ticket_created(alert, ticket.pk, rule)  # outbox rows, in this transaction
            return ticket.pk, True
        note = occurrences.note_for(row, rule, alert, ctx, now)  # None: coalesced into a later note
        if not ticketing.record_occurrence(row.ticket_id, alert, ctx, row.occurrence_count, note=note):
            # The ticket was closed without us hearing of it: retire the group and open a new one.
            dedup.close_stale_group(row.id, undo_increment=True)
            reopened = True
            continue
        occurrences.remember(row, note is not None, now)
        steps.append(trace.occurrence_entry(row.ticket_id, row.occurrence_count))
        return row.ticket_id, False
    raise RuntimeError(f"could not settle the open group of {alert.dedup_key}")


def _number(ticket_id: int):
    from tickets.models import Ticket

    return Ticket.objects.filter(pk=ticket_id).values_list("number", flat=True).first()


def _known(integration, alert: Alert, na: NormalizedAlert, source: str, at) -> Alert:
    """A trigger/update for an alert id we already have."""
    outcome = {"alert": alert.pk, "action": "redelivery", "ticket": alert.ticket_id, "rule": alert.rule_id}
    now = timezone.now()
    if alert.state in REEVALUATE_ON.get(source, ()):
        return _reevaluate(integration, alert, na, now, expect=alert.state, label="reevaluated")
    if (source == "poll" and alert.state == AlertState.SUPPRESSED and alert.suppressed_until is not None
            and alert.suppressed_until <= now):
        # Still active at the provider after its maintenance window ended: bring it back now rather
        # than at the next beat tick (the same re-evaluation).
        ended = reevaluate_suppressed(alert.pk, now)
        if ended is not None:
            alert.refresh_from_db()
            alert.outcome = ended
            return alert
    if alert.state == AlertState.RESOLVED and na.occurred_at and at > alert.last_event_at:
        # The same alert id fired again after it resolved (some RMMs reuse ids): a new firing.
        return _reevaluate(integration, alert, na, now, expect=AlertState.RESOLVED, label="refired", at=at)
    if na.event == AlertEventKind.UPDATED and at >= alert.last_event_at:
        Alert.objects.filter(pk=alert.pk, last_event_at__lte=at).update(
            severity=na.severity,
            title=na.title or alert.title,
            message=na.message or alert.message,
            last_seen=now,
            last_event_at=at,
        )
        outcome["action"] = "updated"
    alert.outcome = outcome
    return alert


def _note(integration, na: NormalizedAlert) -> Alert:
    """A note on a known alert (e.g. NinjaOne ACKNOWLEDGED) goes on its ticket; the alert's state,
    severity and title stay. A series we never saw opens nothing: the answer is an unsaved Alert."""
    alert = Alert.objects.filter(integration=integration, external_id=na.external_id).first()
    if alert is None:
        alert = Alert(integration=integration, provider=integration.provider, external_id=na.external_id)
        alert.outcome = {"alert": None, "action": "note_for_unseen_alert", "ticket": None, "rule": None}
        return alert
    added = alert.ticket_id is not None and ticketing.add_alert_note(alert, clean(na.note, 5000))
    action = "note_added" if added else ("note_redelivery" if alert.ticket_id else "note_without_ticket")
    alert.outcome = {"alert": alert.pk, "action": action, "ticket": alert.ticket_id, "rule": alert.rule_id}
    return alert


def _reevaluate(
    integration, alert: Alert, na: NormalizedAlert, now, *, expect: str, label: str, at=None
) -> Alert:
    attribution = attribute(integration, na)
    with transaction.atomic():
        locked = Alert.objects.select_for_update().filter(pk=alert.pk, state=expect).first()
        if locked is None:  # someone else moved it on meanwhile
            alert.refresh_from_db()
            alert.outcome = {
                "alert": alert.pk,
                "action": "redelivery",
                "ticket": alert.ticket_id,
                "rule": alert.rule_id,
            }
            return alert
        locked._attribution = attribution
        locked.client_id = attribution.client_id
        locked.asset_id = attribution.asset_id
        locked.organization_id = getattr(attribution.organization, "pk", None)
        locked.last_seen = now
        update = ["client", "asset", "organization", "last_seen"]
        if label == "refired":
            locked.group_id = locked.ticket_id = None
            locked.resolved_at = None
            locked.last_event_at = at
            locked.occurrence_count += 1
            locked.severity, locked.title, locked.message = (
                na.severity,
                na.title or locked.title,
                na.message or locked.message,
            )
            update += [
                "group",
                "ticket",
                "resolved_at",
                "last_event_at",
                "occurrence_count",
                "severity",
                "title",
                "message",
            ]
        locked.save(update_fields=update)
        prelude = [trace.entry("lifecycle", "refired", "The alert fired again after it had resolved.")] \
            if label == "refired" else None
        outcome = evaluate(locked, now=now, prelude=prelude)
    outcome["action"] = f"{label}:{outcome['action']}"
    locked.outcome = outcome
    return locked


def _resolve_event(integration, na: NormalizedAlert, alert: Alert | None, at) -> Alert:
    if alert is None:
        # Resolve before (or without) its trigger: keep it as resolved, so a late trigger for this
        # id is a redelivery and opens nothing.
        now = timezone.now()
        with transaction.atomic():
            alert = _insert(integration, na, attribute(integration, na), at, now, state=AlertState.RESOLVED)
        if alert is not None:
            alert.outcome = {"alert": alert.pk, "action": "resolved_unseen", "ticket": None, "rule": None}
            return alert
        alert = Alert.objects.get(integration=integration, external_id=na.external_id)
    alert.outcome = lifecycle.resolve_alert(alert, at=at)
    return alert


def reconcile(integration, active_external_ids: set[str], *, as_of: dt.datetime | None = None,
              covers: Callable[[str], bool] | None = None) -> dict:
    """Resolve our open alerts of ``integration`` that the provider no longer reports as active.

    Call only with the provider's complete active set, and pass as ``as_of`` the moment that
    snapshot was requested (default: now). ``covers`` (PollResult.covers) says which of our alert
    ids the snapshot speaks for: the others are left alone (``not_covered``). An alert we last
    received before ``as_of`` and absent
    from the snapshot is resolved at once; one we received after it may postdate the snapshot and
    is left for the next poll. "Received" is our own clock (``last_seen``), never the provider's
    ``occurred_at``, which can be far older than the moment the alert reached us.
    """
    with tenant_context(integration.tenant_id):
        now = timezone.now()
        as_of = as_of or now
        active = {str(x) for x in active_external_ids}
        candidates = list(
            Alert.objects.filter(
                integration=integration, state__in=lifecycle.RESOLVABLE, last_seen__lt=as_of
            ).only(
                "pk",
                "external_id",
                "state",
                "ticket_id",
                "group_id",
                "rule_id",
                "title",
                "condition_key",
                "tenant_id",
            )
        )
        summary = {"open": len(candidates), "still_active": 0, "resolved": 0, "tickets_closed": 0}
        if covers is not None:
            summary["not_covered"] = 0
        for alert in candidates:
            if covers is not None and not covers(alert.external_id):
                summary["not_covered"] += 1
                continue
            if alert.external_id in active:
                summary["still_active"] += 1
                continue
            outcome = lifecycle.resolve_alert(alert, at=now, why="the provider no longer reports it")
            if outcome["action"].startswith("resolved"):
                summary["resolved"] += 1
            if outcome["action"] == "resolved_ticket_closed":
                summary["tickets_closed"] += 1
        return summary


def reevaluate_suppressed(alert_id: int, now: dt.datetime | None = None) -> dict | None:
    """Run an alert whose maintenance window ended through suppress/rules/dedup again."""
    now = now or timezone.now()
    with transaction.atomic():
        alert = (
            Alert.objects.select_for_update(skip_locked=True)
            .filter(pk=alert_id, state=AlertState.SUPPRESSED, suppressed_until__lte=now)
            .first()
        )
        if alert is None:
            return None
        from alerts.services.cache import tenant_config

        ended = next((w.name for w in tenant_config(alert.tenant_id).windows if w.pk == alert.suppressed_by_id), None)
        outcome = evaluate(alert, now=now, prelude=[trace.window_ended_entry(ended)])
    outcome["action"] = f"window_ended:{outcome['action']}"
    return outcome


def reevaluate_ended_windows(limit: int = 500) -> dict[str, int]:
    """Every tenant's suppressed alerts whose window occurrence is over (the beat task)."""
    now = timezone.now()
    rows = list(
        Alert.objects.unscoped()
        .filter(state=AlertState.SUPPRESSED, suppressed_until__lte=now)
        .order_by("suppressed_until", "id")
        .values_list("pk", "tenant_id")[:limit]
    )
    done = 0
    for pk, tenant_id in rows:
        with tenant_context(tenant_id):
            try:
                if reevaluate_suppressed(pk, now) is not None:
                    done += 1
            except Exception:  # one bad alert must not hold back the others
                log.exception("re-evaluating suppressed alert %s failed", pk)
    return {"due": len(rows), "reevaluated": done}
