"""Asset web pages (read-only: assets come from RMM device sync or the API)."""

from __future__ import annotations

from django.db.models import Case, Count, IntegerField, Value, When
from django.shortcuts import get_object_or_404, render

from assets.api.views import AssetFilter
from assets.models import Asset, AssetStatus, AssetType, Patch, PatchState, patch_counts
from psa.models import Client
from psa.web.access import member_required, paginate
from tickets.models import Ticket

STATUS_PILL = {AssetStatus.ONLINE: "ok", AssetStatus.OFFLINE: "err", AssetStatus.OVERDUE: "warn", AssetStatus.UNKNOWN: "muted"}


@member_required
def asset_list(request):
    data = {k: request.GET.get(k, "").strip() for k in ("client", "q", "asset_type", "status", "provider")}
    show_retired = request.GET.get("retired") == "1"
    if not show_retired:
        data["retired"] = "false"
    qs = Asset.objects.select_related("client").prefetch_related("external_ids").order_by("name", "id")
    filterset = AssetFilter({k: v for k, v in data.items() if v}, queryset=qs)
    assets = filterset.qs if filterset.is_valid() else Asset.objects.none()
    page, query = paginate(request, assets)
    counts = patch_counts([a.pk for a in page])
    for a in page:
        a.pill = STATUS_PILL.get(a.status, "muted")
        a.patch_counts = counts.get(a.pk, {})
    client_patches = None
    if filterset.is_valid() and data.get("client"):
        # The client's patch picture: every state over its (listed) assets, in one grouped query.
        totals = dict.fromkeys(PatchState.values, 0)
        for state, n in (Patch.objects.filter(asset__in=assets).values_list("state").annotate(n=Count("id"))
                         .order_by()):
            totals[state] = n
        client_patches = [(state, label, totals[state]) for state, label in PatchState.choices]
    filtered = any(request.GET.get(k) for k in ("client", "q", "asset_type", "status", "provider"))
    return render(request, "assets/list.html", {
        "page": page, "query": query, "f": data, "filtered": filtered, "show_retired": show_retired,
        "clients": Client.objects.all(), "types": AssetType.choices, "statuses": AssetStatus.choices,
        "filter_errors": filterset.errors, "client_patches": client_patches,
    })


def _size(value) -> str:
    number = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(number) < 1024 or unit == "TB":
            return f"{number:.0f} {unit}" if unit == "B" else f"{number:.1f} {unit}"
        number /= 1024
    return str(value)


def _attr_text(key: str, value) -> str:
    """One attribute value as text: sizes in bytes humanized, lists joined, objects as key: value."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)) and (key.endswith("bytes") or key in ("size", "free_space")):
        return _size(value)
    if isinstance(value, dict):
        return ", ".join(f"{k.replace('_', ' ')}: {_attr_text(k, v)}" for k, v in value.items() if v not in (None, ""))
    if isinstance(value, list):
        return "; ".join(_attr_text(key, v) for v in value if v not in (None, ""))
    return "" if value is None else str(value)


def attribute_rows(attributes) -> list[tuple[str, str, str]]:
    """(name, label, text) of an asset's named attributes (the provider's field mapping), by name."""
    if not isinstance(attributes, dict):
        return []
    return [(name, name.replace("_", " ").capitalize(), _attr_text(name, attributes[name]))
            for name in sorted(attributes)]


# Patches needing attention first: failed, pending, approved, rejected, then installed.
PATCH_ORDER = Case(*(When(state=s, then=Value(i)) for i, s in enumerate(
    (PatchState.FAILED, PatchState.PENDING, PatchState.APPROVED, PatchState.REJECTED, PatchState.INSTALLED))),
    default=Value(9), output_field=IntegerField())
PATCH_PILL = {PatchState.FAILED: "err", PatchState.PENDING: "warn", PatchState.APPROVED: "warn",
              PatchState.REJECTED: "muted", PatchState.INSTALLED: "ok"}


def _remote_providers(asset) -> list[str]:
    """Providers that can open a remote session on this asset (the framework knows them)."""
    from integrations.services.remote import providers_for  # lazy: assets does not import integrations

    return providers_for(asset)


@member_required
def asset_detail(request, pk: int):
    asset = get_object_or_404(Asset.objects.select_related("client", "site", "contact"), pk=pk)
    counts = patch_counts([asset.pk])[asset.pk]
    patches = list(asset.patches.annotate(rank=PATCH_ORDER).order_by("rank", "title", "id")[:200])
    for p in patches:
        p.pill = PATCH_PILL.get(p.state, "muted")
    tickets = Ticket.objects.filter(asset=asset).select_related("status", "priority").order_by("-created_at", "-id")[:20]
    return render(request, "assets/detail.html", {
        "asset": asset, "pill": STATUS_PILL.get(asset.status, "muted"),
        # Provider-supplied: only ever an http(s) link, never javascript: or the like.
        "remote_url": asset.remote_access_url if asset.remote_access_url.startswith(("https://", "http://")) else "",
        "external_ids": asset.external_ids.order_by("provider", "external_id"),
        "tickets": tickets,
        "software": asset.software.order_by("name", "id")[:200],
        "software_count": asset.software.count(),
        "patches": patches,
        "patch_count": sum(counts.values()),
        "patch_states": [(state, label, counts[state]) for state, label in PatchState.choices if counts[state]],
        "remote_providers": _remote_providers(asset),
        "attribute_rows": attribute_rows(asset.attributes),
    })
