"""The panel's Health and "Send test alert" cards (htmx; the same services as the API)."""

from __future__ import annotations

from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from integrations.services import health, testalert

from .access import ProviderView, admin_required, integration_or_404, provider_class_or_404


def _base(provider: str):
    cls = provider_class_or_404(provider)
    return cls, integration_or_404(cls)


@require_GET
@admin_required
def health_card(request, provider: str):
    cls, integration = _base(provider)
    return render(request, "integrations/cards/health.html",
                  {"provider": ProviderView(cls), "integration": integration, "health": health.health(integration)})


def _test_ctx(cls, integration, **extra) -> dict:
    from assets.models import Asset

    clients = testalert.mapped_clients(integration)
    assets = list(Asset.objects.filter(client__in=clients, retired_at__isnull=True).select_related("client")
                  .order_by("client__name", "name", "id")[:500])
    return {"provider": ProviderView(cls), "integration": integration, "test_clients": clients,
            "test_assets": assets, **extra}


@require_GET
@admin_required
def test_alert_card(request, provider: str):
    cls, integration = _base(provider)
    return render(request, "integrations/cards/test_alert.html", _test_ctx(cls, integration))


@require_POST
@admin_required
def test_alert_send(request, provider: str):
    from assets.models import Asset
    from psa.models import Client

    cls, integration = _base(provider)
    client = Client.objects.filter(pk=_int(request.POST.get("client"))).first()
    asset_id = _int(request.POST.get("asset"))
    asset = Asset.objects.filter(pk=asset_id, client=client).first() if client and asset_id else None
    error, result = "", None
    if client is None:
        error = "Pick a client."
    elif asset_id and asset is None:
        error = "That asset does not belong to the client."
    else:
        try:
            result = testalert.send_test_alert(integration, client, asset, user=request.user)
        except testalert.TestAlertRefused as exc:
            error = str(exc)
    return render(request, "integrations/cards/test_alert.html",
                  _test_ctx(cls, integration, test_error=error, test_result=result,
                            picked_client=client.pk if client else None, picked_asset=asset_id))


@require_POST
@admin_required
def test_alert_close(request, provider: str):
    cls, integration = _base(provider)
    try:
        closed = testalert.close_test(integration, _int(request.POST.get("ticket")))
        message, error = "Test ticket closed.", ""
    except testalert.TestAlertRefused as exc:
        closed, message, error = None, "", str(exc)
    return render(request, "integrations/cards/test_alert.html",
                  _test_ctx(cls, integration, test_closed=closed, test_message=message, test_error=error))


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
