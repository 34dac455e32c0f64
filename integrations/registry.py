"""Provider registry, filled by each provider app's ready() and frozen afterwards."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Provider
    from .models import Integration

_providers: dict[str, type["Provider"]] = {}
_frozen = False


def register(provider_cls: type["Provider"]) -> type["Provider"]:
    if _frozen:
        raise RuntimeError("provider registry is frozen after start-up")
    _providers[provider_cls.slug] = provider_cls
    return provider_cls


def freeze() -> None:
    global _frozen
    _frozen = True


def get_provider_class(slug: str) -> type["Provider"]:
    try:
        return _providers[slug]
    except KeyError:
        raise LookupError(f"unknown provider {slug!r}") from None


def all_providers() -> list[type["Provider"]]:
    return sorted(_providers.values(), key=lambda p: (p.slug != "generic", p.name))


def get_provider(integration: "Integration") -> "Provider":
    return get_provider_class(integration.provider)(integration)


def is_registered(slug: str) -> bool:
    return slug in _providers
