"""Provider registry, filled by each provider app's ready() and frozen afterwards.

Provider apps register in ``AppConfig.ready()``; the registry freezes itself at
the first lookup once start-up is over (every app's ready() has run), so a late or
accidental ``register`` fails loudly instead of changing behaviour mid-flight.
Tests add throw-away providers with :func:`registered_for_tests`, which is the
only way around the freeze and undoes itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import JobKind, Provider
    from .models import Integration
    from .plugins import ProviderAppConfig

# The product's provider slugs (API.md), known even before a provider's app is installed.
KNOWN_SLUGS = ("generic", "ninjaone", "tactical", "level", "huntress")

_providers: dict[str, type[Provider]] = {}
_apps: dict[str, ProviderAppConfig] = {}
_frozen = False


def register(provider_cls: type[Provider], app: ProviderAppConfig | None = None) -> type[Provider]:
    if _frozen:
        raise RuntimeError("provider registry is frozen after start-up")
    _check_declarations(provider_cls)
    _providers[provider_cls.slug] = provider_cls
    if app is not None:
        _apps[provider_cls.slug] = app
    return provider_cls


def _check_declarations(provider_cls: type[Provider]) -> None:
    """Fail at start-up, not at the first webhook, on a provider that declares something twice."""
    from .services.jobs import FRAMEWORK_KINDS

    taken = {k.kind for k in FRAMEWORK_KINDS}
    for kind in provider_cls.job_kinds:
        if kind.kind in taken:
            raise ValueError(f"{provider_cls.slug}: job kind {kind.kind!r} is declared twice")
        taken.add(kind.kind)
    names = [f.name for f in provider_cls.settings_fields]
    if len(names) != len(set(names)):
        raise ValueError(f"{provider_cls.slug}: a setting is declared twice")


def freeze() -> None:
    global _frozen
    _frozen = True


def _freeze_once_started() -> None:
    # Only after every AppConfig.ready() has run: a lookup during app loading must not
    # lock out providers whose apps come later in INSTALLED_APPS.
    if not _frozen:
        from django.apps import apps

        if apps.ready:
            freeze()


def is_frozen() -> bool:
    return _frozen


@contextmanager
def registered_for_tests(provider_cls: type[Provider]) -> Iterator[type[Provider]]:
    """Register ``provider_cls`` for the duration of a test, then restore the previous state."""
    slug = provider_cls.slug
    previous = _providers.get(slug)
    _providers[slug] = provider_cls
    try:
        yield provider_cls
    finally:
        if previous is None:
            _providers.pop(slug, None)
        else:
            _providers[slug] = previous


def get_provider_class(slug: str) -> type[Provider]:
    _freeze_once_started()
    try:
        return _providers[slug]
    except KeyError:
        raise LookupError(f"unknown provider {slug!r}") from None


def all_providers() -> list[type[Provider]]:
    _freeze_once_started()
    return sorted(_providers.values(), key=lambda p: (p.slug != "generic", p.name))


def provider_app(slug: str) -> ProviderAppConfig | None:
    """The app that contributed the provider (its URL modules), if it registered through one."""
    _freeze_once_started()
    return _apps.get(slug)


def job_kind(slug: str, kind: str) -> JobKind | None:
    """A job kind this provider can run: the framework's kinds, then the provider's own."""
    from .services.jobs import FRAMEWORK_KINDS

    for candidate in (*FRAMEWORK_KINDS, *get_provider_class(slug).job_kinds):
        if candidate.kind == kind:
            return candidate
    return None


def get_provider(integration: Integration) -> Provider:
    return get_provider_class(integration.provider)(integration)


def is_registered(slug: str) -> bool:
    _freeze_once_started()
    return slug in _providers


def known_slugs() -> list[str]:
    """Registered providers first (in display order), then the product's other slugs."""
    registered = [p.slug for p in all_providers()]
    return registered + [s for s in KNOWN_SLUGS if s not in registered]
