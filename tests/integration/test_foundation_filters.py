"""Ticket and asset filters (API.md names), pagination, and the query count of a ticket page."""

from __future__ import annotations

import pytest

from psa.models import Role
from tests.integration.foundation_fixtures import fast_password_hasher  # noqa: F401
from tickets import services
from tickets.models import Board, Priority, Status


@pytest.fixture
def setup(tenant_a, make_client, make_asset, make_member, as_tenant):
    """Two tickets that differ in every filterable field, plus a distractor."""
    t = tenant_a.tenant
    tech = make_member(t, Role.TECHNICIAN)
    acme, globex = make_client(t, "Acme"), make_client(t, "Globex")
    pc = make_asset(t, acme, "ACME-PC1", provider="tactical", external_id="agent-1", hostname="acme-pc1")
    srv = make_asset(t, globex, "GLX-SRV", provider="ninjaone", external_id="42", serial_number="SN-777")
    with as_tenant(t):
        st = {s.name: s for s in Status.objects.all()}
        first = services.create_ticket(
            board=Board.objects.get(name="General"), title="Printer jammed on second floor", client=acme, asset=pc,
            priority=Priority.objects.get(name="Low"), assignee=tech,
        )
        second = services.create_ticket(
            board=Board.objects.get(name="Alerts"), title="CPU high", client=globex, asset=srv,
            priority=Priority.objects.get(name="Critical"), source="alert", status=st["Closed"],
        )
        services.create_ticket(board=Board.objects.get(name="Security"), title="Phishing mail", status=st["Waiting"])
    return {"first": first, "second": second, "tech": tech, "acme": acme, "globex": globex, "pc": pc, "srv": srv, "st": st}


def _numbers(api, **params) -> list[int]:
    r = api.get("/api/v1/tickets/", params)
    assert r.status_code == 200, r.content
    return sorted(t["number"] for t in r.json()["results"])


def test_each_ticket_filter(api_a, setup):
    s = setup
    one, two = s["first"].number, s["second"].number
    assert _numbers(api_a, board=s["first"].board_id) == [one]
    assert _numbers(api_a, status=s["st"]["Closed"].pk) == [two]
    assert _numbers(api_a, client=s["globex"].pk) == [two]
    assert _numbers(api_a, asset=s["pc"].pk) == [one]
    assert _numbers(api_a, priority=s["second"].priority_id) == [two]
    assert _numbers(api_a, assignee=s["tech"].pk) == [one]
    assert _numbers(api_a, is_closed="true") == [two]
    assert _numbers(api_a, is_closed="false") == [one, 3]
    assert _numbers(api_a, source="alert") == [two]
    assert _numbers(api_a, source="manual") == [one, 3]
    assert _numbers(api_a, client=s["acme"].pk, is_closed="false") == [one]  # filters combine


def test_q_searches_title_and_number(api_a, setup):
    assert _numbers(api_a, q="printer") == [setup["first"].number]
    assert _numbers(api_a, q=str(setup["second"].number)) == [setup["second"].number]
    assert _numbers(api_a, q=f"#{setup['second'].number}") == [setup["second"].number]
    assert _numbers(api_a, q="nothing like this") == []


def test_bad_filter_values_are_400_json(api_a, setup):
    for params in ({"board": "abc"}, {"source": "carrier-pigeon"}):
        r = api_a.get("/api/v1/tickets/", params)
        assert r.status_code == 400 and r["Content-Type"].startswith("application/json")


def test_asset_filters(api_a, setup):
    def names(**params):
        r = api_a.get("/api/v1/assets/", params)
        assert r.status_code == 200
        return [a["name"] for a in r.json()["results"]]

    assert names(client=setup["acme"].pk) == ["ACME-PC1"]
    assert names(provider="ninjaone") == ["GLX-SRV"]
    assert names(q="acme-pc") == ["ACME-PC1"]  # hostname
    assert names(q="SN-777") == ["GLX-SRV"]  # serial number
    assert names(q="glx") == ["GLX-SRV"]  # name
    detail = api_a.get(f"/api/v1/assets/{setup['srv'].pk}/").json()
    assert detail["external_ids"] == [{"provider": "ninjaone", "external_id": "42"}]


def _make_tickets(tenant, as_tenant, n: int):
    with as_tenant(tenant):
        board = Board.objects.get(name="General")
        for i in range(n):
            services.create_ticket(board=board, title=f"bulk {i}")


def test_pagination_count_next_results(api_a, tenant_a, as_tenant):
    _make_tickets(tenant_a.tenant, as_tenant, 55)
    page1 = api_a.get("/api/v1/tickets/").json()
    assert page1["count"] == 55 and len(page1["results"]) == 50 and page1["next"].endswith("page=2")
    page2 = api_a.get("/api/v1/tickets/", {"page": 2}).json()
    assert len(page2["results"]) == 5 and page2["next"] is None and page2["previous"]
    seen = [t["number"] for t in page1["results"] + page2["results"]]
    assert sorted(seen) == list(range(1, 56))  # every ticket exactly once, newest first
    assert seen[0] == 55
    small = api_a.get("/api/v1/tickets/", {"page_size": 20, "page": 3}).json()
    assert len(small["results"]) == 15
    assert api_a.get("/api/v1/tickets/", {"page": 9}).status_code == 404


def _queries_for_page(api) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        r = api.get("/api/v1/tickets/")
    assert r.status_code == 200
    return len(ctx.captured_queries)


def test_ticket_page_query_count_does_not_grow(api_a, tenant_a, as_tenant, make_client, make_asset, make_member,
                                               django_assert_max_num_queries):
    t = tenant_a.tenant
    tech = make_member(t, Role.TECHNICIAN)
    client = make_client(t)
    asset = make_asset(t, client, provider="generic")

    def add(n):
        with as_tenant(t):
            board = Board.objects.get(name="General")
            prio = Priority.objects.get(name="High")
            for i in range(n):
                services.create_ticket(board=board, title=f"full {i}", client=client, asset=asset, priority=prio, assignee=tech)

    add(10)
    ten = _queries_for_page(api_a)
    add(40)
    with django_assert_max_num_queries(6):  # auth token, membership, count, page (+ savepoint slack)
        r = api_a.get("/api/v1/tickets/")
    assert len(r.json()["results"]) == 50
    assert _queries_for_page(api_a) == ten


def test_asset_page_query_count_does_not_grow(api_a, tenant_a, make_client, make_asset, django_assert_max_num_queries):
    client = make_client(tenant_a.tenant)
    for i in range(5):
        make_asset(tenant_a.tenant, client, provider="generic", external_id=f"a{i}")
    five = _queries_for_page(api_a)
    for i in range(45):
        make_asset(tenant_a.tenant, client, provider="generic", external_id=f"b{i}")
    assert _queries_for_page(api_a) == five
