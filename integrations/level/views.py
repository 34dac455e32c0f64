"""Context of Level's own panel card: both alert routes, the key's access, the severity map, Backfill."""

from __future__ import annotations

from typing import Any

from integrations.services import config, jobs
from integrations.web.webhook_view import without_secret

from . import webhook
from .provider import KEY_ACCESS, LevelProvider

ACCESS_LABELS = {"read_write": "Read and write", "read_only": "Read-only", "unknown": "Unknown"}


def routes_card_context(request, provider_cls, integration) -> dict[str, Any]:
    card = config.webhook_card(integration, request)
    secret = card.pop("secret", "") or ""
    card = without_secret(card, secret)
    known = (integration.provider_state or {}).get(KEY_ACCESS)
    known = known if isinstance(known, dict) else {}
    access = known.get("access") if known.get("access") in ACCESS_LABELS else None
    return {
        "level": {
            "url": card.get("url", ""),
            "native": card.get("native") or {},
            "automation": card.get("automation") or {},
            "header_name": card.get("header_name", ""),
            "severity_rows": LevelProvider.severity_map.rows(LevelProvider(integration).severity_overrides),
            "access": access,
            "access_label": ACCESS_LABELS.get(access or "", "Not tested yet"),
            "access_reason": known.get("reason", ""),
            "access_source": "a real resolve" if known.get("source") == "resolve" else "the connection test",
            "access_at": known.get("at", ""),
            "poll_minutes": integration.poll_interval_minutes,
            "poll_enabled": integration.poll_enabled,
            "backfill_refusal": jobs.refusal(integration, jobs.POLL),
            "events": list(webhook.NATIVE_EVENTS),
        },
    }
