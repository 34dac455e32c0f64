"""The Huntress provider: account, organizations, SOC incident reports and escalations.

Huntress does not feed the alert pipeline: its webhooks and polls return IncidentRecords and
EscalationRecords, which the framework hands to whatever app registered a sink for them (the
incident router). A poll walks reports by ``updated_at`` down to a stored watermark; it is paused
while that sink says it cannot take them yet (``refuse_job``). HTTP in client.py, payloads in
normalize.py, the reading of complete records in incidents.py, webhooks in webhooks.py.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from django.core.cache import cache

from integrations import sinks
from integrations.base import (
    Capabilities,
    CredentialField,
    CredentialSet,
    JobKind,
    Provider,
    SettingField,
    WebhookRequest,
)
from integrations.coerce import iso_datetime, text
from integrations.errors import (
    AuthFailed,
    BadResponse,
    BlockedURL,
    NotFound,
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
    PollResult,
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
    capabilities = Capabilities(webhooks=True, polling=True, incidents=True)
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
    # Incident reports are dispatched before plain alerts when both wait.
    priority_lane = "security"
    docs = "docs/huntress.md"
    settings_fields = (
        SettingField("poll_escalations", "Also poll escalations", "bool", default=True,
                     help_text="Each poll also reads escalations changed since the last one (one more request)."),
    )

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
        # Its own client: an admin waits for an answer, not for Huntress's rate limit to pass.
        client = HuntressClient(self.integration.base_url, self.credentials, rate_key=f"huntress:{self.integration.pk}",
                                wait_on_429=False)
        try:
            return self._test_connection(client)
        finally:
            client.close()

    def _test_connection(self, client: HuntressClient) -> ConnectionResult:
        try:
            account = client.account()
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

    def on_connected(self) -> str | None:
        """Discover the organizations at once: the status card counts them and the mapping table lists them."""
        from integrations.services.jobs import ORG_SYNC, JobRefused, start_job

        try:
            start_job(self.integration, ORG_SYNC)
        except JobRefused:
            return None
        return "Organization discovery started."

    # -- polling ----------------------------------------------------------------------------------
    def refuse_job(self, kind: JobKind) -> str | None:
        """No poll while the app that takes incident records cannot (e.g. its routing is incomplete):
        its answer names what is missing."""
        from integrations.services.jobs import POLL

        if kind.kind == POLL:
            return sinks.refusal(self.integration, IncidentRecord)
        return None

    def poll_alerts(self, cursor: str | None = None) -> PollResult:
        """Incident reports (and escalations) changed since the stored watermarks, newest first, as a
        stream. The new cursor is known only once the stream ran out; the framework stores it only when
        every record was handled. Never complete: a report not seen is not a report gone."""
        marks = _read_cursor(cursor)
        incidents = self.iter_incidents(marks.get("incidents"))
        escalations = self.iter_escalations(marks.get("escalations")) if self.options.get("poll_escalations") else None

        def stream():
            nonlocal escalations
            yield from incidents
            if escalations is not None:
                try:
                    yield from escalations
                except (NotFound, PermissionDenied) as exc:
                    # Escalations are secondary: a key or account without them must not stop incident polls.
                    log.info("huntress escalations not polled: %s", exc)
                    escalations = None  # their stored mark is kept

        def new_cursor() -> str | None:
            runs = {"incidents": incidents, "escalations": escalations}
            if any(run is not None and not run.complete for run in runs.values()):
                return None  # the stream did not run out: keep the old watermarks
            out = dict(marks)
            for key, run in runs.items():
                if run is not None and run.watermark is not None:
                    out[key] = run.watermark
            return json.dumps({k: v.isoformat() for k, v in out.items()}) if out else None

        return PollResult(active=stream(), complete=False, cursor=new_cursor)

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

    def parse_webhook(self, request: WebhookRequest) -> list[IncidentRecord | EscalationRecord]:
        """The incident report or escalation an event is about; [] for the other categories (stored by
        intake, acted on by nobody)."""
        return [*self.parse_webhook_incidents(request), *self.parse_webhook_escalations(request)]

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


def _read_cursor(cursor: str | None) -> dict[str, dt.datetime]:
    """The stored watermarks: ``{"incidents": iso, "escalations": iso}`` (a bare timestamp: incidents)."""
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
    except ValueError:
        data = cursor
    if not isinstance(data, dict):
        stamp = iso_datetime(data)
        return {"incidents": stamp} if stamp else {}
    return {k: stamp for k in ("incidents", "escalations") if (stamp := iso_datetime(data.get(k)))}


def _failed(code: str, message: str, *, account_name: str = "", **details: Any) -> ConnectionResult:
    return ConnectionResult(ok=False, message=message, account_name=account_name, details={"code": code, **details})
