"""Who hears about a new alert ticket: in-app notification rows and, if the rule says so, email.

Sent from the ``notifications.alert_ticket_created`` task (queue ``notifications``), queued
after the ticket's transaction commits: no mail server is ever talked to inside a transaction.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from alerts.models import AlertRule
from psa.models import Notification
from tickets.models import Ticket

log = logging.getLogger(__name__)


def ticket_created_after_commit(tenant_id: int, ticket_id: int, rule: AlertRule) -> None:
    """Queue the notifications for a new alert ticket once the surrounding transaction commits."""
    from alerts.services.cache import tenant_config

    # Cached per process (bumped when notify_users changes): most rules notify nobody.
    if rule.pk not in tenant_config(tenant_id).notifying_rules:
        return
    rule_id = rule.pk

    def send():
        from alerts.tasks import alert_ticket_created

        try:
            alert_ticket_created.apply_async(args=[tenant_id, ticket_id, rule_id])
        except Exception as exc:  # broker down: the ticket exists; the notification is what we lose
            log.warning("alert ticket %s notification not queued (%s)", ticket_id, type(exc).__name__)

    transaction.on_commit(send)


def send_ticket_created(ticket_id: int, rule_id: int) -> dict[str, int]:
    """Idempotent per user: a rerun after a crash does not notify twice (email may, at most once more)."""
    ticket = Ticket.objects.filter(pk=ticket_id).first()
    rule = AlertRule.objects.filter(pk=rule_id).first()
    if ticket is None or rule is None:
        return {"notified": 0, "emailed": 0}
    url = f"/tickets/{ticket.pk}/"
    title = f"New alert ticket #{ticket.number}: {ticket.title}"[:300]
    notified = emailed = 0
    # Only users who are still members of this tenant.
    users = rule.notify_users.filter(tenant_membership__tenant_id=ticket.tenant_id)
    for user in users:
        if Notification.objects.filter(user=user, url=url).exists():
            continue
        Notification.objects.create(user=user, title=title, body=(ticket.description or "")[:2000], url=url)
        notified += 1
        if rule.notify_email and user.email:
            link = f"{settings.PUBLIC_BASE_URL}{url}" if settings.PUBLIC_BASE_URL else url
            try:
                send_mail(title, f"{ticket.description}\n\n{link}", settings.DEFAULT_FROM_EMAIL, [user.email])
                emailed += 1
            except Exception as exc:  # one bad mailbox or a mail server hiccup must not stop the others
                log.warning("alert ticket email to user %s failed (%s)", user.pk, type(exc).__name__)
    return {"notified": notified, "emailed": emailed}
