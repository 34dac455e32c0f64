"""Read-only figures for the provider cards on the RMM tab (counts and timestamps, no workflow)."""

from __future__ import annotations

from typing import Any

from integrations.models import Integration, IntegrationStatus


def provider_stats(provider_cls, integration: Integration | None) -> dict[str, Any]:
    if integration is None:
        return {"status": IntegrationStatus.NOT_CONFIGURED, "mapped": 0, "unmapped": 0, "devices": 0, "active_alerts": 0}
    from alerts.models import Alert, AlertState
    from assets.models import AssetExternalId

    orgs = integration.organizations.all()
    mapped = orgs.filter(client__isnull=False).count()
    total = orgs.count()
    devices = (
        AssetExternalId.objects.filter(provider=integration.provider, asset__retired_at__isnull=True).count()
    )
    active = Alert.objects.filter(integration=integration, state=AlertState.ACTIVE).count()
    return {
        "status": integration.status,
        "mapped": mapped,
        "unmapped": total - mapped,
        "devices": devices,
        "active_alerts": active,
    }
