"""Side effects for tests that need one in a given state (the outbox's own tests make them for real)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from outbox.models import SideEffect


def failed_reset(alert, error: str = "provider down") -> SideEffect:
    """A reset of ``alert`` in its provider that failed for good (inside the alert's tenant context)."""
    now = timezone.now()
    return SideEffect.objects.create(
        kind="alert.reset", key=f"alert:{alert.pk}:test", label="Reset in the provider", state="failed",
        attempts=5, last_error=error, ticket_id=alert.ticket_id, alert=alert, integration_id=alert.integration_id,
        created_at=now, next_attempt_at=now, give_up_at=now + dt.timedelta(hours=6), done_at=now)
