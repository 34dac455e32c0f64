"""Live directory changes (``DirectoryChange`` records, e.g. Level's ``device_updated`` / ``group_deleted``
webhooks): the organization tree and the assets change at once, without waiting for a sync.

- organization upsert: create or refresh the ExternalOrganization (name, parent, kind, count); its
  mapping is never touched; one that had gone missing comes back;
- organization delete: ``missing_since`` is set, the row and its mapping stay (a sync does the same);
- device upsert: the device sync's own per-device logic (``devices.apply_devices``: serial match within
  the client, field mapping, contact link); a device now in an organization that resolves to no client
  is retired, as the next full sync would;
- device delete: its asset is retired, never deleted (it comes back if the device does).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from assets.models import Asset, AssetExternalId
from integrations.models import ExternalOrganization, Integration
from integrations.records import DirectoryChange, DirectoryChangeKind, ExternalOrg
from integrations.signals import organizations_changed
from psa.tenancy import tenant_context

from . import devices, orgs


def _clip(value: Any, n: int) -> str:
    return str(value or "").replace("\x00", "")[:n]


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31 else None


def deliver(integration: Integration, change: DirectoryChange, *, source: str, inbound_event=None) -> dict[str, Any]:
    """The sink registered for DirectoryChange (integrations.apps)."""
    with tenant_context(integration.tenant_id):
        kind = change.kind
        if kind == DirectoryChangeKind.ORG_UPSERT and change.organization is not None:
            return upsert_organization(integration, change.organization)
        if kind == DirectoryChangeKind.ORG_DELETE and change.deleted_external_id:
            return organization_gone(integration, change.deleted_external_id)
        if kind == DirectoryChangeKind.DEVICE_UPSERT and change.device is not None:
            return upsert_device(integration, change)
        if kind == DirectoryChangeKind.DEVICE_DELETE and change.deleted_external_id:
            return retire_device(integration, change.deleted_external_id, "deleted in the provider")
    return {"action": "directory_ignored", "detail": f"Nothing to apply for a {change.kind} change."}


def _changed(integration: Integration) -> None:
    # The pipeline's per-process configuration cache resolves organizations: reload it everywhere.
    organizations_changed.send(sender=ExternalOrganization, tenant_id=integration.tenant_id)


def upsert_organization(integration: Integration, org: ExternalOrg) -> dict[str, Any]:
    ext_id = _clip(org.external_id, 255)
    fields: dict[str, Any] = {
        "name": _clip(org.name, 500).strip() or ext_id,
        "kind": _clip(org.kind, 50),
        "parent_external_id": _clip(org.parent_external_id, 255) or None,
        "last_seen_at": timezone.now(),
        "missing_since": None,
    }
    count = _count(org.device_count)
    if count is not None:  # events rarely carry counts: keep the last sync's
        fields["device_count"] = count
    with transaction.atomic():
        row, created = ExternalOrganization.objects.select_for_update().get_or_create(
            integration=integration, external_id=ext_id, defaults={"tenant_id": integration.tenant_id, **fields})
        if not created:
            ExternalOrganization.objects.filter(pk=row.pk).update(**fields)
    _changed(integration)
    return {"action": "organization_created" if created else "organization_updated", "organization": row.pk}


def organization_gone(integration: Integration, external_id: str) -> dict[str, Any]:
    marked = ExternalOrganization.objects.filter(
        integration=integration, external_id=_clip(external_id, 255), missing_since__isnull=True,
    ).update(missing_since=timezone.now())
    if marked:
        _changed(integration)
    return {"action": "organization_missing" if marked else "directory_ignored",
            "detail": "" if marked else "Organization unknown or already marked missing."}


def upsert_device(integration: Integration, change: DirectoryChange) -> dict[str, Any]:
    record = change.device
    org_id = record.organization_external_id or ""
    resolved: dict[str, tuple[int, int | None]] = {}
    if org_id:
        found = orgs.resolve_organization(integration, org_id)
        if found is None:
            # In an organization we do not map (or do not know yet): as a full sync would, retire it.
            outcome = retire_device(integration, record.external_id, "moved to an unmapped organization")
            if outcome["action"] == "asset_retired":
                return outcome
            return {"action": "device_unmapped", "detail": f"Organization {org_id} resolves to no client."}
        resolved[org_id] = (found.client.pk, found.site.pk if found.site is not None else None)
    totals = devices.apply_devices(integration, [record], resolved=resolved, partial=change.partial)
    if not totals.asset_ids:
        return {"action": "device_unmapped", "detail": "The device names no organization and is not known yet."}
    return {"action": "asset_created" if totals.created else "asset_updated", "asset": totals.asset_ids[0]}


def retire_device(integration: Integration, external_id: str, why: str) -> dict[str, Any]:
    asset_ids = list(AssetExternalId.objects.filter(
        provider=integration.provider, external_id=_clip(external_id, 255)).values_list("asset_id", flat=True))
    retired = Asset.objects.filter(pk__in=asset_ids, retired_at__isnull=True).update(
        retired_at=timezone.now(), updated_at=timezone.now())
    if not retired:
        return {"action": "directory_ignored", "detail": "No live asset has this device id."}
    return {"action": "asset_retired", "asset": asset_ids[0], "detail": why}
