"""Helpers for the alert pipeline tests (test_pipeline_*.py, test_intake_*.py).

A tenant with a connected ``fake`` integration (tests/fakes.py, registered by the
``fake_provider`` fixture), a webhook secret, and organization ``o1`` mapped to a client.
The fake's webhook body: {"alert_id", "event" ("trigger"|"resolve"), "org", "title",
"severity", "device", "condition", "delivery_id"}.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

from django.test import Client as HttpClient

from integrations.models import ExternalOrganization, Integration
from psa.models import Client
from psa.tenancy import tenant_context
from tests.helpers import committed
from tickets.models import Ticket

_n = itertools.count(1)
SECRET = "test-webhook-secret-0123456789"


@dataclass
class Setup:
    tenant: object
    integration: Integration
    client: Client
    org: ExternalOrganization

    @property
    def url(self) -> str:
        return f"/webhooks/fake/{self.integration.webhook_key}/"

    def post(self, body, *, secret: str | None = SECRET, http: HttpClient | None = None, **extra):
        http = http or HttpClient()
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        if secret is not None:
            extra["HTTP_X_PSA_WEBHOOK_SECRET"] = secret
        with committed():
            return http.post(self.url, data=data, content_type="application/json", **extra)

    def tickets(self):
        with tenant_context(self.tenant):
            return list(Ticket.objects.order_by("id"))


def setup_fake(tenant, *, org_external_id: str = "o1", mapped: bool = True) -> Setup:
    with tenant_context(tenant):
        integration = Integration.objects.create(provider="fake", status="connected")
        integration.set_webhook_secret(SECRET)
        integration.save(update_fields=["webhook_secret_ciphertext"])
        client = Client.objects.create(name=f"Harbor Dental {next(_n)}")
        org = ExternalOrganization.objects.create(
            integration=integration,
            external_id=org_external_id,
            name="Harbor Dental Group",
            client=client if mapped else None,
            mapping="manual" if mapped else None,
        )
    return Setup(tenant, integration, client, org)


def trigger(alert_id, condition="disk-c", **kw) -> dict:
    return {
        "event": "trigger",
        "alert_id": str(alert_id),
        "org": kw.pop("org", "o1"),
        "title": kw.pop("title", "Disk low"),
        "severity": kw.pop("severity", "high"),
        "condition": condition,
        **kw,
    }


def resolve(alert_id, **kw) -> dict:
    return {"event": "resolve", "alert_id": str(alert_id), "org": kw.pop("org", "o1"), **kw}
