"""integrations.oauth against respx: grants, client authentication, PKCE, renewal ahead of expiry,
rotation, refused refresh (no loop), one renewal for concurrent workers, token endpoint failures."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from integrations import http as phttp
from integrations.errors import (
    AuthFailed,
    BadResponse,
    BlockedURL,
    PermissionDenied,
    ProviderError,
    RateLimited,
    ReconnectRequired,
    Unavailable,
)
from integrations.oauth import (
    AUTHORIZATION_CODE,
    BearerAuth,
    MemoryTokenStore,
    OAuthConfig,
    OAuthSession,
)

HOST = "https://eu.ninjarmm.example"
TOKEN_URL = HOST + "/ws/oauth/token"


pytestmark = pytest.mark.usefixtures("fast")  # provider HTTP without waiting (tests/conftest.py)


@pytest.fixture
def mock():
    with respx.mock(assert_all_called=False) as router:
        yield router


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def config(**kw) -> OAuthConfig:
    base = {"provider_name": "NinjaOne", "token_url": TOKEN_URL, "client_id": "cid", "client_secret": "s3cr3t+/=",
            "scope": "monitoring management control", "authorize_url": HOST + "/ws/oauth/authorize",
            "revoke_url": HOST + "/ws/oauth/revoke",
            "redirect_uri": "https://psa.example/integrations/ninjaone/callback/"}
    return OAuthConfig(**{**base, **kw})


def form(request: httpx.Request) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(request.content.decode()).items()}


def token_answer(n: int = 1, expires_in: int = 3600, refresh: str | None = None, scope="monitoring management control"):
    body = {"access_token": f"at-{n}", "token_type": "Bearer", "expires_in": expires_in, "scope": scope}
    if refresh:
        body["refresh_token"] = refresh
    return httpx.Response(200, json=body)


# -- client credentials -------------------------------------------------------------------------------
def test_client_credentials_post_body_and_cached_token(mock):
    route = mock.post(TOKEN_URL).mock(return_value=token_answer())
    clock, store = Clock(), MemoryTokenStore()
    session = OAuthSession(config(), store, clock=clock)
    assert session.access_token() == "at-1"
    assert session.access_token() == "at-1"
    assert route.call_count == 1
    sent = form(route.calls.last.request)
    assert sent == {"grant_type": "client_credentials", "scope": "monitoring management control",
                    "client_id": "cid", "client_secret": "s3cr3t+/="}
    assert "authorization" not in route.calls.last.request.headers
    saved = store.load()
    assert saved["expires_at"] == clock.now + 3600 and saved["obtained_at"] == clock.now
    assert saved["client_id"] == "cid" and saved["token_url"] == TOKEN_URL and "refresh_token" not in saved


def test_client_secret_basic_sends_header_not_body(mock):
    route = mock.post(TOKEN_URL).mock(return_value=token_answer())
    OAuthSession(config(auth_method="client_secret_basic"), MemoryTokenStore()).access_token()
    request = route.calls.last.request
    user, _, secret = base64.b64decode(request.headers["authorization"].split()[1]).decode().partition(":")
    assert user == "cid" and "client_secret" not in form(request)
    assert secret in ("s3cr3t+/=", "s3cr3t%2B%2F%3D")  # RFC 6749 2.3.1 form-encodes before Basic


@pytest.mark.parametrize(("lifetime", "renew_at"), [(3600, 3300), (60, 54), (7200, 6900)])
def test_renewed_ahead_of_expiry_by_the_smaller_of_5_minutes_and_10_percent(mock, lifetime, renew_at):
    route = mock.post(TOKEN_URL).mock(side_effect=[token_answer(1, lifetime), token_answer(2, lifetime)])
    clock = Clock()
    start = clock.now
    session = OAuthSession(config(), MemoryTokenStore(), clock=clock)
    assert session.access_token() == "at-1"
    clock.now = start + renew_at - 1
    assert session.access_token() == "at-1"
    clock.now = start + renew_at + 0.001
    assert session.access_token() == "at-2"
    assert route.call_count == 2


def test_token_without_expires_in_is_used_until_401(mock):
    mock.post(TOKEN_URL).mock(side_effect=[
        httpx.Response(200, json={"access_token": "forever", "token_type": "Bearer"}), token_answer(2)])
    api = mock.get(HOST + "/v2/organizations").mock(side_effect=[
        httpx.Response(200, json=[]), httpx.Response(401, json={"error": "invalid_token"}), httpx.Response(200, json=[])])
    session = OAuthSession(config(), MemoryTokenStore(), clock=Clock())
    with phttp.build_client(HOST, provider_name="NinjaOne", auth=BearerAuth(session)) as http:
        http.get("/v2/organizations")
        http.get("/v2/organizations")
    assert [c.request.headers["authorization"] for c in api.calls] == [
        "Bearer forever", "Bearer forever", "Bearer at-2"]


def test_a_token_of_another_app_or_host_is_not_used(mock):
    route = mock.post(TOKEN_URL).mock(return_value=token_answer(9))
    clock = Clock()
    store = MemoryTokenStore({"access_token": "old-app", "expires_at": clock.now + 3600, "client_id": "other",
                              "token_url": TOKEN_URL})
    assert OAuthSession(config(), store, clock=clock).access_token() == "at-9"
    store.save({"access_token": "old-host", "expires_at": clock.now + 3600, "client_id": "cid",
                "token_url": "https://app.ninjarmm.example/ws/oauth/token"})
    assert OAuthSession(config(), store, clock=clock).access_token() == "at-9"
    assert route.call_count == 2


# -- authorization code + PKCE + refresh ------------------------------------------------------------------
def test_authorization_url_has_pkce_s256_state_scope_and_redirect():
    session = OAuthSession(config(grant=AUTHORIZATION_CODE, scope="monitoring management control offline_access"),
                           MemoryTokenStore())
    first, second = session.authorization_request(), session.authorization_request()
    query = {k: v[-1] for k, v in parse_qs(urlsplit(first.url).query).items()}
    assert first.url.startswith(HOST + "/ws/oauth/authorize?")
    assert query["response_type"] == "code" and query["client_id"] == "cid"
    assert query["redirect_uri"] == "https://psa.example/integrations/ninjaone/callback/"
    assert query["scope"] == "monitoring management control offline_access"
    assert query["state"] == first.state and query["code_challenge_method"] == "S256"
    expected = base64.urlsafe_b64encode(hashlib.sha256(first.code_verifier.encode()).digest()).rstrip(b"=").decode()
    assert query["code_challenge"] == expected
    assert 43 <= len(first.code_verifier) <= 128
    assert first.state != second.state and first.code_verifier != second.code_verifier
    assert "client_secret" not in first.url


def test_complete_authorization_checks_state_before_any_request(mock):
    route = mock.post(TOKEN_URL).mock(return_value=token_answer(refresh="rt-1"))
    session = OAuthSession(config(grant=AUTHORIZATION_CODE), MemoryTokenStore())
    for state, expected in (("forged", "real"), ("", "real"), ("real", "")):
        with pytest.raises(AuthFailed, match="state mismatch"):
            session.complete_authorization(code="abc", state=state, expected_state=expected, code_verifier="v" * 50)
    assert route.call_count == 0


def test_complete_authorization_exchanges_code_with_verifier_and_stores_refresh_token(mock):
    route = mock.post(TOKEN_URL).mock(return_value=token_answer(refresh="rt-1"))
    store = MemoryTokenStore()
    session = OAuthSession(config(grant=AUTHORIZATION_CODE), store)
    session.complete_authorization(code="the-code", state="st", expected_state="st", code_verifier="v" * 50)
    sent = form(route.calls.last.request)
    assert sent["grant_type"] == "authorization_code" and sent["code"] == "the-code"
    assert sent["code_verifier"] == "v" * 50
    assert sent["redirect_uri"] == "https://psa.example/integrations/ninjaone/callback/"
    assert store.load()["refresh_token"] == "rt-1" and session.access_token() == "at-1"


def test_refresh_persists_each_rotated_refresh_token_and_keeps_one_not_rotated(mock):
    route = mock.post(TOKEN_URL).mock(side_effect=[token_answer(2, refresh="rt-2"), token_answer(3)])
    clock = Clock()
    store = MemoryTokenStore({"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 3600,
                              "expires_at": clock.now + 10, "client_id": "cid", "token_url": TOKEN_URL})
    session = OAuthSession(config(grant=AUTHORIZATION_CODE), store, clock=clock)
    assert session.access_token() == "at-2"
    sent = form(route.calls.last.request)
    assert sent["grant_type"] == "refresh_token" and sent["refresh_token"] == "rt-1" and "scope" not in sent
    assert store.load()["refresh_token"] == "rt-2"
    clock.now += 3600
    assert session.access_token() == "at-3"
    assert form(route.calls.last.request)["refresh_token"] == "rt-2"
    assert store.load()["refresh_token"] == "rt-2"  # the answer had none: the last one is kept


@pytest.mark.parametrize("answer", [
    httpx.Response(400, json={"error": "invalid_token"}),
    httpx.Response(400, json={"error": "invalid_grant", "error_description": "Refresh token revoked"}),
])
def test_refused_refresh_raises_reconnect_required_once_and_never_retries(mock, answer):
    route = mock.post(TOKEN_URL).mock(return_value=answer)
    clock = Clock()
    store = MemoryTokenStore({"access_token": "at-1", "refresh_token": "rt-dead", "expires_in": 3600,
                              "expires_at": clock.now - 1, "client_id": "cid", "token_url": TOKEN_URL})
    session = OAuthSession(config(grant=AUTHORIZATION_CODE), store, clock=clock)
    with pytest.raises(ReconnectRequired, match="Reconnect"):
        session.access_token()
    assert store.load()["reconnect_required"]
    # Another worker (a fresh session on the same store) does not try the dead token again.
    for _ in range(3):
        with pytest.raises(ReconnectRequired):
            OAuthSession(config(grant=AUTHORIZATION_CODE), store, clock=clock).access_token()
    assert route.call_count == 1


def test_reconnecting_replaces_the_refused_marker(mock):
    mock.post(TOKEN_URL).mock(return_value=token_answer(5, refresh="rt-new"))
    store = MemoryTokenStore({"reconnect_required": "refused", "client_id": "cid", "token_url": TOKEN_URL})
    session = OAuthSession(config(grant=AUTHORIZATION_CODE), store)
    with pytest.raises(ReconnectRequired):
        session.access_token()
    session.complete_authorization(code="c", state="s", expected_state="s", code_verifier="v" * 43)
    assert session.access_token() == "at-5" and "reconnect_required" not in store.load()


def test_authorization_code_without_any_token_says_connect(mock):
    route = mock.post(TOKEN_URL)
    with pytest.raises(ReconnectRequired, match="connect it again"):
        OAuthSession(config(grant=AUTHORIZATION_CODE), MemoryTokenStore()).access_token()
    assert route.call_count == 0


# -- concurrency ------------------------------------------------------------------------------------------
def test_two_workers_needing_a_token_at_once_renew_it_once(mock):
    started = threading.Event()

    def slow_token(request):
        started.set()
        time.sleep(0.3)  # the second worker arrives meanwhile and waits on the lock
        return token_answer(2, refresh="rt-2")

    route = mock.post(TOKEN_URL).mock(side_effect=slow_token)
    clock = Clock()
    store = MemoryTokenStore({"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 3600,
                              "expires_at": clock.now + 5, "client_id": "cid", "token_url": TOKEN_URL})
    results: list[str] = []
    workers = [OAuthSession(config(grant=AUTHORIZATION_CODE), store, clock=clock) for _ in range(2)]

    def run(session):
        results.append(session.access_token())

    first = threading.Thread(target=run, args=(workers[0],))
    first.start()
    started.wait(5)
    second = threading.Thread(target=run, args=(workers[1],))
    second.start()
    first.join(5)
    second.join(5)
    assert results == ["at-2", "at-2"]
    assert route.call_count == 1 and store.saves == 1


# -- the API side ----------------------------------------------------------------------------------------
def test_bearer_auth_renews_once_on_401_then_gives_up(mock):
    mock.post(TOKEN_URL).mock(side_effect=[token_answer(1), token_answer(2), token_answer(3)])
    api = mock.get(HOST + "/v2/alerts").mock(side_effect=[
        httpx.Response(401, json={"error": "invalid_token"}), httpx.Response(200, json=[]),
        httpx.Response(401, json={"error": "invalid_token"}), httpx.Response(401, json={"error": "invalid_token"}),
    ])
    session = OAuthSession(config(), MemoryTokenStore(), clock=Clock())
    with phttp.build_client(HOST, provider_name="NinjaOne", auth=BearerAuth(session)) as http:
        assert http.get("/v2/alerts") == []
        with pytest.raises(AuthFailed):
            http.get("/v2/alerts")
    assert [c.request.headers["authorization"] for c in api.calls] == [
        "Bearer at-1", "Bearer at-2", "Bearer at-2", "Bearer at-3"]


# -- token endpoint failures ---------------------------------------------------------------------------------
def test_server_errors_are_retried(mock):
    route = mock.post(TOKEN_URL).mock(side_effect=[httpx.Response(503), token_answer(1)])
    assert OAuthSession(config(), MemoryTokenStore()).access_token() == "at-1"
    assert route.call_count == 2


def test_down_token_endpoint_is_unavailable_after_bounded_retries(mock):
    route = mock.post(TOKEN_URL).mock(return_value=httpx.Response(502, text="<html>Bad gateway</html>"))
    with pytest.raises(Unavailable, match="502"):
        OAuthSession(config(), MemoryTokenStore()).access_token()
    assert route.call_count == 3  # 1 + PSA_HTTP_RETRIES (2), capped at TOKEN_RETRIES_MAX


def test_connection_refused_is_unavailable(mock):
    mock.post(TOKEN_URL).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(Unavailable, match="Cannot reach"):
        OAuthSession(config(), MemoryTokenStore()).access_token()


def test_429_with_long_retry_after_is_not_slept_on(mock, monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(phttp, "_sleep", slept.append)
    route = mock.post(TOKEN_URL).mock(return_value=httpx.Response(429, headers={"Retry-After": "120"}, json={}))
    with pytest.raises(RateLimited) as info:
        OAuthSession(config(), MemoryTokenStore()).access_token()
    assert info.value.retry_after == 120 and slept == [] and route.call_count == 1


def test_429_with_short_retry_after_waits_then_succeeds(mock, monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(phttp, "_sleep", slept.append)
    mock.post(TOKEN_URL).mock(side_effect=[httpx.Response(429, headers={"Retry-After": "2"}), token_answer(1)])
    assert OAuthSession(config(), MemoryTokenStore()).access_token() == "at-1"
    assert slept == [2.0]


@pytest.mark.parametrize(("response", "error", "oauth_error"), [
    (httpx.Response(401, json={"error": "invalid_client", "error_description": "Bad client credentials"}),
     AuthFailed, "invalid_client"),
    (httpx.Response(400, json={"error": "unauthorized_client"}), AuthFailed, "unauthorized_client"),
    (httpx.Response(400, json={"error": "invalid_scope"}), PermissionDenied, "invalid_scope"),
    (httpx.Response(400, json={"error": "invalid_request", "error_description": "offline_access not allowed"}),
     ProviderError, "invalid_request"),
])
def test_oauth_errors_are_mapped_with_their_code(mock, response, error, oauth_error):
    mock.post(TOKEN_URL).mock(return_value=response)
    with pytest.raises(error) as info:
        OAuthSession(config(), MemoryTokenStore()).access_token()
    assert info.value.oauth_error == oauth_error and info.value.status == response.status_code
    assert "s3cr3t" not in str(info.value)


@pytest.mark.parametrize(("response", "error", "words"), [
    (httpx.Response(200, text="<!doctype html><html>login</html>", headers={"content-type": "text/html"}),
     BadResponse, "web page"),
    (httpx.Response(200, text="not json", headers={"content-type": "text/plain"}), BadResponse, "not JSON"),
    (httpx.Response(200, json={"token_type": "Bearer"}), BadResponse, "no access token"),
    (httpx.Response(200, json=["a"]), BadResponse, "unexpected shape"),
    (httpx.Response(403, json={"resultCode": "FORBIDDEN", "errorMessage": "App disabled"}), PermissionDenied,
     "App disabled"),
    (httpx.Response(302, headers={"location": "https://elsewhere.example/"}), BadResponse, "redirected"),
])
def test_answers_that_are_not_oauth(mock, response, error, words):
    mock.post(TOKEN_URL).mock(return_value=response)
    with pytest.raises(error, match=words):
        OAuthSession(config(), MemoryTokenStore()).access_token()


def test_token_endpoint_goes_through_the_ssrf_guard(settings):
    settings.PSA_ALLOW_PRIVATE_PROVIDER_URLS = False
    session = OAuthSession(config(token_url="http://127.0.0.1:9/ws/oauth/token"), MemoryTokenStore())
    with pytest.raises(BlockedURL):
        session.access_token()


def test_revoke_sends_the_refresh_token(mock):
    route = mock.post(HOST + "/ws/oauth/revoke").mock(return_value=httpx.Response(200))
    store = MemoryTokenStore({"access_token": "at-1", "refresh_token": "rt-1", "client_id": "cid",
                              "token_url": TOKEN_URL})
    assert OAuthSession(config(grant=AUTHORIZATION_CODE), store).revoke() is True
    sent = form(route.calls.last.request)
    assert sent["token"] == "rt-1" and sent["token_type_hint"] == "refresh_token"


def test_config_refuses_unknown_grant_and_client_auth():
    with pytest.raises(ValueError):
        config(grant="password")
    with pytest.raises(ValueError):
        config(auth_method="private_key_jwt")
