"""Routing: read, validate and save an integration's incident routing; say what keeps it incomplete.

Incomplete routing (a field not chosen yet) may be saved: polling stays paused and the status card lists
what is missing. A value that could not create a ticket (a board with no open status, a "closed" status
that does not close, one that does not apply to a routing board, an inactive client) is refused, with
the error on its field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from incidents.models import Incident, IncidentRouting
from integrations.models import Integration
from integrations.registry import get_provider_class
from tickets.models import Board, Status
from tickets.services import TicketError, default_status_for

# The fields of the routing, in the order of the API and the card.
FK_FIELDS = ("security_board", "category", "fallback_client", "fallback_board", "priority_critical",
             "priority_high", "priority_low", "closed_status", "remediation_approved_status")
BOOL_FIELDS = ("close_on_resolve", "escalation_tickets", "write_back")
REQUIRED = (
    ("security_board", "the security board"),
    ("fallback_client", "the fallback client"),
    ("fallback_board", "the fallback (triage) board"),
    ("priority_critical", "the priority for critical incidents"),
    ("priority_high", "the priority for high incidents"),
    ("priority_low", "the priority for low incidents"),
)
PRIORITY_FIELD = {"critical": "priority_critical", "high": "priority_high", "low": "priority_low"}


def routing_for(integration: Integration) -> IncidentRouting:
    """The integration's routing (an unsaved empty one when none was saved yet)."""
    found = IncidentRouting.objects.filter(integration_id=integration.pk).first() if integration.pk else None
    return found or IncidentRouting(integration=integration, tenant_id=integration.tenant_id)


def missing(routing: IncidentRouting | None) -> list[str]:
    """What routing still needs before incidents can become tickets (empty: complete)."""
    return [label for name, label in REQUIRED if routing is None or getattr(routing, f"{name}_id") is None]


def missing_sentence(items: list[str]) -> str:
    if not items:
        return ""
    listed = items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
    return f"Incident polling is paused until routing is complete: choose {listed}."


def readiness(integration: Integration) -> str | None:
    """The sink's readiness check (integrations.sinks): why this integration's incidents cannot become
    tickets now, None when they can."""
    if integration.pk is None:
        return None
    return missing_sentence(missing(IncidentRouting.objects.filter(integration=integration).first())) or None


def _applies(status: Status, board: Board | None) -> bool:
    return board is None or status.applies_to(board)


def validate(values: dict[str, Any]) -> dict[str, list[str]]:
    """Field errors of a merged routing (model instances or None, booleans, the poll interval)."""
    errors: dict[str, list[str]] = {}

    def err(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    boards = [(name, values.get(name)) for name in ("security_board", "fallback_board")]
    for name, board in boards:
        if board is None:
            continue
        try:
            default_status_for(board)
        except TicketError:
            err(name, f"Board {board.name!r} has no open status to start tickets in: add one first.")
    client = values.get("fallback_client")
    if client is not None and not client.is_active:
        err("fallback_client", f"Client {client.name!r} is inactive: tickets for it could not be worked.")
    closed = values.get("closed_status")
    if values.get("close_on_resolve") and closed is None:
        err("closed_status", "Choose the status that closes tickets when the incident is closed.")
    if closed is not None:
        if not closed.is_closed:
            err("closed_status", f"Status {closed.name!r} does not close a ticket: choose a closed status.")
        for name, board in boards:
            if board is not None and not _applies(closed, board):
                err("closed_status", f"Status {closed.name!r} belongs to another board than {board.name!r}.")
    approved = values.get("remediation_approved_status")
    if approved is not None:
        if approved.is_closed:
            err("remediation_approved_status",
                f"Status {approved.name!r} closes the ticket: remediation approved means work in progress.")
        for name, board in boards:
            if board is not None and not _applies(approved, board):
                err("remediation_approved_status",
                    f"Status {approved.name!r} belongs to another board than {board.name!r}.")
    minutes = values.get("poll_interval_minutes")
    bounds = values.get("_bounds") or (1, 60)
    if minutes is not None and not (bounds[0] <= int(minutes) <= bounds[1]):
        err("poll_interval_minutes", f"Choose between {bounds[0]} and {bounds[1]} minutes.")
    return errors


def current_values(routing: IncidentRouting) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(routing, name) for name in FK_FIELDS + BOOL_FIELDS}
    values["poll_interval_minutes"] = routing.integration.poll_interval_minutes
    return values


class RoutingInvalid(Exception):
    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(m for msgs in errors.values() for m in msgs))
        self.errors = errors


def save(integration: Integration, changes: dict[str, Any]) -> IncidentRouting:
    """Apply ``changes`` (a partial routing) to the integration's routing: validated as a whole, saved
    under the integration's row lock. Complete routing starts polling one interval from now; incidents
    held while it was incomplete become tickets right after the commit."""
    cls = get_provider_class(integration.provider)
    with transaction.atomic():
        Integration.objects.select_for_update().filter(pk=integration.pk).first()
        routing = routing_for(integration)
        was_complete = routing.pk is not None and not missing(routing)
        values = {**current_values(routing), **changes, "_bounds": cls.poll_interval_bounds}
        errors = validate(values)
        if errors:
            raise RoutingInvalid(errors)
        for name in FK_FIELDS + BOOL_FIELDS:
            if name in changes:
                setattr(routing, name, changes[name])
        routing.save()
        complete = not missing(routing)
        fields: dict[str, Any] = {}
        if changes.get("poll_interval_minutes") is not None:
            fields["poll_interval_minutes"] = int(changes["poll_interval_minutes"])
        if complete:
            minutes = fields.get("poll_interval_minutes") or integration.poll_interval_minutes
            # "Polling starts on the next interval": the scheduler's next slot is one interval away.
            fields["next_poll_at"] = timezone.now() + dt.timedelta(minutes=minutes)
        if fields:
            Integration.objects.filter(pk=integration.pk).update(**fields)
            for k, v in fields.items():
                setattr(integration, k, v)
        if complete and not was_complete and Incident.objects.filter(integration=integration, held=True).exists():
            tenant_id, pk = integration.tenant_id, integration.pk
            transaction.on_commit(lambda: _release_later(tenant_id, pk))
    return routing


def _release_later(tenant_id: int, integration_id: int) -> None:
    from incidents.tasks import release_held

    try:
        release_held.apply_async(args=[tenant_id, integration_id])
    except Exception:  # broker down: the next poll or routing save releases them
        import logging

        logging.getLogger("incidents").warning("release of held incidents not queued", exc_info=True)


def priority_for(routing: IncidentRouting, severity: str):
    """The priority of a severity (critical, high, low; anything else counts as high: a confirmed
    incident is never played down)."""
    return getattr(routing, PRIORITY_FIELD.get(severity, "priority_high"))


def closing_status(preferred: Status | None, board: Board) -> Status | None:
    """The closed status to close a ticket on ``board`` with: the preferred one when it applies there (a
    ticket may have been moved), else one of the same name, else any closed status of the board."""
    if preferred is not None and preferred.is_closed and preferred.applies_to(board):
        return preferred
    candidates = Status.objects.filter(Q(board=board) | Q(board__isnull=True), is_closed=True)
    if preferred is not None:
        same = candidates.filter(name=preferred.name).order_by("board_id").first()
        if same is not None:
            return same
    return candidates.order_by("board_id", "position", "id").first()


def open_status(preferred: Status | None, board: Board) -> Status | None:
    """The remediation-approved status on ``board``: the configured one, or one of the same name there."""
    if preferred is None:
        return None
    if preferred.applies_to(board):
        return preferred
    return (Status.objects.filter(Q(board=board) | Q(board__isnull=True), name=preferred.name, is_closed=False)
            .order_by("board_id").first())
