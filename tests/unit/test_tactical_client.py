"""TacticalClient against respx: auth modes, Knox login, routes and bodies it sends."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from integrations.errors import AuthFailed, ReconnectRequired
from integrations.tactical.client import TacticalClient

BASE = "https://api.tactical.example.com"


pytestmark = pytest.mark.usefixtures("fast")  # provider HTTP without waiting (tests/conftest.py)


@pytest.fixture
def mock():
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def body_of(route):
    return json.loads(route.calls.last.request.content)


def test_api_key_header(mock):
    route = mock.get("/clients/").mock(return_value=httpx.Response(200, json=[{"id": 1, "name": "A", "sites": []}]))
    c = TacticalClient(BASE, {"api_key": "KEY123"})
    assert c.clients() == [{"id": 1, "name": "A", "sites": []}]
    req = route.calls.last.request
    assert req.headers["x-api-key"] == "KEY123" and "authorization" not in req.headers


def test_login_without_two_factor_uses_checkcreds_token_and_relogs_on_401(mock):
    creds = mock.post("/v2/checkcreds/").mock(side_effect=[
        httpx.Response(200, json={"expiry": "x", "token": "tok-1", "totp": False}),
        httpx.Response(200, json={"expiry": "x", "token": "tok-2", "totp": False}),
    ])
    clients = mock.get("/clients/").mock(side_effect=[
        httpx.Response(200, json=[]),
        httpx.Response(401, json={"detail": "Invalid token."}),  # the 3-minute token expired
        httpx.Response(200, json=[{"id": 2}]),
    ])
    c = TacticalClient(BASE, {"username": "psa", "password": "pw"})
    assert c.clients() == []
    assert clients.calls[0].request.headers["authorization"] == "Token tok-1"
    assert c.clients() == [{"id": 2}]
    assert clients.calls[2].request.headers["authorization"] == "Token tok-2"
    assert creds.call_count == 2 and body_of(creds) == {"username": "psa", "password": "pw"}


def test_login_with_two_factor(mock):
    mock.post("/v2/checkcreds/").mock(return_value=httpx.Response(200, json={"totp": True}))
    login = mock.post("/v2/login/").mock(return_value=httpx.Response(
        200, json={"expiry": "2026-01-01T00:00:00Z", "token": "knox-abc", "username": "psa", "name": None}))
    result = TacticalClient(BASE, {"username": "psa", "password": "pw"}).login(totp="123456")
    assert result == {"token": "knox-abc", "expiry": "2026-01-01T00:00:00Z", "renewable": False}
    assert body_of(login) == {"username": "psa", "password": "pw", "twofactor": "123456"}


def test_login_two_factor_account_without_code_says_reconnect(mock):
    mock.post("/v2/checkcreds/").mock(return_value=httpx.Response(200, json={"totp": True}))
    with pytest.raises(ReconnectRequired, match="TOTP"):
        TacticalClient(BASE, {"username": "psa", "password": "pw"}).login()


def test_bad_credentials_bare_string_400(mock):
    mock.post("/v2/checkcreds/").mock(return_value=httpx.Response(400, json="Bad credentials"))
    with pytest.raises(AuthFailed, match="rejected the username"):
        TacticalClient(BASE, {"username": "psa", "password": "nope"}).login()


def test_knox_token_401_raises_reconnect_required(mock):
    mock.get("/clients/").mock(return_value=httpx.Response(401, json={"detail": "Invalid token."}))
    c = TacticalClient(BASE, {"knox_token": "knox-abc"})
    with pytest.raises(ReconnectRequired, match="reconnect"):
        c.clients()
    assert mock.routes[0].calls.last.request.headers["authorization"] == "Token knox-abc"


def test_api_key_401_is_auth_failed(mock):
    mock.get("/clients/").mock(return_value=httpx.Response(401, json={"detail": "Invalid token."}))
    with pytest.raises(AuthFailed, match="Invalid token"):
        TacticalClient(BASE, {"api_key": "bad"}).clients()


def test_agents_filters(mock):
    route = mock.get("/agents/").mock(return_value=httpx.Response(200, json=[{"agent_id": "x"}, "junk"]))
    c = TacticalClient(BASE, {"api_key": "k"})
    assert c.agents(client=4) == [{"agent_id": "x"}]
    assert dict(route.calls.last.request.url.params) == {"client": "4"}
    c.agents(site=9, client=4)
    assert dict(route.calls.last.request.url.params) == {"site": "9"}


def test_beta_pages_follow_next(mock):
    route = mock.get("/beta/v1/agent/").mock(side_effect=[
        httpx.Response(200, json={"count": 3, "next": "x", "previous": None, "results": [{"id": 1}, {"id": 2}]}),
        httpx.Response(200, json={"count": 3, "next": None, "previous": "y", "results": [{"id": 3}]}),
    ])
    pages = list(TacticalClient(BASE, {"api_key": "k"}).beta_agents(client_id=4))
    assert pages == [[{"id": 1}, {"id": 2}], [{"id": 3}]]
    assert [dict(c.request.url.params) for c in route.calls] == [
        {"page_size": "100", "client_id": "4", "page": "1"}, {"page_size": "100", "client_id": "4", "page": "2"}]


def test_beta_available_404_html(mock):
    mock.get("/beta/v1/agent/").mock(return_value=httpx.Response(404, text="<h1>Not Found</h1>",
                                                                 headers={"content-type": "text/html"}))
    assert TacticalClient(BASE, {"api_key": "k"}).beta_available() is False


def test_software_shapes(mock):
    mock.get("/software/A/").mock(return_value=httpx.Response(200, json={"id": 1, "agent": 1, "software": [
        {"name": "7-Zip"}]}))
    mock.get("/software/B/").mock(return_value=httpx.Response(200, json=[]))
    c = TacticalClient(BASE, {"api_key": "k"})
    assert c.software("A") == [{"name": "7-Zip"}]
    assert c.software("B") is None


def test_active_alerts_sends_resolved_filter_false(mock):
    route = mock.patch("/alerts/").mock(return_value=httpx.Response(200, json=[{"id": 1}]))
    assert TacticalClient(BASE, {"api_key": "k"}).active_alerts() == [{"id": 1}]
    assert body_of(route) == {"resolvedFilter": False}  # never {} (that returns resolved ones too)


def test_resolve_alert(mock):
    route = mock.put("/alerts/57/").mock(return_value=httpx.Response(200, json="ok"))
    mock.put("/alerts/58/").mock(return_value=httpx.Response(404, json={"detail": "No Alert matches the given query."}))
    c = TacticalClient(BASE, {"api_key": "k"})
    assert c.resolve_alert("57") is True
    assert body_of(route) == {"type": "resolve"}
    assert c.resolve_alert(58) is False


def test_retries_a_flaky_server(mock):
    route = mock.get("/clients/").mock(side_effect=[httpx.Response(502), httpx.Response(200, json=[])])
    assert TacticalClient(BASE, {"api_key": "k"}).clients() == []
    assert route.call_count == 2
