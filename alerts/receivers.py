"""Signal receivers of the alert pipeline (connected in AlertsConfig.ready())."""

from __future__ import annotations

import logging

from django.dispatch import receiver

from psa.tenancy import tenant_context
from tickets.signals import ticket_closed_by_user, ticket_closing

log = logging.getLogger(__name__)


@receiver(ticket_closing, dispatch_uid="alerts.ticket_closing")
def on_ticket_closing(sender, ticket, actor=None, **kwargs):
    """A person is closing a ticket (inside its transaction): one reset side effect per still-active alert,
    committed with the close (alerts.services.effects). The outbox delivers it, whatever the broker does."""
    from alerts.services.effects import enqueue_resets

    enqueue_resets(ticket, ticket.closed_at)


@receiver(ticket_closed_by_user, dispatch_uid="alerts.ticket_closed_by_user")
def on_ticket_closed_by_user(sender, ticket_id: int, tenant_id: int, actor_id=None, **kwargs):
    """A person closed a ticket (sent after commit): close its alert groups now (the next firing opens a new
    ticket) and record the alerts that are not reset (rule or provider) as skipped. Nothing here can block
    the close."""
    from alerts.services.lifecycle import mark_not_reset
    from alerts.services.lifecycle import ticket_closed_by_user as closed

    try:
        with tenant_context(tenant_id):
            if closed(ticket_id):
                mark_not_reset(ticket_id)
    except Exception:
        log.exception("alert follow-up of closed ticket %s failed", ticket_id)
