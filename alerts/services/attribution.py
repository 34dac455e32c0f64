"""Attribute a normalized alert: organization -> client (through the mapping), device -> asset.

Rules, decided on purpose:
- an event that names an organization is attributed by that organization only; when it is not
  mapped (no mapped ancestor either) the organization is recorded through ``orgs.discover`` so it
  appears for mapping, and the alert has no client (state ``unmapped``);
- an event that names no organization takes the client of its device's asset, if we know it;
- the asset is found by the provider identity ``(provider, device id)``, else by serial number
  within the resolved client; an asset of another client is never used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from assets.models import Asset, AssetExternalId
from integrations.records import NormalizedAlert


@dataclass
class Attribution:
    organization: Any = None  # integrations.ExternalOrganization
    client_id: int | None = None
    asset_id: int | None = None
    # The loaded rows, handed to the Alert so rules/templates do not fetch them again.
    client: Any = None
    asset: Any = None
    asset_by: str = ""  # "device id" | "serial number": how the asset was found (the alert's trace)
    mapped_via: Any = None  # the (ancestor) organization that carries the mapping

    @property
    def mapped(self) -> bool:
        return self.client_id is not None


def attribute(integration, alert: NormalizedAlert) -> Attribution:
    from integrations.services import orgs  # the framework's contract (docs/ARCHITECTURE.md)

    result = Attribution()
    named_org = bool(alert.organization_external_id)
    if named_org:
        resolved = _resolve(integration, alert.organization_external_id)
        client = getattr(resolved, "client", None) if resolved is not None else None
        if client is not None:
            result.organization = resolved.organization
            result.mapped_via = getattr(resolved, "mapped_via", None)
            result.client_id, result.client = client.pk, client
        else:
            result.organization = orgs.discover(
                integration,
                alert.organization_external_id,
                alert.organization_name or alert.organization_external_id,
                alert.organization_parent_external_id,
            )
    asset = by_identity = by_serial = None
    serial_wanted = bool(alert.serial_number) and result.client_id is not None
    if alert.device_external_id or serial_wanted:
        by_identity, by_serial = _candidates(integration, alert, result.client_id if serial_wanted else None)
    if by_identity is not None:
        if result.client_id is None and not named_org:
            result.client_id, result.client = by_identity.client_id, by_identity.client
            asset = by_identity
        elif by_identity.client_id == result.client_id:
            asset = by_identity
    asset_by_identity = asset is not None
    if asset is None and serial_wanted:
        asset = by_serial
    result.asset_id = asset.pk if asset is not None else None
    result.asset = asset
    if asset is not None:
        result.asset_by = "device id" if asset_by_identity else "serial number"
    return result


_ASSET = Asset._meta.db_table
_IDENTITY = AssetExternalId._meta.db_table


# The asset a device id names (its first identity), and the client's asset with the serial number (a
# live one before a retired one), in one round trip: the second is used only when the first is
# missing or belongs to another client. Raw SQL, scoped to the tenant, built once.
_BY_IDENTITY = (f"SELECT * FROM (SELECT a.*, 0 AS matched_by FROM {_ASSET} a JOIN {_IDENTITY} x ON x.asset_id = a.id"
                " WHERE x.tenant_id = %s AND a.tenant_id = %s AND x.provider = %s AND x.external_id = %s"
                " ORDER BY x.id LIMIT 1) AS by_identity")
_BY_SERIAL = (f"SELECT * FROM (SELECT a.*, 1 AS matched_by FROM {_ASSET} a"
              " WHERE a.tenant_id = %s AND a.client_id = %s AND a.serial_number = %s"
              " ORDER BY a.retired_at IS NOT NULL, a.retired_at, a.id LIMIT 1) AS by_serial")


def _candidates(integration, alert: NormalizedAlert, serial_client_id: int | None):
    """(asset by device id, asset by serial number within ``serial_client_id``), either None."""
    tenant_id = integration.tenant_id
    parts, params = [], []
    if alert.device_external_id:
        parts.append(_BY_IDENTITY)
        params += [tenant_id, tenant_id, integration.provider, alert.device_external_id]
    if serial_client_id is not None:
        parts.append(_BY_SERIAL)
        params += [tenant_id, serial_client_id, alert.serial_number]
    found = {a.matched_by: a for a in Asset.objects.raw(" UNION ALL ".join(parts), params)}
    return found.get(0), found.get(1)


def _resolve(integration, org_external_id: str):
    """orgs.resolve_organization, remembered per process while the tenant's configuration stamp
    holds (alerts.services.cache; mapping and organization changes replace the stamp). Only
    resolutions to a client are kept: an unmapped organization goes through ``discover``."""
    from alerts.services.cache import tenant_config
    from integrations.services import orgs

    known = tenant_config(integration.tenant_id).orgs
    key = (integration.pk, org_external_id)
    resolved = known.get(key)
    if resolved is None:
        resolved = orgs.resolve_organization(integration, org_external_id)
        if resolved is not None and getattr(resolved, "client", None) is not None and len(known) < 10_000:
            known[key] = resolved
    return resolved
