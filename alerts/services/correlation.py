"""Cross-provider correlation per device: a new alert ticket on an asset that already has an open
alert ticket from another provider is linked to it as related, with a note on each naming the other.

Runs inside the alert's transaction, only when the new ticket has an asset (one SELECT); the links
and notes are written only when there is something to link. A rule condition
(``asset_has_open_ticket``) can instead merge the newer alert into the open ticket (pipeline._attach).
"""

from __future__ import annotations

from tickets.models import NoteKind, Ticket, TicketRelation, TicketSource
from tickets.services import add_note

# A device with more open tickets than this is already a mess: link the newest ones only.
MAX_LINKS = 10


def _provider_of(source_ref: str) -> str:
    return (source_ref or "").split(":", 1)[0]


def link_new_ticket(ticket: Ticket, alert, ctx: dict) -> list[int]:
    """Link ``ticket`` (just created for ``alert``) to the asset's open tickets of other providers;
    returns their ids."""
    if not alert.asset_id or alert.is_test:
        return []
    rows = list(
        Ticket.objects.filter(
            asset_id=alert.asset_id,
            status__is_closed=False,
            is_test=False,
            source__in=(TicketSource.ALERT, TicketSource.HUNTRESS),
        )
        .exclude(pk=ticket.pk)
        .order_by("-created_at", "-id")
        .values_list("pk", "number", "title", "source_ref")[: MAX_LINKS * 3]
    )
    others = [r for r in rows if _provider_of(r[3]) != alert.provider][:MAX_LINKS]
    if not others:
        return []
    device = ctx.get("device") or alert.device_name or "this device"
    reason = f"{alert.provider} and another provider alert on {device}"[:300]
    links = []
    for pk, *_ in others:
        links.append(TicketRelation(tenant_id=ticket.tenant_id, ticket_id=ticket.pk, related_id=pk, reason=reason))
        links.append(TicketRelation(tenant_id=ticket.tenant_id, ticket_id=pk, related_id=ticket.pk, reason=reason))
    TicketRelation.objects.bulk_create(links, ignore_conflicts=True)
    names = "; ".join(f"#{n} “{title}” ({_provider_of(ref) or 'manual'})" for _, n, title, ref in others)
    add_note(ticket, kind=NoteKind.SYSTEM, touch=False, savepoint=False,
             body=f"Related: {device} already has open ticket(s) from another provider: {names}.")
    for pk, *_ in others:
        add_note(Ticket(pk=pk, tenant_id=ticket.tenant_id), kind=NoteKind.SYSTEM, savepoint=False,
                 body=f"Related: {alert.provider} opened ticket #{ticket.number} “{ticket.title}” "
                      f"on the same device ({device}).")
    return [pk for pk, *_ in others]


def related_ids(ticket_id: int) -> list[int]:
    return list(TicketRelation.objects.filter(ticket_id=ticket_id).order_by("related_id")
                .values_list("related_id", flat=True))
