"""Signal receivers of the alert pipeline (connected in AlertsConfig.ready())."""

from __future__ import annotations

import logging

from django.dispatch import receiver

from psa.tenancy import tenant_context
from tickets.signals import ticket_closed_by_user

log = logging.getLogger(__name__)


@receiver(ticket_closed_by_user, dispatch_uid="alerts.ticket_closed_by_user")
def on_ticket_closed_by_user(sender, ticket_id: int, tenant_id: int, actor_id=None, **kwargs):
    """A person closed a ticket (sent after commit): close its alert groups now, then reset the
    still-active alerts in their providers from a task. Nothing here can block the close."""
    from alerts.services.lifecycle import ticket_closed_by_user as closed
    from alerts.tasks import reset_alerts_for_ticket

    try:
        with tenant_context(tenant_id):
            has_active = closed(ticket_id)
    except Exception:
        log.exception("alert follow-up of closed ticket %s failed", ticket_id)
        return
    if has_active:
        try:
            reset_alerts_for_ticket.apply_async(args=[tenant_id, ticket_id])
        except Exception as exc:  # broker down: the close stands; the reset is what we lose
            log.warning("reset of alerts for ticket %s not queued (%s)", ticket_id, type(exc).__name__)
