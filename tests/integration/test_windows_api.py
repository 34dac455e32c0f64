"""maintenance-windows/ REST API: validation, scopes, read-only active_now/next_start, roles, tenancy."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from psa.models import Role
from tests.conftest import token_client

URL = "/api/v1/maintenance-windows/"
pytestmark = pytest.mark.django_db


def iso(d: dt.datetime) -> str:
    return d.isoformat()


def body(**kw):
    now = timezone.now()
    base = {"name": "Patch night", "scope": "all", "starts_at": iso(now + dt.timedelta(days=1)),
            "ends_at": iso(now + dt.timedelta(days=1, hours=2)), "timezone": "Europe/Berlin"}
    base.update(kw)
    return base


def create(api, **kw):
    r = api.post(URL, body(**kw), format="json")
    assert r.status_code == 201, r.content
    return r.json()


def parse(s):
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def test_create_one_off_and_read_back(api_a):
    sent = body()
    got = create(api_a, starts_at=sent["starts_at"], ends_at=sent["ends_at"])
    assert got["scope"] == "all" and got["enabled"] is True and got["rrule"] == ""
    assert got["active_now"] is False
    assert parse(got["next_start"]) == parse(sent["starts_at"]) == parse(got["starts_at"])
    assert api_a.get(f"{URL}{got['id']}/").json()["name"] == "Patch night"
    assert [w["id"] for w in api_a.get(URL).json()["results"]] == [got["id"]]


def test_active_now_and_next_start_of_a_running_recurring_window(api_a):
    now = timezone.now()
    got = create(api_a, starts_at=iso(now - dt.timedelta(days=7, minutes=30)),
                 ends_at=iso(now - dt.timedelta(days=7) + dt.timedelta(minutes=30)), rrule="FREQ=DAILY",
                 timezone="UTC")
    assert got["active_now"] is True
    nxt = parse(got["next_start"])
    assert now < nxt <= now + dt.timedelta(days=1)


def test_read_only_fields_cannot_be_written(api_a):
    r = api_a.post(URL, body(active_now=True), format="json")
    assert r.status_code == 201 and r.json()["active_now"] is False


def test_disabled_window_is_not_active_and_has_no_next_start(api_a):
    now = timezone.now()
    got = create(api_a, enabled=False, starts_at=iso(now - dt.timedelta(minutes=5)),
                 ends_at=iso(now + dt.timedelta(minutes=5)))
    assert got["active_now"] is False and got["next_start"] is None


@pytest.mark.parametrize(
    "patch,field",
    [
        ({"rrule": "FREQ=SOMETIMES"}, "rrule"),
        ({"rrule": "FREQ=WEEKLY;BYDAY=XX"}, "rrule"),
        ({"rrule": "FREQ=MINUTELY"}, "rrule"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"scope": "galaxy"}, "scope"),
        ({"scope": "client"}, "client"),
        ({"scope": "asset"}, "asset"),
        ({"scope": "integration"}, "integration"),
        ({"scope": "integration", "integration": "nagios"}, "integration"),
        ({"starts_at": "not a date"}, "starts_at"),
    ],
)
def test_validation_errors(api_a, patch, field):
    r = api_a.post(URL, body(**patch), format="json")
    assert r.status_code == 400, r.content
    assert field in r.json()


def test_ends_at_must_follow_starts_at(api_a):
    now = timezone.now()
    r = api_a.post(URL, body(starts_at=iso(now), ends_at=iso(now)), format="json")
    assert r.status_code == 400 and "ends_at" in r.json()
    w = create(api_a)
    r = api_a.patch(f"{URL}{w['id']}/", {"ends_at": iso(now - dt.timedelta(days=3))}, format="json")
    assert r.status_code == 400 and "ends_at" in r.json()
    r = api_a.post(URL, {"name": "x"}, format="json")
    assert r.status_code == 400 and {"starts_at", "ends_at"} <= set(r.json())


def test_scopes_store_their_target_and_clear_the_others(api_a, tenant_a, make_client, make_asset):
    client = make_client(tenant_a.tenant)
    asset = make_asset(tenant_a.tenant, client)
    w = create(api_a, scope="client", client=client.pk, integration="generic")
    assert w["client"] == client.pk and w["integration"] == ""
    w = create(api_a, scope="asset", asset=asset.pk)
    assert w["asset"] == asset.pk and w["client"] is None
    w = create(api_a, scope="integration", integration="ninjaone", client=client.pk)
    assert w["integration"] == "ninjaone" and w["client"] is None
    # Changing the scope by PATCH clears the old target.
    r = api_a.patch(f"{URL}{w['id']}/", {"scope": "all"}, format="json")
    assert r.status_code == 200 and r.json()["integration"] == ""
    assert [x["id"] for x in api_a.get(URL, {"scope": "asset"}).json()["results"]] != []
    assert api_a.get(URL, {"client": client.pk}).json()["count"] == 1


def test_rrule_prefix_is_accepted_and_until_in_utc(api_a):
    w = create(api_a, rrule="RRULE:FREQ=WEEKLY;BYDAY=SA;UNTIL=20991231T000000Z")
    assert w["rrule"] == "FREQ=WEEKLY;BYDAY=SA;UNTIL=20991231T000000Z"


def test_another_tenants_client_asset_or_window(api_a, api_b, tenant_b, make_client, make_asset):
    client_b = make_client(tenant_b.tenant)
    asset_b = make_asset(tenant_b.tenant, client_b)
    r = api_a.post(URL, body(scope="client", client=client_b.pk), format="json")
    assert r.status_code == 400 and "client" in r.json()
    r = api_a.post(URL, body(scope="asset", asset=asset_b.pk), format="json")
    assert r.status_code == 400 and "asset" in r.json()
    w_b = create(api_b)
    for method in ("get", "patch", "delete"):
        assert getattr(api_a, method)(f"{URL}{w_b['id']}/", {}, format="json").status_code == 404
    assert api_a.get(URL).json()["count"] == 0
    assert api_a.get(URL, {"client": client_b.pk}).json()["count"] == 0


def test_technician_reads_but_cannot_write(api_a, tenant_a, make_member):
    w = create(api_a)
    tech = token_client(make_member(tenant_a.tenant, Role.TECHNICIAN).api_token)
    assert tech.get(URL).json()["count"] == 1
    assert tech.post(URL, body(), format="json").status_code == 403
    assert tech.patch(f"{URL}{w['id']}/", {"name": "x"}, format="json").status_code == 403
    assert tech.delete(f"{URL}{w['id']}/").status_code == 403


def test_update_and_delete(api_a):
    w = create(api_a)
    r = api_a.patch(f"{URL}{w['id']}/", {"name": "Renamed", "rrule": "FREQ=MONTHLY;BYMONTHDAY=1"}, format="json")
    assert r.status_code == 200 and r.json()["name"] == "Renamed" and r.json()["rrule"] == "FREQ=MONTHLY;BYMONTHDAY=1"
    assert api_a.delete(f"{URL}{w['id']}/").status_code == 204
    assert api_a.get(f"{URL}{w['id']}/").status_code == 404
