""""Send test alert": a clearly marked alert through the real pipeline, for any provider.

The alert names one of the integration's organizations that resolves to the chosen client (so the
organization mapping is exercised) and, when an asset is chosen, that asset's device id for this
provider (else its serial number). It goes to the same sink as a webhook's alerts, with source
``test``: the pipeline marks the alert and its ticket as tests (left out of metrics and notifications)
and records its trace. ``close_test`` resolves it through the lifecycle and closes its ticket without
asking the provider to reset anything (the provider never knew about it).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.utils import timezone

from integrations import sinks
from integrations.models import ExternalOrganization, Integration
from integrations.records import AlertEventKind, NormalizedAlert

TEST_ALERT_TYPE = "psa_test"
SEVERITIES = ("critical", "high", "medium", "low", "info")


class TestAlertRefused(ValueError):
    """Why a test alert cannot be sent or closed (a sentence for the admin)."""


def mapped_clients(integration: Integration) -> list:
    """The clients this integration's organizations resolve to (directly or through a parent)."""
    from integrations.services.orgs import resolution_map
    from psa.models import Client

    ids = {client_id for client_id, _site in resolution_map(integration).values()}
    return list(Client.objects.filter(pk__in=ids).order_by("name", "id"))


def _organization_for(integration: Integration, client) -> ExternalOrganization | None:
    from integrations.services.orgs import resolution_map

    resolved = resolution_map(integration)
    direct = [ext for ext, (client_id, _site) in resolved.items() if client_id == client.pk]
    if not direct:
        return None
    orgs = {o.external_id: o for o in ExternalOrganization.objects.filter(integration=integration,
                                                                         external_id__in=direct)}
    # One mapped directly before one that inherits its mapping; then the oldest.
    return min(orgs.values(), key=lambda o: (o.client_id != client.pk, o.pk)) if orgs else None


def send_test_alert(integration: Integration, client, asset=None, *, user=None, severity: str = "medium") -> dict:
    """Run one test alert through the pipeline; returns {alert, ticket, trace, ...}."""
    from alerts.models import Alert
    from alerts.services.trace import present
    from assets.models import AssetExternalId
    from integrations.registry import get_provider_class

    if severity not in SEVERITIES:
        raise TestAlertRefused(f"severity must be one of {', '.join(SEVERITIES)}.")
    provider_cls = get_provider_class(integration.provider)
    provider_name = provider_cls.name
    if provider_cls.capabilities.incidents:
        # Incident reports never go through the alert pipeline: the incident router has its own "Send test".
        raise TestAlertRefused(f"{provider_name} reports incidents, not alerts: use Send test on its routing card.")
    org = _organization_for(integration, client)
    if org is None:
        raise TestAlertRefused(
            f"No {provider_name} organization is mapped to {client.name}: map one under Organizations first "
            "(the test alert goes through that mapping).")
    if asset is not None and asset.client_id != client.pk:
        raise TestAlertRefused("The asset does not belong to this client.")
    device_id = None
    if asset is not None:
        device_id = (AssetExternalId.objects.filter(asset=asset, provider=integration.provider)
                     .order_by("id").values_list("external_id", flat=True).first())
    token = uuid.uuid4().hex[:12]
    who = f" by {user.display_name}" if user is not None else ""
    record = NormalizedAlert(
        provider=integration.provider,
        external_id=f"psa-test-{token}",
        condition_key=f"psa-test:{token}",  # a condition of its own: always a new group
        event=AlertEventKind.TRIGGERED,
        severity=severity,
        title=f"[TEST] Test alert from {provider_name}",
        message=(f"Sent{who} from the {provider_name} panel to check the path from alert to ticket. "
                 "Nothing happened on the device; close it when you are done."),
        alert_type=TEST_ALERT_TYPE,
        device_external_id=device_id,
        device_name=asset.name if asset is not None else "",
        serial_number=(asset.serial_number or "") if asset is not None and not device_id else "",
        organization_external_id=org.external_id,
        organization_name=org.name,
        occurred_at=timezone.now(),
        raw={"psa_test": True, "token": token},
    )
    outcome = sinks.deliver(integration, record, source="test")
    alert = Alert.objects.select_related("ticket").get(pk=outcome["alert"])
    return {
        "alert": alert.pk,
        "ticket": alert.ticket_id,
        "ticket_number": alert.ticket.number if alert.ticket_id else None,
        "state": alert.state,
        "action": outcome.get("action", ""),
        "organization": org.external_id,
        "trace": present(alert.trace),
    }


def close_test(integration: Integration, ticket_id: Any) -> dict:
    """Resolve the test alerts of a test ticket through the lifecycle and close the ticket (no reset
    in the provider). Refused for a ticket that is not a test ticket of this integration."""
    from alerts.models import Alert, AlertState
    from alerts.services import dedup, lifecycle, ticketing
    from tickets.models import Ticket
    from tickets.services import update_ticket

    ticket = (Ticket.objects.select_related("status", "board").filter(pk=ticket_id, is_test=True).first()
              if isinstance(ticket_id, int) and not isinstance(ticket_id, bool) else None)
    alerts = list(Alert.objects.filter(ticket=ticket, integration=integration, is_test=True)) if ticket else []
    if ticket is None or not alerts:
        raise TestAlertRefused("Not a test ticket of this integration.")
    now = timezone.now()
    for alert in alerts:
        if alert.state in lifecycle.RESOLVABLE:
            lifecycle.resolve_alert(alert, at=now, why="the test is over")
    ticket.refresh_from_db()
    if not ticket.status.is_closed:
        closed = ticketing.closed_status_for(ticket.board)
        if closed is None:
            raise TestAlertRefused(f"Board {ticket.board.name} has no closed status.")
        update_ticket(ticket, actor=None, changes={"status": closed})  # no actor: no reset in the provider
        dedup.close_groups_of_ticket(ticket.pk)
    ticket.refresh_from_db()
    return {"ticket": ticket.pk, "is_closed": ticket.status.is_closed,
            "alerts_resolved": Alert.objects.filter(pk__in=[a.pk for a in alerts], state=AlertState.RESOLVED).count()}
