"""Signal receivers of the incident router (connected in IncidentsConfig.ready())."""

from __future__ import annotations

import logging

from django.dispatch import receiver

from tickets.signals import ticket_closing

log = logging.getLogger("incidents")


@receiver(ticket_closing, dispatch_uid="incidents.ticket_closing")
def on_ticket_closing(sender, ticket, actor=None, **kwargs):
    """A person is closing a ticket (inside its transaction): when it is an incident's and write-back is on,
    a write-back side effect per incident is committed with the close (incidents.effects)."""
    from incidents.effects import enqueue

    enqueue(ticket)
