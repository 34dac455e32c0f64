"""TacticalProvider with respx: webhook inspect/parse incl. salvage, credentials, card, settings."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from integrations.base import WebhookRequest
from integrations.errors import AuthFailed, Unavailable, WebhookParseError
from integrations.models import Integration
from integrations.registry import get_provider, get_provider_class

BASE = "https://api.tactical.example.com"
CLIENTS = [{"id": 4, "name": "Harbor Dental Group", "sites": [{"id": 9, "name": "Main Office", "client": 4}]}]
ALERT = {
    "id": 57, "hostname": "HDG-FRONT-01", "agent_id": "fKqzWbNwQXeLhTnUvYpRaJsDcMgHkBxE",
    "client": "Harbor Dental Group", "site": "Main Office", "alert_time": "2025-03-19T13:41:15.556123Z",
    "agent": 112, "assigned_check": 803, "assigned_task": None, "alert_type": "check",
    "message": 'HDG-FRONT-01 has a ping check: Core router "gw-1" that failed.', "resolved": False,
    "resolved_on": None, "severity": "error",
}
BROKEN = json.dumps(
    '{"event": "trigger", "alert_id": 57, "message": "HDG-FRONT-01 has a ping check: Core router "gw-1" that failed."}'
).encode()


pytestmark = pytest.mark.usefixtures("fast")


@pytest.fixture
def integration(make_tenant):
    tenant = make_tenant().tenant
    row = Integration.objects.unscoped().create(tenant=tenant, provider="tactical", base_url=BASE)
    row.set_credentials({"api_key": "KEY"})
    row.save()
    return row


@pytest.fixture
def provider(integration):
    p = get_provider(integration)
    yield p
    p.close()


@pytest.fixture
def mock():
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def req(body: bytes, query=None, headers=None) -> WebhookRequest:
    return WebhookRequest(body=body, headers=headers or {}, query=query or {})


def test_registered_with_metadata():
    cls = get_provider_class("tactical")
    assert cls.name == "Tactical RMM" and cls.requires_base_url
    assert {s.fields for s in cls.credential_sets} == {("api_key",), ("username", "password")}
    assert cls.default_poll_interval_minutes == 15 and cls.poll_interval_bounds == (5, 60)
    assert dict(cls.severity_map.table) == {"info": "info", "warning": "medium", "error": "high"}


def test_inspect_normal_body(provider):
    body = json.dumps({"event": "trigger", "alert_id": 57, "hostname": "H", "message": "disk"}).encode()
    env = provider.inspect_webhook(req(body))
    assert env.delivery_id == "trigger:57" and env.summary == "trigger alert 57: H disk"


def test_inspect_broken_body_is_accepted_when_alert_id_in_query(provider):
    env = provider.inspect_webhook(req(BROKEN, {"alert_id": "57", "event": "trigger"}))
    assert env.delivery_id == "trigger:57" and "body unreadable" in env.summary


def test_inspect_unreadable_without_id_raises(provider):
    with pytest.raises(WebhookParseError):
        provider.inspect_webhook(req(b"\x00\x01garbage"))


def test_parse_normal_body_calls_no_api(provider, mock):
    body = json.dumps({"event": "trigger", "alert_id": 57, "alert_type": "check", "severity": "error",
                       "message": "m", "agent_id": "AG", "hostname": "H", "client_id": "4", "site_id": "9",
                       "site_name": "Main Office", "check_id": "803", "task_id": "None"}).encode()
    request = req(body)
    [alert] = provider.parse_webhook(request)
    assert (alert.external_id, alert.event, alert.severity, alert.organization_external_id) == (
        "57", "triggered", "high", "site:9")
    assert "salvaged" not in request.extra
    assert not mock.calls


def test_parse_broken_body_salvages_from_api(provider, mock):
    get = mock.get("/alerts/57/").mock(return_value=httpx.Response(200, json=ALERT))
    mock.get("/clients/").mock(return_value=httpx.Response(200, json=CLIENTS))
    request = req(BROKEN, {"alert_id": "57", "event": "trigger"})
    [alert] = provider.parse_webhook(request)
    assert get.call_count == 1
    assert request.extra["salvaged"] is True and "string literal" in request.extra["salvage_reason"]
    assert (alert.external_id, alert.event, alert.severity) == ("57", "triggered", "high")
    assert alert.message == ALERT["message"]  # the quotes survive through the API
    assert alert.condition_key == "agent:fKqzWbNwQXeLhTnUvYpRaJsDcMgHkBxE|check|check:803"
    assert (alert.organization_external_id, alert.organization_parent_external_id) == ("site:9", "client:4")


def test_salvaged_resolved_event_keeps_its_event(provider, mock):
    mock.get("/alerts/57/").mock(return_value=httpx.Response(200, json={**ALERT, "resolved": True,
                                                                        "resolved_on": "2025-03-19T14:02:41Z"}))
    mock.get("/clients/").mock(return_value=httpx.Response(200, json=CLIENTS))
    [alert] = provider.parse_webhook(req(BROKEN.replace(b"trigger", b"resolved"), {"alert_id": "57"}))
    assert alert.event == "resolved"


def test_salvage_failure_is_a_parse_error_with_reason(provider, mock):
    mock.get("/alerts/57/").mock(return_value=httpx.Response(404, json={"detail": "No Alert matches the given query."}))
    request = req(BROKEN, {"alert_id": "57"})
    with pytest.raises(WebhookParseError, match="string literal.*No Alert matches"):
        provider.parse_webhook(request)
    assert request.extra["salvaged"] is True


def test_salvage_with_server_down_is_transient(provider, mock):
    mock.get("/alerts/57/").mock(return_value=httpx.Response(503))
    with pytest.raises(Unavailable):
        provider.parse_webhook(req(BROKEN, {"alert_id": "57"}))


def test_webhook_card(provider):
    card = provider.webhook_card("https://psa.example.com/webhooks/tactical/K/", "sec")
    assert card["url"].endswith("/K/?alert_id={{alert.id}}")
    assert json.loads(card["rest_headers"])["X-PSA-Webhook-Secret"] == "sec"
    assert '"event": "trigger"' in card["failure_body"] and '"event": "resolved"' in card["resolved_body"]


def test_prepare_credentials_api_key_only(provider):
    assert provider.prepare_credentials({"api_key": "K", "username": "u", "knox_token": "old"}, BASE) == {"api_key": "K"}


def test_prepare_credentials_two_factor_stores_token_not_password(provider, mock):
    mock.post("/v2/checkcreds/").mock(return_value=httpx.Response(200, json={"totp": True}))
    mock.post("/v2/login/").mock(return_value=httpx.Response(200, json={"expiry": "e", "token": "knox-1"}))
    stored = provider.prepare_credentials({"username": "psa", "password": "pw", "totp": "123456"}, BASE)
    assert stored == {"knox_token": "knox-1", "username": "psa"}


def test_prepare_credentials_without_two_factor_keeps_login(provider, mock):
    mock.post("/v2/checkcreds/").mock(return_value=httpx.Response(200, json={"token": "t", "totp": False}))
    stored = provider.prepare_credentials({"username": "psa", "password": "pw"}, BASE)
    assert stored == {"username": "psa", "password": "pw"}


def test_prepare_credentials_two_factor_account_needs_code(provider, mock):
    mock.post("/v2/checkcreds/").mock(return_value=httpx.Response(200, json={"totp": True}))
    with pytest.raises(AuthFailed, match="TOTP"):
        provider.prepare_credentials({"username": "psa", "password": "pw"}, BASE)


def test_validate_credentials(provider):
    assert provider.validate_credentials({"api_key": "K"}, BASE) == {}
    assert provider.validate_credentials({"knox_token": "t", "username": "u"}, BASE) == {}
    assert "credentials" in provider.validate_credentials({"username": "u"}, BASE)
    assert "base_url" in provider.validate_credentials({"api_key": "K"}, "")


def test_validate_credentials_refuses_private_base_url(provider, settings):
    settings.PSA_ALLOW_PRIVATE_PROVIDER_URLS = False
    errors = provider.validate_credentials({"api_key": "K"}, "http://10.0.0.8")
    assert "PSA_ALLOW_PRIVATE_PROVIDER_URLS" in errors["base_url"][0]


def test_validate_settings(provider):
    from integrations import settings_schema

    stored, errors = settings_schema.validate(provider, {"sync_software": False, "agent_api": "beta"}, {})
    assert errors == {} and stored == {"sync_software": False, "agent_api": "beta"}
    _, errors = settings_schema.validate(provider, {"sync_software": "maybe", "agent_api": "v3", "typo": 1}, {})
    assert set(errors) == {"settings.sync_software", "settings.agent_api", "settings.typo"}
    # Omitted keys keep their stored value; null goes back to the default.
    stored, errors = settings_schema.validate(provider, {"agent_api": None}, {"agent_api": "beta", "sync_software": False})
    assert errors == {} and stored == {"sync_software": False}
    assert settings_schema.options(type(provider), stored) == {"sync_software": False, "sync_remote_access": True,
                                                               "agent_api": "auto", "field_mapping": {}}
