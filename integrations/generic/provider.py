"""The built-in generic webhook provider: any monitoring tool that can POST JSON."""

from __future__ import annotations

import json
import shlex
from typing import Any

from integrations.base import Capabilities, Provider, WebhookRequest
from integrations.records import ConnectionResult, NormalizedAlert, WebhookEnvelope

from . import normalize


class GenericProvider(Provider):
    slug = normalize.SLUG
    name = "Generic webhook"
    capabilities = Capabilities(webhooks=True, orgs_from_events=True)
    credential_fields = ()
    credential_sets = ()
    severity_map = normalize.SEVERITIES
    docs = "docs/generic-webhook.md"

    def test_connection(self) -> ConnectionResult:
        # Nothing to connect to: the sender calls us.
        return ConnectionResult(ok=True, message="The generic webhook needs no connection: post alerts to its URL.")

    def inspect_webhook(self, request: WebhookRequest) -> WebhookEnvelope:
        ev = normalize.read_event(request.body)
        # The full parse is cheap (no network): run it here so any malformed body answers 400 at intake.
        normalize.to_alert(ev)
        title = ev.body.get("title")
        summary = f"{ev.event} {ev.alert_id}" + (f": {title}" if isinstance(title, str) and title else "")
        return WebhookEnvelope(delivery_id=ev.delivery_id, summary=summary)  # intake cleans and clips it

    def parse_webhook(self, request: WebhookRequest) -> list[NormalizedAlert]:
        return normalize.parse(request.body)

    def webhook_card(self, url: str, secret: str) -> dict[str, Any]:
        template = json.dumps(normalize.EXAMPLE_BODY, indent=2)
        header = f"{self.webhook_header}: {secret or '<secret>'}"
        curl = (
            f"curl -X POST {shlex.quote(url)} \\\n"
            f"  -H 'Content-Type: application/json' \\\n"
            f"  -H {shlex.quote(header)} \\\n"
            f"  -d {shlex.quote(json.dumps(normalize.EXAMPLE_BODY))}"
        )
        return {
            "payload_template": template,
            "curl_example": curl,
            "events": ["trigger", "resolve"],
            "docs": "docs/generic-webhook.md",
        }
