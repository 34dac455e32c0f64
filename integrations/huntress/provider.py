"""The Huntress provider: account, organizations, SOC incident reports and escalations.

Huntress does not feed the alert pipeline (no ``poll_alerts``, no ``parse_webhook``): its
incidents go to the provider-agnostic incident router, which calls ``iter_incidents``,
``incident``, ``resolve_incident`` and ``parse_webhook_incidents``. HTTP in client.py, payloads
in normalize.py, the reading of complete records in incidents.py, webhooks in webhooks.py.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.core.cache import cache

from integrations.base import Capabilities, CredentialField, CredentialSet, Provider, WebhookRequest
from integrations.coerce import text
from integrations.errors import (
    AuthFailed,
    BadResponse,
    BlockedURL,
    PermissionDenied,
    ProviderError,
    RateLimited,
    Unavailable,
)
from integrations.records import (
    ConnectionResult,
    EscalationRecord,
    ExternalOrg,
    IncidentRecord,
    IncidentResolution,
    WatermarkPass,
    WebhookEnvelope,
)

from . import normalize, webhooks
from .client import DEFAULT_OVERLAP, MAX_PAGE, HuntressClient
from .incidents import IncidentReader

log = logging.getLogger("integrations.huntress")
PORTAL_CACHE_SECONDS = 6 * 3600


class HuntressProvider(Provider):
    slug = normalize.SLUG
    name = "Huntress"
    capabilities = Capabilities(webhooks=True)
    credential_fields = (
        CredentialField("api_key", "API key", help_text="<account>.huntress.io > API Credentials."),
        CredentialField("api_secret", "API secret key"),
        CredentialField(
            "webhook_signing_secret", "Webhook signing secret", required=False,
            help_text="whsec_... from Huntress: Integrations > Webhooks > View Signing Secret.",
        ),
    )
    credential_sets = (CredentialSet("api_key", ("api_key", "api_secret"), optional=("webhook_signing_secret",)),)
    default_poll_interval_minutes = 5
    poll_interval_bounds = (1, 60)
    severity_map = normalize.SEVERITY_MAP
    signature_scheme = webhooks.SvixSignature()

    def __init__(self, integration):
        super().__init__(integration)
        self._client: HuntressClient | None = None

    @property
    def client(self) -> HuntressClient:
        if self._client is None:
            # One budget per integration (Huntress supports one PSA integration per account).
            self._client = HuntressClient(self.integration.base_url, self.credentials,
                                          rate_key=f"huntress:{self.integration.pk}")
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- connection -------------------------------------------------------------------------------
    def test_connection(self) -> ConnectionResult:
        try:
            account = self.client.account()
        except AuthFailed as exc:
            return _failed("auth_failed", "Huntress rejected the API key and secret (401). Copy both again from "
                                          f"<account>.huntress.io > API Credentials. ({exc})")
        except PermissionDenied as exc:
            return _failed("permission_denied", "Huntress refused this API key access to the account (403): "
                                                f"check the key's permissions. ({exc})")
        except RateLimited as exc:
            return _failed("rate_limited", f"Huntress is rate limiting this account; try again shortly. ({exc})")
        except (Unavailable, BadResponse, BlockedURL) as exc:
            return _failed(exc.code, f"Huntress could not be reached or answered unexpectedly: {exc}")
        name = text(account.get("name"), 255)
        status = text(account.get("status")).lower()
        details = {"account_id": account.get("id"), "subdomain": text(account.get("subdomain")),
                   "account_status": status}
        if status == "disabled":
            named = f" {name}" if name else ""
            return _failed("account_disabled", f"The Huntress account{named} is disabled: Huntress must "
                                               "re-enable it before incidents can be read.",
                           account_name=name, **details)
        cache.set(self._portal_key, normalize.portal_base_of(account), PORTAL_CACHE_SECONDS)
        return ConnectionResult(ok=True, message=f"Connected to Huntress account {name}.", account_name=name,
                                details={"code": "ok", **details})

    def list_organizations(self) -> list[ExternalOrg]:
        return list(normalize.organizations(self.client.organizations()))

    # -- incidents, for the incident router -------------------------------------------------------
    @property
    def _portal_key(self) -> str:
        return f"huntress:portal:{self.integration.pk}"

    def portal_base(self) -> str:
        """``https://<subdomain>.huntress.io`` for report links ("" when the account is unreadable)."""
        base = cache.get(self._portal_key)
        if base is None:
            try:
                base = normalize.portal_base_of(self.client.account())
            except ProviderError as exc:  # links are a convenience: never fail a pass for them
                log.info("huntress account unreadable for portal links: %s", exc)
                return ""
            cache.set(self._portal_key, base, PORTAL_CACHE_SECONDS)
        return base

    def iter_incidents(self, since_watermark: dt.datetime | None, *, overlap: dt.timedelta = DEFAULT_OVERLAP,
                       page_size: int = MAX_PAGE) -> WatermarkPass:
        """Incident reports changed since ``since_watermark`` (minus ``overlap``), newest change first,
        all of them when None. The pass's ``watermark`` is set only once it ran to its end."""
        reader = IncidentReader(self.client, self.portal_base())
        pages = self.client.incident_report_pages(since_watermark, overlap=overlap, page_size=page_size)
        return WatermarkPass(reader.records(pages), since=since_watermark)

    def incident(self, report_id: str) -> IncidentRecord:
        return IncidentReader(self.client, self.portal_base()).one(report_id)

    def resolve_incident(self, report_id: str) -> IncidentResolution:
        """Write-back: resolve the report in Huntress. Refusals (403/404/409/422) come back as a
        result to put in a ticket note; transient failures raise."""
        answer = self.client.resolve_incident_report(report_id)
        return normalize.resolution(answer.status_code, answer.incident_report, answer.detail,
                                    portal_base=self.portal_base())

    def iter_escalations(self, since_watermark: dt.datetime | None, *,
                         overlap: dt.timedelta = DEFAULT_OVERLAP) -> WatermarkPass:
        base = self.portal_base()
        records = (
            record
            for page in self.client.escalation_pages(since_watermark, overlap=overlap)
            for record in (normalize.escalation(row, portal_base=base) for row in page)
            if record is not None
        )
        return WatermarkPass(records, since=since_watermark)

    # -- webhooks ---------------------------------------------------------------------------------
    def webhook_signing_secret(self, secret: str) -> str:
        """Huntress signs with its own ``whsec_`` secret (credentials), not the product's."""
        return text(self.credentials.get("webhook_signing_secret")) or secret

    def verify_webhook_signature(self, request: WebhookRequest, secret: str) -> bool | None:
        return webhooks.verify(request.body, request.headers, self.webhook_signing_secret(secret))

    def inspect_webhook(self, request: WebhookRequest) -> WebhookEnvelope:
        event = webhooks.read(request.body)
        return WebhookEnvelope(delivery_id=webhooks.delivery_id(request.headers), summary=webhooks.summary(event))

    def parse_webhook_incidents(self, request: WebhookRequest) -> list[IncidentRecord]:
        """The incident an ``incident_report.*`` event is about, fetched in full; the webhook's own
        (partial) record when the fetch fails, so a ticket never waits for the API. [] for other events."""
        event = webhooks.read(request.body)
        if event.category != "incident_report" or event.object_id is None:
            return []
        org = event.payload.get("organization")
        org_name = text(org.get("name")) if isinstance(org, dict) else ""
        try:
            full = IncidentReader(self.client, self.portal_base()).one(event.object_id, org_name=org_name)
        except ProviderError as exc:
            log.info("huntress report %s not fetched, webhook payload used: %s", event.object_id, exc)
            request.extra["fetch_error"] = str(exc)
            partial = normalize.incident(event.payload, portal_base=self.portal_base(), partial=True)
            return [partial] if partial is not None else []
        return [normalize.merge_webhook(full, event.payload)]

    def parse_webhook_escalations(self, request: WebhookRequest) -> list[EscalationRecord]:
        event = webhooks.read(request.body)
        if event.category != "escalation":
            return []
        record = normalize.escalation(event.payload, portal_base=self.portal_base())
        return [record] if record is not None else []

    def webhook_card(self, url: str, secret: str) -> dict[str, Any]:
        return {
            "payload_template": "",
            "signature": "svix",
            "steps": [
                ("In Huntress (account admin): Integrations > Webhooks > add an endpoint with this URL; pick the "
                "Incident Reports and Escalations categories."),
                ("Click View Signing Secret and paste the whsec_... value into this integration's "
                "'Webhook signing secret'."),
                "Use Send Test in Huntress and check that the event appears in this integration's event log.",
            ],
        }


def _failed(code: str, message: str, *, account_name: str = "", **details: Any) -> ConnectionResult:
    return ConnectionResult(ok=False, message=message, account_name=account_name, details={"code": code, **details})
