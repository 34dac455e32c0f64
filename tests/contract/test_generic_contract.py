"""The generic webhook provider on the contract suite (webhooks only: nothing to connect to)."""

from __future__ import annotations

import json

import pytest

from .base import WebhookContract

pytestmark = pytest.mark.django_db


def body(**kw) -> bytes:
    data = {"event": "trigger", "alert_id": "chk-1", "condition": "disk:C:", "severity": "high",
            "title": "Disk C: low", "message": 'C: has "4.1 GB" free',
            "organization": {"id": "acme", "name": "Acme Corp"},
            "device": {"id": "dev-1", "hostname": "ACME-FS01", "serial_number": "SN1"},
            "occurred_at": "2026-01-31T12:00:00Z"}
    data.update(kw)
    return json.dumps(data).encode()


class TestGenericContract(WebhookContract):
    slug = "generic"
    good_bodies = [
        body(),
        body(alert_id=42, severity="warning", device={"hostname": "NO-ID-HOST"}, organization={"name": "Ünïcode Org"}),
        body(event="resolve", severity=None, title=None, message=None, occurred_at=1769860800),
        json.dumps({"event": "trigger", "alert_id": "minimal"}).encode(),
    ]

    def two_devices(self):
        return body(alert_id="a", device={"id": "dev-1"}), body(alert_id="b", device={"id": "dev-2"})

    def test_unknown_severity_words_become_medium(self, webhook_provider):
        [alert] = webhook_provider.parse_webhook(self.request(body(severity="purple")))
        assert alert.severity == "medium"
