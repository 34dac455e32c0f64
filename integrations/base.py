"""The provider plugin interface. A provider knows nothing of tickets.

Each provider is a Django app whose AppConfig.ready() calls
``integrations.registry.register(MyProvider)``. Instances are built per
integration row: ``MyProvider(integration)``; ``self.credentials`` holds the
decrypted credentials dict (never log it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import NotConfigured
from .records import ConnectionResult, DeviceRecord, ExternalOrg, NormalizedAlert, PollResult, WebhookEnvelope

if TYPE_CHECKING:
    from .models import Integration


@dataclass(frozen=True)
class Capabilities:
    device_sync: bool = False
    webhooks: bool = False
    polling: bool = False
    reset_on_close: bool = False
    software: bool = False
    patches: bool = False
    remote_access: bool = False
    # Organizations appear from alert payloads rather than a list call.
    orgs_from_events: bool = False


@dataclass(frozen=True)
class CredentialField:
    name: str
    label: str
    secret: bool = True
    required: bool = True
    help_text: str = ""


@dataclass(frozen=True)
class CredentialSet:
    """One accepted combination of credential fields (e.g. api_key, or username+password)."""

    name: str
    fields: tuple[str, ...]
    optional: tuple[str, ...] = ()


@dataclass
class WebhookRequest:
    """The stored inbound request a provider parses (body is bytes, headers lower-cased)."""

    body: bytes
    headers: Mapping[str, str]
    query: Mapping[str, str]
    extra: dict[str, Any] = field(default_factory=dict)


class Provider:
    slug: ClassVar[str]
    name: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()
    credential_fields: ClassVar[tuple[CredentialField, ...]] = ()
    credential_sets: ClassVar[tuple[CredentialSet, ...]] = ()
    requires_base_url: ClassVar[bool] = False
    webhook_header: ClassVar[str] = "X-PSA-Webhook-Secret"
    # Query parameter fallback for providers that cannot send custom headers.
    webhook_secret_in_query: ClassVar[bool] = False
    default_poll_interval_minutes: ClassVar[int] = 15
    poll_interval_bounds: ClassVar[tuple[int, int]] = (5, 60)
    severity_map_doc: ClassVar[dict[str, str]] = {}

    def __init__(self, integration: Integration):
        self.integration = integration

    # -- helpers -------------------------------------------------------------------
    @property
    def credentials(self) -> dict[str, Any]:
        return self.integration.get_credentials()

    @property
    def settings(self) -> dict[str, Any]:
        return self.integration.settings or {}

    def validate_credentials(self, credentials: dict[str, Any], base_url: str) -> dict[str, list[str]]:
        """Field errors for a PUT; default checks one credential set is complete."""
        errors: dict[str, list[str]] = {}
        if self.requires_base_url and not base_url:
            errors["base_url"] = ["This provider needs the base URL of its API."]
        if self.credential_sets and credentials is not None:
            present = {k for k, v in credentials.items() if v not in (None, "")}
            if not any(set(cs.fields) <= present for cs in self.credential_sets):
                names = " or ".join("{" + ", ".join(cs.fields) + "}" for cs in self.credential_sets)
                errors["credentials"] = [f"Provide {names}."]
        return errors

    def prepare_credentials(self, credentials: dict[str, Any], base_url: str) -> dict[str, Any]:
        """Turn what the admin typed into what we store (e.g. exchange a password for a token)."""
        return credentials

    # -- the interface -------------------------------------------------------------
    def test_connection(self) -> ConnectionResult:
        raise NotConfigured(f"{self.name} has no connection test")

    def list_organizations(self) -> Iterable[ExternalOrg]:
        return []

    def iter_devices(self, organization_external_ids: set[str]) -> Iterator[DeviceRecord]:
        """Devices of the given (mapped) organizations, streamed."""
        return iter(())

    # Optional hook for providers that sign their webhooks (HMAC over the raw body, Svix...):
    #   def verify_webhook_signature(self, request: WebhookRequest, secret: str) -> bool | None
    # Returning None falls back to the shared-secret header. It is deliberately not defined
    # here: intake treats its presence as "this provider signs" (alerts.services.intake).

    def inspect_webhook(self, request: WebhookRequest) -> WebhookEnvelope:
        """Cheap check at intake; raise WebhookParseError for a body that cannot be read."""
        raise NotImplementedError

    def parse_webhook(self, request: WebhookRequest) -> list[NormalizedAlert]:
        """Full parse in the worker (may call the provider's API to salvage a broken body)."""
        raise NotImplementedError

    def poll_alerts(self, cursor: str | None = None) -> PollResult:
        raise NotConfigured(f"{self.name} does not support polling")

    def reset_alert(self, external_id: str) -> None:
        raise NotConfigured(f"{self.name} cannot reset alerts")

    def webhook_card(self, url: str, secret: str) -> dict[str, Any]:
        """What the admin pastes into the provider: extends {url, header_name, secret}."""
        return {"payload_template": ""}

    def close(self) -> None:
        """Release HTTP clients."""
