"""HuntressClient against respx: auth, paging, the watermark stop, 429 handling, resolution answers."""

from __future__ import annotations

import base64
import datetime as dt
import time
import uuid

import httpx
import pytest
import respx

from integrations import ratelimit
from integrations.errors import AuthFailed, BadResponse, NotFound, RateLimited, Unavailable
from integrations.huntress.client import DEFAULT_BASE_URL, HuntressClient, next_page_token

BASE = DEFAULT_BASE_URL
UTC = dt.UTC


pytestmark = pytest.mark.usefixtures("fast")  # provider HTTP without waiting (tests/conftest.py)


@pytest.fixture
def mock():
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def rate_key():
    key = f"huntress:test:{uuid.uuid4().hex}"
    yield key
    ratelimit.reset(key)


@pytest.fixture
def client(rate_key):
    c = HuntressClient(None, {"api_key": "pub-key", "api_secret": "s3cr:et"}, rate_key=rate_key,
                       rate_limit=1000, rate_window=60.0, max_wait=10)
    yield c
    c.close()


def page(plural, rows, token=None, style="missing"):
    if token:
        pagination = {"next_page_token": token, "next_page_url": f"{BASE}/{plural}?page_token={token}&limit=2"}
    elif style == "empty":
        pagination = {}
    elif style == "null":
        pagination = {"next_page_token": None, "next_page_url": None}
    elif style == "none":
        pagination = None
    else:
        pagination = {"next_page_url": None}
    return httpx.Response(200, json={plural: rows, "pagination": pagination})


def test_basic_auth_and_v1_base(mock, client):
    route = mock.get("/account").mock(return_value=httpx.Response(200, json={"account": {"id": 9120, "name": "MSP"}}))
    assert client.account() == {"id": 9120, "name": "MSP"}
    request = route.calls.last.request
    assert request.url.path == "/v1/account"
    scheme, _, value = request.headers["authorization"].partition(" ")
    assert scheme == "Basic" and base64.b64decode(value).decode() == "pub-key:s3cr:et"


def test_unwrapped_single_is_tolerated_and_garbage_is_not(mock, client):
    mock.get("/organizations/5").mock(return_value=httpx.Response(200, json={"id": 5, "name": "A"}))
    assert client.organization(5)["name"] == "A"
    mock.get("/organizations/6").mock(return_value=httpx.Response(200, json={"unexpected": True}))
    with pytest.raises(BadResponse):
        client.organization(6)


@pytest.mark.parametrize("style", ["missing", "empty", "null", "none"])
def test_paging_follows_tokens_and_stops_on_every_last_page_shape(mock, client, style):
    route = mock.get("/organizations").mock(side_effect=[
        page("organizations", [{"id": 1}, {"id": 2}], token="T1"),
        page("organizations", [{"id": 3}, "junk", {"id": 4}], token="T2=="),
        page("organizations", [{"id": 5}], style=style),
    ])
    assert [o["id"] for o in client.organizations(page_size=2)] == [1, 2, 3, 4, 5]
    params = [dict(c.request.url.params) for c in route.calls]
    assert params[0] == {"limit": "2"}
    assert params[1] == {"limit": "2", "page_token": "T1"}
    assert params[2] == {"limit": "2", "page_token": "T2=="}  # opaque: passed back as received


def test_page_size_is_clipped_to_500(mock, client):
    route = mock.get("/agents").mock(return_value=page("agents", [{"id": 1}]))
    list(client.agents(page_size=10_000))
    assert route.calls.last.request.url.params["limit"] == "500"


def test_token_only_in_next_page_url_is_followed():
    assert next_page_token({"next_page_url": f"{BASE}/agents?page_token=abc%3D&limit=10"}) == "abc="
    assert next_page_token({"next_page_token": "", "next_page_url": ""}) is None
    assert next_page_token(None) is None and next_page_token([]) is None


def test_repeated_token_is_an_error_not_a_loop(mock, client):
    mock.get("/agents").mock(side_effect=[page("agents", [{"id": 1}], token="same"),
                                          page("agents", [{"id": 2}], token="same")])
    with pytest.raises(BadResponse, match="repeated a page token"):
        list(client.agents())


def test_empty_page_with_a_token_ends_the_list(mock, client):
    route = mock.get("/agents").mock(side_effect=[page("agents", [], token="more")])
    assert list(client.agents()) == []
    assert route.call_count == 1


def test_missing_list_is_bad_response(mock, client):
    mock.get("/organizations").mock(return_value=httpx.Response(200, json={"pagination": {}}))
    with pytest.raises(BadResponse):
        list(client.organizations())


def _report(report_id, minute):
    return {"id": report_id, "updated_at": f"2025-03-19T13:{minute:02d}:00Z"}


def test_incident_pages_sorted_by_updated_at_stop_at_watermark_minus_overlap(mock, client):
    route = mock.get("/incident_reports").mock(side_effect=[
        page("incident_reports", [_report(9, 50), _report(8, 45)], token="p2"),
        page("incident_reports", [_report(7, 31), _report(6, 29), _report(5, 10)], token="p3"),
        page("incident_reports", [_report(4, 5)]),  # never requested
    ])
    since = dt.datetime(2025, 3, 19, 13, 40, tzinfo=UTC)
    pages = list(client.incident_report_pages(since, overlap=dt.timedelta(minutes=10), page_size=2))
    assert [[r["id"] for r in p] for p in pages] == [[9, 8], [7]]
    assert route.call_count == 2
    first = route.calls[0].request.url.params
    assert first["sort_field"] == "updated_at" and first["sort_direction"] == "desc"


def test_incident_pages_without_watermark_read_everything_and_keep_undated_rows(mock, client):
    mock.get("/incident_reports").mock(side_effect=[
        page("incident_reports", [_report(2, 50), {"id": 1, "updated_at": None}]),
    ])
    assert [r["id"] for p in client.incident_report_pages(None) for r in p] == [2, 1]


def test_undated_row_does_not_stop_a_watermarked_read(mock, client):
    mock.get("/incident_reports").mock(side_effect=[
        page("incident_reports", [_report(3, 50), {"id": 2, "updated_at": "not a date"}, _report(1, 1)]),
    ])
    since = dt.datetime(2025, 3, 19, 13, 40, tzinfo=UTC)
    assert [r["id"] for p in client.incident_report_pages(since) for r in p] == [3, 2]


def test_429_is_answered_by_waiting_out_retry_after(mock, client, rate_key):
    route = mock.get("/account").mock(side_effect=[
        httpx.Response(429, headers={"Retry-After": "0.3"}, json={"error": "Rate limit exceeded"}),
        httpx.Response(200, json={"account": {"id": 1}}),
    ])
    started = time.monotonic()
    assert client.account() == {"id": 1}
    assert time.monotonic() - started >= 0.25  # the shared budget was pushed back, the request waited
    assert route.call_count == 2


def test_429_storm_past_retries_still_waits_then_succeeds(mock, client):
    # More 429s than PSA_HTTP_RETRIES: the client sends again rather than failing.
    responses = [httpx.Response(429, headers={"Retry-After": "0.05"})] * 5 + [
        httpx.Response(200, json={"account": {"id": 2}})]
    route = mock.get("/account").mock(side_effect=responses)
    assert client.account() == {"id": 2}
    assert route.call_count == 6


def test_429_beyond_max_wait_raises_rate_limited(mock, rate_key):
    c = HuntressClient(None, {"api_key": "k", "api_secret": "s"}, rate_key=rate_key, rate_limit=1000,
                       rate_window=60.0, max_wait=0.5)
    mock.get("/account").mock(return_value=httpx.Response(429, headers={"Retry-After": "30"}))
    with pytest.raises(RateLimited) as info:
        c.account()
    assert info.value.retry_after and info.value.retry_after > 20
    c.close()


def test_every_request_takes_a_slot_of_the_shared_budget(mock, client, rate_key):
    mock.get("/agents/1").mock(return_value=httpx.Response(200, json={"agent": {"id": 1}}))
    mock.get("/agents/2").mock(side_effect=[httpx.Response(503), httpx.Response(200, json={"agent": {"id": 2}})])
    client.agent(1)
    client.agent(2)  # one retry: two requests sent
    redis = ratelimit.redis_client()
    if redis is None:
        pytest.skip("the cache is not Redis")
    assert redis.zcard(ratelimit._keys(rate_key)[0]) == 3


def test_budget_spreads_requests_over_the_window(mock, rate_key):
    c = HuntressClient(None, {"api_key": "k", "api_secret": "s"}, rate_key=rate_key, rate_limit=3,
                       rate_window=0.5, max_wait=10)
    route = mock.get("/account").mock(return_value=httpx.Response(200, json={"account": {"id": 1}}))
    started = time.monotonic()
    for _ in range(7):
        c.account()
    # 7 requests at 3 per 0.5 s need at least two full windows.
    assert time.monotonic() - started >= 0.95
    assert route.call_count == 7
    c.close()


def test_errors_are_mapped(mock, client):
    mock.get("/account").mock(return_value=httpx.Response(401, json={"error": "Unauthorized"}))
    with pytest.raises(AuthFailed):
        client.account()
    mock.get("/organizations/1").mock(return_value=httpx.Response(500, text="oops"))
    with pytest.raises(Unavailable):
        client.organization(1)
    mock.get("/incident_reports/77").mock(return_value=httpx.Response(404, json={"error": "Not Found"}))
    with pytest.raises(NotFound):
        client.incident_report(77)


def test_missing_agent_is_none(mock, client):
    mock.get("/agents/3").mock(return_value=httpx.Response(404, json={"error": "Not Found"}))
    assert client.agent(3) is None


@pytest.mark.parametrize(("status", "body", "detail"), [
    (403, {"error": "You do not have permission to resolve incident reports."}, "You do not have permission"),
    (409, {"message": "Confirm that all remediations are approved"}, "Confirm that all remediations"),
    (422, {"errors": ["status must be sent", "x"]}, "status must be sent; x"),
    (404, None, ""),
])
def test_resolution_refusals_are_answers_not_exceptions(mock, client, status, body, detail):
    route = mock.post("/incident_reports/5/resolution").mock(
        return_value=httpx.Response(status, json=body) if body is not None else httpx.Response(status))
    answer = client.resolve_incident_report(5)
    assert answer.status_code == status and answer.incident_report is None
    assert answer.detail.startswith(detail)
    assert route.calls.last.request.method == "POST"


def test_resolution_created(mock, client):
    mock.post("/incident_reports/5/resolution").mock(
        return_value=httpx.Response(201, json={"incident_report": {"id": 5, "status": "closed"}}))
    answer = client.resolve_incident_report(5)
    assert answer.status_code == 201 and answer.incident_report == {"id": 5, "status": "closed"}


def test_resolution_server_error_raises(mock, client):
    mock.post("/incident_reports/5/resolution").mock(return_value=httpx.Response(502))
    with pytest.raises(Unavailable):
        client.resolve_incident_report(5)


def test_remediations_and_escalations_lists(mock, client):
    mock.get("/incident_reports/5/remediations").mock(return_value=page("remediations", [{"id": 1}, {"id": 2}]))
    assert [r["id"] for r in client.remediations(5)] == [1, 2]
    route = mock.get("/escalations").mock(return_value=page("escalations", [
        {"id": 3, "updated_at": "2025-03-19T13:50:00Z"}, {"id": 2, "updated_at": "2025-03-19T10:00:00Z"}]))
    since = dt.datetime(2025, 3, 19, 13, 0, tzinfo=UTC)
    assert [r["id"] for p in client.escalation_pages(since) for r in p] == [3]
    assert route.calls.last.request.url.params["sort_field"] == "updated_at"
