"""Read-only figures for the provider cards on the RMM tab (counts and timestamps, no workflow)."""

from __future__ import annotations

from typing import Any

from integrations.models import Integration, IntegrationStatus
from integrations.services.status import EMPTY


def provider_stats(integration: Integration | None, counts: dict[str, int] | None) -> dict[str, Any]:
    """Card figures from ``integrations.services.status.provider_counts()`` (computed once per page)."""
    c = counts or EMPTY
    return {
        "status": integration.status if integration else IntegrationStatus.NOT_CONFIGURED,
        "mapped": c["mapped_organizations"],
        "unmapped": c["unmapped_organizations"],
        "devices": c["devices"],
        "active_alerts": c["active_alerts"],
    }
