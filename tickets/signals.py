"""Signals other apps (the alert pipeline) listen to; tickets import nothing of them."""

from django.dispatch import Signal

# Sent after commit when a person closes a ticket. kwargs: ticket_id, tenant_id, actor_id.
ticket_closed_by_user = Signal()
