"""Per-provider figures for the current tenant (API answers and the RMM tab): grouped queries,
never one query per provider."""

from __future__ import annotations

from django.db.models import Count, Q

from assets.models import AssetExternalId
from integrations.models import ExternalOrganization

EMPTY = {"organizations": 0, "mapped_organizations": 0, "unmapped_organizations": 0, "missing_organizations": 0,
         "devices": 0, "active_alerts": 0}


def provider_counts(provider: str | None = None) -> dict[str, dict[str, int]]:
    """{provider slug: counts} in three grouped queries (optionally for one provider only)."""
    from alerts.models import (  # the framework reads the pipeline's figures, never the reverse
        Alert,
        AlertState,
    )

    out: dict[str, dict[str, int]] = {}

    def row(slug: str) -> dict[str, int]:
        return out.setdefault(slug, dict(EMPTY))

    orgs = ExternalOrganization.objects.all()
    devices = AssetExternalId.objects.filter(asset__retired_at__isnull=True)
    alerts = Alert.objects.filter(state=AlertState.ACTIVE)
    if provider is not None:
        orgs, devices, alerts = (orgs.filter(integration__provider=provider), devices.filter(provider=provider),
                                 alerts.filter(provider=provider))
    for r in orgs.values("integration__provider").annotate(
        n=Count("id"), mapped=Count("id", filter=Q(client__isnull=False)),
        missing=Count("id", filter=Q(missing_since__isnull=False)),
    ):
        c = row(r["integration__provider"])
        c.update(organizations=r["n"], mapped_organizations=r["mapped"], unmapped_organizations=r["n"] - r["mapped"],
                 missing_organizations=r["missing"])
    for r in devices.values("provider").annotate(n=Count("asset_id", distinct=True)):
        row(r["provider"])["devices"] = r["n"]
    for r in alerts.values("provider").annotate(n=Count("id")):
        row(r["provider"])["active_alerts"] = r["n"]
    return out


def counts_for(provider: str) -> dict[str, int]:
    return provider_counts(provider).get(provider, dict(EMPTY))
