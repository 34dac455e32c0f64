"""The incident router: the one writer of incidents and their tickets, for webhooks and polls alike.

``process_incident`` handles one IncidentRecord in one transaction:
1. the incident row is inserted if new (``ON CONFLICT DO NOTHING``: the unique constraint settles a race)
   and then locked (``SELECT ... FOR UPDATE``): a webhook worker and a poll worker handling the same report
   take turns here;
2. no ticket yet: one is made through the routing (mapped organization -> its client on the security board;
   unmapped or unknown -> the fallback client on the triage board), or, while routing is incomplete, the
   record is held and becomes a ticket as soon as routing is complete;
3. otherwise the record's state (``IncidentRecord.state()``: known values only) is compared with the state
   last applied (compare-and-set under the lock); each difference is one change with a deterministic key,
   written to the ledger (``IncidentChange``, unique per incident and key) before its effect. A change seen
   twice (webhook and poll, a poll's overlap, a replay) finds its key or an equal state and does nothing;
4. a record older than the newest one applied changes nothing.

A change on an incident whose ticket a person already closed adds a note and does not reopen the ticket:
the technician's close stands (see docs/huntress.md, "What reopens").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Q

from assets.models import Asset
from incidents.models import Incident, IncidentChange, IncidentRouting, RoutedTo
from integrations.models import Integration
from integrations.records import IncidentRecord
from integrations.registry import get_provider_class
from integrations.services import orgs
from tickets.models import NoteKind, Ticket, TicketSource
from tickets.services import add_note, create_ticket, update_ticket

from . import content, records_json
from .routing import closing_status, missing, missing_sentence, open_status, priority_for

log = logging.getLogger("incidents")

STAYS_CLOSED = "The ticket stays closed; reopen it if this needs more work."


def provider_name(integration: Integration) -> str:
    try:
        return get_provider_class(integration.provider).name
    except LookupError:
        return integration.provider


def load_routing(integration: Integration) -> IncidentRouting | None:
    return (IncidentRouting.objects.select_related(
        "security_board", "fallback_board", "fallback_client", "category", "priority_critical", "priority_high",
        "priority_low", "closed_status", "remediation_approved_status",
    ).filter(integration=integration).first())


# -- shared with escalations -------------------------------------------------------------------------
@dataclass
class Change:
    kind: str
    key: str
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def new_changes(changes: list[Change], **subject: Any) -> list[Change]:
    """The changes whose key the ledger does not hold yet (a backstop of the state comparison)."""
    if not changes:
        return []
    done = set(IncidentChange.objects.filter(key__in=[c.key for c in changes], **subject)
               .values_list("key", flat=True))
    return [c for c in changes if c.key not in done]


def record_changes(changes: list[Change], note, source: str, **subject: Any) -> None:
    tenant_id = next(iter(subject.values())).tenant_id
    IncidentChange.objects.bulk_create([
        IncidentChange(tenant_id=tenant_id, key=c.key[:300], detail=c.detail[:500], source=source[:20], note=note,
                       **subject)
        for c in changes
    ], ignore_conflicts=True)


def system_note(ticket: Ticket, body: str):
    return add_note(ticket, body=body[:60_000], kind=NoteKind.SYSTEM)


def ticket_source(provider: str) -> str:
    return provider if provider in TicketSource.values else TicketSource.ALERT


def new_ticket(*, title: str, description: str, client, site, board, priority, category, asset, provider: str,
               ref: str, test: bool) -> Ticket:
    # is_test: the product's mark of test tickets (metrics and notifications leave them out).
    return create_ticket(actor=None, board=board, title=title, description=description, client=client, site=site,
                         priority=priority, category=category, asset=asset, source=ticket_source(provider),
                         source_ref=ref[:255], is_test=test)


def close_ticket(ticket: Ticket, preferred_status) -> str:
    """Close ``ticket`` with the preferred closed status (or its board's equivalent); returns a sentence."""
    status = closing_status(preferred_status, ticket.board)
    if status is None:
        return f"It could not be closed: board {ticket.board.name!r} has no closed status."
    update_ticket(ticket, actor=None, changes={"status": status})
    return f"Ticket closed with status {status.name!r}."


def locked_ticket(ticket_id: int | None) -> Ticket | None:
    if ticket_id is None:
        return None
    return Ticket.objects.select_related("status", "board").filter(pk=ticket_id).first()


def match_asset(client, host_name: str, serial: str) -> Asset | None:
    """The client's asset for the affected host: by serial number first, then by host name."""
    if client is None or not (host_name or serial):
        return None
    assets = Asset.objects.filter(client=client, retired_at__isnull=True)
    if serial:
        found = assets.filter(serial_number__iexact=serial).order_by("id").first()
        if found is not None:
            return found
    if host_name:
        return (assets.filter(Q(hostname__iexact=host_name) | Q(name__iexact=host_name)
                              | Q(hostname__istartswith=f"{host_name}.")).order_by("id").first())
    return None


# -- the router --------------------------------------------------------------------------------------
def _outcome(action: str, incident: Incident, **extra: Any) -> dict[str, Any]:
    return {"action": f"incident:{action}", "ticket": incident.ticket_id, "incident": incident.pk, **extra}


def _locked_incident(integration: Integration, external_id: str, test: bool) -> Incident:
    Incident.objects.bulk_create([Incident(
        tenant_id=integration.tenant_id, integration=integration, provider=integration.provider,
        external_id=external_id, is_test=test,
    )], ignore_conflicts=True)
    return Incident.objects.select_for_update().get(integration=integration, external_id=external_id)


def process_incident(integration: Integration, record: IncidentRecord, *, source: str, inbound_event=None,
                     test: bool = False, quiet_closure: bool = False) -> dict[str, Any]:
    """Apply one incident record (see the module docstring). ``quiet_closure``: the closure is our own
    write-back, already explained by its note."""
    external_id = (record.external_id or "")[:255]
    if not external_id:
        return {"action": "incident:ignored", "ticket": None, "detail": "An incident record without an id."}
    routing = load_routing(integration)
    name = provider_name(integration)
    with transaction.atomic():
        incident = _locked_incident(integration, external_id, test)
        ticket = locked_ticket(incident.ticket_id)
        known = incident.provider_updated_at
        if ticket is not None and record.updated_at and known and record.updated_at < known:
            _describe(incident, record, only_missing=True)
            incident.save()
            return _outcome("stale", incident, detail="An older version of the report: nothing to change.")
        if ticket is None:
            lacking = missing(routing)
            if lacking:
                _hold(incident, record)
                return _outcome("held", incident, detail=missing_sentence(lacking))
            ticket, created_state = _create(integration, routing, incident, record, name, test)
            record_changes([Change("created", "created", f"ticket #{ticket.number}")], None, source,
                           incident=incident)
            old_state = created_state
            action = "ticket_created"
        else:
            old_state = dict(incident.state or {})
            action = None
        new_state = record.state()
        stamp = record.updated_at.isoformat() if record.updated_at else f"n{incident.changes.count()}"
        changes = new_changes(_diff(old_state, new_state, record, stamp), incident=incident)
        applied = _apply(changes, incident, ticket, routing, record, name, source, quiet_closure=quiet_closure)
        merged = {**(incident.state or {}), **new_state} if action is None else {**created_state, **new_state}
        incident.state = merged
        if record.updated_at and (known is None or record.updated_at > known):
            incident.provider_updated_at = record.updated_at
        _describe(incident, record)
        incident.is_closed = bool(merged.get("is_closed", incident.is_closed))
        incident.save()
        _refresh_ticket(ticket, incident, record, name)
    if action is None:
        action = "updated" if applied else "redelivery"
    return _outcome(action, incident, changes=[c.key for c in applied])


def _hold(incident: Incident, record: IncidentRecord) -> None:
    held = incident.held_record or {}
    newer = record.updated_at is None or not held.get("updated_at") or \
        record.updated_at.isoformat() >= str(held.get("updated_at"))
    if newer:
        incident.held_record = records_json.to_json(record)
    incident.held = True
    _describe(incident, record, only_missing=not newer)
    incident.save()


def _describe(incident: Incident, record: IncidentRecord, *, only_missing: bool = False) -> None:
    """Copy what the record knows onto the row (for lists and the status card)."""
    values = {
        "organization_external_id": (record.organization_external_id or "")[:255],
        "organization_name": (record.organization_name or "")[:500],
        "subject": (record.subject or "")[:500],
        "severity": (record.severity or "")[:10],
        "status": (record.status or "")[:50],
        "url": (record.url or "")[:1000],
        "host_name": (record.host_name or "")[:255],
    }
    for attr, value in values.items():
        if value and (not only_missing or not getattr(incident, attr)):
            setattr(incident, attr, value)


def _create(integration: Integration, routing: IncidentRouting, incident: Incident, record: IncidentRecord,
            name: str, test: bool) -> tuple[Ticket, dict[str, Any]]:
    """The incident's ticket, through the routing; returns it and the state its content shows."""
    resolved = None
    if record.organization_external_id:
        resolved = orgs.resolve_organization(integration, record.organization_external_id)
        if resolved is None and not test:
            # Never synced (or new since): listed unmapped (amber) in the mapping table from now on.
            orgs.discover(integration, record.organization_external_id, record.organization_name)
    if resolved is not None:
        client, site, board, routed = resolved.client, resolved.site, routing.security_board, RoutedTo.MAPPED
    else:
        client, site, board, routed = routing.fallback_client, None, routing.fallback_board, RoutedTo.FALLBACK
    asset = match_asset(client, record.host_name, record.host_serial)
    ticket = new_ticket(
        title=content.title_of(record, name, test=test),
        description=content.description_of(record, name, routed_to_fallback=routed == RoutedTo.FALLBACK,
                                           asset_name=asset.name if asset else "", test=test),
        client=client, site=site, board=board, priority=priority_for(routing, record.severity or "high"),
        category=routing.category, asset=asset, provider=integration.provider,
        ref=f"{integration.provider}:incident:{record.external_id}", test=test,
    )
    incident.ticket, incident.routed_to, incident.held, incident.held_record = ticket, routed, False, {}
    if test:
        incident.is_test = True
    # The ticket shows the report as it is, except its closure: a report closed before we first saw it
    # still gets its ticket, closed (or noted) as the routing says, like any other closure.
    state = record.state()
    if state.get("is_closed"):
        state["is_closed"] = False
        state.pop("status", None)
    if record.remediations is None:
        state.pop("remediations", None)
    return locked_ticket(ticket.pk), state


def _diff(old: dict[str, Any], new: dict[str, Any], record: IncidentRecord, stamp: str) -> list[Change]:
    out: list[Change] = []
    severity = new.get("severity")
    if severity and severity != old.get("severity"):
        out.append(Change("severity", f"severity:{severity}@{stamp}", f"{old.get('severity') or '?'} -> {severity}",
                          {"old": old.get("severity"), "new": severity}))
    if "remediations" in new:
        before, after = old.get("remediations"), new["remediations"]
        if before is None:
            out.append(Change("full_report", "full_report", f"{len(after)} remediation(s)"))
        else:
            for rem_id, status in after.items():
                if before.get(rem_id) != status:
                    out.append(Change("remediation", f"remediation:{rem_id}:{status}",
                                      f"{before.get(rem_id) or 'new'} -> {status}",
                                      {"id": rem_id, "old": before.get(rem_id), "new": status}))
    was_closed, now_closed = bool(old.get("is_closed")), new.get("is_closed")
    status = new.get("status") or ""
    if now_closed is True and not was_closed:
        out.append(Change("closed", f"closed:{status or 'closed'}@{stamp}", status or "closed", {"status": status}))
    elif now_closed is False and was_closed:
        out.append(Change("reopened", f"reopened:{status or 'open'}@{stamp}", status or "open", {"status": status}))
    elif status and old.get("status") and status != old.get("status") and not now_closed:
        out.append(Change("status", f"status:{status}@{stamp}", f"{old.get('status')} -> {status}",
                          {"old": old.get("status"), "new": status}))
    return out


def _apply(changes: list[Change], incident: Incident, ticket: Ticket, routing: IncidentRouting,
           record: IncidentRecord, name: str, source: str, *, quiet_closure: bool) -> list[Change]:
    if not changes:
        return []
    closed_by_person = ticket.status.is_closed
    by_kind: dict[str, list[Change]] = {}
    for c in changes:
        by_kind.setdefault(c.kind, []).append(c)

    def note(group: list[Change], lines: list[str], *, stays_closed: bool = True) -> None:
        if stays_closed and closed_by_person:
            lines.append(STAYS_CLOSED)
        record_changes(group, system_note(ticket, "\n".join(lines)), source, incident=incident)

    if "severity" in by_kind:
        c = by_kind["severity"][0]
        lines = [f"{name} changed the severity from {c.data['old'] or 'not reported'} to {c.data['new']}."]
        priority = priority_for(routing, c.data["new"])
        if priority is not None and ticket.priority_id != priority.pk:
            update_ticket(ticket, actor=None, changes={"priority": priority})
            lines.append(f"Priority set to {priority.name!r}.")
        note(by_kind["severity"], lines)
    if "full_report" in by_kind:
        lines = [f"The full report from {name} arrived."]
        if record.summary:
            lines.append(f"SOC summary:\n{record.summary}")
        if record.body_text:
            lines.append(f"Details:\n{record.body_text}")
        indicators = content.indicators_block(record)
        if indicators:
            lines.append(indicators)
        lines.append(content.remediations_block(record))
        note(by_kind["full_report"], lines)
    if "remediation" in by_kind:
        by_id = {r.external_id: r for r in record.remediations or []}
        lines = []
        approved = False
        for c in by_kind["remediation"]:
            r = by_id.get(c.data["id"])
            shown = content.remediation_line(r) if r else f"Remediation {c.data['id']}: {c.data['new']}"
            lines.append(f"- {'New remediation' if c.data['old'] is None else 'Remediation now ' + c.data['new']}: "
                         f"{shown}")
            approved = approved or c.data["new"] == "approved"
        header = f"{name} updated the remediation plan:"
        if approved:
            lines.append(_approved_status(ticket, routing, closed_by_person))
        note(by_kind["remediation"], [header, *[x for x in lines if x]])
    if "closed" in by_kind:
        c = by_kind["closed"][0]
        word = c.data["status"] or "closed"
        if quiet_closure:
            record_changes(by_kind["closed"], None, source, incident=incident)
        elif closed_by_person:
            note(by_kind["closed"], [f"{name} closed the incident (status: {word}). The ticket was already closed."],
                 stays_closed=False)
        elif routing.close_on_resolve:
            note(by_kind["closed"], [f"{name} closed the incident (status: {word}).",
                                     close_ticket(ticket, routing.closed_status)], stays_closed=False)
        else:
            note(by_kind["closed"], [(f"{name} closed the incident (status: {word}). Closing tickets when {name} "
                                     "closes the incident is off: close this ticket when your work is done.")],
                 stays_closed=False)
    if "reopened" in by_kind:
        word = by_kind["reopened"][0].data["status"] or "open"
        note(by_kind["reopened"], [f"{name} reopened the incident (status: {word})."])
    if "status" in by_kind:
        c = by_kind["status"][0]
        note(by_kind["status"], [f"{name} status changed from {c.data['old']} to {c.data['new']}."])
    return changes


def _approved_status(ticket: Ticket, routing: IncidentRouting, closed_by_person: bool) -> str:
    preferred = routing.remediation_approved_status
    if preferred is None or closed_by_person:
        return ""
    status = open_status(preferred, ticket.board)
    if status is None:
        return (f"Status {preferred.name!r} does not apply to board {ticket.board.name!r}: the ticket's status "
                "was left as it is.")
    if ticket.status_id == status.pk:
        return ""
    update_ticket(ticket, actor=None, changes={"status": status})
    return f"Ticket moved to {status.name!r} (remediation approved)."


def _refresh_ticket(ticket: Ticket, incident: Incident, record: IncidentRecord, name: str) -> None:
    """Quiet fixes once a fuller record arrives: the real title instead of the placeholder, the asset."""
    changes: dict[str, Any] = {}
    placeholder = (content.TEST_PREFIX if incident.is_test else "") + f"{name} incident {record.external_id}"
    if record.subject and ticket.title.startswith(placeholder) and not ticket.title.startswith(record.subject):
        changes["title"] = content.title_of(record, name, test=incident.is_test)
    if ticket.asset_id is None and (record.host_name or record.host_serial) and ticket.client_id:
        asset = match_asset(ticket.client, record.host_name, record.host_serial)
        if asset is not None:
            changes["asset"] = asset
    if changes:
        update_ticket(ticket, actor=None, changes=changes)


def release_held(integration: Integration) -> dict[str, int]:
    """Tickets for the incidents held while routing was incomplete (each from its newest record)."""
    done = still = 0
    for pk in list(Incident.objects.filter(integration=integration, held=True).values_list("pk", flat=True)):
        incident = Incident.objects.filter(pk=pk, held=True).first()
        if incident is None or not incident.held_record:
            continue
        outcome = process_incident(integration, records_json.from_json(incident.held_record), source="held",
                                   test=incident.is_test)
        if outcome["action"] == "incident:held":
            still += 1
        else:
            done += 1
    return {"released": done, "held": still}
