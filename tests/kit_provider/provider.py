"""A provider that lives only under tests/ and uses every extension point of the provider kit.

It proves that a fifth provider needs no edit outside its own folder (plus one INSTALLED_APPS
line, here in tests/settings.py): it shows in the RMM tab and the API, receives signed webhooks,
runs its own job kind, mounts its own web and API routes and renders its own panel card.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

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
from integrations.coerce import SeverityMap, str_id, text
from integrations.errors import PermissionDenied, WebhookParseError
from integrations.records import (
    AlertEventKind,
    ConnectionResult,
    ExternalOrg,
    NormalizedAlert,
    WebhookEnvelope,
)
from integrations.signatures import HmacSignature

SLUG = "kit"
SEVERITIES = SeverityMap({"sev1": "critical", "sev2": "high", "sev3": "medium", "sev4": "low"}, default="info")


def recount(integration, job, reporter) -> dict[str, Any]:
    """The kit's own job kind: counts its organizations (run by the framework's job runner)."""
    n = integration.organizations.count()
    reporter.set_total(n)
    reporter.advance(n)
    return {"organizations": n, "mode": KitProvider(integration).options["mode"]}


class KitProvider(Provider):
    slug = SLUG
    name = "Kit RMM"
    capabilities = Capabilities(webhooks=True)
    credential_fields = (CredentialField("token", "Token"),)
    credential_sets = (CredentialSet("token", ("token",)),)
    severity_map = SEVERITIES
    settings_fields = (
        SettingField("mode", "Mode", "choice", default="fast", choices=(("fast", "Fast"), ("careful", "Careful"))),
        SettingField("batch", "Batch size", "int", default=10, min_value=1, max_value=100),
        SettingField("enabled_extra", "Extra", "bool", default=False),
        SettingField("severity_map", "Severity overrides", "map", default={}, in_form=False),
    )
    signature_scheme = HmacSignature("X-Kit-Signature", name="kit-hmac")
    secret_headers = ("X-Kit-Token",)
    priority_lane = "security"  # dispatched before alert lanes (tests/integration/test_dispatch.py)
    job_kinds = (JobKind("kit.recount", "Recount organizations", "tests.kit_provider.provider.recount",
                         description="Counts the organizations (a provider-declared job)."),)
    panel_cards = (PanelCard("kit", "kit_provider/card.html", "tests.kit_provider.views.card_context"),)
    connected_calls: ClassVar[list[int]] = []

    def clean_settings(self, settings: dict[str, Any]) -> dict[str, list[str]]:
        errors = SEVERITIES.validate_overrides(settings.get("severity_map"))
        if settings.get("mode") == "careful" and settings.get("batch", 0) > 50:
            return {"settings.batch": ["A careful mode takes batches of 50 at most."]}
        return {"settings.severity_map": errors} if errors else {}

    def test_connection(self) -> ConnectionResult:
        if self.credentials.get("token") == "bad":
            raise PermissionDenied("The token lacks the read scope.")
        return ConnectionResult(ok=True, message="Kit reachable.", account_name="Kit account")

    def on_connected(self) -> str | None:
        type(self).connected_calls.append(self.integration.pk)
        return "Webhook registered in Kit."

    def list_organizations(self):
        return [ExternalOrg("k1", "Kit Org"), ExternalOrg("k1-a", "Kit Org Site", parent_external_id="k1")]

    def _read(self, request: WebhookRequest) -> dict[str, Any]:
        try:
            data = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            raise WebhookParseError("The body is not JSON.") from None
        if not isinstance(data, dict) or not str_id(data.get("id")):
            raise WebhookParseError("The body needs an 'id'.")
        return data

    def inspect_webhook(self, request: WebhookRequest) -> WebhookEnvelope:
        data = self._read(request)
        return WebhookEnvelope(delivery_id=f"{data.get('state', 'open')}:{data['id']}", summary=text(data.get("title")))

    def parse_webhook(self, request: WebhookRequest) -> list[NormalizedAlert]:
        data = self._read(request)
        event = AlertEventKind.RESOLVED if data.get("state") == "closed" else AlertEventKind.TRIGGERED
        device = text(data.get("device"), 255)
        return [NormalizedAlert(
            provider=SLUG, external_id=str_id(data["id"]), condition_key=f"{device}|{text(data.get('check'))}",
            event=event, severity=SEVERITIES.lookup(data.get("severity"), self.options["severity_map"]),
            title=text(data.get("title"), 500), device_external_id=device or None,
            organization_external_id=str_id(data.get("org")), organization_name=text(data.get("org_name")),
            raw=data,
        )]

    def webhook_card(self, url: str, secret: str) -> dict[str, Any]:
        return {"payload_template": '{"id": "...", "state": "open|closed"}', "events": ["open", "closed"]}
