"""The alert pipeline's side effects through the outbox (outbox.services): what each kind does.

- ``alert.reset``: reset/resolve one alert in its provider after a person closed its ticket. Enqueued in
  the closing transaction (``tickets.signals.ticket_closing``), one row per still-active alert, keyed by
  the alert and the close, so a close resets each alert at most once and a reopen-and-close asks again.
  Idempotent in the provider (an alert already gone is not an error), so a retry after a crash is safe.
  ``Alert.reset_status`` / ``reset_error`` / ``reset_at`` mirror the newest reset's state for the API.
- ``notify.in_app`` / ``notify.email``: a new alert ticket's notifications, one row per user and channel,
  written in the pipeline's transaction that made the ticket.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.utils import timezone

from alerts.models import Alert, AlertState
from integrations.errors import (
    AuthFailed,
    BlockedURL,
    NotConfigured,
    NotResettable,
    PermissionDenied,
    ProviderError,
    ReconnectRequired,
)
from outbox import registry
from outbox.models import EffectState
from outbox.registry import Permanent, Skip
from psa.text import clean

log = logging.getLogger(__name__)

RESET, IN_APP, EMAIL = "alert.reset", "notify.in_app", "notify.email"
# A person must fix these (credentials, permissions, address): retrying on a timer cannot help.
NEEDS_A_PERSON = (AuthFailed, PermissionDenied, NotConfigured, BlockedURL, ReconnectRequired)


def register() -> None:
    registry.register(RESET, perform_reset, record=record_reset)
    registry.register(IN_APP, lambda effect: "", record=record_in_app)
    registry.register(EMAIL, perform_email, record=None, at_most_once=True)


# -- reset in the provider ---------------------------------------------------------------------------
def provider_name(slug: str) -> str:
    from integrations.registry import get_provider_class

    try:
        return get_provider_class(slug).name
    except LookupError:
        return slug


def enqueue_resets(ticket, closed_at) -> int:
    """Inside the closing transaction: one reset row per still-active alert whose rule and provider reset.
    Reads only (no row locks: the resolve path locks alert, group, ticket in that order)."""
    from integrations.registry import get_provider_class
    from outbox.services import enqueue

    n = 0
    stamp = closed_at.isoformat()
    for alert in Alert.objects.filter(ticket_id=ticket.pk, state=AlertState.ACTIVE).select_related("rule").only(
            "pk", "provider", "external_id", "integration_id", "rule__reset_on_close", "tenant_id"):
        if alert.rule_id and not alert.rule.reset_on_close:
            continue  # marked skipped after commit (lifecycle.mark_not_reset)
        try:
            cls = get_provider_class(alert.provider)
        except LookupError:
            continue
        if not cls.capabilities.reset_on_close:
            continue
        if enqueue(RESET, f"alert:{alert.pk}:closed:{ticket.pk}@{stamp}", label=f"Reset in {cls.name}",
                   payload={"external_id": alert.external_id}, ticket_id=ticket.pk, alert_id=alert.pk,
                   integration_id=alert.integration_id, tenant_id=ticket.tenant_id):
            n += 1
    return n


def perform_reset(effect) -> str:
    from integrations.base import opened

    alert = Alert.objects.select_related("integration").filter(pk=effect.alert_id).first()
    if alert is None:
        raise Skip("The alert no longer exists.")
    if alert.state != AlertState.ACTIVE:
        raise Skip(f"The alert was already {alert.state} when the reset was due.")
    Alert.objects.filter(pk=alert.pk).exclude(reset_status="done").update(reset_status="pending",
                                                                         reset_at=timezone.now())
    name = provider_name(alert.provider)
    try:
        with opened(alert.integration) as provider:
            provider.reset_alert(alert.external_id)
    except NotResettable as exc:  # the provider says why it cannot: a note, not a failure
        raise Skip(clean(str(exc), 1000) or f"{name} cannot reset this alert.") from None
    except NEEDS_A_PERSON as exc:
        raise Permanent(clean(str(exc), 1000) or type(exc).__name__) from None
    except ProviderError:
        raise  # down, throttled (Retry-After), an odd answer: retried with a backoff
    except Exception as exc:  # a provider bug: its kind only (messages may carry request details)
        log.exception("reset of alert %s in %s failed", alert.pk, alert.provider)
        raise Permanent(f"Unexpected error ({type(exc).__name__}).") from None
    return ""


def record_reset(effect, state: str, detail: str) -> None:
    """Inside the transaction that writes the row's state: mirror it on the alert, and a ticket note for a
    final outcome (once: the transaction is fenced on the worker's claim)."""
    from tickets.models import NoteKind, Ticket
    from tickets.services import add_note

    now = timezone.now()
    alert = Alert.objects.filter(pk=effect.alert_id).only("pk", "provider", "external_id").first()
    if alert is None:
        return
    name = provider_name(alert.provider)
    mirror = Alert.objects.filter(pk=alert.pk)
    if state == EffectState.PENDING:
        mirror.exclude(reset_status="done").update(reset_status="pending", reset_error=detail, reset_at=now)
        return
    if state == EffectState.DONE:
        mirror.update(reset_status="done", reset_error="", reset_at=now)
        mirror.filter(state__in=(AlertState.ACTIVE, AlertState.SUPPRESSED, AlertState.UNMAPPED)).update(
            state=AlertState.RESOLVED, resolved_at=now, last_event_at=now)
        body = f"Reset {alert.provider} alert {alert.external_id} after the ticket was closed."
    elif state == EffectState.SKIPPED:
        mirror.exclude(reset_status="done").update(reset_status="skipped", reset_error=detail, reset_at=now)
        body = f"{alert.provider} alert {alert.external_id} was not reset in {name}: {detail}"
    else:
        mirror.update(reset_status="failed", reset_error=detail, reset_at=now)
        body = (f"Could not reset {alert.provider} alert {alert.external_id}: {detail} "
                f"(retry from this ticket's side effects).")
    if effect.ticket_id:
        add_note(Ticket(pk=effect.ticket_id, tenant_id=effect.tenant_id), kind=NoteKind.SYSTEM, body=body,
                 savepoint=False)


# -- notifications -----------------------------------------------------------------------------------
def enqueue_ticket_created(alert: Alert, ticket_id: int, rule) -> int:
    """Inside the pipeline's transaction that made the ticket: one row per user (in-app) and per email."""
    from alerts.services.cache import tenant_config
    from outbox.services import enqueue

    if rule.pk not in tenant_config(alert.tenant_id).notifying_rules:  # most rules notify nobody (cached)
        return 0
    users = rule.notify_users.filter(tenant_membership__tenant_id=alert.tenant_id).values_list("pk", "email")
    n = 0
    for user_id, email in users:
        common = {"ticket_id": ticket_id, "alert_id": alert.pk, "integration_id": alert.integration_id,
                  "tenant_id": alert.tenant_id, "payload": {"user": user_id, "rule": rule.pk}}
        n += bool(enqueue(IN_APP, f"ticket:{ticket_id}:user:{user_id}", label=f"Notify {email}", **common))
        if rule.notify_email and email:
            n += bool(enqueue(EMAIL, f"ticket:{ticket_id}:user:{user_id}", label=f"Email to {email}", **common))
    return n


def _ticket_and_user(effect):
    from psa.models import User
    from tickets.models import Ticket

    ticket = Ticket.objects.filter(pk=effect.ticket_id).first() if effect.ticket_id else None
    user = User.objects.filter(pk=(effect.payload or {}).get("user"),
                               tenant_membership__tenant_id=effect.tenant_id).first()
    if ticket is None:
        raise Skip("The ticket no longer exists.")
    if user is None:
        raise Skip("The user is no longer a member of this tenant.")
    return ticket, user


def _title(ticket) -> str:
    return f"New alert ticket #{ticket.number}: {ticket.title}"[:300]


def record_in_app(effect, state: str, detail: str) -> None:
    """The notification row is written in the transaction that marks the side effect done: exactly once."""
    from psa.models import Notification

    if state != EffectState.DONE:
        return
    try:
        ticket, user = _ticket_and_user(effect)
    except Skip:
        return
    url = f"/tickets/{ticket.pk}/"
    if not Notification.objects.filter(user=user, url=url).exists():
        Notification.objects.create(user=user, title=_title(ticket), body=(ticket.description or "")[:2000], url=url)


def message_id(effect) -> str:
    """The same for every send of one side effect: a receiver's mail client drops a repeat."""
    domain = (settings.DEFAULT_FROM_EMAIL.rpartition("@")[2] or "psa.invalid").strip(">") or "psa.invalid"
    return f"<psa-side-effect-{effect.pk}@{domain}>"


def perform_email(effect) -> str:
    import smtplib

    from django.core.mail import EmailMessage

    ticket, user = _ticket_and_user(effect)
    if not user.email:
        raise Skip("The user has no email address.")
    url = f"/tickets/{ticket.pk}/"
    link = f"{settings.PUBLIC_BASE_URL}{url}" if settings.PUBLIC_BASE_URL else url
    msg = EmailMessage(_title(ticket), f"{ticket.description}\n\n{link}", settings.DEFAULT_FROM_EMAIL, [user.email],
                       headers={"Message-ID": message_id(effect)})
    try:
        msg.send(fail_silently=False)
    except smtplib.SMTPRecipientsRefused as exc:  # this mailbox will not take it: no retry
        raise Permanent(f"The mail server refused {user.email}: {clean(str(exc), 300)}") from None
    return f"sent to {user.email}"
