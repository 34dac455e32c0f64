"""The NinjaOne provider: OAuth connection, organizations and locations, devices, inventory
(patches, software), webhook activities, alert polling and reset, webhook registration."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from integrations.base import (
    Capabilities,
    CredentialField,
    CredentialSet,
    JobKind,
    PanelCard,
    Provider,
    SettingField,
    WebhookRequest,
)
from integrations.coerce import as_dict, epoch_seconds, int_id, iso_datetime, text
from integrations.errors import BlockedURL, NotFound, ProviderError
from integrations.oauth import (
    AUTHORIZATION_CODE,
    CLIENT_CREDENTIALS,
    AuthorizationRequest,
    IntegrationTokenStore,
    OAuthSession,
)
from integrations.records import (
    ConnectionResult,
    DeviceRecord,
    ExternalOrg,
    NormalizedAlert,
    PatchRecord,
    PollResult,
    SoftwareRecord,
    WebhookEnvelope,
)

from . import connect, normalize, webhook
from .client import NinjaOneClient, status_of

log = logging.getLogger("integrations.ninjaone")

DEVICE_WALKS = (("all", "Every device, once (devices of unmapped organizations are counted)"),
                ("mapped", "Only the mapped organizations (df=org = N each)"))
INVENTORY = "ninjaone.inventory"
# NinjaOne fields an admin most often wants on the asset; an integration's field_mapping overlays them.
DEFAULT_FIELD_MAPPING = {
    "attr.domain": "system.domain",
    "attr.chassis_type": "system.chassisType",
    "attr.processors": "system.numberOfProcessors",
    "attr.memory_bytes": "system.totalPhysicalMemory",
    "attr.os_architecture": "os.architecture",
    "attr.os_build": "os.buildNumber",
    "attr.os_release": "os.releaseId",
    "attr.needs_reboot": "os.needsReboot",
    "attr.dns_name": "dnsName",
    "attr.mac_addresses": "macAddresses",
    "attr.node_class": "nodeClass",
    "attr.approval_status": "approvalStatus",
    "attr.tags": "tags",
    "attr.cpu_model": "cpuModel",
}
RESET_METHODS = (("delete", "DELETE /v2/alert/{uid}"), ("post", "POST /v2/alert/{uid}/reset"))


class NinjaOneProvider(Provider):
    slug = normalize.SLUG
    name = "NinjaOne"
    capabilities = Capabilities(device_sync=True, webhooks=True, polling=True, reset_on_close=True, software=True,
                                patches=True, remote_access=True)
    credential_fields = (
        CredentialField("client_id", "Client ID", secret=False,
                        help_text="Administration > Apps > API in NinjaOne: the app's client id."),
        CredentialField("client_secret", "Client secret"),
    )
    credential_sets = (CredentialSet("oauth", ("client_id", "client_secret")),)
    requires_base_url = False
    # Notification-channel webhooks carry no custom headers: the secret may come as ?secret=.
    webhook_secret_in_query = True
    default_poll_interval_minutes = 15
    poll_interval_bounds = (5, 60)
    severity_map = normalize.SEVERITY_MAP
    docs = "docs/ninjaone.md"
    default_field_mapping = DEFAULT_FIELD_MAPPING
    job_kinds = (
        JobKind(INVENTORY, "Patches and software", "integrations.services.inventory.sync_inventory",
                capability="patches", requires_connected=True,
                description="OS patches (pending, failed, rejected, installed) and installed software of the "
                            "devices of mapped organizations, from NinjaOne's query reports; a device whose "
                            "inventory did not change is not rewritten."),
    )
    panel_cards = (
        PanelCard("ninjaone", "ninjaone/card.html", "integrations.ninjaone.views.card_context"),
    )
    settings_fields = (
        SettingField("region", "Region", "choice", default=connect.DEFAULT_REGION, choices=connect.REGION_LABELS,
                     help_text="The NinjaOne instance your account lives on (a base URL overrides it)."),
        SettingField("auth_flow", "Sign-in", "choice", default=CLIENT_CREDENTIALS, choices=connect.AUTH_FLOWS),
        SettingField("client_auth", "Client authentication", "choice", default="client_secret_post",
                     choices=connect.CLIENT_AUTH, in_form=False),
        SettingField("sync_software", "Sync installed software", "bool", default=True),
        SettingField("sync_patches", "Sync OS patches", "bool", default=True),
        SettingField("register_webhook", "Register the webhook in NinjaOne on connect", "bool", default=True),
        SettingField("reset_method", "Alert reset call", "choice", default="delete", choices=RESET_METHODS,
                     in_form=False),
        SettingField("device_walk", "Devices to read", "choice", default="all", choices=DEVICE_WALKS, in_form=False),
        SettingField("node_class_map", "Node class -> asset type", "map", default={}, in_form=False,
                     help_text="Rows that replace the default table (node class -> asset type)."),
        SettingField("severity_map", "Severity overrides", "map", default={}, in_form=False),
    )

    def __init__(self, integration):
        super().__init__(integration)
        self._client: NinjaOneClient | None = None
        self._session: OAuthSession | None = None
        self.unknown_node_classes: set[str] = set()
        self.skipped_unmapped = 0

    # -- settings and credentials ----------------------------------------------------------------
    def clean_settings(self, settings: dict[str, Any]) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        bad = [f"{k}: {v!r}" for k, v in as_dict(settings.get("node_class_map")).items()
               if v not in normalize.ASSET_TYPES]
        if bad:
            errors["settings.node_class_map"] = [
                f"Unknown asset type(s) {', '.join(bad)}; one of {', '.join(normalize.ASSET_TYPES)}."]
        severity_errors = normalize.SEVERITY_MAP.validate_overrides(settings.get("severity_map"))
        if severity_errors:
            errors["settings.severity_map"] = severity_errors
        return errors

    def validate_credentials(self, credentials: dict[str, Any], base_url: str) -> dict[str, list[str]]:
        errors = super().validate_credentials(credentials, base_url)
        if base_url:
            from integrations.http import check_url

            try:
                check_url(base_url)
            except BlockedURL as exc:
                errors["base_url"] = [str(exc)]
            except ProviderError:
                pass  # unreachable now: the connection test explains it
        return errors

    def prepare_credentials(self, credentials: dict[str, Any], base_url: str) -> dict[str, Any]:
        # The token lives in its own column; one obtained for another client id or token URL is ignored
        # (OAuthSession checks both), so nothing to drop here.
        return {k: v for k, v in credentials.items() if v not in (None, "")}

    @property
    def region(self) -> str | None:
        """The configured region, or None when a base URL overrides it."""
        return None if self.integration.base_url else connect.region_of(self.settings.get("region"))

    @property
    def base_url(self) -> str:
        return connect.base_url_for(self.settings.get("region"), self.integration.base_url)

    def oauth_session(self, redirect_uri: str = "") -> OAuthSession:
        options = self.options
        return connect.session_for(
            self.base_url, self.credentials, IntegrationTokenStore(self.integration),
            auth_flow=options["auth_flow"], redirect_uri=redirect_uri, auth_method=options["client_auth"])

    @property
    def session(self) -> OAuthSession:
        if self._session is None:
            self._session = self.oauth_session()
        return self._session

    @property
    def client(self) -> NinjaOneClient:
        if self._client is None:
            self._client = NinjaOneClient(self.base_url, self.session)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def token_expires_at(self):
        expires = self.session.expires_at()
        return epoch_seconds(expires) if expires is not None else None

    # -- authorization code (the web flow) -----------------------------------------------------------
    def authorization_request(self, redirect_uri: str) -> AuthorizationRequest:
        return self.oauth_session(redirect_uri).authorization_request()

    def complete_authorization(self, *, redirect_uri: str, code: str, state: str, expected_state: str,
                               code_verifier: str) -> dict[str, Any]:
        token = self.oauth_session(redirect_uri).complete_authorization(
            code=code, state=state, expected_state=expected_state, code_verifier=code_verifier)
        self._session = None  # the next call reads the stored token
        return token

    # -- connection ---------------------------------------------------------------------------------
    def test_connection(self) -> ConnectionResult:
        if self.options["auth_flow"] == AUTHORIZATION_CODE and not self.session.current():
            return ConnectionResult(ok=False, details={"code": "not_authorized"},
                                    message="Sign in with NinjaOne to authorize this app (Connect).")
        return connect.diagnose(self.client, self.session, region=self.region, credentials=self.credentials,
                                auth_method=self.options["client_auth"])

    def on_connected(self) -> str | None:
        if not self.options["register_webhook"]:
            return None
        from integrations.services.config import webhook_url

        url = webhook_url(self.integration)
        if not url.startswith(("https://", "http://")):
            return "Set the public base URL of this PSA to register the NinjaOne webhook."
        self.connect_webhook(url)
        return "Webhook registered in NinjaOne."

    def on_disconnect(self) -> None:
        try:
            self.disconnect_webhook()
        finally:
            self.session.revoke()

    # -- organizations ------------------------------------------------------------------------------
    def list_organizations(self) -> list[ExternalOrg]:
        orgs = self.client.organizations_detailed()
        locations = None if normalize.has_locations(orgs) else self.client.locations()
        return normalize.organizations(orgs, locations)

    # -- devices ------------------------------------------------------------------------------------
    def _wanted(self, external_ids: set[str]) -> tuple[set[int], set[int]]:
        orgs, locs = set(), set()
        for ext in external_ids:
            kind, num = normalize.parse_ext(ext)
            if num is not None:
                (orgs if kind == "org" else locs).add(num)
        return orgs, locs

    def _location_parents(self) -> dict[int, int]:
        parents: dict[int, int] = {}
        for org in self.list_organizations():
            kind, loc = normalize.parse_ext(org.external_id)
            _, parent = normalize.parse_ext(org.parent_external_id or "")
            if kind == "loc" and loc is not None and parent is not None:
                parents[loc] = parent
        return parents

    def iter_devices(self, organization_external_ids: set[str]) -> Iterator[DeviceRecord]:
        """Devices of mapped organizations or mapped locations, streamed one page at a time.

        The framework passes every external id that resolves to a client (an organization and its
        locations alike). By default every device is walked once (``/v2/devices-detailed``, pageSize +
        after): devices of unmapped organizations are then skipped *and counted*, and node classes never
        seen are found wherever they are. With the ``device_walk`` setting "mapped", only the organizations
        concerned are walked (``df=org = N``, one walk each): fewer requests when a few small organizations
        of a large account are mapped, but devices of the others are not fetched, so not counted.
        """
        orgs, locs = self._wanted(organization_external_ids)
        if not orgs and not locs:
            return
        overrides = as_dict(self.options["node_class_map"])
        walks = [self.client.device_pages()]
        if self.options["device_walk"] == "mapped":
            parents = self._location_parents() if locs else {}
            involved = set(orgs) | {parents[loc] for loc in locs if loc in parents}
            if all(loc in parents for loc in locs):  # a location of unknown parent: walk everything
                walks = [self.client.device_pages(df=f"org = {org}") for org in sorted(involved)]
        for pages in walks:
            for page in pages:
                for row in page:
                    record = normalize.device(row, node_class_overrides=overrides,
                                              unknown_node_classes=self.unknown_node_classes)
                    if record is None:
                        continue
                    if normalize.device_org(row) in orgs or normalize.device_location(row) in locs:
                        yield record
                    else:
                        self.skipped_unmapped += 1

    def device_sync_report(self) -> dict[str, Any]:
        """Devices left out because neither their organization nor their location is mapped, and node
        classes the table does not know (mapped to "other"; the card lists them for the admin to map)."""
        return {"skipped_unmapped": self.skipped_unmapped, "unknown_node_classes": sorted(self.unknown_node_classes)}

    def device_detail(self, device_external_id: str) -> DeviceRecord | None:
        device_id = int_id(device_external_id)
        row = self.client.device(device_id) if device_id is not None else None
        if row is None:
            return None
        return normalize.device(row, node_class_overrides=as_dict(self.options["node_class_map"]),
                                unknown_node_classes=self.unknown_node_classes)

    def remote_access_link(self, device_external_id: str) -> dict[str, Any]:
        return self.dashboard_url(device_external_id)

    def dashboard_url(self, device_external_id: str) -> dict[str, Any]:
        """A fresh console link ``{url, expires}`` (it expires: fetch on demand, never store)."""
        device_id = int_id(device_external_id)
        if device_id is None:
            raise NotFound(f"{device_external_id!r} is not a NinjaOne device id.")
        data = self.client.dashboard_url(device_id)
        expires = data.get("expires")
        when = normalize.seconds(expires) if not isinstance(expires, str) else iso_datetime(expires)
        return {"url": text(data.get("url"), 2000), "expires": when}

    # -- inventory ------------------------------------------------------------------------------------
    def _inventory_orgs(self, external_ids: set[str]) -> list[int]:
        """The organizations to ask: the mapped ones and those of mapped locations (the framework keeps only
        rows of devices it has assets for)."""
        orgs, locs = self._wanted(external_ids)
        if locs:
            parents = self._location_parents()
            orgs |= {parents[loc] for loc in locs if loc in parents}
        return sorted(orgs)

    def _inventory(self, org_external_ids: set[str], queries: list[tuple[str, Any]]) -> Iterator[tuple[str, list]]:
        """Per organization (memory bounded by one organization's rows): the query rows grouped by device.
        Each walk restarts on an expired cursor (client.query)."""
        for org in self._inventory_orgs(org_external_ids):
            grouped: dict[str, list] = {}
            for name, fn in queries:
                rows = self.client.query(name, {"df": f"org = {org}"},
                                         row=lambda r, fn=fn: (normalize.row_device(r), fn(r)))
                for device_id, record in rows:
                    if device_id and record is not None:
                        grouped.setdefault(device_id, []).append(record)
            yield from grouped.items()

    def iter_software(self, organization_external_ids: set[str]) -> Iterator[tuple[str, list[SoftwareRecord]]] | None:
        """(device id, its software) for devices of mapped organizations, from /v2/queries/software;
        None when the ``sync_software`` setting is off."""
        if not self.options["sync_software"]:
            return None
        return self._inventory(organization_external_ids, [("software", normalize.software)])

    def iter_patches(self, organization_external_ids: set[str]) -> Iterator[tuple[str, list[PatchRecord]]] | None:
        """(device id, its OS patches): pending/failed/rejected (os-patches) plus installed
        (os-patch-installs); None when the ``sync_patches`` setting is off."""
        if not self.options["sync_patches"]:
            return None
        return self._inventory(organization_external_ids, [
            ("os-patches", normalize.patch),
            ("os-patch-installs", lambda r: normalize.patch(r, installed=True)),
        ])

    def refuse_job(self, kind: JobKind) -> str | None:
        if kind.kind == INVENTORY and not (self.options["sync_software"] or self.options["sync_patches"]):
            return "Both 'Sync installed software' and 'Sync OS patches' are off."
        return None

    # -- webhooks -------------------------------------------------------------------------------------
    def inspect_webhook(self, request: WebhookRequest) -> WebhookEnvelope:
        body = webhook.read(request.body)
        return WebhookEnvelope(delivery_id=normalize.delivery_id(body), summary=normalize.activity_summary(body))

    def parse_webhook(self, request: WebhookRequest) -> list[NormalizedAlert]:
        body = webhook.read(request.body)
        alert = normalize.alert_from_activity(body, as_dict(self.options["severity_map"]))
        return [alert] if alert is not None else []

    def webhook_card(self, url: str, secret: str) -> dict[str, Any]:
        return webhook.card(url, self.webhook_header, secret)

    def register_webhook(self, url: str, secret: str) -> None:
        """PUT /v2/webhook: our URL, condition activities, expanded device org/location, our secret header.

        NinjaOne's refusals (403 "Only system administrators..." and the like) are raised with its text."""
        self.client.put_webhook(webhook.configuration(url, self.webhook_header, secret))

    def unregister_webhook(self) -> bool:
        """DELETE /v2/webhook; False when none was registered. A 403 ("Different PSA is already
        configured") is raised with NinjaOne's text."""
        return self.client.delete_webhook()

    def connect_webhook(self, url: str) -> dict[str, Any]:
        """Register our webhook and remember the outcome (``provider_state.webhook``, shown on the card and
        in the API); NinjaOne's refusal is remembered with its own words, then raised."""
        config = webhook.configuration(url, self.webhook_header, "<secret>")
        state = {"registered": True, "url": url, "error": "", "activities": config["activities"],
                 "expand": config["expand"], "header_name": self.webhook_header}
        try:
            self.register_webhook(url, self.integration.get_webhook_secret())
        except ProviderError as exc:
            state.update(registered=False, error=str(exc), provider_status=status_of(exc),
                         provider_message=getattr(exc, "detail", "") or "")
            self._remember_webhook(state)
            raise
        self._remember_webhook(state)
        return state

    def disconnect_webhook(self) -> dict[str, Any]:
        """Remove our webhook from NinjaOne (404: there was none) and remember it."""
        previous = as_dict((self.integration.provider_state or {}).get("webhook"))
        try:
            existed = self.unregister_webhook()
        except ProviderError as exc:
            self._remember_webhook({**previous, "error": str(exc), "provider_status": status_of(exc),
                                    "provider_message": getattr(exc, "detail", "") or ""})
            raise
        state = {"registered": False, "url": previous.get("url", ""), "error": "", "removed": existed}
        self._remember_webhook(state)
        return state

    def _remember_webhook(self, state: dict[str, Any]) -> None:
        from django.utils import timezone

        from integrations.services.config import remember
        from psa.tenancy import tenant_context

        if self.integration.pk is not None:
            with tenant_context(self.integration.tenant_id):
                remember(self.integration, webhook={**state, "at": timezone.now().isoformat()})

    # -- polling and reset ----------------------------------------------------------------------------
    def poll_alerts(self, cursor: str | None = None) -> PollResult:
        overrides = as_dict(self.options["severity_map"])
        active = [a for a in (normalize.alert_from_api(row, overrides) for row in self.client.alerts()) if a]
        return PollResult(active=active, complete=True)

    def reset_alert(self, external_id: str) -> None:
        uid = text(external_id)
        if not uid or uid.startswith("activity:"):
            raise NotFound(f"{external_id!r} is not a NinjaOne alert uid.")
        if not self.client.reset_alert(uid, method=self.options["reset_method"]):
            log.info("ninjaone alert %s already gone when resetting", uid)
