"""Signal receivers of the incident router (connected in IncidentsConfig.ready())."""

from __future__ import annotations

import logging

from django.dispatch import receiver

from psa.tenancy import tenant_context
from tickets.signals import ticket_closed_by_user

log = logging.getLogger("incidents")


@receiver(ticket_closed_by_user, dispatch_uid="incidents.ticket_closed_by_user")
def on_ticket_closed_by_user(sender, ticket_id: int, tenant_id: int, actor_id=None, **kwargs):
    """A person closed a ticket (sent after commit): when it is an incident's and write-back is on, resolve
    the incident in its provider from a task (ids only). Nothing here can block the close."""
    from incidents.services.writeback import incidents_to_write_back
    from incidents.tasks import write_back

    try:
        with tenant_context(tenant_id):
            incident_ids = incidents_to_write_back(ticket_id)
    except Exception:
        log.exception("write-back lookup for closed ticket %s failed", ticket_id)
        return
    for incident_id in incident_ids:
        try:
            write_back.apply_async(args=[tenant_id, incident_id, ticket_id])
        except Exception as exc:  # noqa: BLE001 - broker down: the close stands; the write-back is lost
            log.warning("write-back of incident %s not queued (%s)", incident_id, type(exc).__name__)
