"""An integration that needs a person: its access was refused for good (a revoked or expired OAuth
refresh token, rejected credentials). The integration turns ``error`` with the reason, which stops
its polls and jobs (they require a connected integration) until someone reconnects it, and the
tenant's admins hear of it once, in the app and by email.

"Once" rests on a conditional UPDATE: only the call that moves the integration out of ``connected``
(or ``not_configured``) notifies; later failures of an integration already in error stay quiet.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from integrations.models import Integration, IntegrationStatus

log = logging.getLogger("integrations.attention")

RECONNECT = "Reconnect required"


def panel_path(integration: Integration) -> str:
    from django.urls import reverse

    return reverse("settings-rmm-provider", args=[integration.provider])


def access_lost(integration: Integration, message: str) -> bool:
    """Turn the integration to ``error`` (last_error = ``message``); True, and the admins notified,
    when this call made the change. Works inside a transaction (the emails go after its commit)."""
    from integrations.registry import get_provider_class

    message = (message or RECONNECT)[:2000]
    if RECONNECT.lower() not in message.lower():
        message = f"{RECONNECT}: {message}"
    changed = (Integration.objects.unscoped().filter(pk=integration.pk)
               .exclude(status=IntegrationStatus.ERROR).update(status=IntegrationStatus.ERROR, last_error=message))
    Integration.objects.unscoped().filter(pk=integration.pk).update(last_error=message)
    integration.status, integration.last_error = IntegrationStatus.ERROR, message
    if not changed:
        return False
    try:
        name = get_provider_class(integration.provider).name
    except LookupError:
        name = integration.provider
    notify_admins(integration.tenant_id, title=f"{name}: reconnect required", body=message,
                  url=panel_path(integration))
    return True


def notify_admins(tenant_id: int, *, title: str, body: str, url: str) -> int:
    """An in-app notification for every admin of the tenant (not twice while one is unread), and an
    email to each after the surrounding transaction commits. Returns how many were notified."""
    from psa.models import Membership, Notification, Role

    admins = list(Membership.objects.filter(tenant_id=tenant_id, role=Role.ADMIN, user__is_active=True)
                  .select_related("user"))
    notified, emails = 0, []
    for membership in admins:
        user = membership.user
        if Notification.objects.unscoped().filter(user=user, url=url, title=title[:300], read_at__isnull=True).exists():
            continue
        Notification.objects.unscoped().create(tenant_id=tenant_id, user=user, title=title[:300], body=body[:2000],
                                               url=url)
        notified += 1
        if user.email:
            emails.append(user.email)
    if emails:
        link = f"{settings.PUBLIC_BASE_URL}{url}" if settings.PUBLIC_BASE_URL else url
        transaction.on_commit(lambda: _email(title, f"{body}\n\n{link}", emails))
    return notified


def _email(title: str, body: str, recipients: list[str]) -> None:
    for address in recipients:  # one mail each: admins never see each other's addresses
        try:
            send_mail(title, body, settings.DEFAULT_FROM_EMAIL, [address])
        except Exception as exc:  # noqa: BLE001  (a mail server hiccup must not undo anything)
            log.warning("integration alarm email failed (%s)", type(exc).__name__)
