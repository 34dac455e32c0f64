"""The Field mapping card of a device provider's panel: the table, Save, and Preview on one real device.
Thin over integrations.services.fieldmap (the API uses the same functions)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from integrations.errors import ProviderError
from integrations.services import config, fieldmap
from integrations.services.errors import describe_error

from .access import admin_required, integration_or_404, is_htmx, panel_url, provider_class_or_404
from .cards import render_card

EMPTY_ROWS = 3


def rows_for(provider_cls, settings) -> list[dict[str, Any]]:
    """One row per default (its path as in force, "" when switched off) and per added entry."""
    defaults = dict(provider_cls.default_field_mapping)
    stored = (settings or {}).get(fieldmap.SETTING)
    overlay = dict(stored) if isinstance(stored, dict) else {}
    rows = [{"target": t, "path": overlay.get(t, p), "default": p} for t, p in sorted(defaults.items())]
    rows += [{"target": t, "path": p, "default": ""} for t, p in sorted(overlay.items()) if t not in defaults]
    return rows


def fieldmap_ctx(provider_cls, integration, *, rows=None, preview=None, error="", saved=False) -> dict[str, Any]:
    rows = rows if rows is not None else rows_for(provider_cls, integration.settings)
    return {
        "fm_rows": rows + [{"target": "", "path": "", "default": ""} for _ in range(EMPTY_ROWS)],
        "fm_targets": list(fieldmap.STANDARD_TARGETS),
        "fm_preview": preview,
        "fm_error": error,
        "fm_saved": saved,
    }


def _posted(request, provider_cls) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The table as posted, and the overlay it means (only what differs from the defaults)."""
    defaults = dict(provider_cls.default_field_mapping)
    targets, paths = request.POST.getlist("target"), request.POST.getlist("path")
    rows, overlay = [], {}
    for target, path in zip(targets, paths, strict=False):
        target, path = target.strip(), path.strip()
        if not target:
            continue
        rows.append({"target": target, "path": path, "default": defaults.get(target, "")})
        if target in defaults:
            if path != defaults[target]:
                overlay[target] = path  # "" switches the default off
        elif path:
            overlay[target] = path
    for target in defaults.keys() - {r["target"] for r in rows}:
        overlay[target] = ""  # a default row removed from the table: off
    return rows, overlay


def _card(request, cls, integration, ctx: dict, status: int = 200) -> HttpResponse:
    return HttpResponse(render_card(request, "field_mapping", {"provider": cls, "integration": integration, **ctx}),
                        status=status)


def _device_provider(provider: str):
    cls = provider_class_or_404(provider)
    if not cls.capabilities.device_sync:
        raise Http404("This provider does not sync devices")
    return cls, integration_or_404(cls)


@require_POST
@admin_required
def save_mapping(request, provider: str):
    cls, integration = _device_provider(provider)
    rows, overlay = _posted(request, cls)
    try:
        integration = config.update_integration(integration, settings={fieldmap.SETTING: overlay}, test=False)
    except ValidationError as exc:
        error = " ".join(m for msgs in exc.message_dict.values() for m in msgs)
        if not is_htmx(request):
            messages.error(request, f"Field mapping not saved: {error}")
            return redirect(panel_url(cls.slug))
        return _card(request, cls, integration, fieldmap_ctx(cls, integration, rows=rows, error=error), status=200)
    if not is_htmx(request):
        messages.success(request, "Field mapping saved: the next device sync applies it.")
        return redirect(panel_url(cls.slug))
    return _card(request, cls, integration, fieldmap_ctx(cls, integration, saved=True))


@require_POST
@admin_required
def preview_mapping(request, provider: str):
    """The table as posted (not saved), applied to one device of a mapped organization."""
    cls, integration = _device_provider(provider)
    rows, overlay = _posted(request, cls)
    cleaned, problems = fieldmap.clean(overlay)
    preview, error = None, " ".join(problems)
    if not problems:
        try:
            preview = fieldmap.preview(integration, fieldmap.effective(cls, {fieldmap.SETTING: cleaned}),
                                       request.POST.get("device", "").strip() or None)
        except fieldmap.PreviewUnavailable as exc:
            error = str(exc)
        except ProviderError as exc:
            error = describe_error(exc)
    if not is_htmx(request):
        messages.info(request, error or f"Preview on {preview['device']['name']}: see the Field mapping card.")
        return redirect(panel_url(cls.slug))
    return _card(request, cls, integration, fieldmap_ctx(cls, integration, rows=rows, preview=preview, error=error))
