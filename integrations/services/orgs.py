"""External organizations: sync from the provider, mapping to clients, nearest-mapped-ancestor resolution."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from integrations.models import ExternalOrganization, Integration, Job, MappingKind
from integrations.records import ExternalOrg
from integrations.registry import get_provider
from integrations.signals import organizations_changed
from psa.models import Client, ClientSite

from .jobs import ProgressReporter

BATCH = 500
MAX_DEPTH = 64  # parent chains deeper than this are treated as broken (cycle guard backstop)


@dataclass(frozen=True)
class ResolvedOrg:
    organization: ExternalOrganization  # the organization that was asked about
    client: Client
    site: ClientSite | None
    mapped_via: ExternalOrganization | None = None  # the (ancestor) org that carries the mapping


def _clip(value: Any, n: int) -> str:
    return str(value or "").replace("\x00", "")[:n]


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31 else None


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


# -- sync ---------------------------------------------------------------------------------------------


def sync_organizations(integration: Integration, job: Job | None = None,
                       reporter: ProgressReporter | None = None) -> dict[str, int]:
    """Upsert the provider's organizations; ones it no longer lists get ``missing_since`` (never deleted).

    Mappings (client/site/mapping) are never touched here, so they survive every re-sync.
    """
    provider = get_provider(integration)
    started = timezone.now()
    created = seen = returned = 0
    try:
        for chunk in _chunks(provider.list_organizations(), BATCH):
            created_now, seen_now, returned_now = _upsert_orgs(integration, chunk, started)
            created, seen, returned = created + created_now, seen + seen_now, returned + returned_now
            if reporter:
                reporter.advance(len(chunk))
    finally:
        provider.close()
    missing = 0
    if not provider.capabilities.orgs_from_events:
        # Rows not touched by this sync (last_seen_at older than its start) are gone at the provider.
        gone = ExternalOrganization.objects.filter(integration=integration).filter(
            Q(last_seen_at__lt=started) | Q(last_seen_at__isnull=True)
        )
        missing = gone.filter(missing_since__isnull=True).update(missing_since=started)
    # Once per sync (bulk writes send no model signals): the pipeline's config cache reloads.
    organizations_changed.send(sender=ExternalOrganization, tenant_id=integration.tenant_id)
    return {"total": seen, "created": created, "updated": seen - created, "missing": missing, "returned": returned,
            "mapped": ExternalOrganization.objects.filter(integration=integration, client__isnull=False).count()}


def _upsert_orgs(integration: Integration, chunk: list[ExternalOrg], now) -> tuple[int, int, int]:
    """Returns (created, seen, came back after being missing) for one batch."""
    by_id: dict[str, ExternalOrg] = {}
    for org in chunk:  # the provider may repeat an id; ON CONFLICT cannot touch a row twice
        by_id[_clip(org.external_id, 255)] = org
    with transaction.atomic():
        existing = dict(
            ExternalOrganization.objects.filter(integration=integration, external_id__in=list(by_id))
            .values_list("external_id", "missing_since")
        )
        rows = [
            ExternalOrganization(
                tenant_id=integration.tenant_id, integration=integration, external_id=ext_id,
                name=_clip(org.name, 500) or ext_id, kind=_clip(org.kind, 50),
                parent_external_id=_clip(org.parent_external_id, 255) or None,
                device_count=_count(org.device_count),
                last_seen_at=now, missing_since=None,
            )
            for ext_id, org in sorted(by_id.items())  # sorted: concurrent upserts lock rows in one order
        ]
        ExternalOrganization.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["integration", "external_id"],
            update_fields=["name", "kind", "parent_external_id", "device_count", "last_seen_at", "missing_since"],
        )
    returned = sum(1 for missing_since in existing.values() if missing_since is not None)
    return len(by_id) - len(existing), len(by_id), returned


def discover(integration: Integration, external_id: str, name: str = "",
             parent_external_id: str | None = None) -> ExternalOrganization:
    """An organization seen in an event: create it unmapped, or refresh its name. Never changes a mapping."""
    external_id = _clip(external_id, 255)
    name = _clip(name, 500).strip()
    parent = _clip(parent_external_id, 255) or None
    now = timezone.now()
    org, created = ExternalOrganization.objects.get_or_create(
        integration=integration, external_id=external_id,
        defaults={"tenant_id": integration.tenant_id, "name": name or external_id, "parent_external_id": parent,
                  "last_seen_at": now},
    )
    if created:
        return org
    changes: dict[str, Any] = {}
    if name and org.name != name:
        changes["name"] = name
    if parent and org.parent_external_id != parent:
        changes["parent_external_id"] = parent
    if org.missing_since is not None:
        changes["missing_since"] = None
    if changes:
        changes["last_seen_at"] = now
        ExternalOrganization.objects.filter(pk=org.pk).update(**changes)
        for k, v in changes.items():
            setattr(org, k, v)
    return org


# -- mapping ------------------------------------------------------------------------------------------


def _name_key(name: str) -> str:
    return " ".join((name or "").split()).casefold()


def automap(integration: Integration) -> dict[str, int]:
    """Map unmapped organizations to clients with exactly the same name (case-insensitive, trimmed).

    Never overrides a manual pair (or an earlier automatic one); ambiguous names are left alone.
    """
    clients: dict[str, int | None] = {}
    for pk, name in Client.objects.filter(is_active=True).values_list("pk", "name"):
        key = _name_key(name)
        clients[key] = None if key in clients else pk  # two clients with one name: ambiguous
    matched = already = unmatched = 0
    for org in ExternalOrganization.objects.filter(integration=integration).only("pk", "name", "client_id", "mapping"):
        if org.client_id is not None:
            already += 1
            continue
        client_id = clients.get(_name_key(org.name))
        if client_id is None:
            unmatched += 1
            continue
        # Conditional: a manual mapping made meanwhile wins.
        updated = ExternalOrganization.objects.filter(pk=org.pk, client__isnull=True).exclude(
            mapping=MappingKind.MANUAL).update(client_id=client_id, mapping=MappingKind.AUTO)
        if updated:
            matched += 1
        else:
            already += 1
    if matched:
        organizations_changed.send(sender=ExternalOrganization, tenant_id=integration.tenant_id)
    return {"matched": matched, "already_mapped": already, "unmatched": unmatched}


def site_from_name(org: ExternalOrganization, client: Client) -> ClientSite:
    """The client's site named like the organization (e.g. a NinjaOne location), created when missing."""
    if client.tenant_id != org.tenant_id:
        raise ValueError("client belongs to another tenant")
    name = " ".join(_clip(org.name, 200).split()) or _clip(org.external_id, 200)
    site = ClientSite.objects.filter(client=client, name__iexact=name).order_by("id").first()
    if site is None:
        try:
            with transaction.atomic():
                site = ClientSite.objects.create(tenant_id=client.tenant_id, client=client, name=name)
        except IntegrityError:  # created meanwhile by someone else
            site = ClientSite.objects.get(client=client, name=name)
    return site


def set_mapping(org: ExternalOrganization, client: Client | None, site: ClientSite | None = None) -> ExternalOrganization:
    """An admin's choice: a client (manual pair) or None (unmapped)."""
    if client is not None and client.tenant_id != org.tenant_id:
        raise ValueError("client belongs to another tenant")
    if site is not None and (client is None or site.client_id != client.pk):
        raise ValueError("site does not belong to the client")
    org.client = client
    org.site = site if client is not None else None
    org.mapping = MappingKind.MANUAL if client is not None else None
    org.save(update_fields=["client", "site", "mapping"])
    return org


# -- resolution ---------------------------------------------------------------------------------------


def resolve_organization(integration: Integration, org_external_id: str | None) -> ResolvedOrg | None:
    """The client for an organization, walking up to the nearest mapped ancestor.

    None when the organization is unknown or neither it nor any ancestor is mapped
    (call ``discover`` first for organizations seen only in events).
    """
    if not org_external_id:
        return None
    leaf = (ExternalOrganization.objects.select_related("client", "site")
            .filter(integration=integration, external_id=org_external_id).first())
    org, seen = leaf, set()
    while org is not None and org.pk not in seen and len(seen) < MAX_DEPTH:
        if org.client_id is not None:
            return ResolvedOrg(organization=leaf, client=org.client, site=org.site, mapped_via=org)
        seen.add(org.pk)
        if not org.parent_external_id:
            return None
        org = (ExternalOrganization.objects.select_related("client", "site")
               .filter(integration=integration, external_id=org.parent_external_id).first())
    return None


def resolution_map(integration: Integration) -> dict[str, tuple[int, int | None]]:
    """external_id -> (client_id, site_id) for every org that resolves to a client (one query, in memory).

    Organizations number in the thousands at most, so this is cheap; devices are streamed.
    """
    rows = {
        ext: (parent, client_id, site_id)
        for ext, parent, client_id, site_id in ExternalOrganization.objects.filter(integration=integration)
        .values_list("external_id", "parent_external_id", "client_id", "site_id")
    }
    memo: dict[str, tuple[int, int | None] | None] = {}

    def resolve(ext: str) -> tuple[int, int | None] | None:
        chain: list[str] = []
        cur: str | None = ext
        result = None
        while cur is not None and cur in rows and cur not in chain and len(chain) < MAX_DEPTH:
            if cur in memo:
                result = memo[cur]
                break
            parent, client_id, site_id = rows[cur]
            chain.append(cur)
            if client_id is not None:
                result = (client_id, site_id)
                break
            cur = parent
        for c in chain:
            memo[c] = result
        return result

    return {ext: res for ext in rows if (res := resolve(ext)) is not None}


@dataclass
class TreeInfo:
    """One organization's place in the tree, for the organizations card and API."""

    pk: int
    external_id: str
    depth: int = 0
    effective_client_id: int | None = None
    # The organization carrying the mapping (itself or the nearest mapped ancestor), None when unmapped.
    via_pk: int | None = None
    via_external_id: str | None = None
    device_count: int | None = None  # the provider's count for this organization alone
    subtree_device_count: int | None = None  # this organization and its descendants (known counts)
    unmapped_device_count: int | None = None  # of those, the ones that resolve to no client


def tree_info(rows: Iterable[tuple[int, str, str | None, int | None, int | None]]) -> dict[str, TreeInfo]:
    """external_id -> TreeInfo from (pk, external_id, parent_external_id, client_id, device_count) rows.

    Same rule as ``resolve_organization``: the nearest mapped ancestor carries the mapping; a parent
    that is not among the rows, or a cycle, ends the walk."""
    rows = list(rows)
    info = {ext: TreeInfo(pk=pk, external_id=ext, device_count=count) for pk, ext, _p, _c, count in rows}
    parent = {ext: (p if p in info and p != ext else None) for _pk, ext, p, _c, _n in rows}
    client = {ext: c for _pk, ext, _p, c, _n in rows}
    for ext, node in info.items():
        cur, seen = ext, []
        while cur is not None and cur not in seen and len(seen) < MAX_DEPTH:
            if client[cur] is not None and node.via_external_id is None:
                node.via_external_id, node.via_pk, node.effective_client_id = cur, info[cur].pk, client[cur]
            seen.append(cur)
            cur = parent[cur]
        node.depth = len(seen) - 1 if cur is None else 0  # a cycle: shown at the top
    # Sums over subtrees, children before parents (deepest first).
    for ext in sorted(info, key=lambda e: -info[e].depth):
        node = info[ext]
        own = node.device_count
        node.subtree_device_count = _add(node.subtree_device_count, own)
        if node.effective_client_id is None:
            node.unmapped_device_count = _add(node.unmapped_device_count, own)
        up = parent[ext]
        if up is not None and info[up].depth < node.depth:
            info[up].subtree_device_count = _add(info[up].subtree_device_count, node.subtree_device_count)
            info[up].unmapped_device_count = _add(info[up].unmapped_device_count, node.unmapped_device_count)
    return info


def _add(total: int | None, value: int | None) -> int | None:
    if value is None:
        return total
    return (total or 0) + value


def integration_tree(integration: Integration) -> dict[str, TreeInfo]:
    return tree_info(ExternalOrganization.objects.filter(integration=integration).values_list(
        "pk", "external_id", "parent_external_id", "client_id", "device_count"))
