"""integrations.http: retries, Retry-After, error mapping, redaction (respx)."""

from __future__ import annotations

import logging

import httpx
import pytest
import respx

from integrations import http as phttp
from integrations.errors import (
    AuthFailed,
    BadResponse,
    NotFound,
    PermissionDenied,
    ProviderError,
    RateLimited,
    Unavailable,
)

BASE = "https://api.rmm.example.com"


@pytest.fixture(autouse=True)
def fast_retries(settings, monkeypatch):
    settings.PSA_HTTP_RETRIES = 3
    settings.PSA_HTTP_BACKOFF = 0.01
    settings.PSA_HTTP_BACKOFF_MAX = 0.05
    settings.PSA_HTTP_RETRY_AFTER_MAX = 10
    waits: list[float] = []
    monkeypatch.setattr(phttp, "_sleep", waits.append)
    return waits


@pytest.fixture
def client():
    c = phttp.build_client(BASE, provider_name="Test RMM", headers={"X-API-KEY": "super-secret-key-123"},
                           html_hint="Use the API host.")
    yield c
    c.close()


@respx.mock
def test_get_returns_json_and_sends_headers(client):
    route = respx.get(f"{BASE}/clients/").mock(return_value=httpx.Response(200, json=[{"id": 1}]))
    assert client.get("/clients/") == [{"id": 1}]
    sent = route.calls.last.request
    assert sent.headers["x-api-key"] == "super-secret-key-123"
    assert sent.headers["accept"] == "application/json"


@respx.mock
def test_5xx_is_retried_then_succeeds(client, fast_retries):
    route = respx.get(f"{BASE}/x/").mock(
        side_effect=[httpx.Response(500), httpx.Response(502), httpx.Response(200, json={"ok": True})]
    )
    assert client.get("/x/") == {"ok": True}
    assert route.call_count == 3
    assert len(fast_retries) == 2 and all(0 <= w <= 0.05 for w in fast_retries)


@respx.mock
def test_5xx_exhausted_raises_unavailable(client):
    route = respx.get(f"{BASE}/x/").mock(return_value=httpx.Response(503))
    with pytest.raises(Unavailable, match="server error \\(503\\)"):
        client.get("/x/")
    assert route.call_count == 4  # 1 + PSA_HTTP_RETRIES


@respx.mock
def test_retry_after_seconds_is_honoured(client, fast_retries):
    respx.get(f"{BASE}/x/").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(200, json=[])]
    )
    assert client.get("/x/") == []
    assert fast_retries == [2.0]


@respx.mock
def test_retry_after_http_date_is_honoured(client, fast_retries):
    import datetime as dt
    import email.utils

    when = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5), usegmt=True)
    respx.get(f"{BASE}/x/").mock(side_effect=[httpx.Response(503, headers={"Retry-After": when}),
                                              httpx.Response(200, json=[])])
    client.get("/x/")
    assert len(fast_retries) == 1 and 3 <= fast_retries[0] <= 5


@respx.mock
def test_long_retry_after_gives_up_with_rate_limited(client, fast_retries):
    route = respx.get(f"{BASE}/x/").mock(return_value=httpx.Response(429, headers={"Retry-After": "3600"}))
    with pytest.raises(RateLimited) as info:
        client.get("/x/")
    assert route.call_count == 1 and fast_retries == []
    assert info.value.retry_after == 3600


@respx.mock
def test_429_exhausted_raises_rate_limited(client):
    route = respx.get(f"{BASE}/x/").mock(return_value=httpx.Response(429))
    with pytest.raises(RateLimited):
        client.get("/x/")
    assert route.call_count == 4


@respx.mock
@pytest.mark.parametrize(
    "status,body,exc,text",
    [
        (401, {"detail": "Invalid token."}, AuthFailed, "Invalid token."),
        (403, {"detail": "You do not have permission to perform this action."}, PermissionDenied, "permission"),
        (404, {"detail": "No Alert matches the given query."}, NotFound, "No Alert matches"),
        (400, "The request was invalid", ProviderError, "The request was invalid"),
    ],
)
def test_status_mapping(client, status, body, exc, text):
    route = respx.get(f"{BASE}/y/").mock(return_value=httpx.Response(status, json=body))
    with pytest.raises(exc, match=text):
        client.get("/y/")
    assert route.call_count == 1  # 4xx other than 429 are never retried


@respx.mock
def test_ok_404_returns_none(client):
    respx.get(f"{BASE}/gone/").mock(return_value=httpx.Response(404, json={"detail": "x"}))
    assert client.get("/gone/", ok_404=True) is None


@respx.mock
def test_html_answer_is_bad_response_with_hint(client):
    respx.get(f"{BASE}/clients/").mock(
        return_value=httpx.Response(200, text="<!DOCTYPE html><html><body>app</body></html>",
                                    headers={"content-type": "text/html"})
    )
    with pytest.raises(BadResponse, match="HTML page.*Use the API host"):
        client.get("/clients/")


@respx.mock
def test_html_without_content_type_is_detected(client):
    respx.get(f"{BASE}/clients/").mock(return_value=httpx.Response(200, content=b"  <html><body>x</body></html>"))
    with pytest.raises(BadResponse):
        client.get("/clients/")


@respx.mock
def test_invalid_json_is_bad_response(client):
    respx.get(f"{BASE}/clients/").mock(return_value=httpx.Response(200, content=b"{not json"))
    with pytest.raises(BadResponse, match="not JSON"):
        client.get("/clients/")


@respx.mock
def test_empty_body_is_none(client):
    respx.delete(f"{BASE}/z/").mock(return_value=httpx.Response(204))
    assert client.delete("/z/") is None


@respx.mock
def test_redirect_is_not_followed(client):
    respx.get(f"{BASE}/clients/").mock(
        return_value=httpx.Response(302, headers={"location": "https://login.example.com/?next=x"})
    )
    with pytest.raises(BadResponse, match="redirected"):
        client.get("/clients/")


@respx.mock
@pytest.mark.parametrize(
    "error,text",
    [
        (httpx.ConnectError("[Errno -2] Name or service not known"), "resolve"),
        (httpx.ConnectError("[Errno 111] Connection refused"), "Cannot connect"),
        (httpx.ReadTimeout("timed out"), "did not answer in time"),
        (httpx.ConnectTimeout("timed out"), "did not answer in time"),
        (httpx.RemoteProtocolError("peer closed"), "Connection to Test RMM failed"),
    ],
)
def test_transport_failures_are_unavailable(client, error, text):
    respx.get(f"{BASE}/x/").mock(side_effect=error)
    with pytest.raises(Unavailable, match=text):
        client.get("/x/")


@respx.mock
def test_secrets_never_logged(client, caplog):
    respx.get(url__startswith=f"{BASE}/x/").mock(return_value=httpx.Response(401, json={"detail": "Invalid token."}))
    client.set_header("Authorization", "Token knox-secret-value")
    with caplog.at_level(logging.DEBUG, logger="integrations.http"), pytest.raises(AuthFailed) as info:
        client.get("/x/", params={"api_key": "query-secret", "page": 2})
    logged = caplog.text
    assert "super-secret-key-123" not in logged and "knox-secret-value" not in logged
    assert "query-secret" not in logged and "[redacted]" in logged and "page=2" in logged
    assert "query-secret" not in str(info.value) and "super-secret" not in str(info.value)


def test_redact_helpers():
    assert phttp.redact_headers({"X-API-KEY": "k", "Authorization": "Token t", "Accept": "a"}) == {
        "X-API-KEY": "[redacted]", "Authorization": "[redacted]", "Accept": "a"}
    assert "s3" not in phttp.redact_url("https://h/p?token=s3&x=1")


def test_parse_retry_after_values():
    assert phttp.parse_retry_after("7") == 7.0
    assert phttp.parse_retry_after(None) is None
    assert phttp.parse_retry_after("garbage") is None
    assert phttp.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


def test_timeouts_come_from_settings(settings):
    settings.PSA_HTTP_TIMEOUT = 42
    c = phttp.build_client(BASE, provider_name="T")
    try:
        timeout = c._client.timeout
        assert (timeout.read, timeout.write, timeout.pool, timeout.connect) == (42, 42, 42, 10)
    finally:
        c.close()
