"""Device sync driver: provider devices -> assets, streamed in batches with bulk writes.

Memory stays flat with the device count: devices are consumed from the provider's
iterator ``BATCH`` at a time, and "seen in this sync" is recorded in the database
(``Asset.updated_at`` is set for every seen asset) rather than in a Python set, so
retiring the unseen ones is one UPDATE at the end.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Max
from django.db.models.expressions import RawSQL
from django.utils import timezone

from assets.models import Asset, AssetExternalId, AssetStatus, AssetType, Software
from integrations import http
from integrations.errors import BlockedURL
from integrations.models import Integration, Job
from integrations.records import DeviceRecord
from integrations.registry import get_provider
from psa.models import Contact

from . import fieldmap
from .contacts import ContactIndex
from .jobs import ProgressReporter
from .orgs import resolution_map

log = logging.getLogger("integrations.devices")

BATCH = 500
SOFTWARE_BATCH = 2000

# Serials that BIOS vendors ship as placeholders: matching on them would merge unrelated machines.
JUNK_SERIALS = {
    "", "0", "00000000", "0000000000", "123456789", "1234567890", "none", "null", "n/a", "na", "unknown",
    "default string", "to be filled by o.e.m.", "system serial number", "not specified", "not applicable",
    "chassis serial number", "invalid", "serial", "xxxxxxxxxx",
}
_ASSET_TYPES = set(AssetType.values)
_STATUSES = set(AssetStatus.values)

# Provider-owned fields rewritten on every sync (identifiers below keep their value when the provider is silent).
UPDATE_FIELDS = [
    "client", "site", "name", "hostname", "serial_number", "asset_type", "os", "platform", "make_model", "status",
    "last_seen", "last_user", "public_ip", "local_ips", "remote_access_url", "attributes", "contact", "retired_at",
    "updated_at",
]


def _clip(value: Any, n: int) -> str:
    return str(value or "").replace("\x00", "").strip()[:n]


def usable_serial(serial: str) -> str:
    """The serial to match on, or "" when it is empty or a vendor placeholder."""
    s = _clip(serial, 255)
    return "" if s.casefold() in JUNK_SERIALS or len(set(s)) <= 1 else s


def _chunks(it: Iterator[DeviceRecord], size: int) -> Iterator[list[DeviceRecord]]:
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _apply(asset: Asset, d: DeviceRecord, client_id: int, site_id: int | None, now, *,
           mapping: dict[str, str] | None = None, partial: bool = False) -> None:
    """One device record onto its asset; ``mapping`` is the integration's field mapping. A ``partial``
    record (a webhook payload the provider could not complete) sets only the fields it carries."""
    asset.client_id = client_id
    asset.site_id = site_id
    mapped = fieldmap.apply(mapping or {}, d.raw) if mapping else fieldmap.Mapped()
    name = mapped.fields.get("name") or _clip(d.name, 255) or _clip(d.hostname, 255)
    asset.name = name or asset.name or _clip(d.external_id, 255)
    for field, value, n in (("hostname", d.hostname, 255), ("serial_number", d.serial_number, 255),
                            ("make_model", d.make_model, 255), ("os", d.os, 255), ("platform", d.platform, 50)):
        value = mapped.fields.get(field) or _clip(value, n)
        if value or not getattr(asset, field):
            setattr(asset, field, value)
    kind = mapped.fields.get("asset_type") or d.asset_type
    if not partial or kind in _ASSET_TYPES and kind != AssetType.OTHER:
        asset.asset_type = kind if kind in _ASSET_TYPES else AssetType.OTHER
    if not partial or d.status in _STATUSES and d.status != AssetStatus.UNKNOWN:
        asset.status = d.status if d.status in _STATUSES else AssetStatus.UNKNOWN
    asset.last_seen = d.last_seen or asset.last_seen
    for field, value, n in (("last_user", mapped.fields.get("last_user") or d.last_user, 255),
                            ("public_ip", mapped.fields.get("public_ip") or d.public_ip, 100)):
        value = _clip(value, n)
        if value or not partial:
            setattr(asset, field, value)
    if d.local_ips or not partial:
        asset.local_ips = [_clip(ip, 100) for ip in (d.local_ips or [])][:50]
    url = _clip(d.remote_access_url, 1000)
    if url or not partial:
        asset.remote_access_url = url if url.startswith(("https://", "http://")) else ""
    # A full record is the whole truth (an attribute whose source vanished goes); a partial one adds.
    asset.attributes = {**(asset.attributes or {}), **mapped.attributes} if partial else mapped.attributes
    asset.retired_at = None
    asset.updated_at = now


class _Totals:
    def __init__(self) -> None:
        self.created = self.updated = self.matched_by_serial = self.skipped_unmapped = self.total = 0
        self.unchanged = 0  # seen, record unchanged since the last sync: not rewritten
        self.asset_ids: list[int] = []  # the assets written, in record order (live changes report them)

    def as_dict(self, retired: int) -> dict[str, int]:
        return {"created": self.created, "updated": self.updated, "matched_by_serial": self.matched_by_serial,
                "unchanged": self.unchanged, "retired": retired, "skipped_unmapped": self.skipped_unmapped,
                "total": self.total}


def sync_devices(integration: Integration, job: Job | None = None,
                 reporter: ProgressReporter | None = None, full: bool = True) -> dict[str, Any]:
    """Sync the devices of mapped organizations (and their sub-organizations) into assets.

    ``full``: the provider listed every device of those organizations, so assets it did not
    list are retired (not deleted; un-retired when they come back).
    """
    slug = integration.provider
    resolved = resolution_map(integration)  # org external id -> (client_id, site_id)
    mapped_clients = {client_id for client_id, _ in resolved.values()}
    started = timezone.now()
    totals = _Totals()
    provider = get_provider(integration)
    mapping = fieldmap.effective(type(provider), integration.settings)
    salt = sync_salt(integration, mapping)
    seen = SeenAssets()
    try:
        with http.tally() as calls:
            try:
                devices = iter(provider.iter_devices(set(resolved))) if resolved else iter(())
                for chunk in _chunks(devices, BATCH):
                    apply_devices(integration, chunk, resolved=resolved, started=started, totals=totals,
                                  mapping=mapping, salt=salt, seen=seen)
                    if reporter:
                        reporter.advance(len(chunk))
                report = provider.device_sync_report() if resolved else {}
            finally:
                provider.close()
        if calls.all_refused:
            # The provider carried on past each refused call (per organization, say) and listed nothing:
            # that is not an empty account. Fail before retiring anything, with the guard's reason.
            raise BlockedURL(calls.refusal)
        retired = 0
        if full and mapped_clients:
            # Every asset written above has updated_at >= started, the unchanged ones are in ``seen``; the
            # rest of this provider's assets are gone.
            retired = seen.exclude(
                Asset.objects.filter(client_id__in=mapped_clients, retired_at__isnull=True, updated_at__lt=started,
                                     external_ids__provider=slug)
            ).update(retired_at=timezone.now())
    finally:
        seen.close()
    return _with_report(totals.as_dict(retired), report)


class SeenAssets:
    """Assets a sync saw but did not rewrite (their record did not change). On PostgreSQL their ids go to a
    temporary table of this session (no asset row is written for them; memory stays flat); elsewhere
    their ``updated_at`` is bumped like a written row's."""

    def __init__(self) -> None:
        self.table = ""
        if connection.vendor == "postgresql":
            self.table = f"sync_seen_{uuid.uuid4().hex[:16]}"
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE TEMPORARY TABLE {self.table} (id bigint NOT NULL)")

    def add(self, asset_ids: list[int], now) -> None:
        if not asset_ids:
            return
        if not self.table:
            Asset.objects.filter(pk__in=asset_ids).update(updated_at=now)
            return
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {self.table} (id) SELECT unnest(%s::bigint[])", [list(asset_ids)])

    def exclude(self, queryset):
        """``queryset`` without the assets seen so far."""
        return queryset.exclude(pk__in=RawSQL(f"SELECT id FROM {self.table}", ())) if self.table else queryset

    def close(self) -> None:
        if self.table:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {self.table}")
            self.table = ""


def _with_report(summary: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    """The provider's ``device_sync_report()`` joined to the sync's summary: its counts add to ours."""
    for key, value in (report or {}).items():
        if isinstance(value, int) and not isinstance(value, bool) and isinstance(summary.get(key, 0), int):
            summary[key] = summary.get(key, 0) + value
        elif key not in summary:
            summary[key] = value
    return summary


def target_for(d: DeviceRecord, resolved: dict[str, tuple[int, int | None]]) -> tuple[int, int | None] | None:
    """(client id, site id) of a device: its location (a sub-organization mapped to a site, e.g. a NinjaOne
    location) first, else its organization; None when neither resolves to a client."""
    return resolved.get(d.site_external_id or "") or resolved.get(d.organization_external_id or "")


def apply_devices(integration: Integration, chunk: list[DeviceRecord], *,
                  resolved: dict[str, tuple[int, int | None]], started=None, totals: _Totals | None = None,
                  mapping: dict[str, str] | None = None, partial: bool = False, salt: str = "",
                  seen: SeenAssets | None = None) -> _Totals:
    """Apply a batch of device records to assets: the device sync and live device changes alike.

    ``resolved``: organization external id -> (client id, site id) of the mapped organizations;
    a device of another organization is skipped. ``partial`` records carry only some fields: those
    are set, the rest kept, and one that names no organization keeps its asset's client.
    ``mapping``: the field mapping (default: the integration's effective one). ``salt``: the sync's
    settings digest (``sync_salt``); with it, a device whose record did not change is skipped (counted
    ``unchanged``); without it (live changes) every record is applied.
    """
    tenant_id, slug = integration.tenant_id, integration.provider
    totals = totals if totals is not None else _Totals()
    started = started or timezone.now()
    if mapping is None:
        from integrations.registry import get_provider_class

        mapping = fieldmap.effective(get_provider_class(slug), integration.settings)
    totals.total += len(chunk)
    records: dict[str, DeviceRecord] = {}
    for d in chunk:
        ext_id = _clip(d.external_id, 255)
        if not ext_id:
            totals.skipped_unmapped += 1
            continue
        records[ext_id] = d  # a repeated id: the last record wins
    if not records:
        return totals
    now = timezone.now()
    with transaction.atomic():
        # (identity id, asset id, fingerprint, client id, site id, retired) of the devices we know.
        rows = {
            ext: rest for ext, *rest in AssetExternalId.objects.filter(provider=slug, external_id__in=list(records))
            .values_list("external_id", "pk", "asset_id", "fingerprint", "asset__client_id", "asset__site_id",
                         "asset__retired_at")
        }
        devices: dict[str, tuple[DeviceRecord, int, int | None]] = {}
        for ext_id, d in records.items():
            target = target_for(d, resolved)
            if target is None and partial and not d.organization_external_id and ext_id in rows:
                target = (rows[ext_id][3], rows[ext_id][4])  # the event did not say: keep it
            if target is None:
                totals.skipped_unmapped += 1
                continue
            devices[ext_id] = (d, *target)
        if not devices:
            return totals
        # A device whose record (and the sync's settings) did not change since its last sync, still in the
        # same client and site and not retired, is only marked as seen: one narrow UPDATE for the batch.
        digests = {ext: record_fingerprint(d, salt) for ext, (d, _c, _s) in devices.items()} if salt else {}
        unchanged = [ext for ext, (_d, client_id, site_id) in devices.items()
                     if ext in rows and digests.get(ext) and rows[ext][2] == digests[ext]
                     and (rows[ext][3], rows[ext][4]) == (client_id, site_id) and rows[ext][5] is None]
        if unchanged:
            ids = [rows[ext][1] for ext in unchanged]
            if seen is not None:
                seen.add(ids, now)
            else:
                Asset.objects.filter(pk__in=ids).update(updated_at=now)
            totals.unchanged += len(unchanged)
            for ext in unchanged:
                del devices[ext]
        assets = Asset.objects.in_bulk([rows[ext][1] for ext in devices if ext in rows])
        known = {ext: assets[rows[ext][1]] for ext in devices if ext in rows and rows[ext][1] in assets}
        by_serial = _serial_candidates(slug, devices, known, started, seen) if devices else {}
        to_create: list[tuple[str, Asset]] = []
        to_attach: list[tuple[str, Asset]] = []
        to_update: dict[int, Asset] = {}
        software: dict[str, list] = {}
        for ext_id, (d, client_id, site_id) in sorted(devices.items()):
            asset = known.get(ext_id)
            if asset is None:
                serial = usable_serial(d.serial_number)
                asset = by_serial.pop((client_id, serial), None) if serial else None
                if asset is not None:
                    totals.matched_by_serial += 1
                    to_attach.append((ext_id, asset))
            if asset is None:
                asset = Asset(tenant_id=tenant_id, created_at=now)
                _apply(asset, d, client_id, site_id, now, mapping=mapping, partial=partial)
                to_create.append((ext_id, asset))
            else:
                _apply(asset, d, client_id, site_id, now, mapping=mapping, partial=partial)
                to_update[asset.pk] = asset
            if d.software is not None:
                software[ext_id] = [asset, d.software]
        _link_contacts([a for _, a in to_create] + list(to_update.values()))
        if to_create:
            Asset.objects.bulk_create([a for _, a in to_create], batch_size=BATCH)
            totals.created += len(to_create)
        if to_update:
            _bulk_update(tenant_id, sorted(to_update.values(), key=lambda a: a.pk))
            totals.updated += len(to_update) - len(to_attach)
        identities = [
            AssetExternalId(tenant_id=tenant_id, asset=a, provider=slug, external_id=ext_id,
                            fingerprint=digests.get(ext_id, ""))
            for ext_id, a in to_create + to_attach
        ]
        if identities:
            AssetExternalId.objects.bulk_create(identities, batch_size=BATCH)
        # Known identities take the new digest ("" for a partial record: the next full sync applies it all).
        _set_fingerprints([(rows[ext][0], digests.get(ext, "")) for ext in devices if ext in rows
                           and rows[ext][2] != digests.get(ext, "")])
        if software:
            _replace_software(tenant_id, slug, software.values())
        totals.asset_ids.extend(a.pk for _, a in to_create)
        totals.asset_ids.extend(to_update)
    return totals


FINGERPRINT_VERSION = 1


def sync_salt(integration: Integration, mapping: dict[str, str]) -> str:
    """What besides the device record decides an asset: the field mapping, the integration's settings
    (e.g. NinjaOne's node class table) and the contacts (count and newest, for contact linking). Any
    change makes every device of the next sync be applied again."""
    contacts = Contact.objects.aggregate(n=Count("id"), last=Max("id"))
    payload = [FINGERPRINT_VERSION, mapping, integration.settings or {}, contacts["n"], contacts["last"]]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def record_fingerprint(d: DeviceRecord, salt: str) -> str:
    """A digest of one device record as the provider gave it (its raw payload, else its fields)."""
    body = d.raw if d.raw else dataclasses.asdict(d)
    # Keys in the provider's own order: the same record from the same API serializes the same way, and a
    # reordered one costs one rewrite, not a wrong skip.
    data = json.dumps([salt, d.organization_external_id, d.site_external_id, body], default=str)
    return hashlib.sha1(data.encode(), usedforsecurity=False).hexdigest()


def _set_fingerprints(pairs: list[tuple[int, str]]) -> None:
    """identity id -> fingerprint, one UPDATE per batch."""
    if not pairs:
        return
    if connection.vendor != "postgresql":
        for pk, fp in pairs:
            AssetExternalId.objects.filter(pk=pk).update(fingerprint=fp)
        return
    qn = connection.ops.quote_name
    sql = (f"UPDATE {qn(AssetExternalId._meta.db_table)} AS x SET fingerprint = v.fp "
           f"FROM (VALUES {', '.join(['(%s::bigint, %s)'] * len(pairs))}) AS v(id, fp) WHERE x.id = v.id")
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for pair in pairs for value in pair])


def _link_contacts(assets: list[Asset]) -> None:
    """Each asset's contact from its last logged-in user (one query for the batch's clients)."""
    index = ContactIndex({a.client_id for a in assets})
    for asset in assets:
        asset.contact_id = index.contact_for(asset.client_id, asset.last_user, asset.contact_id)


def _bulk_update(tenant_id: int, assets: list[Asset]) -> None:
    """One ``UPDATE ... FROM (VALUES ...)`` per batch on PostgreSQL.

    Django's bulk_update builds a CASE expression per field and row, which costs seconds of
    Python per 500 rows; this keeps a 100,000-device sync bound by the database instead.
    """
    if connection.vendor != "postgresql":
        Asset.objects.bulk_update(assets, UPDATE_FIELDS, batch_size=BATCH)
        return
    fields = [Asset._meta.get_field(name) for name in UPDATE_FIELDS]
    qn = connection.ops.quote_name
    casts = ["%s::bigint"] + [f"%s::{f.db_type(connection)}" for f in fields]
    row_sql = "(" + ", ".join(casts) + ")"
    params: list[Any] = []
    for a in assets:
        params.append(a.pk)
        params.extend(f.get_db_prep_save(getattr(a, f.attname), connection) for f in fields)
    columns = ", ".join(qn(f.column) for f in fields)
    assignments = ", ".join(f"{qn(f.column)} = v.{qn(f.column)}" for f in fields)
    sql = (
        f"UPDATE {qn(Asset._meta.db_table)} AS a SET {assignments} "
        f"FROM (VALUES {', '.join([row_sql] * len(assets))}) AS v(id, {columns}) "
        "WHERE a.id = v.id AND a.tenant_id = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, tenant_id])


def _serial_candidates(slug: str, devices: dict, known: dict, started,
                       seen: SeenAssets | None = None) -> dict[tuple[int, str], Asset]:
    """Existing assets of the same client with the same serial, for devices with no identity yet."""
    wanted = {
        (client_id, serial)
        for ext_id, (d, client_id, _site) in devices.items()
        if ext_id not in known and (serial := usable_serial(d.serial_number))
    }
    if not wanted:
        return {}
    clients = {c for c, _ in wanted}
    serials = {s for _, s in wanted}
    taken = {a.pk for a in known.values()}
    found: dict[tuple[int, str], Asset] = {}
    # Prefer assets that have no identity in this provider yet (a reinstalled agent leaves one behind;
    # an asset created by hand has none), then the most recently updated one. An asset another
    # device already claimed in this sync (updated_at >= started, or seen unchanged) is not a candidate.
    query = (Asset.objects.filter(client_id__in=clients, serial_number__in=serials).exclude(pk__in=taken)
             .exclude(updated_at__gte=started))
    candidates = list((seen.exclude(query) if seen is not None else query).order_by("-updated_at", "-id"))
    if not candidates:
        return {}
    has_identity = set(
        AssetExternalId.objects.filter(provider=slug, asset_id__in=[a.pk for a in candidates])
        .values_list("asset_id", flat=True)
    )
    for asset in sorted(candidates, key=lambda a: a.pk in has_identity):
        key = (asset.client_id, asset.serial_number)
        if key in wanted:  # same client only: never match across clients
            found.setdefault(key, asset)
    return found


def _replace_software(tenant_id: int, slug: str, items) -> None:
    items = list(items)
    Software.objects.filter(asset__in=[a.pk for a, _ in items], source=slug).delete()
    rows: list[Software] = []
    for asset, records in items:
        for s in records:
            rows.append(Software(
                tenant_id=tenant_id, asset=asset, source=slug, name=_clip(s.name, 500) or "(unnamed)",
                version=_clip(s.version, 200), publisher=_clip(s.publisher, 300),
                installed_on=_clip(s.installed_on, 100), size=_clip(s.size, 50),
            ))
            if len(rows) >= SOFTWARE_BATCH:
                Software.objects.bulk_create(rows)
                rows = []
    if rows:
        Software.objects.bulk_create(rows)
