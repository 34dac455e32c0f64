"""Who may open the settings pages: tenant admins only.

Anonymous users go to the login page; members who are not admins get a 403 page.
Objects are always looked up through tenant-scoped managers, so another tenant's
id is a 404 (never a 403 that would confirm it exists).
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import Http404
from django.shortcuts import render

from integrations import registry


def admin_required(view):
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        membership = getattr(request, "membership", None)
        if membership is None or not membership.is_admin:
            return render(
                request,
                "integrations/forbidden.html",
                {"message": "Only tenant admins can change settings."},
                status=403,
            )
        return view(request, *args, **kwargs)

    return wrapped


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
