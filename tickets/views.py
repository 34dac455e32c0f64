"""Ticket web pages for technicians. Every change goes through tickets.services, like the API."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db.models import Max, Min
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from psa.models import Client
from psa.web.access import member_required, paginate
from tickets import services
from tickets.api.filtersets import TicketFilter
from tickets.forms import NoteForm, TicketCreateForm, TicketUpdateForm
from tickets.models import ActivityKind, Board, Priority, Status, Ticket

STATES = [("open", "Open"), ("closed", "Closed"), ("all", "All")]


def _list_queryset():
    return Ticket.objects.select_related("client", "board", "status", "priority", "assignee").order_by("-created_at", "-id")


@member_required
def ticket_list(request):
    state = request.GET.get("state", "open")
    if state not in dict(STATES):
        state = "open"
    data = {k: request.GET.get(k, "").strip() for k in ("board", "status", "client", "q", "assignee")}
    if data["assignee"] == "me":
        data["assignee"] = str(request.user.pk)
    if state != "all":
        data["is_closed"] = "true" if state == "closed" else "false"
    filterset = TicketFilter({k: v for k, v in data.items() if v}, queryset=_list_queryset())
    tickets = filterset.qs if filterset.is_valid() else Ticket.objects.none()
    page, query = paginate(request, tickets)
    filtered = any(request.GET.get(k) for k in ("board", "status", "client", "q", "assignee")) or state != "open"
    return render(request, "tickets/list.html", {
        "page": page, "query": query, "state": state, "states": STATES, "f": data, "filtered": filtered,
        "filter_errors": filterset.errors,
        "boards": Board.objects.all(), "statuses": Status.objects.select_related("board"),
        "clients": Client.objects.all(),
    })


@member_required
def ticket_new(request):
    form = TicketCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        cd = form.cleaned_data
        try:
            ticket = services.create_ticket(
                actor=request.user, board=cd["board"], title=cd["title"], description=cd["description"],
                client=cd["client"], priority=cd["priority"], assignee=cd["assignee"],
            )
        except services.TicketError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Ticket #{ticket.number} created.")
            return redirect("web-ticket", pk=ticket.pk)
    return render(request, "tickets/new.html", {"form": form}, status=400 if form.errors else 200)


def _get_ticket(pk: int) -> Ticket:
    # Scoped manager: another tenant's ticket is simply not found (404).
    return get_object_or_404(
        Ticket.objects.select_related("client", "site", "contact", "board", "status", "priority", "category", "assignee", "asset"),
        pk=pk,
    )


def _describe(activities, ticket: Ticket) -> list[dict]:
    """Activity rows as sentences; names looked up once per page, not per row."""
    statuses = {s.pk: s.name for s in Status.objects.filter(pk__in=_ids(activities, ActivityKind.STATUS))}
    priorities = {p.pk: p.name for p in Priority.objects.filter(pk__in=_ids(activities, ActivityKind.PRIORITY))}
    users = {u.pk: u.display_name for u in get_user_model().objects.filter(pk__in=_ids(activities, ActivityKind.ASSIGNMENT))}
    names = {ActivityKind.STATUS: (statuses, "Status"), ActivityKind.PRIORITY: (priorities, "Priority"),
             ActivityKind.ASSIGNMENT: (users, "Assignee")}
    out = []
    for a in activities:
        data = a.data or {}
        if a.kind in names:
            lookup, label = names[a.kind]
            text = f"{label}: {lookup.get(data.get('old'), 'none')} → {lookup.get(data.get('new'), 'none')}"
        elif a.kind == ActivityKind.NOTE:
            text = f"Added a{'n internal' if data.get('kind') == 'internal' else ' ' + str(data.get('kind', ''))} note"
        elif a.kind == ActivityKind.TIME:
            text = f"Logged {data.get('minutes')} minutes"
        elif a.kind == ActivityKind.UPDATE:
            text = "Changed " + ", ".join(data.get("fields", []))
        elif a.kind == ActivityKind.CREATED:
            text = f"Created ticket ({data.get('source', ticket.source)})"
        else:
            text = a.get_kind_display()
        out.append({"at": a.created_at, "actor": a.actor.display_name if a.actor else "System", "text": text})
    return out


def _ids(activities, kind) -> set:
    ids = set()
    for a in activities:
        if a.kind == kind:
            ids.update(v for v in (a.data.get("old"), a.data.get("new")) if isinstance(v, int))
    return ids


# An alert storm can put thousands of occurrence notes on one ticket: the page shows the
# latest ones unless asked for all (the API pages through every note).
NOTES_SHOWN = 100


def _notes(request, ticket: Ticket) -> tuple[list, int]:
    qs = ticket.notes.select_related("author")
    total = qs.count()
    if total <= NOTES_SHOWN or request.GET.get("notes") == "all":
        return list(qs.order_by("created_at", "id")), 0
    latest = list(qs.order_by("-created_at", "-id")[:NOTES_SHOWN])
    return latest[::-1], total - NOTES_SHOWN


def _context(request, ticket: Ticket, note_form=None, update_form=None) -> dict:
    activities = list(ticket.activities.select_related("actor").order_by("created_at", "id"))
    notes, hidden_notes = _notes(request, ticket)
    return {
        "ticket": ticket,
        "notes": notes,
        "hidden_notes": hidden_notes,
        "activity": _describe(activities, ticket),
        "touched": services.human_touched(ticket.pk),
        # Providers that alerted on the same device (alerts.services.correlation), and the alerts themselves.
        "related": list(Ticket.objects.filter(pk__in=ticket.relations.values("related_id"))
                        .select_related("status").order_by("-created_at", "-id")),
        # When its alerts were first and last seen (count, first seen, last seen in the Details card).
        "seen": ticket.alerts.aggregate(first=Min("first_seen"), last=Max("last_seen")),
        "ticket_alerts": list(ticket.alerts.order_by("-last_seen", "-id")
                              .only("pk", "title", "external_id", "provider", "state", "last_seen")[:20]),
        "note_form": note_form or NoteForm(),
        "update_form": update_form or TicketUpdateForm(ticket=ticket),
    }


def _render_detail(request, ticket: Ticket, status: int = 200, **forms):
    ctx = _context(request, ticket, **forms)
    if request.htmx:
        # htmx swaps only 2xx answers; errors are shown inside the swapped fragment.
        return render(request, "tickets/_main.html", ctx)
    return render(request, "tickets/detail.html", ctx, status=status)


@member_required
def ticket_detail(request, pk: int):
    return _render_detail(request, _get_ticket(pk))


@require_POST
@member_required
def ticket_add_note(request, pk: int):
    ticket = _get_ticket(pk)
    form = NoteForm(request.POST)
    if not form.is_valid():
        return _render_detail(request, ticket, status=400, note_form=form)
    services.add_note(ticket, body=form.cleaned_data["body"], kind=form.cleaned_data["kind"], author=request.user)
    if request.htmx:
        request.flash = "Note added."
        return _render_detail(request, ticket)
    messages.success(request, "Note added.")
    return redirect("web-ticket", pk=ticket.pk)


@require_POST
@member_required
def ticket_update(request, pk: int):
    ticket = _get_ticket(pk)
    form = TicketUpdateForm(request.POST, ticket=ticket)
    if not form.is_valid():
        return _render_detail(request, ticket, status=400, update_form=form)
    changes = form.changes(ticket)
    if changes:
        try:
            ticket = services.update_ticket(ticket, actor=request.user, changes=changes)
        except services.TicketError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
            return _render_detail(request, ticket, status=400, update_form=form)
        ticket = _get_ticket(pk)
    text = "Ticket updated." if changes else "Nothing changed."
    if request.htmx:
        request.flash = text
        return _render_detail(request, ticket, update_form=TicketUpdateForm(ticket=ticket))
    messages.success(request, text)
    return redirect("web-ticket", pk=ticket.pk)

