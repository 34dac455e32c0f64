"""Bounded fuzz of the webhook path (intake -> every installed provider's inspect_webhook).

Whatever the body, an authenticated delivery is answered 202 (stored) or 400 (stored as a failed
event with a reason): never a 500, never lost. Hypothesis draws JSON of every shape (provider-like
keys, NaN/Infinity, surrogates, NUL, deep nesting, huge integers), broken JSON and raw bytes.
Deterministic (derandomize) so CI is repeatable; bounded by example count and a time cap.
"""

from __future__ import annotations

import json
import time

import pytest
from django.test import Client as HttpClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.models import InboundEvent
from integrations import registry
from integrations.models import Integration
from psa.tenancy import tenant_context

pytestmark = pytest.mark.django_db

SECRET = "fuzz-webhook-secret-0123456789"
EXAMPLES_PER_PROVIDER = 120
TIME_CAP_SECONDS = 40.0  # for all providers together; examples past it return at once

KEYS = ["event", "alert_id", "id", "event_type", "data", "activityType", "statusCode", "title", "message",
        "severity", "organization", "device", "condition", "occurred_at", "resolved_on", "agent_id", "psa_route",
        "device_id", "type", "status"]
HOSTILE_TOKENS = ["NaN", "-Infinity", "Infinity", "1e400", "-1e999", "9" * 5000, "[" * 3000 + "]" * 3000,
                  '{"a":' * 300 + "1" + "}" * 300, '"\\ud800"', '"x\\udfffy"', '"\\u0000"', "1" * 101, '"\\"']

text = st.text(st.characters(codec=None, exclude_categories=()), max_size=30) | st.sampled_from(
    ["\ud800", "a\udc00b", "\x00", "", "trigger", "resolve", "critical", "2024-01-01T00:00:00+16:00"]
)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | text
values = st.recursive(
    scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | text, kids, max_size=4),
    max_leaves=25,
)
shaped = st.dictionaries(st.sampled_from(KEYS), values, max_size=8)


def encode(value, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@st.composite
def bodies(draw) -> bytes:
    kind = draw(st.sampled_from(["shaped", "any", "spliced", "truncated", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    ascii_only = draw(st.booleans())
    if kind == "any":
        body = encode(draw(values), ascii_only)
    else:
        body = encode(draw(shaped), ascii_only)
    if kind == "spliced":  # one value json.dumps cannot write, put where a value belongs
        token = draw(st.sampled_from(HOSTILE_TOKENS)).encode()
        body = (body[:-1] + (b", " if len(body) > 2 else b"") + b'"extra": ' + token + b"}") if body.endswith(
            b"}") else token
    if kind == "truncated" and body:
        body = body[: draw(st.integers(0, len(body) - 1))]
    if draw(st.booleans()):
        body = b"\xef\xbb\xbf" + body  # a BOM, as some senders write
    return body


def integration_for(tenant, slug: str) -> Integration:
    with tenant_context(tenant):
        integration = Integration.objects.create(provider=slug, status="connected")
        integration.set_webhook_secret(SECRET)
        integration.save(update_fields=["webhook_secret_ciphertext"])
    return integration


def fuzz(http: HttpClient, tenant, slug: str, url: str, headers: dict, stop_at: float):
    @settings(max_examples=EXAMPLES_PER_PROVIDER, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(body=bodies())
    def one(body: bytes):
        if time.monotonic() > stop_at:
            return
        r = http.post(url, data=body, content_type="application/json", **headers)
        assert r.status_code in (202, 400), (slug, body[:200], r.status_code, r.content[:300])
        answer = r.json()
        with tenant_context(tenant):
            event = InboundEvent.objects.get(pk=answer["event_id"])
        if r.status_code == 400:
            assert event.status == "failed" and event.error, (slug, body[:200])
            assert answer["detail"].startswith("Unreadable webhook: ")
        else:
            assert event.status in ("accepted", "duplicate"), (slug, body[:200], event.status)
        assert bytes(event.body) == body

    one()


def test_webhook_path_never_answers_500_and_never_loses_a_delivery(tenant_a):
    stop_at = time.monotonic() + TIME_CAP_SECONDS
    http = HttpClient()  # raises on any unhandled exception in a view: that is a failure here
    tested = []
    for provider_cls in registry.all_providers():
        integration = integration_for(tenant_a.tenant, provider_cls.slug)
        url = f"/webhooks/{provider_cls.slug}/{integration.webhook_key}/"
        headers = {"HTTP_" + provider_cls.webhook_header.upper().replace("-", "_"): SECRET}
        if http.post(url, data=b"{}", content_type="application/json", **headers).status_code == 401:
            continue  # signature-only provider: nothing reaches its parser without a signature
        tested.append(provider_cls.slug)
        fuzz(http, tenant_a.tenant, provider_cls.slug, url, headers, stop_at)
    assert "generic" in tested and "tactical" in tested, tested
