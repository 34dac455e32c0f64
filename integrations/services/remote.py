"""Remote access to one asset through the provider that manages it: a fresh link each time a person
asks (NinjaOne's dashboard links expire), never stored on the asset."""

from __future__ import annotations

from typing import Any

from assets.models import Asset
from integrations import registry
from integrations.base import opened
from integrations.models import Integration, IntegrationStatus


class RemoteAccessUnavailable(Exception):
    """No connected provider offers remote access to this asset; ``str(exc)`` says why."""


def _candidates(asset: Asset) -> list[tuple[str, str]]:
    out = []
    for provider, external_id in asset.external_ids.order_by("provider", "id").values_list("provider", "external_id"):
        if registry.is_registered(provider) and registry.get_provider_class(provider).capabilities.remote_access:
            out.append((provider, external_id))
    return out


def providers_for(asset: Asset) -> list[str]:
    """The providers that can open a remote session on this asset (for the asset page's button)."""
    return [slug for slug, _ in _candidates(asset)]


def open_link(asset: Asset, provider: str | None = None) -> dict[str, Any]:
    """{"provider", "url", "expires"} from the provider, now. Raises RemoteAccessUnavailable, or the
    provider's errors (integrations.errors)."""
    candidates = [(slug, ext) for slug, ext in _candidates(asset) if provider in (None, "", slug)]
    if not candidates:
        raise RemoteAccessUnavailable("No provider that offers remote access manages this asset.")
    for slug, external_id in candidates:
        integration = Integration.objects.filter(provider=slug).first()
        if integration is None or integration.status != IntegrationStatus.CONNECTED or not integration.enabled:
            continue
        with opened(integration) as p:
            link = p.remote_access_link(external_id)
        url = str(link.get("url") or "")
        if not url.startswith(("https://", "http://")):
            raise RemoteAccessUnavailable(f"{p.name} gave no usable link for this device.")
        expires = link.get("expires")
        return {"provider": slug, "url": url, "expires": expires.isoformat() if hasattr(expires, "isoformat")
                else expires}
    names = ", ".join(registry.get_provider_class(slug).name for slug, _ in candidates)
    raise RemoteAccessUnavailable(f"{names} is not connected: reconnect it to open a remote session.")
