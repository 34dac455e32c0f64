"""Who may open the settings pages: tenant admins only.

Anonymous users go to the login page; members who are not admins get a 403 page.
Objects are always looked up through tenant-scoped managers, so another tenant's
id is a 404 (never a 403 that would confirm it exists).
"""

from __future__ import annotations

from django.http import Http404

from integrations import registry
from integrations.models import Integration
from psa.models import Role
from psa.web.access import member_required

# Settings pages are for tenant admins; the shared web access rule does the checking.
admin_required = member_required(roles=(Role.ADMIN,))


def panel_url(slug: str) -> str:
    from django.urls import reverse

    return reverse("settings-rmm-provider", args=[slug])


def integration_or_404(provider_cls) -> Integration:
    """The tenant's integration of this provider; 404 while it is not set up."""
    integration = Integration.objects.filter(provider=provider_cls.slug).first()
    if integration is None:
        raise Http404("Not set up")
    return integration


def provider_class_or_404(slug: str):
    if not registry.is_registered(slug):
        raise Http404("Unknown provider")
    return registry.get_provider_class(slug)


def is_htmx(request) -> bool:
    return bool(getattr(request, "htmx", False))


class ProviderView:
    """A provider class as templates see it (Django templates would call the class itself)."""

    do_not_call_in_templates = True

    def __init__(self, cls):
        self.cls = cls
        self.slug = cls.slug
        self.name = cls.name
        self.capabilities = cls.capabilities
        self.requires_base_url = cls.requires_base_url
        self.webhook_header = cls.webhook_header


def for_template(ctx: dict) -> dict:
    """Replace a provider class in a template context by its ProviderView."""
    p = ctx.get("provider")
    if isinstance(p, type):
        ctx = {**ctx, "provider": ProviderView(p)}
    return ctx
