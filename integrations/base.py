"""The provider plugin interface. A provider knows nothing of tickets.

Each provider is a Django app whose AppConfig subclasses
``integrations.plugins.ProviderAppConfig`` (it registers the provider in ``ready()`` and
declares the app's extra routes). Instances are built per integration row:
``MyProvider(integration)``; ``self.credentials`` holds the decrypted credentials dict
(never log it). Use ``with opened(integration) as provider:`` for one unit of work.
What a new provider writes: docs/ARCHITECTURE.md, "Adding a provider".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from django.utils.module_loading import import_string

from .coerce import SeverityMap
from .errors import NotConfigured
from .records import (
    ConnectionResult,
    DeviceRecord,
    ExternalOrg,
    IncidentRecord,
    IncidentResolution,
    NormalizedAlert,
    PollResult,
    WebhookEnvelope,
)

if TYPE_CHECKING:
    from .models import Integration
    from .records import PatchRecord, SoftwareRecord


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
    # Security incident reports (IncidentRecord) for the incident router: ``incident`` and
    # ``resolve_incident`` are offered.
    incidents: bool = False


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


@dataclass(frozen=True)
class SettingField:
    """One typed provider setting: validated once by the framework (integrations.settings_schema),
    rendered in the connection card and accepted by ``PUT integrations/{provider}/`` under ``settings``.

    ``kind``: "bool", "choice" (one of ``choices``), "int" (``min_value``..``max_value``), "text",
    "map" (an object; the provider validates its entries in ``clean_settings``), "field_mapping" (the
    framework's field mapping table, validated by integrations.services.fieldmap; every device provider
    has one without declaring it).
    """

    name: str
    label: str
    kind: str = "bool"
    default: Any = None
    choices: tuple[tuple[str, str], ...] = ()
    min_value: int | None = None
    max_value: int | None = None
    help_text: str = ""
    # Shown in the connection card (False: API-only, e.g. a table edited on its own card).
    in_form: bool = True


@dataclass(frozen=True)
class JobKind:
    """A long operation the framework runs as a Job: started through ``jobs.start_job`` (the API and the
    pages alike), run by the one Celery task ``integrations.sync.run``, labelled in the UI.

    ``run`` is ``fn(integration, job, reporter) -> summary dict`` or a dotted path to one.
    ``capability``: a Capabilities flag the provider must have; ``requires_connected``: refuse to
    start while the integration is not connected.
    """

    kind: str
    label: str
    run: Callable[..., dict[str, Any] | None] | str
    capability: str | None = None
    requires_connected: bool = False
    description: str = ""

    def resolve(self) -> Callable[..., dict[str, Any] | None]:
        return import_string(self.run) if isinstance(self.run, str) else self.run


@dataclass(frozen=True)
class PanelCard:
    """An extra card of the provider's settings panel (e.g. Huntress routing).

    ``template`` renders inside the panel grid; ``context`` is ``fn(request, provider_cls,
    integration) -> dict`` (or its dotted path). The card's own POST views live in the
    provider's ``web_urls`` (see integrations.plugins.ProviderAppConfig).
    """

    name: str
    template: str
    context: Callable[..., dict[str, Any]] | str | None = None
    requires_integration: bool = True

    def build_context(self, request, provider_cls, integration) -> dict[str, Any]:
        if self.context is None:
            return {}
        fn = import_string(self.context) if isinstance(self.context, str) else self.context
        return fn(request, provider_cls, integration) or {}


@dataclass
class WebhookRequest:
    """The stored inbound request a provider parses (body is bytes, headers lower-cased)."""

    body: bytes
    headers: Mapping[str, str]
    query: Mapping[str, str]
    extra: dict[str, Any] = field(default_factory=dict)


class SignatureScheme:
    """How a provider signs its webhooks (HMAC over the raw body, Svix, ...); none by default.

    ``verify`` answers True (valid), False (invalid: 401) or None when the request carries no
    signature at all, in which case intake falls back to the shared-secret header (a provider
    may offer both routes, e.g. Level's signed webhooks and its unsigned automation action).
    """

    name: ClassVar[str] = ""
    # Request headers the scheme reads (documented on the webhook card).
    headers: ClassVar[tuple[str, ...]] = ()

    def verify(self, request: WebhookRequest, secret: str) -> bool | None:
        raise NotImplementedError


class Provider:
    """The interface of a provider plugin. Everything a provider offers is declared here as a class
    attribute or a method with a default, so the framework never has to guess with ``getattr``."""

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
    # The provider's severity words -> ours: parsed with it, shown on the card and in the API.
    severity_map: ClassVar[SeverityMap | None] = None
    # Typed settings (integrations.settings_schema validates them; the connection card renders them).
    settings_fields: ClassVar[tuple[SettingField, ...]] = ()
    # How the provider signs webhooks; None: the shared-secret header (or ?secret=) only.
    signature_scheme: ClassVar[SignatureScheme | None] = None
    # Request headers that carry secrets, redacted from stored webhooks (besides webhook_header).
    secret_headers: ClassVar[tuple[str, ...]] = ()
    # Extra long operations (besides organization sync, device sync and poll).
    job_kinds: ClassVar[tuple[JobKind, ...]] = ()
    # Extra cards of the settings panel.
    panel_cards: ClassVar[tuple[PanelCard, ...]] = ()
    # "security" events (incident reports) are dispatched before "alerts" when both wait.
    priority_lane: ClassVar[str] = "alerts"
    # The provider's docs page (relative to the repository), linked from its card.
    docs: ClassVar[str] = ""
    # Device providers: {target: source path in DeviceRecord.raw} applied by every device sync and live
    # device change (integrations.services.fieldmap); targets are asset fields ("serial_number") or
    # named attributes ("attr.warranty_end"). Each integration overrides it with its ``field_mapping`` setting.
    default_field_mapping: ClassVar[dict[str, str]] = {}

    def __init__(self, integration: Integration):
        self.integration = integration

    # -- helpers -------------------------------------------------------------------
    @property
    def credentials(self) -> dict[str, Any]:
        return self.integration.get_credentials()

    @property
    def settings(self) -> dict[str, Any]:
        return self.integration.settings or {}

    @property
    def options(self) -> dict[str, Any]:
        """The typed settings with their defaults filled in."""
        from .settings_schema import options

        return options(type(self), self.settings)

    def clean_settings(self, settings: dict[str, Any]) -> dict[str, list[str]]:
        """Checks beyond each field's type (cross-field rules, a map's entries): {"settings.x": [msg]}.

        ``settings`` is the merged result (stored + incoming, defaults filled in)."""
        return {}

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

    def device_sync_report(self) -> dict[str, Any]:
        """Called by the device sync once ``iter_devices`` ran out: what the walk learned. Integer values
        add to the sync's own counts of the same name (``skipped_unmapped``: devices the provider left out
        because neither their organization nor their location is mapped); other JSON values join the
        sync's summary as they are (e.g. NinjaOne's ``unknown_node_classes``)."""
        return {}

    def iter_software(self, organization_external_ids: set[str]
                      ) -> Iterator[tuple[str, list[SoftwareRecord]]] | None:
        """(device external id, its whole software list) for devices of the given organizations
        (capabilities.software), each device once; written by integrations.services.inventory. A device of
        those organizations that is not yielded has none. None: not fetched this time (what we have stays)."""
        return None

    def iter_patches(self, organization_external_ids: set[str]) -> Iterator[tuple[str, list[PatchRecord]]] | None:
        """(device external id, its whole patch list), as ``iter_software`` (capabilities.patches)."""
        return None

    def remote_access_link(self, device_external_id: str) -> dict[str, Any]:
        """A fresh remote-access link ``{"url", "expires" (datetime or None)}`` for one device
        (capabilities.remote_access), fetched when a person asks; it may expire, so it is never stored."""
        raise NotConfigured(f"{self.name} offers no remote access link")

    def refuse_job(self, kind: JobKind) -> str | None:
        """A provider's own reason not to start a job now (e.g. polling paused until routing is
        complete); None lets it start. Capability and connection checks are the framework's."""
        return None

    def webhook_signing_secret(self, secret: str) -> str:
        """The key ``signature_scheme`` verifies with: by default the integration's webhook secret
        (what the card shows); a provider whose sender has its own signing secret returns that."""
        return secret

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

    def incident(self, external_id: str) -> IncidentRecord:
        """One incident report, read in full now (capabilities.incidents)."""
        raise NotConfigured(f"{self.name} has no incident reports")

    def resolve_incident(self, external_id: str) -> IncidentResolution:
        """Write-back: resolve the incident in the provider. Refusals come back as a result (for a ticket
        note); transient failures raise integrations.errors so the caller retries."""
        raise NotConfigured(f"{self.name} cannot resolve incidents")

    def webhook_card(self, url: str, secret: str) -> dict[str, Any]:
        """What the admin pastes into the provider: extends {url, header_name, secret}."""
        return {"payload_template": ""}

    # -- lifecycle hooks (called by the framework; default: nothing) ----------------
    def on_connected(self) -> str | None:
        """After a successful connection test (e.g. register our webhook in the provider); a returned
        sentence is shown to the admin with the test result. A ProviderError is shown, not fatal."""
        return None

    def on_disconnect(self) -> None:
        """Before the credentials are cleared (e.g. remove our webhook from the provider)."""

    def close(self) -> None:
        """Release HTTP clients."""

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def opened(integration: Integration) -> Iterator[Provider]:
    """The provider of ``integration`` for one unit of work, closed afterwards (whatever happens)."""
    from .registry import get_provider

    provider = get_provider(integration)
    try:
        yield provider
    finally:
        try:
            provider.close()
        except Exception:  # closing must never hide the outcome of the work
            logging.getLogger("integrations").warning("closing %s provider failed", integration.provider,
                                                      exc_info=True)
