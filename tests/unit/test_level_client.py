"""LevelClient against respx: raw-key auth, paging, include flags, errors, resolve, the access probe."""

from __future__ import annotations

import httpx
import pytest
import respx

from integrations.errors import AuthFailed, BadResponse, NotFound, PermissionDenied, RateLimited, Unavailable
from integrations.level.client import (
    DEVICE_INCLUDES,
    OPTIONAL_DEVICE_INCLUDES,
    PROBE_ALERT_ID,
    LevelClient,
    ResolveOutcome,
)

BASE = "https://api.level.example.com/v2"
KEY = "lvl_live_4f9c\"quoted'key"


pytestmark = pytest.mark.usefixtures("fast")  # provider HTTP without waiting (tests/conftest.py)


@pytest.fixture
def mock():
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def client():
    c = LevelClient(KEY, BASE)
    yield c
    c.close()


def params(call) -> dict[str, str]:
    return dict(call.request.url.params)


def groups_page(ids, more):
    return httpx.Response(200, json={"data": [{"id": i, "name": f"G {i}", "parent_id": None} for i in ids],
                                     "has_more": more})


def test_default_base_url_and_raw_key_without_bearer():
    c = LevelClient("KEY")
    assert c.base_url == "https://api.level.io/v2"
    c.close()


def test_authorization_is_the_raw_key(mock, client):
    route = mock.get("/groups").mock(return_value=groups_page(["g1"], False))
    assert [g["id"] for g in client.groups()] == ["g1"]
    assert route.calls.last.request.headers["authorization"] == KEY


def test_groups_follow_starting_after_and_never_filter_on_parent(mock, client):
    route = mock.get("/groups").mock(side_effect=[groups_page(["a", "b"], True), groups_page(["c", "d"], True),
                                                  groups_page(["e"], False)])
    assert [g["id"] for g in client.groups()] == ["a", "b", "c", "d", "e"]
    assert [params(c) for c in route.calls] == [
        {"limit": "100"}, {"limit": "100", "starting_after": "b"}, {"limit": "100", "starting_after": "d"}]
    assert all("parent_id" not in params(c) for c in route.calls)


def test_pages_are_streamed_one_at_a_time(mock, client):
    route = mock.get("/groups").mock(side_effect=[groups_page(["a"], True), groups_page(["b"], False)])
    pages = client.pages("/groups")
    assert next(pages) == [{"id": "a", "name": "G a", "parent_id": None}]
    assert route.call_count == 1  # the second page is not fetched before it is needed
    assert [r["id"] for r in next(pages)] == ["b"]


def test_without_has_more_a_full_page_continues_and_a_short_one_ends(mock, client):
    full = {"data": [{"id": f"d{i}"} for i in range(3)]}
    short = {"data": [{"id": "d9"}]}
    route = mock.get("/alerts").mock(side_effect=[httpx.Response(200, json=full), httpx.Response(200, json=short)])
    assert [len(p) for p in client.pages("/alerts", limit=3)] == [3, 1]
    assert params(route.calls[1]) == {"limit": "3", "starting_after": "d2"}


def test_a_bare_list_is_one_complete_page_and_junk_rows_are_dropped(mock, client):
    mock.get("/groups").mock(return_value=httpx.Response(200, json=[{"id": "a"}, "junk", None, {"id": "b"}]))
    assert [g["id"] for g in client.groups()] == ["a", "b"]


def test_paging_that_does_not_advance_is_an_error_not_a_loop(mock, client):
    mock.get("/groups").mock(return_value=groups_page(["a", "b"], True))
    with pytest.raises(BadResponse, match="does not advance"):
        list(client.groups())


def test_an_empty_page_claiming_more_is_an_error(mock, client):
    mock.get("/groups").mock(return_value=httpx.Response(200, json={"data": [], "has_more": True}))
    with pytest.raises(BadResponse, match="empty page"):
        list(client.groups())


@pytest.mark.parametrize("body", [{"data": "x"}, "text", 12])
def test_unreadable_pages(mock, client, body):
    mock.get("/groups").mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(BadResponse):
        list(client.groups())


def test_limit_is_clamped_to_level_bounds(mock, client):
    route = mock.get("/alerts").mock(return_value=httpx.Response(200, json={"data": [], "has_more": False}))
    list(client.pages("/alerts", limit=500))
    list(client.pages("/alerts", limit=0))
    assert [params(c)["limit"] for c in route.calls] == ["100", "1"]


def test_devices_ask_for_every_include_flag(mock, client):
    route = mock.get("/devices").mock(return_value=httpx.Response(200, json={"data": [{"id": "d1"}], "has_more": False}))
    assert [d["id"] for d in client.devices(group_id="g1")] == ["d1"]
    sent = params(route.calls.last)
    assert sent["group_id"] == "g1"
    assert {k for k, v in sent.items() if v == "true"} == set(DEVICE_INCLUDES + OPTIONAL_DEVICE_INCLUDES)


def test_refused_optional_includes_are_dropped_for_the_rest_of_the_listing(mock, client):
    def answer(request):
        if any(flag in request.url.params for flag in OPTIONAL_DEVICE_INCLUDES):
            return httpx.Response(422, json={"error": "Unknown parameter include_security"})
        after = request.url.params.get("starting_after")
        return httpx.Response(200, json={"data": [{"id": "d2" if after else "d1"}], "has_more": not after})

    route = mock.get("/devices").mock(side_effect=answer)
    assert [d["id"] for d in client.devices()] == ["d1", "d2"]
    assert client.refused_includes is True
    assert route.call_count == 3  # refused, first page, second page (never refused twice)
    last = params(route.calls.last)
    assert set(DEVICE_INCLUDES) <= set(last) and not set(OPTIONAL_DEVICE_INCLUDES) & set(last)


def test_a_refusal_of_the_required_flags_is_an_error(mock, client):
    mock.get("/devices").mock(return_value=httpx.Response(422, json={"error": "bad request"}))
    with pytest.raises(Exception, match="422"):
        list(client.devices())


def test_one_device_with_inventory_or_none(mock, client):
    route = mock.get("/devices/d1").mock(return_value=httpx.Response(200, json={"id": "d1", "group_id": "g"}))
    mock.get("/devices/gone").mock(return_value=httpx.Response(404, json={"error": "Not found"}))
    assert client.device("d1") == {"id": "d1", "group_id": "g"}
    assert params(route.calls.last)["include_operating_system"] == "true"
    assert client.device("d1", inventory=False)["group_id"] == "g"
    assert params(route.calls.last) == {}
    assert client.device("gone") is None


def test_an_object_wrapped_in_data_is_unwrapped(mock, client):
    mock.get("/alerts/a1").mock(return_value=httpx.Response(200, json={"data": {"id": "a1", "name": "x"}}))
    assert client.alert("a1") == {"id": "a1", "name": "x"}


def test_alert_filters(mock, client):
    route = mock.get("/alerts").mock(return_value=httpx.Response(200, json={"data": [], "has_more": False}))
    list(client.alerts(status="resolved", device_id="d1"))
    assert params(route.calls.last) == {"status": "resolved", "device_id": "d1", "limit": "100"}
    list(client.alerts(status=None))
    assert params(route.calls.last) == {"limit": "100"}
    with pytest.raises(ValueError):
        list(client.alerts(status="open"))


def test_401_access_denied(mock, client):
    mock.get("/groups").mock(return_value=httpx.Response(401, json={"error": "Access denied"}))
    with pytest.raises(AuthFailed, match="Access denied"):
        list(client.groups())


def test_403_is_permission_denied(mock, client):
    mock.get("/groups").mock(return_value=httpx.Response(403, json={"error": "Forbidden"}))
    with pytest.raises(PermissionDenied):
        list(client.groups())


def test_404_list_says_check_the_base_url(mock, client):
    mock.get("/groups").mock(return_value=httpx.Response(404, json={"error": "Not found"}))
    with pytest.raises(NotFound, match="base URL"):
        list(client.groups())


def test_429_waits_retry_after_then_succeeds(mock, client, fast):
    route = mock.get("/groups").mock(side_effect=[httpx.Response(429, headers={"Retry-After": "7"}),
                                                  groups_page(["a"], False)])
    assert [g["id"] for g in client.groups()] == ["a"]
    assert route.call_count == 2 and fast == [7.0]


def test_429_that_never_ends_is_rate_limited(mock, client):
    mock.get("/groups").mock(return_value=httpx.Response(429, headers={"Retry-After": "2"}))
    with pytest.raises(RateLimited) as info:
        list(client.groups())
    assert info.value.retry_after == 2.0


def test_5xx_retried_then_unavailable(mock, client):
    route = mock.get("/groups").mock(return_value=httpx.Response(503))
    with pytest.raises(Unavailable):
        list(client.groups())
    assert route.call_count == 3


def test_html_is_not_the_api(mock, client):
    mock.get("/groups").mock(return_value=httpx.Response(200, text="<!DOCTYPE html><html></html>",
                                                         headers={"content-type": "text/html"}))
    with pytest.raises(BadResponse, match="HTML"):
        list(client.groups())


def test_resolve_outcomes(mock, client):
    ok = mock.post("/alerts/a1/resolve").mock(return_value=httpx.Response(200, json={"id": "a1", "is_resolved": True}))
    mock.post("/alerts/gone/resolve").mock(return_value=httpx.Response(404, json={"error": "Not found"}))
    mock.post("/alerts/done/resolve").mock(return_value=httpx.Response(422, json={"error": "already resolved"}))
    assert client.resolve_alert("a1") == ResolveOutcome.RESOLVED
    assert ok.calls.last.request.headers["authorization"] == KEY
    assert client.resolve_alert("gone") == ResolveOutcome.NOT_FOUND
    assert client.resolve_alert("done") == ResolveOutcome.REFUSED


def test_resolve_with_a_read_only_key_explains_what_to_change(mock, client):
    mock.post("/alerts/a1/resolve").mock(return_value=httpx.Response(403, json={"error": "read-only key"}))
    with pytest.raises(PermissionDenied, match="read-only.*Read and write"):
        client.resolve_alert("a1")


def test_resolve_with_a_revoked_key(mock, client):
    mock.post("/alerts/a1/resolve").mock(return_value=httpx.Response(401, json={"error": "Access denied"}))
    with pytest.raises(AuthFailed):
        client.resolve_alert("a1")


@pytest.mark.parametrize(
    "status,access",
    [(403, "read_only"), (404, "read_write"), (422, "read_write"), (200, "read_write"), (204, "read_write"),
     (401, "unknown"), (400, "unknown"), (405, "unknown"), (409, "unknown"), (503, "unknown"), (429, "unknown")],
)
def test_access_probe(mock, client, status, access):
    route = mock.post(f"/alerts/{PROBE_ALERT_ID}/resolve").mock(return_value=httpx.Response(status, json={}))
    probe = client.probe_access()
    assert probe.access == access
    assert route.called
    # The probe is the only write it sends, and only to an id that cannot exist.
    assert all(c.request.method == "GET" or c.request.url.path.endswith(f"/{PROBE_ALERT_ID}/resolve")
               for c in mock.calls)


def test_access_probe_without_an_answer_is_unknown(mock, client):
    mock.post(f"/alerts/{PROBE_ALERT_ID}/resolve").mock(side_effect=httpx.ConnectError("refused"))
    probe = client.probe_access()
    assert probe.access == "unknown" and "could not reach" in probe.reason


def test_probe_id_cannot_be_a_real_alert():
    import base64

    decoded = base64.urlsafe_b64decode(PROBE_ALERT_ID + "=" * (-len(PROBE_ALERT_ID) % 4)).decode()
    assert decoded.startswith("gid://level/Alert/")
    assert not decoded.rsplit("/", 1)[1].isdigit()
    assert PROBE_ALERT_ID.replace("-", "").replace("_", "").isalnum()  # safe in a path


def test_ids_stay_one_path_segment(mock, client):
    route = mock.get(url__regex=r".*/devices/\.\.%2Fgroups%3Fx%3D1$").mock(
        return_value=httpx.Response(200, json={"id": "odd"}))
    resolve = mock.post(url__regex=r".*/alerts/a%2Fb/resolve$").mock(return_value=httpx.Response(200, json={}))
    assert client.device("../groups?x=1", inventory=False) == {"id": "odd"}
    assert client.resolve_alert("a/b") == ResolveOutcome.RESOLVED
    assert route.called and resolve.called
