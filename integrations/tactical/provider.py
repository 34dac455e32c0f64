"""The Tactical RMM provider: clients/sites, agents, software, MeshCentral links, alerts."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

from integrations.base import (
    Capabilities,
    CredentialField,
    CredentialSet,
    Provider,
    SettingField,
    WebhookRequest,
)
from integrations.errors import (
    AuthFailed,
    BadResponse,
    BlockedURL,
    NotFound,
    PermissionDenied,
    ProviderError,
    RateLimited,
    ReconnectRequired,
    Unavailable,
    WebhookParseError,
)
from integrations.records import (
    ConnectionResult,
    DeviceRecord,
    ExternalOrg,
    NormalizedAlert,
    PollResult,
    WebhookEnvelope,
)

from . import normalize, webhook
from .client import TacticalClient

log = logging.getLogger("integrations.tactical")

AGENT_APIS = (
    ("auto", "Automatic (the paged beta API when the server enables it)"),
    ("classic", "Classic (one unpaged list per client or site)"),
    ("beta", "Beta API (paged; falls back to classic when disabled)"),
)


class TacticalProvider(Provider):
    slug = normalize.SLUG
    name = "Tactical RMM"
    capabilities = Capabilities(
        device_sync=True, webhooks=True, polling=True, reset_on_close=True, software=True, remote_access=True
    )
    credential_fields = (
        CredentialField("api_key", "API key", help_text="Settings > Global Settings > API Keys (sent as X-API-KEY)."),
        CredentialField("username", "Username", secret=False, required=False),
        CredentialField("password", "Password", required=False),
        CredentialField(
            "totp", "Two-factor code", required=False,
            help_text="Only for an account with two-factor: the token obtained cannot be renewed without you.",
        ),
    )
    credential_sets = (
        CredentialSet("api_key", ("api_key",)),
        CredentialSet("login", ("username", "password"), optional=("totp",)),
    )
    requires_base_url = True
    default_poll_interval_minutes = 15
    poll_interval_bounds = (5, 60)
    severity_map = normalize.SEVERITIES
    settings_fields = (
        SettingField("sync_software", "Sync installed software", "bool", default=True,
                     help_text="Read each agent's software inventory during device sync."),
        SettingField("sync_remote_access", "Store MeshCentral links", "bool", default=True,
                     help_text="Keep each agent's remote-control link on its asset."),
        SettingField("agent_api", "Agent list API", "choice", default="auto", choices=AGENT_APIS),
    )
    docs = "docs/tactical.md"

    def __init__(self, integration):
        super().__init__(integration)
        self._client: TacticalClient | None = None

    # -- credentials ------------------------------------------------------------------------
    def validate_credentials(self, credentials: dict[str, Any], base_url: str) -> dict[str, list[str]]:
        present = {k for k, v in (credentials or {}).items() if v not in (None, "")}
        if "knox_token" in present and not ({"api_key", "password"} & present):
            # Stored form of a two-factor login: valid as is.
            return {} if base_url else {"base_url": ["This provider needs the base URL of its API."]}
        errors = super().validate_credentials(credentials, base_url)
        if base_url and "base_url" not in errors:
            from integrations.http import check_url

            try:
                check_url(base_url)
            except BlockedURL as exc:
                errors["base_url"] = [str(exc)]
            except ProviderError:
                pass  # unreachable now: the connection test right after explains it
        return errors

    def prepare_credentials(self, credentials: dict[str, Any], base_url: str) -> dict[str, Any]:
        """Store only what keeps working: the API key; or username+password (no 2FA: renewable);
        or, after a two-factor login, the Knox token alone (never the password)."""
        creds = {k: v for k, v in credentials.items() if v not in (None, "")}
        if creds.get("api_key"):
            return {"api_key": creds["api_key"]}
        if creds.get("username") and creds.get("password"):
            client = TacticalClient(base_url, creds)
            try:
                result = client.login(totp=creds.get("totp"))
            except ReconnectRequired as exc:
                raise AuthFailed(str(exc)) from None
            finally:
                client.close()
            if result["renewable"]:
                return {"username": creds["username"], "password": creds["password"]}
            return {"knox_token": result["token"], "username": creds["username"]}
        if creds.get("knox_token"):
            return {k: creds[k] for k in ("knox_token", "username") if k in creds}
        return creds

    @property
    def client(self) -> TacticalClient:
        if self._client is None:
            if not self.integration.base_url:
                raise ProviderError("Enter the base URL of your Tactical RMM API (https://api.<your-domain>).")
            self._client = TacticalClient(self.integration.base_url, self.credentials)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- connection test -------------------------------------------------------------------
    def test_connection(self) -> ConnectionResult:
        host = urlsplit(self.integration.base_url).hostname or ""
        try:
            clients = self.client.clients()
        except AuthFailed as exc:
            return ConnectionResult(
                ok=False, details={"code": exc.code},
                message=f"The API key or login was rejected ({exc}). Check it in Tactical (Settings > Global "
                        "Settings > API Keys), that it is active and not expired.",
            )
        except PermissionDenied as exc:
            return ConnectionResult(
                ok=False, details={"code": exc.code},
                message=f"Connected, but the key's user lacks a permission ({exc}). Give its role at least "
                        "'List clients', 'List agents', 'List alerts' and 'Manage alerts' (and 'Software' / "
                        "'Use MeshCentral' for inventory and remote access).",
            )
        except BadResponse as exc:
            return ConnectionResult(ok=False, message=f"Wrong URL: {exc}", details={"code": exc.code})
        except Unavailable as exc:
            return ConnectionResult(
                ok=False, details={"code": exc.code},
                message=f"Cannot reach Tactical RMM at {self.integration.base_url}: {exc} Check the address "
                        "(the API host, e.g. https://api.<your-domain>).",
            )
        except NotFound as exc:
            return ConnectionResult(
                ok=False, details={"code": exc.code},
                message=f"Wrong URL: {exc} The base URL must be the root of the Tactical API host.",
            )
        except ReconnectRequired as exc:
            return ConnectionResult(ok=False, message=str(exc), details={"code": exc.code})
        sites = sum(len(c.get("sites") or []) for c in clients)
        details: dict[str, Any] = {"clients": len(clients), "sites": sites, "auth": self.client.mode}
        try:
            details["beta_api"] = self.client.beta_available()
        except ProviderError:
            details["beta_api"] = False
        return ConnectionResult(
            ok=True, account_name=host, details=details,
            message=f"Connected to Tactical RMM at {host}: {len(clients)} clients, {sites} sites.",
        )

    # -- organizations ----------------------------------------------------------------------
    def list_organizations(self) -> Iterator[ExternalOrg]:
        return normalize.organizations(self.client.clients())

    # -- devices ----------------------------------------------------------------------------
    def _use_beta(self) -> bool:
        mode = self.options["agent_api"]
        if mode == "classic":
            return False
        available = self.client.beta_available()
        if mode == "beta" and not available:
            log.info("tactical integration %s: beta API not enabled, using the classic API", self.integration.pk)
        return available

    def iter_devices(self, organization_external_ids: set[str]) -> Iterator[DeviceRecord]:
        wanted = set(organization_external_ids)
        clients = self.client.clients()
        index = normalize.OrgIndex.build(clients)
        beta = self._use_beta() if wanted else False
        for client in clients:
            cid = normalize.int_id(client.get("id"))
            if cid is None:
                continue
            if normalize.client_ext(cid) in wanted:
                yield from self._agents_of(cid, None, index, beta)
                continue
            for site in client.get("sites") or []:
                sid = normalize.int_id(site.get("id")) if isinstance(site, dict) else None
                if sid is not None and normalize.site_ext(sid) in wanted:
                    yield from self._agents_of(cid, sid, index, beta)

    def _agents_of(self, cid: int, sid: int | None, index: normalize.OrgIndex, beta: bool) -> Iterator[DeviceRecord]:
        if beta:
            now = dt.datetime.now(dt.UTC)
            pages = self.client.beta_agents(client_id=cid if sid is None else None, site=sid)
            for page in pages:  # one page in memory at a time
                for row in page:
                    row_site = normalize.int_id(row.get("site"))
                    org = normalize.site_ext(row_site) if row_site is not None else normalize.client_ext(cid)
                    device = normalize.device_from_beta_row(row, org, now)
                    if device:
                        yield self._enrich(device)
            return
        # Classic list: unpaginated, without client/site ids -> one client (or site) at a time,
        # site ids recovered from the site names of that client.
        for row in self.client.agents(client=cid if sid is None else None, site=sid):
            if sid is not None:
                org = normalize.site_ext(sid)
            else:
                org = index.resolve(None, row.get("site_name"), client_id=cid)[0] or normalize.client_ext(cid)
            device = normalize.device_from_table_row(row, org)
            if device:
                yield self._enrich(device)

    def _enrich(self, device: DeviceRecord) -> DeviceRecord:
        options = self.options
        if options["sync_software"]:
            rows = self._optional(self.client.software, device.external_id, "software")
            device.software = normalize.software(rows) if rows is not None else None
        if options["sync_remote_access"]:
            mesh = self._optional(self.client.meshcentral, device.external_id, "MeshCentral link") or {}
            control = normalize.text(mesh.get("control"))
            if control.startswith(("http://", "https://")):
                device.remote_access_url = control[:1000]
        return device

    @staticmethod
    def _optional(call, agent_id: str, what: str) -> Any:
        """Extras never fail a device sync, except when the whole server or the login is in trouble."""
        try:
            return call(agent_id)
        except (AuthFailed, ReconnectRequired, RateLimited, Unavailable, BlockedURL):
            raise
        except ProviderError as exc:
            log.info("tactical %s of %s not synced: %s", what, agent_id, exc)
            return None

    # -- webhooks ---------------------------------------------------------------------------
    def inspect_webhook(self, request: WebhookRequest) -> WebhookEnvelope:
        read = webhook.read(request.body, request.query)
        return WebhookEnvelope(delivery_id=read.delivery_id, summary=webhook.summary(read))

    def parse_webhook(self, request: WebhookRequest) -> list[NormalizedAlert]:
        read = webhook.read(request.body, request.query)
        if read.body is not None:
            return [normalize.alert_from_webhook(read.body, read.alert_id, read.event or "triggered")]
        # Unreadable body: fetch the alert itself (the pipeline records the event as salvaged).
        request.extra["salvaged"] = True
        request.extra["salvage_reason"] = read.reason
        try:
            alert = self.client.alert(read.alert_id)
            index = normalize.OrgIndex.build(self.client.clients())
        except (Unavailable, RateLimited):
            raise  # transient: let the pipeline retry the event
        except ProviderError as exc:
            raise WebhookParseError(
                f"{read.reason} Fetching alert {read.alert_id} from Tactical RMM failed too: {exc}"
            ) from None
        normalized = normalize.alert_from_api(alert, index, event=read.event)
        if normalized is None:
            raise WebhookParseError(f"{read.reason} Tactical RMM's alert {read.alert_id} has no id.")
        return [normalized]

    def webhook_card(self, url: str, secret: str) -> dict[str, Any]:
        return webhook.card(url, self.webhook_header, secret)

    # -- polling and reset ------------------------------------------------------------------
    def poll_alerts(self, cursor: str | None = None) -> PollResult:
        rows = self.client.active_alerts()
        index = normalize.OrgIndex.build(self.client.clients())
        active = []
        for row in rows:
            if row.get("resolved") is True:  # belt and braces: the filter already excludes them
                continue
            alert = normalize.alert_from_api(row, index, event="triggered")
            if alert is not None:
                active.append(alert)
        return PollResult(active=active, complete=True)

    def reset_alert(self, external_id: str) -> None:
        alert_id = normalize.int_id(external_id)
        if alert_id is None:
            raise NotFound(f"{external_id!r} is not a Tactical RMM alert id.")
        if not self.client.resolve_alert(alert_id):
            log.info("tactical alert %s already gone when resolving", alert_id)
