"""The provider app base class: every provider is a Django app declaring its extension points here.

A provider app's ``apps.py``::

    class LevelConfig(ProviderAppConfig):
        name = "integrations.level"
        label = "integrations_level"
        provider = "integrations.level.provider.LevelProvider"
        web_urls = "integrations.level.urls"    # optional: mounted at /integrations/level/
        api_urls = "integrations.level.api"     # optional: mounted at /api/v1/integrations/level/

``ready()`` registers the provider class; the framework mounts the declared URL modules
(``integrations.urls`` and ``integrations.api.urls``), so nothing is found by ``getattr``. The
provider class itself declares its settings, signature scheme, secret headers, job kinds and
panel cards (integrations.base.Provider).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from django.apps import AppConfig
from django.utils.module_loading import import_string

from . import registry
from .base import Capabilities, PanelCard


class ProviderAppConfig(AppConfig):
    # Django picks the one AppConfig of an app's apps.py by itself, but counts this imported base as a
    # second candidate: the base says it is not a default, and each subclass says it is.
    default = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "default" not in cls.__dict__:
            cls.default = True

    # Dotted path of the Provider subclass this app contributes.
    provider: str = ""
    # Dotted path of a module with ``urlpatterns``: web routes under /integrations/<slug>/.
    web_urls: str | None = None
    # Dotted path of a module with ``urlpatterns``: API routes under /api/v1/integrations/<slug>/.
    api_urls: str | None = None

    def ready(self) -> None:
        if not self.provider:
            raise TypeError(f"{type(self).__name__} must name its provider class")
        provider_cls = import_string(self.provider)
        if not registry.is_registered(provider_cls.slug):
            registry.register(provider_cls, app=self)


@dataclass(frozen=True)
class CapabilityExtension:
    """What an app adds to every provider that has a capability: the incident router serves every
    provider with ``capabilities.incidents`` (its routing card, its status and routing routes), so
    no provider names the app that turns its records into tickets."""

    capability: str  # a field of integrations.base.Capabilities
    web_urls: str | None = None  # mounted at /integrations/<slug>/ of each such provider
    api_urls: str | None = None  # mounted at /api/v1/integrations/<slug>/
    panel_cards: tuple[PanelCard, ...] = ()


_extensions: list[CapabilityExtension] = []


def extend_capability(extension: CapabilityExtension) -> None:
    """Called from the contributing app's AppConfig.ready()."""
    if extension.capability not in {f.name for f in dataclasses.fields(Capabilities)}:
        raise ValueError(f"unknown capability {extension.capability!r}")
    if extension not in _extensions:
        _extensions.append(extension)


def extensions_for(provider_cls) -> list[CapabilityExtension]:
    caps = dataclasses.asdict(provider_cls.capabilities)
    return [e for e in _extensions if caps.get(e.capability)]


def provider_routes(*, api: bool) -> list:
    """``path("integrations/<slug>/", include(module))`` for every provider app that declares its
    ``api_urls`` (api=True) or ``web_urls``, and for the capability extensions that serve it; the
    framework's URL confs call this."""
    from django.urls import include, path

    routes = []
    for cls in registry.all_providers():
        app = registry.provider_app(cls.slug)
        modules = [(app.api_urls if api else app.web_urls) if app is not None else None]
        modules += [e.api_urls if api else e.web_urls for e in extensions_for(cls)]
        routes += [path(f"integrations/{cls.slug}/", include(m)) for m in modules if m]
    return routes
