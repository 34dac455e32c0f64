"""Web pages of the outbox: the side effects list (the integration card links here, filtered) and Retry."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from outbox import services
from outbox.models import EffectState, SideEffect
from psa.web.access import member_required


@member_required
def side_effects(request):
    qs = SideEffect.objects.select_related("integration", "ticket").order_by("-created_at", "-id")
    state = request.GET.get("state") or ""
    provider = request.GET.get("provider") or ""
    if state in EffectState.values:
        qs = qs.filter(state=state)
    if provider:
        qs = qs.filter(integration__provider=provider)
    return render(request, "outbox/list.html", {"effects": list(qs[:200]), "state": state, "provider": provider,
                                                "states": EffectState.choices})


@require_POST
@member_required
def retry(request, pk: int):
    effect = SideEffect.objects.filter(pk=pk).first()
    if effect is None:
        raise Http404
    try:
        services.retry(effect)
        messages.success(request, f"{effect.label or effect.kind}: retrying now.")
    except services.NotRetryable as exc:
        messages.error(request, str(exc))
    back = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=False):
        back = ""
    return redirect(back or (f"/tickets/{effect.ticket_id}/" if effect.ticket_id else "/side-effects/"))


urlpatterns = [
    path("side-effects/", side_effects, name="web-side-effects"),
    path("side-effects/<int:pk>/retry/", retry, name="web-side-effect-retry"),
]
