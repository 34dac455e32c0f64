"""A provider that is down while the worker parses (e.g. salvaging a broken body via its API)
must not lose the event: it stays accepted and is retried; only after MAX_ATTEMPTS it fails."""

from __future__ import annotations

import pytest

from alerts.models import InboundEvent
from alerts.services import processing
from integrations.errors import Unavailable
from psa.tenancy import tenant_context
from tests.integration.pipeline_support import committed, setup_fake

pytestmark = pytest.mark.django_db


@pytest.fixture
def fx(tenant_a, fake_provider, monkeypatch):
    # Keep the webhook from being processed at intake; this test drives processing itself.
    monkeypatch.setattr("alerts.tasks.drain_inbound.apply_async", lambda *a, **k: None)
    return setup_fake(tenant_a.tenant)


def _post(fx):
    r = fx.post({"alert_id": "a1", "event": "trigger", "org": "o1", "title": "Disk full", "condition": "disk"})
    assert r.status_code == 202, r.content
    return r.json()["event_id"]


def test_provider_down_keeps_the_event_accepted_then_processes_it(fx, fake_provider, monkeypatch):
    event_id = _post(fx)
    real_parse = fake_provider.parse_webhook

    def down(self, request):
        raise Unavailable("Tactical did not answer (connection refused)")

    monkeypatch.setattr(fake_provider, "parse_webhook", down)
    with tenant_context(fx.tenant):
        with pytest.raises(Unavailable):
            processing.process_event(event_id)
        event = InboundEvent.objects.get(pk=event_id)
        assert event.status == "accepted" and event.error == ""
        assert fx.tickets() == []

        monkeypatch.setattr(fake_provider, "parse_webhook", real_parse)
        with committed():
            processing.process_event(event_id)
        event.refresh_from_db()
        assert event.status == "processed"
    assert len(fx.tickets()) == 1


def test_provider_down_for_too_long_fails_the_event_with_a_reason(fx, fake_provider, monkeypatch):
    event_id = _post(fx)
    monkeypatch.setattr(fake_provider, "parse_webhook", lambda self, request: (_ for _ in ()).throw(Unavailable("down")))
    with tenant_context(fx.tenant):
        for _ in range(processing.MAX_ATTEMPTS - 1):
            with pytest.raises(Unavailable):
                processing.process_event(event_id)
        assert processing.process_event(event_id) is None
        event = InboundEvent.objects.get(pk=event_id)
    assert event.status == "failed"
    assert "gave up" in event.error and "replay" in event.error
