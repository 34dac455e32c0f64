"""The Level provider: groups as a tree, devices, native signed webhooks and the automation route,
alert polling and resolve-on-close. HTTP lives in client.py, payloads in normalize.py and
webhook.py, the signature in signature.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, ClassVar

from django.core.cache import cache
from django.utils import timezone

from integrations.base import (
    Capabilities,
    CredentialField,
    CredentialSet,
    PanelCard,
    Provider,
    SettingField,
    WebhookRequest,
)
from integrations.coerce import boolean, chunks, str_id
from integrations.errors import (
    AuthFailed,
    BadResponse,
    BlockedURL,
    NotFound,
    NotResettable,
    PermissionDenied,
    ProviderError,
    RateLimited,
    Unavailable,
    WebhookParseError,
)
from integrations.records import (
    AlertEventKind,
    ConnectionResult,
    DeviceRecord,
    DirectoryChange,
    ExternalOrg,
    NormalizedAlert,
    PollResult,
    WebhookEnvelope,
)
from integrations.services.config import remember
from psa.tenancy import tenant_context

from . import normalize, signature, webhook
from .client import (
    ACCESS_READ_ONLY,
    ACCESS_READ_WRITE,
    ACCESS_UNKNOWN,
    DEFAULT_BASE_URL,
    LevelClient,
    ResolveOutcome,
)

log = logging.getLogger("integrations.level")

# device id -> group id, shared by workers (alerts carry no group; devices rarely move).
GROUP_CACHE_SECONDS = 15 * 60
# Above this many devices of unknown group, one device listing replaces the lookups one by one.
BULK_LOOKUP_MIN = 20
ACCESS_WORDS = {ACCESS_READ_WRITE: "read and write", ACCESS_READ_ONLY: "read-only"}
# provider_state key of what is known about the API key's access (see remember_access).
KEY_ACCESS = "key_access"

# Level's device record -> named asset attributes (the framework's field mapping; admins override it).
# Standard fields (serial, OS, make/model, role -> type, last user, IPs) come from normalize.device.
DEFAULT_FIELD_MAPPING = {
    "attr.nickname": "nickname",
    "attr.role": "role",
    "attr.tags": "tags",
    "attr.architecture": "architecture",
    "attr.cpu": "cpus.0.model",
    "attr.cpu_cores": "cpu_cores",
    "attr.memory_bytes": "total_memory",
    "attr.disks": "disk_partitions",
    "attr.ip_addresses": "network_interfaces.*.ip_addresses",
    "attr.mac_addresses": "network_interfaces.*.mac_address",
    "attr.os_end_of_life": "operating_system.end_of_life",
    "attr.last_reboot": "last_reboot_time",
    "attr.maintenance_mode": "maintenance_mode",
    "attr.security_risk": "security.risk",
    "attr.antivirus": "security.antivirus_provider",
    "attr.firewall_enabled": "security.firewall_enabled",
    "attr.location": "city",
    "attr.country": "country",
}


class LevelProvider(Provider):
    slug = normalize.SLUG
    name = "Level"
    capabilities = Capabilities(device_sync=True, webhooks=True, polling=True, reset_on_close=True)
    credential_fields = (
        CredentialField(
            "api_key", "API key",
            help_text="Level: Settings > API keys. 'Read and write' lets closing a ticket resolve the alert in "
                      "Level; a read-only key does everything else.",
        ),
    )
    credential_sets = (CredentialSet("api_key", ("api_key",)),)
    requires_base_url = False
    default_poll_interval_minutes = 5
    poll_interval_bounds = (5, 60)
    severity_map = normalize.SEVERITY_MAP
    severity_map_doc: ClassVar[dict[str, str]] = dict(normalize.SEVERITY_MAP.table)
    signature_scheme = signature.LevelSignatureScheme()
    default_field_mapping = DEFAULT_FIELD_MAPPING
    docs = "docs/level.md"
    panel_cards = (
        PanelCard("level-routes", "level/routes_card.html", "integrations.level.views.routes_card_context"),
    )
    settings_fields = (
        SettingField("severity_map", "Severity map", "map", default={}, in_form=False,
                     help_text="Level severity -> ours, overriding the default table (information -> info, "
                               "warning -> medium, critical -> high, emergency -> critical)."),
    )

    def __init__(self, integration):
        super().__init__(integration)
        self._client: LevelClient | None = None
        self._groups: dict[str, str | None] = {}
        # Optional device id -> group id lookup tried before the cache and Level (tests use it).
        self.group_resolver = None
        # What the last real resolve proved about the key (also stored: remember_access).
        self.learned_access: str | None = None

    # -- settings ------------------------------------------------------------------------
    @property
    def severity_overrides(self) -> dict[str, str] | None:
        value = self.options.get("severity_map")
        return value if isinstance(value, dict) and value else None

    def clean_settings(self, settings: dict[str, Any]) -> dict[str, list[str]]:
        errors = normalize.SEVERITY_MAP.validate_overrides(settings.get("severity_map"))
        return {"settings.severity_map": errors} if errors else {}

    def stored_access(self) -> str | None:
        """What is known about the key's access: read_write, read_only, unknown, or None (never tested)."""
        value = (self.integration.provider_state or {}).get(KEY_ACCESS)
        access = value.get("access") if isinstance(value, dict) else None
        return access if access in (ACCESS_READ_WRITE, ACCESS_READ_ONLY, ACCESS_UNKNOWN) else None

    def _key_hint(self) -> str:
        hint = (self.integration.credentials_hint or {}).get("api_key")
        return str(hint.get("last4") or "") if isinstance(hint, dict) else ""

    def remember_access(self, access: str, reason: str, source: str) -> None:
        """Store the key's access in provider_state (the card and the API show it).

        A real resolve is proof; the connection test's probe is an inference. So a probe does not
        overwrite what a resolve proved about the same key (same last 4 characters)."""
        if self.integration.pk is None:
            return
        key = self._key_hint()
        known = (self.integration.provider_state or {}).get(KEY_ACCESS)
        if (source == "connection_test" and isinstance(known, dict) and known.get("source") == "resolve"
                and known.get("key") == key and access != ACCESS_READ_ONLY):
            return
        with tenant_context(self.integration.tenant_id):
            remember(self.integration, **{KEY_ACCESS: {
                "access": access, "reason": reason, "source": source, "key": key, "at": timezone.now().isoformat(),
            }})

    # -- client --------------------------------------------------------------------------
    @property
    def client(self) -> LevelClient:
        if self._client is None:
            self._client = LevelClient(str(self.credentials.get("api_key") or ""), self.integration.base_url or None)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- connection test -----------------------------------------------------------------
    def test_connection(self) -> ConnectionResult:
        where = self.integration.base_url or DEFAULT_BASE_URL
        try:
            groups = sum(1 for _ in self.client.groups())
        except AuthFailed as exc:
            return _failed("bad_key", f"Level rejected the API key ({exc}). Copy the key again from Level, "
                                      "Settings > API keys: it may have been deleted or mistyped.")
        except PermissionDenied as exc:
            return _failed("no_access", f"Level knows the key but refused to list groups ({exc}): the key has no "
                                        "access to this organization's data. Create a key in Level (Settings > "
                                        "API keys) in the organization this PSA manages.")
        except RateLimited as exc:
            wait = f" in {int(exc.retry_after)} seconds" if exc.retry_after else " later"
            return _failed("rate_limited", f"Level is rate limiting this key (429): try again{wait}.")
        except Unavailable as exc:
            return _failed("unavailable", f"Level is down or unreachable: {exc} Try again later.")
        except (BadResponse, NotFound) as exc:
            return _failed("wrong_url", f"{where} is not Level's API: {exc} Leave the base URL empty to use "
                                        f"Level's own API ({DEFAULT_BASE_URL}).")
        except BlockedURL as exc:
            return _failed(exc.code, str(exc))
        probe = self.client.probe_access()
        self.remember_access(probe.access, probe.reason, "connection_test")
        access = ACCESS_WORDS.get(probe.access, "of unknown access (could not tell read-only from read and write)")
        note = (" Closing a ticket will not resolve its alert in Level." if probe.access == ACCESS_READ_ONLY else "")
        return ConnectionResult(
            ok=True, account_name="Level",
            message=f"Connected to Level: {groups} groups. The API key is {access}.{note}",
            details={"groups": groups, "access": probe.access, "access_reason": probe.reason,
                     "optional_includes_refused": self.client.refused_includes},
        )

    # -- groups and devices --------------------------------------------------------------
    def list_organizations(self) -> list[ExternalOrg]:
        return normalize.organizations(self.client.groups())

    def iter_devices(self, organization_external_ids: set[str]) -> Iterator[DeviceRecord]:
        """One pass over every device (paged), keeping those of the wanted groups: cheaper than one
        listing per group once subgroups inherit a mapping."""
        wanted = set(organization_external_ids)
        if not wanted:
            return
        for page in self.client.device_pages():
            records = [r for r in (normalize.device(row) for row in page) if r is not None]
            self._remember_many({r.external_id: r.organization_external_id or None for r in records})
            yield from (r for r in records if r.organization_external_id in wanted)

    def _cache_key(self, device_id: str) -> str:
        # The webhook key is random per integration row: a recreated database never reads stale entries.
        return f"level:device-group:{self.integration.webhook_key or self.integration.pk}:{device_id}"

    def _remember(self, device_id: str, group_id: str | None) -> None:
        self._groups[device_id] = group_id
        if group_id:
            cache.set(self._cache_key(device_id), group_id, GROUP_CACHE_SECONDS)
        else:
            cache.delete(self._cache_key(device_id))

    def _remember_many(self, groups: dict[str, str | None]) -> None:
        """A page of devices at once (one cache round trip, not one per device)."""
        self._groups.update(groups)
        known = {self._cache_key(d): g for d, g in groups.items() if g}
        if known:
            cache.set_many(known, GROUP_CACHE_SECONDS)

    def _known_group(self, device_id: str) -> bool:
        """Fill the instance cache from what is known without asking Level; True when found."""
        if device_id in self._groups:
            return True
        group_id = self.group_resolver(device_id) if self.group_resolver is not None else None
        group_id = group_id or cache.get(self._cache_key(device_id))
        if group_id is None:
            return False
        self._groups[device_id] = group_id
        return True

    def group_of_device(self, device_id: str) -> str | None:
        """The device's group: synced assets (the framework's resolver), the cache, then Level."""
        if not self._known_group(device_id):
            found = self.client.device(device_id, inventory=False)
            if found is None:
                log.info("level device %s not found while resolving its group", device_id)
            self._remember(device_id, str_id((found or {}).get("group_id")))
        return self._groups[device_id]

    def _prime_groups(self, device_ids: set[str]) -> None:
        """Many devices of unknown group (a first poll before any device sync): one listing of every
        device costs fewer calls than one lookup each."""
        unknown = {d for d in device_ids if not self._known_group(d)}
        if len(unknown) <= BULK_LOOKUP_MIN:
            return
        for batch in chunks(self.client.device_groups(), 500):
            self._remember_many(dict(batch))
        for device_id in unknown - set(self._groups):
            self._groups[device_id] = None  # not listed: gone from Level

    # -- webhooks ------------------------------------------------------------------------
    def verify_webhook_signature(self, request: WebhookRequest, secret: str) -> bool | None:
        """Native webhooks carry X-Level-Signature; without it (the automation route) None lets
        intake check the shared-secret header instead."""
        return self.signature_scheme.verify(request, secret)

    def inspect_webhook(self, request: WebhookRequest) -> WebhookEnvelope:
        event = webhook.read(request.body)
        return WebhookEnvelope(delivery_id=event.delivery_id, summary=webhook.summary(event))

    def parse_webhook(self, request: WebhookRequest) -> list[NormalizedAlert | DirectoryChange]:
        """Alerts (native and automation route) and, for device/group events, the DirectoryChange the
        framework applies live; unknown event types give nothing (stored, no action)."""
        event = webhook.read(request.body)
        if event.is_directory:
            return list(self.parse_directory_changes(request))
        if event.route == webhook.ROUTE_AUTOMATION:
            if event.salvaged:
                request.extra["salvaged"] = True
                request.extra["salvage_reason"] = "The automation body was not valid JSON; read line by line."
            alert = normalize.automation_alert(event.data, group_of_device=self.group_of_device,
                                               overrides=self.severity_overrides)
            if alert is None:
                raise WebhookParseError("The automation payload needs a device_id rendered by Level and a check name.")
            return [alert]
        if event.event_type not in webhook.ALERT_EVENTS:
            return []
        kind = webhook.ALERT_EVENTS[event.event_type]
        alert = normalize.alert(event.data, event=kind, group_of_device=self.group_of_device,
                                overrides=self.severity_overrides, occurred_at=event.occurred_at)
        if alert is None:
            raise WebhookParseError(f"The Level {event.event_type} webhook carries no alert id.")
        if kind == AlertEventKind.TRIGGERED and event.occurred_at and (
                alert.occurred_at is None or event.occurred_at > alert.occurred_at):
            # A reopen: Level reuses the alert id and may keep its first started_at; the event's own
            # time is what places it after the resolve we hold (the pipeline's "refired").
            alert.occurred_at = event.occurred_at
        return [alert]

    def parse_directory_changes(self, request: WebhookRequest) -> list[DirectoryChange]:
        """Device and group events as changes to apply live. A created/updated device is fetched
        with its inventory (events may carry less); if Level no longer has it, the event's own
        data is used, marked partial."""
        event = webhook.read(request.body)
        if not event.is_directory:
            return []
        if event.event_type in normalize.GROUP_EVENTS:
            change = normalize.group_change(event.event_type, event.data, event.occurred_at)
            return [change] if change else []
        device_id = str_id(event.data.get("id")) or ""
        full = None
        if event.event_type != "device_deleted":
            try:
                full = self.client.device(device_id)
            except (NotFound, PermissionDenied) as exc:
                log.info("level device %s not fetched for %s: %s", device_id, event.event_type, exc)
        change = normalize.device_change(event.event_type, event.data, full, event.occurred_at)
        if change is None:
            return []
        if change.device is not None:
            self._remember(change.device.external_id, change.device.organization_external_id or None)
        elif change.deleted_external_id:
            self._groups.pop(change.deleted_external_id, None)
            cache.delete(self._cache_key(change.deleted_external_id))
        return [change]

    def webhook_card(self, url: str, secret: str) -> dict[str, Any]:
        table = {row["provider"]: row["severity"] for row in normalize.SEVERITY_MAP.rows(self.severity_overrides)}
        return webhook.card(url, self.webhook_header, secret, severity_table=table, access=self.stored_access())

    # -- polling and reset ---------------------------------------------------------------
    def poll_alerts(self, cursor: str | None = None) -> PollResult:
        """Level's complete active set (every page of ``status=active``)."""
        rows = [
            row for page in self.client.alert_pages(status="active") for row in page
            if boolean(row.get("is_resolved")) is not True  # belt and braces: the filter excludes them
        ]
        self._prime_groups({d for d in (str_id(row.get("device_id")) for row in rows) if d})
        active = []
        for row in rows:
            alert = normalize.alert(row, event=AlertEventKind.TRIGGERED, group_of_device=self.group_of_device,
                                    overrides=self.severity_overrides)
            if alert is not None:
                active.append(alert)
        # Automation-route alerts are never in Level's alert list: reconcile must leave them alone.
        return PollResult(active=active, complete=True, covers=self.reconciles)

    @staticmethod
    def reconciles(external_id: str) -> bool:
        """Whether the poll's active set speaks for this alert (PollResult.covers)."""
        return not normalize.is_automation_alert(external_id)

    def reset_alert(self, external_id: str) -> None:
        if normalize.is_automation_alert(external_id):
            raise NotResettable("it came through a Level automation, not a Level alert, so there is nothing to "
                                "resolve in Level. The automation's resolve body (or its next trigger) updates it.")
        try:
            outcome = self.client.resolve_alert(external_id)
        except PermissionDenied as exc:
            self.learned_access = ACCESS_READ_ONLY
            self.remember_access(ACCESS_READ_ONLY, "Level refused to resolve an alert with this key (403).",
                                 "resolve")
            # Not a failure: the ticket gets a note saying why and how to give the key write access.
            raise NotResettable(str(exc)) from exc
        if outcome == ResolveOutcome.RESOLVED:
            if self.learned_access != ACCESS_READ_WRITE and self.stored_access() != ACCESS_READ_WRITE:
                self.remember_access(ACCESS_READ_WRITE, "Level resolved an alert with this key.", "resolve")
            self.learned_access = ACCESS_READ_WRITE
        if outcome == ResolveOutcome.NOT_FOUND:
            log.info("level alert %s already gone when resolving", external_id)
        elif outcome == ResolveOutcome.REFUSED:
            current = self.client.alert(external_id)
            if current is not None and boolean(current.get("is_resolved")) is not True:
                raise ProviderError(f"Level would not resolve alert {external_id} (422) and still reports it active.")


def _failed(code: str, message: str) -> ConnectionResult:
    return ConnectionResult(ok=False, message=message, details={"code": code})
