"""Patches and software: a provider's inventory records -> ``assets.Patch`` / ``assets.Software`` rows.

Written in bulk, ``BATCH`` devices at a time. Each (asset, provider, kind) keeps a fingerprint of what
was last written (``assets.InventoryFingerprint``): a device whose inventory did not change is not
rewritten (its fingerprint is only stamped as seen). A provider yields every device that has
inventory; once its walk completed, the assets of the mapped clients it did not yield have none, and
their old rows go. A provider answering None for a kind did not fetch it: what we have stays.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.db import transaction
from django.utils import timezone

from assets.models import Asset, AssetExternalId, InventoryFingerprint, Patch, PatchState, Software
from integrations.models import Integration, Job
from integrations.records import PatchRecord, SoftwareRecord
from integrations.registry import get_provider

from .jobs import ProgressReporter
from .orgs import resolution_map

BATCH = 500
ROWS_BATCH = 2000
KINDS = ("software", "patches")
_STATES = set(PatchState.values)


def _clip(value: Any, n: int) -> str:
    return str(value or "").replace("\x00", "").strip()[:n]


def digest(records: Iterable[Any]) -> str:
    """A stable digest of one device's inventory (order does not matter)."""
    rows = sorted(json.dumps(dataclasses.asdict(r) if dataclasses.is_dataclass(r) else r, sort_keys=True,
                             default=str) for r in records)
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def sync_inventory(integration: Integration, job: Job | None = None,
                   reporter: ProgressReporter | None = None) -> dict[str, Any]:
    """Software and patches of the devices of mapped organizations (the provider's ``iter_software`` /
    ``iter_patches``); returns per kind {devices, written, unchanged, cleared, rows} or "not fetched"."""
    resolved = resolution_map(integration)
    summary: dict[str, Any] = {}
    if not resolved:
        return {"software": "no mapped organizations", "patches": "no mapped organizations"}
    clients = {client_id for client_id, _ in resolved.values()}
    provider = get_provider(integration)
    caps = provider.capabilities
    try:
        for kind in KINDS:
            if not (caps.software if kind == "software" else caps.patches):
                continue
            stream = provider.iter_software(set(resolved)) if kind == "software" else provider.iter_patches(
                set(resolved))
            if stream is None:
                summary[kind] = "not fetched"
                continue
            summary[kind] = write(integration, kind, stream, clients=clients, reporter=reporter)
    finally:
        provider.close()
    return summary


def write(integration: Integration, kind: str, stream: Iterable[tuple[str, list]], *, clients: set[int],
          reporter: ProgressReporter | None = None) -> dict[str, int]:
    """Write one kind's complete walk: per device (external id, records). Assets of ``clients`` not in
    the walk lose this provider's rows of that kind."""
    started = timezone.now()
    totals = {"devices": 0, "written": 0, "unchanged": 0, "cleared": 0, "rows": 0, "unknown_devices": 0}
    for chunk in _chunks(iter(stream), BATCH):
        _write_batch(integration, kind, chunk, started, totals)
        if reporter:
            reporter.advance(len(chunk))
    totals["cleared"] = _clear_unseen(integration, kind, clients, started)
    return totals


def _chunks(it: Iterator, size: int) -> Iterator[list]:
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _write_batch(integration: Integration, kind: str, chunk: list[tuple[str, list]], now, totals: dict) -> None:
    slug, tenant_id = integration.provider, integration.tenant_id
    by_device: dict[str, list] = {}
    for device_id, records in chunk:  # a device repeated in a batch: its lists add up
        by_device.setdefault(_clip(device_id, 255), []).extend(r for r in records or [] if r is not None)
    assets = dict(AssetExternalId.objects.filter(provider=slug, external_id__in=list(by_device),
                                                 asset__retired_at__isnull=True)
                  .values_list("external_id", "asset_id"))
    totals["devices"] += len(by_device)
    totals["unknown_devices"] += len(set(by_device) - set(assets))
    wanted = {assets[ext]: _dedupe(kind, records) for ext, records in by_device.items() if ext in assets}
    if not wanted:
        return
    digests = {asset_id: digest(records) for asset_id, records in wanted.items()}
    known = dict(InventoryFingerprint.objects.filter(asset_id__in=list(wanted), source=slug, kind=kind)
                 .values_list("asset_id", "digest"))
    changed = sorted(a for a, d in digests.items() if known.get(a) != d)
    unchanged = [a for a in digests if known.get(a) == digests[a]]
    with transaction.atomic():
        if unchanged:
            InventoryFingerprint.objects.filter(asset_id__in=unchanged, source=slug, kind=kind).update(synced_at=now)
        if changed:
            totals["rows"] += _replace(tenant_id, slug, kind, {a: wanted[a] for a in changed})
            _stamp(tenant_id, slug, kind, {a: digests[a] for a in changed}, now)
    totals["written"] += len(changed)
    totals["unchanged"] += len(unchanged)


def _dedupe(kind: str, records: list) -> list:
    """One patch per id (a later row wins: an install record after a pending one); software as given."""
    if kind != "patches":
        return [r for r in records if isinstance(r, SoftwareRecord)]
    out: dict[str, PatchRecord] = {}
    for r in records:
        if isinstance(r, PatchRecord) and _clip(r.external_id, 255):
            out[_clip(r.external_id, 255)] = r
    return list(out.values())


def _replace(tenant_id: int, slug: str, kind: str, items: dict[int, list]) -> int:
    model = Software if kind == "software" else Patch
    model.objects.filter(asset_id__in=list(items), source=slug).delete()
    rows: list = []
    written = 0
    for asset_id, records in items.items():
        for r in records:
            rows.append(_software_row(tenant_id, slug, asset_id, r) if kind == "software"
                        else _patch_row(tenant_id, slug, asset_id, r))
            if len(rows) >= ROWS_BATCH:
                model.objects.bulk_create(rows)
                written, rows = written + len(rows), []
    if rows:
        model.objects.bulk_create(rows)
        written += len(rows)
    return written


def _software_row(tenant_id: int, slug: str, asset_id: int, s: SoftwareRecord) -> Software:
    return Software(tenant_id=tenant_id, asset_id=asset_id, source=slug, name=_clip(s.name, 500) or "(unnamed)",
                    version=_clip(s.version, 200), publisher=_clip(s.publisher, 300),
                    installed_on=_clip(s.installed_on, 100), size=_clip(s.size, 50))


def _patch_row(tenant_id: int, slug: str, asset_id: int, p: PatchRecord) -> Patch:
    state = p.state if p.state in _STATES else PatchState.PENDING
    return Patch(tenant_id=tenant_id, asset_id=asset_id, source=slug, external_id=_clip(p.external_id, 255),
                 title=_clip(p.name, 1000) or _clip(p.external_id, 1000), kb=_clip(p.kb, 50),
                 severity=_clip(p.severity, 50), state=state, kind=_clip(p.kind, 100),
                 installed=state == PatchState.INSTALLED, installed_at=p.installed_at,
                 installed_on=p.installed_at.date().isoformat() if p.installed_at else "")


def _stamp(tenant_id: int, slug: str, kind: str, digests: dict[int, str], now) -> None:
    InventoryFingerprint.objects.bulk_create(
        [InventoryFingerprint(tenant_id=tenant_id, asset_id=a, source=slug, kind=kind, digest=d, synced_at=now)
         for a, d in sorted(digests.items())],
        update_conflicts=True, unique_fields=["asset", "source", "kind"], update_fields=["digest", "synced_at"],
    )


def _clear_unseen(integration: Integration, kind: str, clients: set[int], started) -> int:
    """Assets of the mapped clients the complete walk did not name: they have no inventory of this kind."""
    slug = integration.provider
    model = Software if kind == "software" else Patch
    assets = Asset.objects.filter(client_id__in=clients, retired_at__isnull=True, external_ids__provider=slug)
    seen = InventoryFingerprint.objects.filter(source=slug, kind=kind, synced_at__gte=started).values("asset_id")
    stale = list(model.objects.filter(source=slug, asset__in=assets).exclude(asset_id__in=seen)
                 .values_list("asset_id", flat=True).distinct())
    if not stale:
        return 0
    empty = digest([])
    with transaction.atomic():
        model.objects.filter(source=slug, asset_id__in=stale).delete()
        _stamp(integration.tenant_id, slug, kind, dict.fromkeys(stale, empty), timezone.now())
    return len(stale)
