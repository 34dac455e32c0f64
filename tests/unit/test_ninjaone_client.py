"""NinjaOneClient against respx: bearer auth, pageSize+after paging (streamed), cursor walks with
restarts, alerts, reset, webhook, dashboard link, NinjaOne's error bodies."""

from __future__ import annotations

import json

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
from integrations.ninjaone.client import NinjaOneClient, error_detail
from integrations.oauth import MemoryTokenStore, OAuthConfig, OAuthSession

BASE = "https://eu.ninjarmm.example"
TOKEN_URL = BASE + "/ws/oauth/token"


pytestmark = pytest.mark.usefixtures("fast")  # provider HTTP without waiting (tests/conftest.py)


@pytest.fixture
def mock():
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def session(token: str = "tok-1") -> OAuthSession:
    cfg = OAuthConfig(provider_name="NinjaOne", token_url=TOKEN_URL, client_id="cid", client_secret="sec",
                      scope="monitoring management control")
    return OAuthSession(cfg, MemoryTokenStore({"access_token": token, "client_id": "cid", "token_url": TOKEN_URL}))


@pytest.fixture
def client():
    c = NinjaOneClient(BASE, session(), page_size=3, query_page_size=2)
    yield c
    c.close()


def params(route, i=-1):
    return dict(route.calls[i].request.url.params)


def devices(*ids):
    return [{"id": i, "organizationId": 12, "displayName": f"PC-{i}"} for i in ids]


# -- paging ------------------------------------------------------------------------------------------
def test_device_pages_use_page_size_and_after_and_end_on_a_short_page(mock, client):
    route = mock.get("/v2/devices-detailed").mock(side_effect=[
        httpx.Response(200, json=devices(1, 2, 5)), httpx.Response(200, json=devices(7, 8, 9)),
        httpx.Response(200, json=devices(11))])
    pages = list(client.device_pages(df="org = 12"))
    assert [[d["id"] for d in p] for p in pages] == [[1, 2, 5], [7, 8, 9], [11]]
    assert [params(route, i) for i in range(3)] == [
        {"df": "org = 12", "pageSize": "3"}, {"df": "org = 12", "pageSize": "3", "after": "5"},
        {"df": "org = 12", "pageSize": "3", "after": "9"}]
    assert route.calls[0].request.headers["authorization"] == "Bearer tok-1"


def test_a_short_first_page_may_be_a_capped_page_size(mock, client):
    # Asked 3, the server gives 2 at a time (a cap we cannot know): the walk goes on until a short page.
    route = mock.get("/v2/devices-detailed").mock(side_effect=[
        httpx.Response(200, json=devices(1, 2)), httpx.Response(200, json=devices(3, 4)),
        httpx.Response(200, json=devices(5))])
    assert [d["id"] for p in client.device_pages() for d in p] == [1, 2, 3, 4, 5]
    assert route.call_count == 3


def test_a_small_account_costs_one_more_request_only(mock, client):
    route = mock.get("/v2/organizations-detailed").mock(side_effect=[
        httpx.Response(200, json=[{"id": 1, "name": "A"}]), httpx.Response(200, json=[])])
    assert [o["id"] for o in client.organizations_detailed()] == [1]
    assert route.call_count == 2 and params(route) == {"pageSize": "3", "after": "1"}


def test_device_pages_are_streamed_one_request_per_page(mock, client):
    route = mock.get("/v2/devices").mock(side_effect=[
        httpx.Response(200, json=devices(1, 2, 3)), httpx.Response(200, json=[])])
    pages = client.device_pages(detailed=False)
    assert route.call_count == 0
    assert [d["id"] for d in next(pages)] == [1, 2, 3]
    assert route.call_count == 1
    assert list(pages) == []  # a full page then an empty one: done, nothing yielded for the empty page
    assert route.call_count == 2


def test_paging_that_does_not_advance_is_an_error_not_a_loop(mock, client):
    mock.get("/v2/devices-detailed").mock(return_value=httpx.Response(200, json=devices(1, 2, 3)))
    with pytest.raises(BadResponse, match="did not advance"):
        list(client.device_pages())


def test_a_full_page_without_ids_is_an_error(mock, client):
    mock.get("/v2/organizations-detailed").mock(return_value=httpx.Response(200, json=[{"name": "a"}] * 3))
    with pytest.raises(BadResponse):
        client.organizations_detailed()


def test_non_objects_in_a_page_are_dropped_but_count_for_the_page_length(mock, client):
    route = mock.get("/v2/organizations-detailed").mock(side_effect=[
        httpx.Response(200, json=[{"id": 1, "name": "A"}, None, {"id": 4, "name": "B"}]),
        httpx.Response(200, json=[])])
    assert [o["id"] for o in client.organizations_detailed()] == [1, 4]
    assert params(route) == {"pageSize": "3", "after": "4"}


def test_unexpected_page_shape(mock, client):
    mock.get("/v2/locations").mock(return_value=httpx.Response(200, json="oops"))
    with pytest.raises(BadResponse, match="unexpected shape"):
        client.locations()


# -- queries -----------------------------------------------------------------------------------------
def qpage(rows, name="c-1", offset=0):
    return httpx.Response(200, json={"cursor": {"name": name, "offset": offset, "count": len(rows),
                                                "expires": 1742412252.7}, "results": rows})


def sw(*names, device=1):
    return [{"name": n, "deviceId": device} for n in names]


def test_query_walks_the_cursor_by_name_until_a_short_page(mock, client):
    route = mock.get("/v2/queries/software").mock(side_effect=[
        qpage(sw("a", "b")), qpage(sw("c", "d"), offset=2), qpage(sw("e"), offset=4)])
    rows = client.query("software", {"df": "org = 12"})
    assert [r["name"] for r in rows] == ["a", "b", "c", "d", "e"]
    assert [params(route, i) for i in range(3)] == [
        {"df": "org = 12", "pageSize": "2"}, {"df": "org = 12", "pageSize": "2", "cursor": "c-1"},
        {"df": "org = 12", "pageSize": "2", "cursor": "c-1"}]


def test_query_stops_when_the_cursor_is_absent(mock, client):
    route = mock.get("/v2/queries/os-patches").mock(
        return_value=httpx.Response(200, json={"results": [{"id": "x"}, {"id": "y"}]}))
    assert len(client.query("os-patches")) == 2 and route.call_count == 1


def test_an_expired_cursor_restarts_the_walk_without_duplicates(mock, client):
    route = mock.get("/v2/queries/software").mock(side_effect=[
        qpage(sw("a", "b")), httpx.Response(400, json={"resultCode": "INVALID_CURSOR", "errorMessage": "expired"}),
        qpage(sw("a", "b"), name="c-2"), qpage(sw("c"), name="c-2", offset=2)])
    rows = client.query("software", row=lambda r: r["name"].upper())
    assert rows == ["A", "B", "C"]
    assert "cursor" not in params(route, 2) and params(route, 3)["cursor"] == "c-2"


def test_a_cursor_that_keeps_expiring_gives_up(mock, client):
    expired = httpx.Response(404, json={"resultCode": "NOT_FOUND", "errorMessage": "Cursor not found"})
    mock.get("/v2/queries/software").mock(side_effect=[qpage(sw("a", "b")), expired] * 4)
    with pytest.raises(ProviderError, match="kept expiring"):
        client.query("software")


def test_a_403_on_a_cursor_is_not_an_expiry(mock, client):
    mock.get("/v2/queries/software").mock(side_effect=[
        qpage(sw("a", "b")), httpx.Response(403, json={"resultCode": "FORBIDDEN", "errorMessage": "no scope"})])
    with pytest.raises(PermissionDenied, match="no scope"):
        client.query("software")


def test_row_mapper_drops_none(mock, client):
    route = mock.get("/v2/queries/software").mock(side_effect=[qpage(sw("keep") + [{"name": ""}]), qpage([])])
    assert client.query("software", row=lambda r: r["name"] or None) == ["keep"]
    assert route.call_count == 2  # a full page, then an empty one ends the walk


# -- alerts and reset ------------------------------------------------------------------------------------
def test_alerts_is_one_bare_array_with_filters(mock, client):
    route = mock.get("/v2/alerts").mock(return_value=httpx.Response(200, json=[{"uid": "u1"}, "junk", {"uid": "u2"}]))
    assert [a["uid"] for a in client.alerts(source_type="AGENT_OFFLINE")] == ["u1", "u2"]
    assert params(route) == {"sourceType": "AGENT_OFFLINE"}
    client.alerts()
    assert params(route) == {}


def test_reset_by_delete_any_2xx_is_done_and_404_is_already_gone(mock, client):
    mock.delete("/v2/alert/u-1").mock(return_value=httpx.Response(204))
    mock.delete("/v2/alert/u-2").mock(return_value=httpx.Response(200, json={}))
    mock.delete("/v2/alert/u-3").mock(return_value=httpx.Response(404, json={"resultCode": "NOT_FOUND"}))
    assert client.reset_alert("u-1") is True
    assert client.reset_alert("u-2") is True
    assert client.reset_alert("u-3") is False


def test_reset_by_post_sends_a_json_object(mock, client):
    route = mock.post("/v2/alert/u-1/reset").mock(return_value=httpx.Response(204))
    assert client.reset_alert("u-1", method="post", data={"note": "closed in PSA"}) is True
    assert json.loads(route.calls.last.request.content) == {"note": "closed in PSA"}
    client.reset_alert("u-1", method="post")
    assert json.loads(route.calls.last.request.content) == {}


def test_reset_falls_back_to_post_when_delete_is_not_allowed(mock, client):
    mock.delete("/v2/alert/u-1").mock(return_value=httpx.Response(405))
    post = mock.post("/v2/alert/u-1/reset").mock(return_value=httpx.Response(204))
    assert client.reset_alert("u-1") is True and post.call_count == 1


def test_reset_quotes_the_uid_and_surfaces_server_errors(mock, client):
    route = mock.delete("/v2/alert/a%2Fb").mock(return_value=httpx.Response(503))
    with pytest.raises(Unavailable):
        client.reset_alert("a/b")
    assert route.call_count == 3


# -- webhook ---------------------------------------------------------------------------------------------
def test_webhook_put_and_delete(mock, client):
    put = mock.put("/v2/webhook").mock(return_value=httpx.Response(204))
    delete = mock.delete("/v2/webhook").mock(side_effect=[httpx.Response(204), httpx.Response(404)])
    client.put_webhook({"url": "https://psa.example/webhooks/ninjaone/k/", "activities": {"CONDITION": ["TRIGGERED"]}})
    assert json.loads(put.calls.last.request.content)["url"] == "https://psa.example/webhooks/ninjaone/k/"
    assert client.delete_webhook() is True
    assert client.delete_webhook() is False
    assert delete.call_count == 2


@pytest.mark.parametrize("text", ["Different PSA is already configured",
                                  "Only system administrators can configure webhooks"])
def test_webhook_403_keeps_ninjaones_text_as_is(mock, client, text):
    mock.delete("/v2/webhook").mock(return_value=httpx.Response(
        403, json={"resultCode": "FORBIDDEN", "errorMessage": text, "incidentId": "abc123"}))
    with pytest.raises(PermissionDenied) as info:
        client.delete_webhook()
    assert text in str(info.value) and info.value.detail == text and info.value.result_code == "FORBIDDEN"
    assert info.value.status == 403


# -- devices, links, errors --------------------------------------------------------------------------------
def test_dashboard_url_asks_without_redirect(mock, client):
    route = mock.get("/v2/device/345/dashboard-url").mock(return_value=httpx.Response(
        200, json={"url": "https://eu.ninjarmm.com/#/deviceDashboard/345/overview", "expires": 1742412552.1}))
    assert client.dashboard_url(345)["url"].endswith("/345/overview")
    assert params(route) == {"redirect": "false"}


def test_dashboard_url_without_url_is_bad(mock, client):
    mock.get("/v2/device/1/dashboard-url").mock(return_value=httpx.Response(200, json={"url": "javascript:x"}))
    with pytest.raises(BadResponse):
        client.dashboard_url(1)


def test_device_and_last_user_404_are_none(mock, client):
    mock.get("/v2/device/9").mock(return_value=httpx.Response(404, json={"resultCode": "NOT_FOUND"}))
    mock.get("/v2/device/9/last-logged-on-user").mock(return_value=httpx.Response(404))
    mock.get("/v2/device/8/last-logged-on-user").mock(return_value=httpx.Response(
        200, json={"userName": "HARBOR\\mlopez", "logonTime": 1742412252}))
    assert client.device(9) is None and client.last_logged_on_user(9) is None
    assert client.last_logged_on_user(8)["userName"] == "HARBOR\\mlopez"


def test_401_renews_the_token_once_then_auth_failed(mock):
    token = mock.post("/ws/oauth/token").mock(return_value=httpx.Response(
        200, json={"access_token": "tok-2", "token_type": "Bearer", "expires_in": 3600}))
    route = mock.get("/v2/alerts").mock(return_value=httpx.Response(401, json={"error": "invalid_token"}))
    c = NinjaOneClient(BASE, session())
    try:
        with pytest.raises(AuthFailed, match="expired|invalid_token"):
            c.alerts()
    finally:
        c.close()
    assert [call.request.headers["authorization"] for call in route.calls] == ["Bearer tok-1", "Bearer tok-2"]
    assert token.call_count == 1


def test_429_honours_retry_after_then_succeeds(mock, client, monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(phttp, "_sleep", waits.append)
    mock.get("/v2/alerts").mock(side_effect=[
        httpx.Response(429, headers={"Retry-After": "3"}, json={"resultCode": "TOO_MANY_REQUESTS"}),
        httpx.Response(200, json=[])])
    assert client.alerts() == [] and waits == [3.0]


def test_429_that_persists_is_rate_limited(mock, client):
    mock.get("/v2/alerts").mock(return_value=httpx.Response(429, headers={"Retry-After": "1"}))
    with pytest.raises(RateLimited) as info:
        client.alerts()
    assert info.value.retry_after == 1


def test_html_answer_is_a_wrong_address(mock, client):
    mock.get("/v2/alerts").mock(return_value=httpx.Response(200, text="<!DOCTYPE html><html></html>",
                                                            headers={"content-type": "text/html"}))
    with pytest.raises(BadResponse, match="API host of your NinjaOne region"):
        client.alerts()


def test_other_4xx_keeps_ninjaones_words(mock, client):
    mock.get("/v2/alerts").mock(return_value=httpx.Response(
        400, json={"resultCode": "INVALID_FILTER", "errorMessage": "Unsupported device filter: ´org ≠ 1´"}))
    with pytest.raises(ProviderError, match="Unsupported device filter") as info:
        client.alerts(df="org ≠ 1")
    assert info.value.result_code == "INVALID_FILTER" and info.value.status == 400


def test_not_found_outside_ok_404(mock, client):
    mock.get("/v2/organization/5/locations").mock(return_value=httpx.Response(404, json={"errorMessage": "No org"}))
    with pytest.raises(NotFound, match="No org"):
        client.organization_locations(5)


@pytest.mark.parametrize(("body", "expected"), [
    ({"resultCode": "X", "errorMessage": "Boom \"quoted\" é", "incidentId": "i-1"}, ("Boom \"quoted\" é", "X", "i-1")),
    ({"error": "invalid_token", "error_description": "expired"}, ("expired", "", "")),
    ({"resultCode": "ONLY_CODE"}, ("ONLY_CODE", "ONLY_CODE", "")),
    ("plain words", ("plain words", "", "")),
    ([1, 2], ("", "", "")),
])
def test_error_detail_shapes(body, expected):
    request = httpx.Request("GET", BASE + "/v2/x")
    assert error_detail(httpx.Response(400, json=body, request=request)) == expected
    assert error_detail(httpx.Response(400, text="<html>", request=request)) == ("", "", "")
