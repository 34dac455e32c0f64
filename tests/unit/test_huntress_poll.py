"""HuntressProvider.poll_alerts and parse_webhook against respx: the stream of incident and escalation
records, the cursor known only after a complete pass (never after a failed one), the watermark cut,
the escalation setting, tolerant cursors, and webhook events turned into records."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest
import respx
from django.core.cache import cache

from integrations import ratelimit
from integrations.base import WebhookRequest
from integrations.errors import ProviderError
from integrations.huntress.client import DEFAULT_BASE_URL
from integrations.huntress.provider import HuntressProvider, _read_cursor
from integrations.models import Integration
from integrations.records import EscalationRecord, IncidentRecord, PollResult

BASE = DEFAULT_BASE_URL


@pytest.fixture(autouse=True)
def fast(fast, settings, monkeypatch):
    settings.PSA_HTTP_RETRIES = 0
    settings.PSA_HUNTRESS_MAX_WAIT = 5
    monkeypatch.setattr(HuntressProvider, "credentials", property(lambda self: {"api_key": "k", "api_secret": "s"}))
    cache.delete("huntress:portal:None")
    yield
    ratelimit.reset("huntress:None")


@pytest.fixture
def mock():
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.get("/account").respond(200, json={"account": {"id": 9120, "name": "Example MSP",
                                                              "subdomain": "examplemsp", "status": "enabled"}})
        router.get("/organizations").respond(200, json={
            "organizations": [{"id": 48211, "name": "Harbor Dental Group", "agents_count": 1}], "pagination": {}})
        router.get("/agents/7733021").respond(200, json={"agent": {"id": 7733021, "hostname": "HDG-FRONT-01",
                                                                  "serial_number": "7XK2M93"}})
        yield router


def provider(**settings) -> HuntressProvider:
    return HuntressProvider(Integration(provider="huntress", settings=settings))


def report(report_id, updated, severity="high"):
    return {"id": report_id, "organization_id": 48211, "agent_id": 7733021, "status": "sent", "severity": severity,
            "subject": f"Report {report_id}", "summary": "s", "body": "<p>b</p>", "indicator_counts": {},
            "remediations": {"total_count": 0, "has_more": False, "items": []}, "updated_at": updated}


def escalation(esc_id, updated, status="open"):
    return {"id": esc_id, "subject": "Defender Disabled", "severity": "high", "status": status,
            "organizations": [{"id": 48211, "name": "Harbor Dental Group"}], "updated_at": updated}


def test_stream_of_incidents_then_escalations_and_the_cursor_after_the_pass(mock):
    mock.get("/incident_reports").respond(200, json={"incident_reports": [
        report(2, "2025-03-19T14:00:00Z", "critical"), report(1, "2025-03-19T13:00:00Z")], "pagination": {}})
    mock.get("/escalations").respond(200, json={"escalations": [escalation(7, "2025-03-19T12:00:00Z")],
                                                "pagination": {"next_page_token": None}})
    result = provider().poll_alerts(None)
    assert isinstance(result, PollResult) and result.complete is False and callable(result.cursor)
    assert result.cursor() is None  # nothing read yet: no watermark to store
    records = list(result.active)
    assert [type(r) for r in records] == [IncidentRecord, IncidentRecord, EscalationRecord]
    assert records[0].severity == "critical" and records[0].organization_name == "Harbor Dental Group"
    assert records[0].host_serial == "7XK2M93"
    marks = json.loads(result.cursor())
    assert marks == {"incidents": "2025-03-19T14:00:00+00:00", "escalations": "2025-03-19T12:00:00+00:00"}
    sent = next(c.request for c in mock.calls if c.request.url.path.endswith("/incident_reports"))
    assert sent.url.params["sort_field"] == "updated_at" and sent.url.params["sort_direction"] == "desc"
    assert sent.url.params["limit"] == "500"


def test_a_failed_pass_gives_no_cursor(mock):
    mock.get("/incident_reports").respond(200, json={"incident_reports": [report(1, "2025-03-19T13:00:00Z")],
                                                     "pagination": {}})
    mock.get("/escalations").respond(500, json={"error": "boom"})
    result = provider().poll_alerts(json.dumps({"incidents": "2025-03-19T10:00:00Z"}))
    with pytest.raises(ProviderError):
        list(result.active)
    assert result.cursor() is None


def test_the_watermark_cuts_the_walk_with_its_overlap(mock):
    first = mock.get("/incident_reports", params={"page_token": "p2"}).respond(200, json={
        "incident_reports": [report(0, "2025-03-19T09:00:00Z")], "pagination": {}})
    mock.get("/incident_reports").respond(200, json={"incident_reports": [
        report(3, "2025-03-19T13:00:00Z"), report(2, "2025-03-19T12:55:00Z"), report(1, "2025-03-19T12:30:00Z")],
        "pagination": {"next_page_token": "p2"}})
    mock.get("/escalations").respond(200, json={"escalations": [], "pagination": {}})
    cursor = json.dumps({"incidents": "2025-03-19T13:00:00+00:00", "escalations": "2025-03-18T00:00:00+00:00"})
    result = provider().poll_alerts(cursor)
    ids = [r.external_id for r in result.active]
    # 13:00 - 10 min overlap = 12:50: 12:55 is re-read, 12:30 is not, and page 2 is never fetched.
    assert ids == ["3", "2"] and not first.called
    marks = json.loads(result.cursor())
    assert marks["incidents"] == "2025-03-19T13:00:00+00:00"
    assert marks["escalations"] == "2025-03-18T00:00:00+00:00"  # nothing newer: kept


def test_escalations_off_by_setting_keep_their_mark(mock):
    esc = mock.get("/escalations").respond(200, json={"escalations": [], "pagination": {}})
    mock.get("/incident_reports").respond(200, json={"incident_reports": [report(1, "2025-03-19T13:00:00Z")],
                                                     "pagination": {}})
    result = provider(poll_escalations=False).poll_alerts(json.dumps({"escalations": "2025-03-01T00:00:00Z"}))
    assert [type(r) for r in result.active] == [IncidentRecord] and not esc.called
    assert json.loads(result.cursor()) == {"incidents": "2025-03-19T13:00:00+00:00",
                                           "escalations": "2025-03-01T00:00:00+00:00"}


@pytest.mark.parametrize(("cursor", "expected"), [
    (None, {}), ("", {}), ("garbage", {}), ("[1, 2]", {}),
    ("2025-03-19T13:00:00Z", {"incidents": dt.datetime(2025, 3, 19, 13, tzinfo=dt.UTC)}),
    ('{"incidents": "2025-03-19T13:00:00Z", "escalations": null, "other": "x"}',
     {"incidents": dt.datetime(2025, 3, 19, 13, tzinfo=dt.UTC)}),
])
def test_cursors_are_read_tolerantly(cursor, expected):
    assert _read_cursor(cursor) == expected


def test_parse_webhook_returns_the_fetched_incident_or_the_escalation(mock):
    mock.get("/incident_reports/5").respond(200, json={"incident_report": report(5, "2025-03-19T13:00:00Z")})
    body = json.dumps({"event_type": "incident_report.created", "id": 5, "organization": {"id": 48211,
                       "name": "Harbor Dental Group"}, "created_at": "2025-03-19T12:59:00Z"}).encode()
    [rec] = provider().parse_webhook(WebhookRequest(body=body, headers={}, query={}))
    assert isinstance(rec, IncidentRecord) and rec.external_id == "5" and not rec.partial
    assert rec.created_at == dt.datetime(2025, 3, 19, 12, 59, tzinfo=dt.UTC)
    esc = json.dumps({"event_type": "escalation.overdue", **escalation(8, "2025-03-19T13:00:00Z"),
                      "message": "Respond please"}).encode()
    [e] = provider().parse_webhook(WebhookRequest(body=esc, headers={}, query={}))
    assert isinstance(e, EscalationRecord) and e.event_type == "escalation.overdue" and e.message == "Respond please"
    other = json.dumps({"event_type": "platform_action.created", "id": 1}).encode()
    assert provider().parse_webhook(WebhookRequest(body=other, headers={}, query={})) == []


def test_parse_webhook_falls_back_to_the_partial_payload_when_huntress_is_down(mock):
    mock.get("/incident_reports/6").mock(side_effect=httpx.ConnectError("down"))
    body = json.dumps({"event_type": "incident_report.closed", "id": 6, "status": None, "severity": None,
                       "organization": {"id": 48211, "name": "Harbor Dental Group"},
                       "updated_at": "2025-03-19T15:00:00Z"}).encode()
    request = WebhookRequest(body=body, headers={}, query={})
    [rec] = provider().parse_webhook(request)
    assert rec.partial and rec.is_closed and rec.severity == "" and rec.state() == {"is_closed": True}
    assert request.extra["fetch_error"]


@pytest.mark.parametrize("code", [403, 404])
def test_escalations_out_of_reach_do_not_stop_incident_polls(mock, code):
    mock.get("/incident_reports").respond(200, json={"incident_reports": [report(1, "2025-03-19T13:00:00Z")],
                                                     "pagination": {}})
    mock.get("/escalations").respond(code, json={"error": "no"})
    result = provider().poll_alerts(json.dumps({"escalations": "2025-03-01T00:00:00Z"}))
    assert [type(r) for r in result.active] == [IncidentRecord]
    assert json.loads(result.cursor()) == {"incidents": "2025-03-19T13:00:00+00:00",
                                           "escalations": "2025-03-01T00:00:00+00:00"}
