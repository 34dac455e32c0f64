"""LevelProvider with respx: connection test, webhooks (both routes), group lookup, poll, reset, card."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from integrations.base import WebhookRequest
from integrations.errors import NotResettable, ProviderError, Unavailable, WebhookParseError
from integrations.level.client import PROBE_ALERT_ID
from integrations.level.provider import LevelProvider
from integrations.level.signature import sign
from integrations.level.webhook import TRIGGER_TEMPLATE
from integrations.models import Integration
from integrations.records import DirectoryChangeKind

BASE = "https://api.level.example.com/v2"
ALERT = {"id": "A1", "device_id": "D1", "device_hostname": "HDG-FRONT-01", "name": "Disk space low",
         "description": "Disk C: free space < 10%", "severity": "critical", "is_resolved": False,
         "started_at": "2025-03-19T13:41:00Z", "resolved_at": None}


@pytest.fixture(autouse=True)
def fast(fast, settings):
    settings.PSA_HTTP_RETRIES = 1
    return fast


@pytest.fixture
def integration(make_tenant):
    row = Integration.objects.unscoped().create(tenant=make_tenant().tenant, provider="level", base_url=BASE)
    row.set_credentials({"api_key": "KEY"})
    row.save()
    return row


@pytest.fixture
def provider(integration):
    p = LevelProvider(integration)
    yield p
    p.close()


@pytest.fixture
def mock():
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def req(body, headers=None) -> WebhookRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return WebhookRequest(body=raw, headers=headers or {}, query={})


def env(event_type, data, event_id="ev-1"):
    return {"event_type": event_type, "event_id": event_id, "occurred_at": "2025-03-19T13:41:00.000Z", "data": data}


def groups(*rows, more=False):
    return httpx.Response(200, json={"data": list(rows), "has_more": more})


# -- metadata ---------------------------------------------------------------------------------------
def test_declarations():
    assert LevelProvider.slug == "level" and not LevelProvider.requires_base_url
    assert [s.fields for s in LevelProvider.credential_sets] == [("api_key",)]
    assert LevelProvider.severity_map_doc == {"information": "info", "warning": "medium", "critical": "high",
                                              "emergency": "critical"}
    caps = LevelProvider.capabilities
    assert caps.device_sync and caps.webhooks and caps.polling and caps.reset_on_close


def test_settings_validation(provider):
    from integrations.settings_schema import validate

    assert validate(provider, {"severity_map": {"warning": "low"}}, {}) == ({"severity_map": {"warning": "low"}}, {})
    assert validate(provider, {}, {})[1] == {}
    assert "settings.severity_map" in validate(provider, {"severity_map": {"warning": "urgent"}}, {})[1]
    assert "settings.severity_map" in validate(provider, {"severity_map": {"severe": "low"}}, {})[1]
    assert "settings.severity_map" in validate(provider, {"severity_map": ["x"]}, {})[1]
    assert "settings.bogus" in validate(provider, {"bogus": 1}, {})[1]


# -- connection test ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "answer,code,words",
    [
        (httpx.Response(401, json={"error": "Access denied"}), "bad_key", "rejected the API key"),
        (httpx.Response(403, json={"error": "Forbidden"}), "no_access", "no access"),
        (httpx.Response(503), "unavailable", "down or unreachable"),
        (httpx.ConnectError("connection refused"), "unavailable", "down or unreachable"),
        (httpx.Response(200, text="<html></html>", headers={"content-type": "text/html"}), "wrong_url", "HTML"),
        (httpx.Response(404, json={"error": "Not found"}), "wrong_url", "Leave the base URL empty"),
        (httpx.Response(429, headers={"Retry-After": "30"}), "rate_limited", "in 30 seconds"),
    ],
)
def test_connection_failures_each_have_their_message(provider, mock, answer, code, words):
    if isinstance(answer, Exception):
        mock.get("/groups").mock(side_effect=answer)
    else:
        mock.get("/groups").mock(return_value=answer)
    result = provider.test_connection()
    assert result.ok is False and result.details["code"] == code
    assert words in result.message
    assert all(c.request.method == "GET" for c in mock.calls)  # no write when reads fail


@pytest.mark.parametrize("probe_status,access,words", [(404, "read_write", "read and write"),
                                                        (403, "read_only", "read-only"),
                                                        (500, "unknown", "unknown access")])
def test_connection_reports_the_key_access(provider, mock, probe_status, access, words):
    mock.get("/groups").mock(side_effect=[groups({"id": "g1"}, {"id": "g2"}, more=True), groups({"id": "g3"})])
    probe = mock.post(f"/alerts/{PROBE_ALERT_ID}/resolve").mock(return_value=httpx.Response(probe_status, json={}))
    result = provider.test_connection()
    assert result.ok is True and result.details["access"] == access and result.details["groups"] == 3
    assert words in result.message and probe.called
    assert ("will not resolve" in result.message) is (access == "read_only")


# -- webhooks -----------------------------------------------------------------------------------------
def test_signature_hook(provider):
    body = json.dumps(env("alert_active", ALERT)).encode()
    assert provider.verify_webhook_signature(req(body, {"x-level-signature": sign(body, "sec")}), "sec") is True
    assert provider.verify_webhook_signature(req(body, {"x-level-signature": sign(body, "other")}), "sec") is False
    assert provider.verify_webhook_signature(req(body, {"x-level-signature": "garbage"}), "sec") is False
    assert provider.verify_webhook_signature(req(body, {"x-psa-webhook-secret": "sec"}), "sec") is None


def test_inspect(provider, mock):
    envelope = provider.inspect_webhook(req(env("alert_active", ALERT)))
    assert envelope.delivery_id == "ev-1" and "Disk space low" in envelope.summary
    assert provider.inspect_webhook(req(env("brand_new_event", {}))).delivery_id == "ev-1"
    with pytest.raises(WebhookParseError):
        provider.inspect_webhook(req(b"nonsense"))
    assert not mock.calls  # intake never calls Level


def test_alert_webhook_takes_the_group_from_the_device(provider, mock):
    route = mock.get("/devices/D1").mock(return_value=httpx.Response(200, json={"id": "D1", "group_id": "G9"}))
    [alert] = provider.parse_webhook(req(env("alert_active", ALERT)))
    assert (alert.external_id, alert.event, alert.severity, alert.organization_external_id) == (
        "A1", "triggered", "high", "G9")
    [resolved] = provider.parse_webhook(req(env("alert_resolved", {**ALERT, "is_resolved": True}, "ev-2")))
    assert resolved.event == "resolved" and resolved.organization_external_id == "G9"
    assert route.call_count == 1  # cached


def test_group_lookup_order_resolver_then_cache_then_level(integration, mock):
    route = mock.get("/devices/D1").mock(return_value=httpx.Response(200, json={"id": "D1", "group_id": "G-api"}))
    first = LevelProvider(integration)
    first.group_resolver = lambda device_id: "G-assets" if device_id == "D2" else None
    assert first.group_of_device("D2") == "G-assets" and not route.called
    assert first.group_of_device("D1") == "G-api" and route.call_count == 1
    second = LevelProvider(integration)  # another worker: the shared cache answers
    assert second.group_of_device("D1") == "G-api" and route.call_count == 1


def test_group_lookup_of_a_deleted_device_is_none(provider, mock):
    mock.get("/devices/D1").mock(return_value=httpx.Response(404, json={"error": "Not found"}))
    [alert] = provider.parse_webhook(req(env("alert_active", ALERT)))
    assert alert.organization_external_id is None  # the pipeline keeps it unmapped


def test_group_lookup_with_level_down_is_transient(provider, mock):
    mock.get("/devices/D1").mock(return_value=httpx.Response(503))
    with pytest.raises(Unavailable):
        provider.parse_webhook(req(env("alert_active", ALERT)))


def test_severity_override_applies_to_webhooks(integration, mock):
    integration.settings = {"severity_map": {"critical": "critical"}}
    provider = LevelProvider(integration)
    provider.group_resolver = lambda d: "G"
    [alert] = provider.parse_webhook(req(env("alert_active", ALERT)))
    assert alert.severity == "critical"


def test_unknown_event_types_give_nothing(provider, mock):
    assert provider.parse_webhook(req(env("future_event", {"id": "X"}))) == []
    assert not mock.calls


def test_device_and_group_events_give_directory_changes(provider, mock):
    mock.get("/devices/X").mock(return_value=httpx.Response(200, json={"id": "X", "group_id": "G1"}))
    [device] = provider.parse_webhook(req(env("device_updated", {"id": "X"})))
    [group] = provider.parse_webhook(req(env("group_created", {"id": "G9", "name": "New", "parent_id": "G1"})))
    assert (device.kind, device.device.organization_external_id) == (DirectoryChangeKind.DEVICE_UPSERT, "G1")
    assert (group.kind, group.organization.parent_external_id) == (DirectoryChangeKind.ORG_UPSERT, "G1")


def test_a_reopened_alert_is_placed_at_its_event_time(provider, mock):
    """Level reuses the id on a reopen and may keep started_at: the event's time places it after our resolve."""
    provider.group_resolver = lambda d: "G1"
    reopened = dict(env("alert_active", ALERT), occurred_at="2025-03-20T08:00:00.000Z")
    [alert] = provider.parse_webhook(req(reopened))
    assert alert.occurred_at.isoformat() == "2025-03-20T08:00:00+00:00"
    [first] = provider.parse_webhook(req(env("alert_active", ALERT)))  # event time == started_at
    assert first.occurred_at.isoformat() == "2025-03-19T13:41:00+00:00"


def test_alert_event_without_id_is_a_parse_error(provider):
    with pytest.raises(WebhookParseError):
        provider.parse_webhook(req(env("alert_active", {"name": "x"})))


def test_automation_route(provider, mock):
    body = (TRIGGER_TEMPLATE.replace("{{level_device_id}}", "D1").replace("{{level_group_id}}", "G1")
            .replace("{{level_group_name}}", 'Smith "North"').replace("{{level_device_hostname}}", "PC-1"))
    request = req(body.encode())
    [alert] = provider.parse_webhook(request)
    assert alert.external_id.startswith("automation:D1|") and alert.organization_external_id == "G1"
    assert request.extra["salvaged"] is True  # the quote broke the JSON
    assert not mock.calls
    with pytest.raises(WebhookParseError, match="device_id"):
        provider.parse_webhook(req(TRIGGER_TEMPLATE.encode()))  # variables never rendered


def test_directory_changes(provider, mock):
    full = {"id": "D1", "hostname": "PC-1", "group_id": "G2", "operating_system": {"full_operating_system": "Win 11"}}
    route = mock.get("/devices/D1").mock(return_value=httpx.Response(200, json=full))
    [change] = provider.parse_directory_changes(req(env("device_updated", {"id": "D1", "group_id": "G2"})))
    assert change.kind == DirectoryChangeKind.DEVICE_UPSERT and change.partial is False
    assert change.device.os == "Win 11"
    assert route.calls.last.request.url.params["include_operating_system"] == "true"
    assert provider.group_of_device("D1") == "G2" and route.call_count == 1  # the move updated the cache
    [gone] = provider.parse_directory_changes(req(env("device_deleted", {"id": "D1"})))
    assert gone.kind == DirectoryChangeKind.DEVICE_DELETE and route.call_count == 1
    [group] = provider.parse_directory_changes(req(env("group_updated", {"id": "G2", "name": "N", "parent_id": "G1"})))
    assert group.organization.parent_external_id == "G1"
    assert provider.parse_directory_changes(req(env("alert_active", ALERT))) == []
    assert provider.parse_directory_changes(req(env("unknown_event", {}))) == []


def test_directory_change_of_a_device_level_no_longer_has_is_partial(provider, mock):
    mock.get("/devices/D1").mock(return_value=httpx.Response(404, json={"error": "Not found"}))
    [change] = provider.parse_directory_changes(req(env("device_created", {"id": "D1", "hostname": "PC-1"})))
    assert change.partial is True and change.device.hostname == "PC-1"


# -- poll and reset -------------------------------------------------------------------------------------
def test_poll_is_the_complete_active_set(provider, mock):
    provider.group_resolver = lambda d: {"D1": "G1"}.get(d)
    mock.get("/devices/D2").mock(return_value=httpx.Response(200, json={"id": "D2", "group_id": "G2"}))
    route = mock.get("/alerts").mock(side_effect=[
        httpx.Response(200, json={"data": [ALERT, {**ALERT, "id": "A2", "device_id": "D2"}], "has_more": True}),
        httpx.Response(200, json={"data": [{**ALERT, "id": "A3", "is_resolved": True}, {"no": "id"}],
                                  "has_more": False}),
    ])
    result = provider.poll_alerts()
    assert result.complete is True
    assert [(a.external_id, a.organization_external_id, a.event) for a in result.active] == [
        ("A1", "G1", "triggered"), ("A2", "G2", "triggered")]
    assert route.calls[0].request.url.params["status"] == "active"


def test_poll_with_many_unknown_devices_lists_devices_once_instead_of_one_lookup_each(provider, mock):
    rows = [{**ALERT, "id": f"A{i}", "device_id": f"D{i}"} for i in range(30)]
    mock.get("/alerts").mock(return_value=httpx.Response(200, json={"data": rows, "has_more": False}))
    listing = mock.get("/devices").mock(return_value=httpx.Response(200, json={
        "data": [{"id": f"D{i}", "group_id": f"G{i % 3}"} for i in range(1, 30)], "has_more": False}))
    one = mock.get(url__regex=r".*/devices/.+").mock(return_value=httpx.Response(500))
    result = provider.poll_alerts()
    assert listing.call_count == 1 and not one.called
    assert "include_operating_system" not in listing.calls.last.request.url.params  # ids and groups only
    groups = {a.external_id: a.organization_external_id for a in result.active}
    assert groups["A1"] == "G1" and groups["A5"] == "G2"
    assert groups["A0"] is None  # not listed: gone from Level


def test_poll_with_few_unknown_devices_looks_them_up(provider, mock):
    mock.get("/alerts").mock(return_value=httpx.Response(200, json={"data": [ALERT], "has_more": False}))
    listing = mock.get("/devices").mock(return_value=httpx.Response(500))
    one = mock.get("/devices/D1").mock(return_value=httpx.Response(200, json={"id": "D1", "group_id": "G1"}))
    assert provider.poll_alerts().active[0].organization_external_id == "G1"
    assert one.call_count == 1 and not listing.called


def test_poll_failure_is_an_error_not_a_partial_snapshot(provider, mock):
    mock.get("/alerts").mock(side_effect=lambda request: (
        httpx.Response(503) if "starting_after" in request.url.params
        else httpx.Response(200, json={"data": [ALERT], "has_more": True})))
    provider.group_resolver = lambda d: "G1"
    with pytest.raises(Unavailable):
        provider.poll_alerts()


def test_reconcile_scope_excludes_automation_alerts(provider, mock):
    mock.get("/alerts").mock(return_value=httpx.Response(200, json={"data": [], "has_more": False}))
    covers = provider.poll_alerts().covers
    assert covers("A1") is True
    assert covers("automation:D1|disk space low") is False


def test_reset_resolves_in_level(provider, mock, integration):
    route = mock.post("/alerts/A1/resolve").mock(return_value=httpx.Response(200, json={**ALERT, "is_resolved": True}))
    assert provider.learned_access is None
    provider.reset_alert("A1")
    assert route.called and provider.learned_access == "read_write"
    integration.refresh_from_db()
    stored = integration.provider_state["key_access"]
    assert (stored["access"], stored["source"]) == ("read_write", "resolve")


def test_reset_with_a_read_only_key_is_declined_with_what_to_do(provider, mock, integration):
    mock.post("/alerts/A1/resolve").mock(return_value=httpx.Response(403, json={"error": "read-only"}))
    with pytest.raises(NotResettable, match="read-only.*Settings > API keys"):
        provider.reset_alert("A1")
    assert provider.learned_access == "read_only"
    integration.refresh_from_db()
    assert integration.provider_state["key_access"]["access"] == "read_only"
    assert LevelProvider(integration).stored_access() == "read_only"


def test_a_probe_does_not_overwrite_what_a_resolve_proved_for_the_same_key(provider, mock, integration):
    integration.credentials_hint = {"api_key": {"set": True, "last4": "WXYZ"}}
    integration.save()
    mock.post("/alerts/A1/resolve").mock(return_value=httpx.Response(403, json={"error": "read-only"}))
    with pytest.raises(NotResettable):
        provider.reset_alert("A1")
    provider.remember_access("read_write", "probe said 404", "connection_test")
    assert LevelProvider(integration).stored_access() == "read_only"
    integration.credentials_hint = {"api_key": {"set": True, "last4": "NEW1"}}  # another key: the probe counts
    provider.remember_access("read_write", "probe said 404", "connection_test")
    assert LevelProvider(integration).stored_access() == "read_write"


def test_reset_of_a_gone_or_already_resolved_alert_is_done(provider, mock):
    mock.post("/alerts/gone/resolve").mock(return_value=httpx.Response(404, json={"error": "Not found"}))
    mock.post("/alerts/A1/resolve").mock(return_value=httpx.Response(422, json={"error": "already resolved"}))
    mock.get("/alerts/A1").mock(return_value=httpx.Response(200, json={**ALERT, "is_resolved": True}))
    provider.reset_alert("gone")
    provider.reset_alert("A1")
    assert provider.learned_access is None  # neither answer proves the key may write


def test_reset_refused_while_still_active_is_an_error(provider, mock):
    mock.post("/alerts/A1/resolve").mock(return_value=httpx.Response(422, json={"error": "cannot"}))
    mock.get("/alerts/A1").mock(return_value=httpx.Response(200, json=ALERT))
    with pytest.raises(ProviderError, match="still reports it active"):
        provider.reset_alert("A1")


def test_reset_of_an_automation_alert_explains_there_is_nothing_in_level(provider, mock):
    with pytest.raises(NotResettable, match="automation"):
        provider.reset_alert("automation:D1|disk space low")
    assert not mock.calls


def test_webhook_card_with_overrides_and_stored_access(integration):
    integration.settings = {"severity_map": {"Warning": "low"}}  # the word as Level writes it works too
    integration.provider_state = {"key_access": {"access": "read_only", "source": "resolve"}}
    card = LevelProvider(integration).webhook_card("https://psa.example/webhooks/level/K/", "sec")
    assert card["severity_map"] == {"Information": "info", "Warning": "low", "Critical": "high",
                                    "Emergency": "critical"}
    assert card["access"] == "read_only" and card["native"]["secret"] == "sec"
    assert json.loads(card["rest_headers"])["X-PSA-Webhook-Secret"] == "sec"
