"""NinjaOne's panel card and its web routes (mounted at /integrations/ninjaone/): the sign-in with
NinjaOne (connect -> NinjaOne -> callback), webhook registration, and the node class table."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import path
from django.views.decorators.http import require_GET, require_POST

from integrations.coerce import as_dict, text
from integrations.crypto import CredentialDecryptError
from integrations.errors import ProviderError
from integrations.models import Integration, Job
from integrations.oauth import AUTHORIZATION_CODE
from integrations.services import config, jobs
from integrations.services.errors import describe_error
from integrations.web.access import ProviderView, admin_required, is_htmx, panel_url

from . import connect, normalize, oauth_flow
from .provider import INVENTORY, NinjaOneProvider

ASSET_TYPE_LABELS = {"workstation": "Workstation", "server": "Server", "network_device": "Network device",
                     "mobile": "Mobile", "printer": "Printer", "other": "Other"}


def unknown_node_classes(integration: Integration) -> list[str]:
    """Node classes the last device sync could not place (it mapped them to "other")."""
    job = (Job.objects.filter(integration=integration, kind=jobs.DEVICE_SYNC, state="succeeded")
           .order_by("-finished_at", "-id").first())
    found = (job.summary or {}).get("unknown_node_classes") if job else None
    return [text(c, 100) for c in found if text(c)] if isinstance(found, list) else []


def node_class_rows(integration: Integration) -> list[dict[str, Any]]:
    """The node class -> asset type table in force: classes never seen before first (unmapped, shown
    as "other"), then the admin's rows, then the defaults."""
    overrides = {text(k).upper(): v for k, v in as_dict((integration.settings or {}).get("node_class_map")).items()}
    rows: list[dict[str, Any]] = []
    for cls in unknown_node_classes(integration):
        if cls.upper() not in overrides and cls.upper() not in normalize.NODE_CLASS_ASSET_TYPES:
            rows.append({"node_class": cls, "asset_type": "other", "default": "", "unknown": True, "changed": False})
    for cls in sorted(set(overrides) | set(normalize.NODE_CLASS_ASSET_TYPES)):
        default = normalize.NODE_CLASS_ASSET_TYPES.get(cls, "")
        chosen = overrides.get(cls) or default or "other"
        rows.append({"node_class": cls, "asset_type": chosen, "default": default, "unknown": False,
                     "changed": cls in overrides and chosen != default})
    return rows


def card_context(request, provider_cls, integration: Integration, **extra: Any) -> dict[str, Any]:
    provider = NinjaOneProvider(integration)
    options = provider.options
    state = integration.provider_state or {}
    token, token_error = None, ""
    try:
        token = provider.session.current() if provider.credentials.get("client_id") else None
    except (CredentialDecryptError, ProviderError) as exc:
        token_error = describe_error(exc)
    region = provider.region
    rows = node_class_rows(integration)
    return {"ninja": {
        "region": region or "",
        "region_label": dict(connect.REGION_LABELS).get(region or "", integration.base_url or ""),
        "base_url": connect.base_url_for(options["region"], integration.base_url) if region or integration.base_url
        else "",
        "auth_flow": options["auth_flow"],
        "auth_code": options["auth_flow"] == AUTHORIZATION_CODE,
        "auth_flow_label": dict(connect.AUTH_FLOWS).get(options["auth_flow"], options["auth_flow"]),
        "has_credentials": bool(integration.credentials_ciphertext),
        "callback_url": _callback_url(request),
        "token_expires_at": provider.token_expires_at() if token and not token.get("reconnect_required") else None,
        "reconnect_required": text((token or {}).get("reconnect_required")) or (
            integration.last_error if integration.status == "error" and "reconnect" in integration.last_error.lower()
            else ""),
        "token_error": token_error,
        "authorized": as_dict(state.get("authorized")),
        "webhook": as_dict(state.get("webhook")),
        "node_rows": rows,
        # New classes and the admin's own rows first; the untouched defaults folded away.
        "node_rows_shown": [r for r in rows if r["unknown"] or r["changed"] or not r["default"]],
        "node_rows_default": [r for r in rows if not (r["unknown"] or r["changed"] or not r["default"])],
        "unknown_count": sum(1 for r in rows if r["unknown"]),
        "asset_types": list(ASSET_TYPE_LABELS.items()),
        "inventory_kind": INVENTORY,
        "inventory_refusal": jobs.refusal(integration, INVENTORY),
        **extra,
    }}


def _callback_url(request) -> str:
    try:
        return oauth_flow.redirect_uri(request)
    except oauth_flow.FlowError:
        return oauth_flow.CALLBACK_PATH


def _integration() -> Integration | None:
    return Integration.objects.filter(provider="ninjaone").first()


def _card(request, integration: Integration, **extra: Any) -> HttpResponse:
    ctx = {"provider": ProviderView(NinjaOneProvider), "integration": integration,
           **card_context(request, NinjaOneProvider, integration, **extra)}
    return HttpResponse(render_to_string("ninjaone/card.html", ctx, request=request))


def _done(request, integration: Integration | None, *, ok: str = "", error: str = "") -> HttpResponse:
    if is_htmx(request) and integration is not None:
        return _card(request, integration, notice=ok, notice_error=error)
    if error:
        messages.error(request, error)
    elif ok:
        messages.success(request, ok)
    return redirect(panel_url("ninjaone"))


# -- sign in with NinjaOne ------------------------------------------------------------------------------
@require_POST
@admin_required
def connect_start(request):
    """The card's "Connect with NinjaOne" button: off to NinjaOne's consent page."""
    integration = _integration()
    if integration is None:
        return _done(request, None, error="Save the NinjaOne connection (client id and secret) first.")
    try:
        started = oauth_flow.start(integration, request)
    except oauth_flow.FlowError as exc:
        return _done(request, None, error=str(exc))
    response = redirect(started["authorize_url"])
    if is_htmx(request):  # htmx follows redirects itself: make the browser go there
        response = HttpResponse(status=204, headers={"HX-Redirect": started["authorize_url"]})
    return response


@require_GET
@admin_required
def callback(request):
    """NinjaOne sends the admin back here with ``code`` and ``state`` (or ``error``)."""
    try:
        integration = oauth_flow.complete(request, request.GET)
    except oauth_flow.FlowError as exc:
        messages.error(request, str(exc))
        return redirect(panel_url("ninjaone"))
    except ProviderError as exc:
        messages.error(request, f"NinjaOne refused the sign-in: {describe_error(exc)}")
        return redirect(panel_url("ninjaone"))
    result = config.test_connection(integration, request=request)  # connected, and the webhook registered
    (messages.success if result["ok"] else messages.error)(request, f"Signed in with NinjaOne. {result['message']}")
    return redirect(panel_url("ninjaone"))


# -- webhook --------------------------------------------------------------------------------------------
@require_POST
@admin_required
def webhook_register(request):
    integration = _integration()
    if integration is None:
        return _done(request, None, error="Set NinjaOne up first.")
    provider = NinjaOneProvider(integration)
    try:
        if request.POST.get("action") == "remove":
            provider.disconnect_webhook()
            ok = "Webhook removed from NinjaOne."
        else:
            provider.connect_webhook(config.webhook_url(integration, request))
            ok = "Webhook registered in NinjaOne."
    except ProviderError as exc:
        return _done(request, integration, error=describe_error(exc))
    finally:
        provider.close()
    integration.refresh_from_db()
    return _done(request, integration, ok=ok)


# -- node classes ---------------------------------------------------------------------------------------
@require_POST
@admin_required
def node_class_save(request):
    """One row of the node class table: {node_class, asset_type}; the default type removes the override."""
    integration = _integration()
    if integration is None:
        return _done(request, None, error="Set NinjaOne up first.")
    node_class = text(request.POST.get("node_class"), 100).upper().replace(" ", "_")
    asset_type = text(request.POST.get("asset_type"))
    if not node_class or asset_type not in ASSET_TYPE_LABELS:
        return _done(request, integration, error="Choose a node class and one of the asset types.")
    current = {text(k).upper(): v for k, v in as_dict((integration.settings or {}).get("node_class_map")).items()}
    if normalize.NODE_CLASS_ASSET_TYPES.get(node_class) == asset_type:
        current.pop(node_class, None)
    else:
        current[node_class] = asset_type
    try:
        integration = config.update_integration(integration, settings={"node_class_map": current}, test=False)
    except ValidationError as exc:
        return _done(request, integration, error="; ".join(str(m) for m in exc.messages))
    return _done(request, integration, ok=f"{node_class} -> {ASSET_TYPE_LABELS[asset_type]}: the next device sync "
                                          "applies it.")


urlpatterns = [
    path("connect/", connect_start, name="ninjaone-connect"),
    path("callback/", callback, name="ninjaone-callback"),
    path("webhook/", webhook_register, name="ninjaone-webhook"),
    path("node-classes/", node_class_save, name="ninjaone-node-classes"),
]
