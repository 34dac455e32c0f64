"""Signals other apps (the alert pipeline) listen to; tickets import nothing of them."""

from django.dispatch import Signal

# Sent after commit when a person closes a ticket. kwargs: ticket_id, tenant_id, actor_id.
ticket_closed_by_user = Signal()

# Sent inside the closing transaction when a person closes a ticket, so receivers write what the close
# causes (outbox side effects) atomically with it. kwargs: ticket (locked, closed_at set), actor.
# Receivers insert rows only: no row locks (other paths lock alert, group, ticket in that order).
ticket_closing = Signal()
