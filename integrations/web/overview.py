"""The RMM tab (one card per registered provider) and a provider's panel of cards."""

from __future__ import annotations

from django.shortcuts import render

from integrations import registry
from integrations.models import Integration
from integrations.services.status import provider_counts
from psa.queues import pipeline_health

from .access import ProviderView, admin_required, provider_class_or_404
from .cards import panel_context
from .status import provider_stats


@admin_required
def rmm_tab(request):
    from integrations.services.health import health_by_provider

    integrations = {i.provider: i for i in Integration.objects.all()}
    counts = provider_counts()
    healths = health_by_provider(list(integrations.values()))
    cards = []
    for cls in registry.all_providers():
        integration = integrations.get(cls.slug)
        stats = provider_stats(integration, counts.get(cls.slug))
        cards.append({"provider": ProviderView(cls), "integration": integration, "stats": stats,
                      "health": healths.get(cls.slug)})
    return render(request, "integrations/rmm_tab.html",
                  {"cards": cards, "settings_section": "rmm", "pipeline_health": pipeline_health()})


@admin_required
def provider_panel(request, provider: str):
    cls = provider_class_or_404(provider)
    ctx = panel_context(request, cls)
    return render(request, "integrations/panel.html", ctx)


@admin_required
def settings_home(request):
    from django.shortcuts import redirect

    return redirect("/settings/integrations/rmm/")
