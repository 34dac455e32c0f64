"""Connection card: save credentials (write-only), test the connection; webhook card: reveal, rotate;
polling card: interval and schedule. All through integrations.services.config."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from integrations.forms import ConnectionForm, PollingForm
from integrations.services import config

from . import webhook_view
from .access import (
    ProviderView,
    admin_required,
    integration_or_404,
    is_htmx,
    panel_url,
    provider_class_or_404,
)
from .cards import connection_ctx, current_integration, panel_context, polling_ctx, render_card, webhook_ctx


def _card_response(request, cls, name: str, ctx: dict, status: int = 200) -> HttpResponse:
    integration = ctx.get("integration", current_integration(cls))
    full = {"provider": cls, "integration": integration, **ctx}
    return HttpResponse(render_card(request, name, full), status=status)


@require_POST
@admin_required
def save_connection(request, provider: str):
    cls = provider_class_or_404(provider)
    existing = current_integration(cls)
    form = ConnectionForm(cls, existing, request.POST)
    if not form.is_valid():
        return _invalid(request, cls, existing, form)
    credentials = form.credential_values()
    base_url = form.cleaned_data.get("base_url") if cls.requires_base_url else None
    settings = form.setting_values() or None
    try:
        integration, test_result = config.save(
            cls.slug, base_url=base_url,
            credentials=credentials if config.takes_credentials(cls) and credentials else None, settings=settings,
            request=request,
        )
    except ValidationError as exc:
        form.add_service_errors(exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages})
        return _invalid(request, cls, existing, form)
    saved = f"{cls.name} saved." if config.takes_credentials(cls) else f"{cls.name} is enabled."
    if not is_htmx(request) or existing is None:
        # First save unlocks the other cards: reload the whole panel.
        if test_result is not None and not test_result["ok"]:
            messages.error(request, f"{saved} The connection test failed: {test_result['message']}")
        else:
            messages.success(request, saved + (f" {test_result['message']}" if test_result else ""))
        if is_htmx(request):
            resp = HttpResponse(status=204)
            resp["HX-Redirect"] = panel_url(cls.slug)
            return resp
        return redirect(panel_url(cls.slug))
    ctx = connection_ctx(cls, integration, test_result=test_result, saved_message=saved)
    return _card_response(request, cls, "connection", {"integration": integration, **ctx})


def _invalid(request, cls, integration, form):
    ctx = connection_ctx(cls, integration, form=form)
    if is_htmx(request):
        # 200 so htmx swaps the card in with the errors next to the fields.
        return _card_response(request, cls, "connection", {"integration": integration, **ctx})
    return render(request, "integrations/panel.html", panel_context(request, cls, **ctx), status=400)


@require_POST
@admin_required
def test_connection(request, provider: str):
    cls = provider_class_or_404(provider)
    integration = integration_or_404(cls)
    result = config.test_connection(integration, request=request)
    if is_htmx(request):
        html = render(request, "integrations/_test_result.html", {"test_result": result}).content.decode()
        # Out-of-band: the status pill in the panel header reflects the new status too.
        integration.refresh_from_db()
        pill = render(request, "integrations/_status_pill.html", {"integration": integration}).content.decode()
        html += f'<span id="panel-status" hx-swap-oob="true">{pill}</span>'
        return HttpResponse(html)
    messages.info(request, ("Connection OK: " if result["ok"] else "Connection failed: ") + result["message"])
    return redirect(panel_url(cls.slug))


@require_GET
@never_cache
@admin_required
def webhook_secret(request, provider: str):
    """The secret, only on an explicit Reveal (the panel never embeds it)."""
    cls = provider_class_or_404(provider)
    integration = integration_or_404(cls)
    secret, extra = "", []
    if not request.GET.get("hide"):
        card = config.webhook_card(integration, request)
        secret, extra = card.get("secret", ""), webhook_view.revealed_boxes(card)
    return render(request, "integrations/_webhook_secret.html",
                  {"provider": ProviderView(cls), "secret_revealed": secret, "revealed_boxes": extra})


@require_POST
@admin_required
def rotate_secret(request, provider: str):
    cls = provider_class_or_404(provider)
    integration = integration_or_404(cls)
    config.rotate_webhook_secret(integration)
    if is_htmx(request):
        return _card_response(request, cls, "webhook", {"integration": integration, **webhook_ctx(request, cls, integration, rotated=True)})
    messages.success(request, "New webhook secret issued; the old one no longer works.")
    return redirect(panel_url(cls.slug))


@require_POST
@admin_required
def save_polling(request, provider: str):
    cls = provider_class_or_404(provider)
    integration = integration_or_404(cls)
    form = PollingForm(cls, request.POST)
    saved = False
    if form.is_valid():
        try:
            integration = config.update_integration(
                integration,
                poll_interval_minutes=form.cleaned_data["poll_interval_minutes"],
                poll_enabled=form.cleaned_data["poll_enabled"],
                test=False,
            )
            saved = True
        except ValidationError as exc:
            for key, msgs in exc.message_dict.items():
                form.add_error(key if key in form.fields else None, msgs)
    if not is_htmx(request):
        if saved:
            messages.success(request, "Polling settings saved.")
            return redirect(panel_url(cls.slug))
        return render(request, "integrations/panel.html", panel_context(request, cls, polling_form=form), status=400)
    return _card_response(request, cls, "polling", {"integration": integration, **polling_ctx(cls, integration, form=form, saved=saved)})
