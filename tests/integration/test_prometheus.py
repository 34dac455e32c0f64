"""Prometheus exposition at /metrics: protected by PSA_METRICS_TOKEN, psa_ metrics read from the pipeline's rows
across tenants (intake by status, processing latency, queue lag, outbox depth), no tenant in the labels."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client as HttpClient
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from alerts.models import Alert, InboundEvent
from psa.tenancy import tenant_context
from tests.integration.pipeline_support import setup_fake, trigger
from tests.outbox_support import failed_reset

pytestmark = pytest.mark.django_db
TOKEN = "metrics-token-0123456789"


def scrape(token: str | None = TOKEN):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token is not None else {}
    return HttpClient().get("/metrics", **headers)


def samples(response) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_refused_without_the_token_or_while_it_is_unset(settings, monkeypatch):
    monkeypatch.delenv("PSA_METRICS_TOKEN", raising=False)
    settings.PSA_METRICS_TOKEN = ""
    assert scrape().status_code == 403  # unset: never readable
    settings.PSA_METRICS_TOKEN = TOKEN
    missing = scrape(None)
    assert missing.status_code == 401 and missing["WWW-Authenticate"].startswith("Bearer")
    assert scrape("wrong").status_code == 403
    assert HttpClient().get("/metrics", HTTP_AUTHORIZATION=f"Token {TOKEN}").status_code == 401
    ok = scrape()
    assert ok.status_code == 200 and ok["Content-Type"].startswith("text/plain")


def test_pipeline_figures_across_tenants(settings, tenant_a, tenant_b, fake_provider):
    settings.PSA_METRICS_TOKEN = TOKEN
    a, b = setup_fake(tenant_a.tenant), setup_fake(tenant_b.tenant)
    a.post(trigger("a-1"))
    a.post(b"not json")
    b.post(trigger("b-1"))
    with tenant_context(b.tenant):
        waiting = InboundEvent.objects.create(integration=b.integration, provider="fake", delivery_id="w", body=b"{}")
        InboundEvent.objects.filter(pk=waiting.pk).update(received_at=timezone.now() - dt.timedelta(minutes=2))
        failed_reset(Alert.objects.get())
    response = scrape()
    text = response.content.decode()
    got = samples(response)
    assert got[("psa_inbound_events_last_24h", (("provider", "fake"), ("status", "processed")))] == 2
    assert got[("psa_inbound_events_last_24h", (("provider", "fake"), ("status", "failed")))] == 1
    assert got[("psa_inbound_events_last_24h", (("provider", "fake"), ("status", "accepted")))] == 1
    assert got[("psa_intake_backlog", (("provider", "fake"),))] == 1
    assert 110 <= got[("psa_queue_lag_seconds", (("provider", "fake"),))] <= 300
    assert got[("psa_outbox_depth", (("state", "failed"),))] == 1
    assert got[("psa_outbox_depth", (("state", "pending"),))] == 0
    assert got[("psa_processing_latency_seconds_count", ())] == 3  # two processed + the failed one
    assert got[("psa_processing_latency_seconds_bucket", (("le", "+Inf"),))] == 3
    names = {name for name, _ in got}
    assert names and all(n.startswith("psa_") for n in names)
    for secret in (tenant_a.tenant.name, tenant_b.tenant.name, a.client.name):
        assert secret not in text
