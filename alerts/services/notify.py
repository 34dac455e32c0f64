"""Who hears about a new alert ticket: in-app notifications and, if the rule says so, email.

Both are outbox side effects (alerts.services.effects: ``notify.in_app`` and ``notify.email``) written in
the transaction that makes the ticket, one per user and channel, so a broker or mail server outage delays
them and never loses them. What remains here serves messages queued before the outbox existed.
"""

from __future__ import annotations

from django.db import transaction

from alerts.models import Alert, AlertRule


def send_ticket_created(ticket_id: int, rule_id: int) -> dict[str, int]:
    """A legacy ``notifications.alert_ticket_created`` message: write the side effects (once per cause)."""
    from alerts.services.effects import enqueue_ticket_created

    rule = AlertRule.objects.filter(pk=rule_id).first()
    alert = Alert.objects.filter(ticket_id=ticket_id).order_by("id").first()
    if rule is None or alert is None:
        return {"queued": 0}
    with transaction.atomic():
        return {"queued": enqueue_ticket_created(alert, ticket_id, rule)}
