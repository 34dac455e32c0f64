"""Inbound events card of a provider panel: newest events, one event's redacted payload and what
the pipeline did with it, and Replay (alerts.services.events.request_replay)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from alerts.filtersets import InboundEventFilter
from alerts.models import Alert, InboundEvent
from alerts.services import events as events_svc
from alerts.services.trace import present as trace_present
from integrations.crypto import CredentialDecryptError
from integrations.models import Integration
from integrations.web.access import (
    ProviderView,
    admin_required,
    integration_or_404,
    is_htmx,
    panel_url,
    provider_class_or_404,
)
from psa.text import body_text

PAGE = 25
MAX_BODY_SHOWN = 64 * 1024


@admin_required
def event_list(request, provider: str):
    cls = provider_class_or_404(provider)
    integration = integration_or_404(cls)
    qs = InboundEvent.objects.filter(integration=integration).only(
        "pk", "received_at", "status", "summary", "error", "source", "salvaged", "size").order_by("-received_at", "-id")
    filtered = InboundEventFilter(request.GET, queryset=qs)
    # An invalid filter value shows the unfiltered log (the API answers 400 for it).
    qs = filtered.qs if filtered.is_valid() else qs
    status = request.GET.get("status", "") if filtered.is_valid() else ""
    try:
        page = max(1, int(request.GET.get("page", "1")))
    except ValueError:
        page = 1
    rows = list(qs[(page - 1) * PAGE: page * PAGE + 1])
    ctx = {
        "provider": ProviderView(cls), "integration": integration, "events": rows[:PAGE], "status_filter": status,
        "page": page, "has_next": len(rows) > PAGE, "settings_section": "rmm",
    }
    template = "alerts/_events_card.html" if is_htmx(request) else "alerts/events_page.html"
    return render(request, template, ctx)


def _redacted_body(event: InboundEvent, integration: Integration) -> str:
    text = body_text(event.body, MAX_BODY_SHOWN)
    try:
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (ValueError, TypeError):
        pass
    # Intake redacts secret headers and query parameters; a sender that also put the
    # secret into the body must not have it shown here either.
    try:
        secret = integration.get_webhook_secret()
    except CredentialDecryptError:  # undecryptable secret: nothing to redact with
        secret = ""
    if secret:
        text = text.replace(secret, "[redacted]")
    if len(event.body or b"") > MAX_BODY_SHOWN:
        text += f"\n… ({len(event.body)} bytes, first {MAX_BODY_SHOWN} shown)"
    return text


def _outcome(event: InboundEvent) -> dict[str, Any]:
    """What the pipeline recorded in ``result``, with the alerts and tickets it names resolved to rows."""
    result = event.result if isinstance(event.result, dict) else {}
    alert_ids: set[int] = set()
    for key in ("alerts", "alert_ids"):
        for item in result.get(key) or []:
            if isinstance(item, dict) and isinstance(item.get("id") or item.get("alert_id"), int):
                alert_ids.add(item.get("id") or item.get("alert_id"))
            elif isinstance(item, int) and not isinstance(item, bool):
                alert_ids.add(item)
    if isinstance(result.get("alert_id"), int):
        alert_ids.add(result["alert_id"])
    alerts = list(
        Alert.objects.filter(pk__in=alert_ids).select_related("ticket", "rule", "client", "asset", "suppressed_by")
    ) if alert_ids else []
    for a in alerts:
        a.presented_trace = trace_present(a.trace)
    return {"result": result, "alerts": alerts,
            "result_json": json.dumps(result, indent=2, ensure_ascii=False, default=str) if result else ""}


@admin_required
def event_detail(request, provider: str, event_id: int):
    cls = provider_class_or_404(provider)
    integration = integration_or_404(cls)
    event = get_object_or_404(InboundEvent.objects.filter(integration=integration), pk=event_id)
    ctx = {
        "provider": ProviderView(cls), "integration": integration, "event": event,
        "body": _redacted_body(event, integration), "settings_section": "rmm",
        "headers_json": json.dumps(event.headers or {}, indent=2, ensure_ascii=False),
        "query_json": json.dumps(event.query or {}, indent=2, ensure_ascii=False) if event.query else "",
        **_outcome(event),
    }
    return render(request, "alerts/event_detail.html", ctx)


@require_POST
@admin_required
def event_replay(request, provider: str, event_id: int):
    cls = provider_class_or_404(provider)
    integration = integration_or_404(cls)
    event = get_object_or_404(InboundEvent.objects.filter(integration=integration), pk=event_id)
    with transaction.atomic():  # the replay is enqueued on commit, as in the API
        queued = events_svc.request_replay(event)
    if queued:
        messages.success(request, f"Event {event.pk} queued for replay.")
    else:
        messages.error(request, "A duplicate delivery cannot be replayed; replay the original event instead.")
    return redirect(f"{panel_url(cls.slug)}events/{event.pk}/")
