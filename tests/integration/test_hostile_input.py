"""Hostile bodies and URLs (issue 15): a failed event with a reason (webhooks, 400) or a 400 (API and
web), never a 500 and never a row PostgreSQL refuses later."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.test import Client as HttpClient

from alerts.models import InboundEvent
from integrations.services import config
from psa.models import Client
from psa.tenancy import tenant_context
from tests.helpers import committed
from tickets.models import Ticket

pytestmark = pytest.mark.django_db

GOOD = {"event": "trigger", "alert_id": "a1", "condition": "disk", "severity": "high", "title": "Disk full",
        "organization": {"id": "acme", "name": "Acme"}, "device": {"id": "d1", "hostname": "web-01"}}


def with_extra(raw: str, alert_id: str) -> bytes:
    """GOOD with one more field whose JSON text is ``raw`` (what json.dumps cannot produce)."""
    text = json.dumps({**GOOD, "alert_id": alert_id})
    return (text[:-1] + ', "extra": ' + raw + "}").encode()


HOSTILE = {
    "array nested 10,000 levels": ("[" * 10_000 + "]" * 10_000, "deeper than 100 levels"),
    "object nested 10,000 levels": ('{"a":' * 10_000 + "1" + "}" * 10_000, "deeper than 100 levels"),
    "5,000-digit integer": ("9" * 5000, "5000 digits"),
    "lone surrogate": ('"a\\ud800b"', "lone surrogate"),
    "1e400": ("1e400", "out of range"),
    "NaN": ("NaN", "NaN is not a JSON number"),
    "Infinity": ("Infinity", "Infinity is not a JSON number"),
    "-Infinity": ("-Infinity", "Infinity is not a JSON number"),
}


@pytest.fixture
def generic(tenant_a):
    with tenant_context(tenant_a.tenant):
        integration = config.get_integration("generic", create=True)
        card = config.webhook_card(integration)
    headers = {"HTTP_" + card["header_name"].upper().replace("-", "_"): card["secret"]}
    http = HttpClient()

    def post(body: bytes):
        with committed():
            return http.post(card["url"], data=body, content_type="application/json", **headers)

    return tenant_a.tenant, post


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_webhook_body_is_a_failed_event_with_its_reason(generic, name):
    tenant, post = generic
    raw, reason = HOSTILE[name]
    body = with_extra(raw, alert_id=f"h-{name}")
    r = post(body)
    assert r.status_code == 400, r.content
    assert reason in r.json()["detail"]
    with tenant_context(tenant):
        event = InboundEvent.objects.get(pk=r.json()["event_id"])
    assert event.status == "failed" and reason in event.error
    assert bytes(event.body) == body  # kept whole for the admin: the event log shows what arrived


def test_lone_surrogate_in_the_title_itself(generic):
    _, post = generic
    body = json.dumps({**GOOD, "alert_id": "s1"}).replace('"Disk full"', '"a\\ud800b"').encode()
    r = post(body)
    assert r.status_code == 400 and "lone surrogate" in r.json()["detail"]


def test_nul_in_a_webhook_value_is_accepted_and_cleaned(generic):
    # Unlike the API, a webhook keeps a NUL-bearing alert: the pipeline strips NUL from what it stores.
    tenant, post = generic
    r = post(json.dumps({**GOOD, "alert_id": "nul-1", "title": "Disk\u0000 full"}).encode())
    assert r.status_code == 202, r.content
    with tenant_context(tenant):
        event = InboundEvent.objects.get(pk=r.json()["event_id"])
        assert event.status == "processed", event.error


def test_a_parser_bug_is_a_failed_event_not_a_500(generic, monkeypatch):
    from integrations.generic.provider import GenericProvider

    def broken(self, request):
        raise TypeError("bug")

    monkeypatch.setattr(GenericProvider, "inspect_webhook", broken)
    tenant, post = generic
    r = post(json.dumps(GOOD).encode())
    assert r.status_code == 400 and "generic parser could not read this body (TypeError)" in r.json()["detail"]
    with tenant_context(tenant):
        assert InboundEvent.objects.get(pk=r.json()["event_id"]).status == "failed"


def test_tactical_string_literal_holding_hostile_json_is_refused(tenant_a):
    # Tactical's fallback sends the whole body as one JSON string; what is inside is checked too.
    with tenant_context(tenant_a.tenant):
        integration = config.get_integration("tactical", create=True)
        integration.set_webhook_secret("tactical-secret-0123456789")
        integration.save()
    from integrations.tactical.provider import TacticalProvider

    inner = '{"alert_id": 5, "deep": ' + "[" * 500 + "]" * 500 + "}"
    r = HttpClient().post(
        f"/webhooks/tactical/{integration.webhook_key}/", data=json.dumps(inner), content_type="application/json",
        **{"HTTP_" + TacticalProvider.webhook_header.upper().replace("-", "_"): "tactical-secret-0123456789"},
    )
    assert r.status_code == 400 and "deeper than 100 levels" in r.json()["detail"]


API_HOSTILE = {
    "array nested 5,000 levels": '{"name": ' + "[" * 5000 + "]" * 5000 + "}",
    "5,000-digit integer": '{"name": "x", "notes": ' + "9" * 5000 + "}",
    "lone surrogate": '{"name": "a\\ud800b"}',
    "1e400": '{"name": "x", "notes": 1e400}',
    "NaN": '{"name": "x", "notes": NaN}',
    "Infinity": '{"name": "x", "notes": Infinity}',
    "NUL in a string": '{"name": "a\\u0000b"}',
}


@pytest.mark.parametrize("name", list(API_HOSTILE))
def test_hostile_api_body_is_400_and_creates_nothing(api_a, tenant_a, name):
    r = api_a.generic("POST", "/api/v1/clients/", API_HOSTILE[name], content_type="application/json")
    assert r.status_code == 400, r.content
    assert r.json()["detail"].startswith("Malformed request body: JSON parse error")
    with tenant_context(tenant_a.tenant):
        assert not Client.objects.exists()


def test_nul_in_a_query_string_is_400_on_the_web_and_the_api(api_a, tenant_a):
    web = HttpClient()
    web.force_login(tenant_a.user)
    r = web.get("/clients/?q=%00")
    assert r.status_code == 400 and b"NUL" in r.content
    r = api_a.get("/api/v1/clients/?q=%00")
    assert r.status_code == 400 and "NUL" in r.json()["detail"]
    r = api_a.get("/api/v1/clients/?q=a%00b&is_active=true")
    assert r.status_code == 400
    # Still fine without the NUL.
    assert web.get("/clients/?q=acme").status_code == 200
    assert api_a.get("/api/v1/clients/?q=%2500").status_code == 200  # a literal "%00" text is not NUL


def test_utc_offset_beyond_postgresql_range_filters_by_the_instant(api_a, tenant_a, make_ticket):
    # +16:00 is valid ISO 8601 but PostgreSQL reads offsets only up to 15:59: the value is sent as UTC.
    ticket = make_ticket(tenant_a.tenant, "Offset probe")
    created = ticket.created_at.astimezone(dt.timezone(dt.timedelta(hours=16)))
    before = (created - dt.timedelta(minutes=1)).isoformat()
    after = (created + dt.timedelta(minutes=1)).isoformat()
    r = api_a.get("/api/v1/tickets/", {"created_after": before})
    assert r.status_code == 200 and [t["id"] for t in r.json()["results"]] == [ticket.pk]
    r = api_a.get("/api/v1/tickets/", {"created_after": after})
    assert r.status_code == 200 and r.json()["count"] == 0
    r = api_a.get("/api/v1/tickets/?created_after=2020-01-01T00:00:00%2B16:00")
    assert r.status_code == 200
    r = api_a.get("/api/v1/tickets/?created_after=2020-01-01T00:00:00-23:59")
    assert r.status_code == 200


def test_orm_writes_a_datetime_with_a_far_offset(tenant_a, make_ticket):
    # The same adapter covers inserts: a provider timestamp with such an offset no longer fails the pipeline.
    ticket = make_ticket(tenant_a.tenant)
    when = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=-20)))
    with tenant_context(tenant_a.tenant):
        Ticket.objects.filter(pk=ticket.pk).update(created_at=when)
        ticket.refresh_from_db()
    assert ticket.created_at == when and ticket.created_at.utcoffset() == dt.timedelta(0)
