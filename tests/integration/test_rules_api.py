"""alert-rules/ REST API: CRUD, validation, ordering, the catch-all, roles and tenant scoping."""

from __future__ import annotations

import pytest

from alerts.models import AlertRule
from psa.models import Role
from psa.tenancy import tenant_context
from tests.conftest import token_client
from tickets.models import Board, Category, Priority

URL = "/api/v1/alert-rules/"
pytestmark = pytest.mark.django_db


def ids_of(tenant, model, **filters):
    with tenant_context(tenant):
        return {o.name: o.pk for o in model.objects.filter(**filters)}


def create(api, **body):
    body.setdefault("name", "rule")
    r = api.post(URL, body, format="json")
    assert r.status_code == 201, r.content
    return r.json()


def listing(api):
    r = api.get(URL)
    assert r.status_code == 200, r.content
    return r.json()["results"]


def test_list_shows_the_default_catch_all_last(api_a, tenant_a):
    rows = listing(api_a)
    assert [r["is_catch_all"] for r in rows] == [True]
    catch_all = rows[0]
    assert catch_all["action"] == "create_ticket" and catch_all["enabled"] is True
    assert catch_all["board"] == ids_of(tenant_a.tenant, Board)["Alerts"]
    assert catch_all["auto_close"] is True and catch_all["reset_on_close"] is True
    first = create(api_a, name="first")
    second = create(api_a, name="second")
    rows = listing(api_a)
    assert [r["name"] for r in rows] == ["first", "second", "Catch-all"]
    assert [r["position"] for r in rows] == [1, 2, 3]
    assert first["position"] == 1 and second["position"] == 2


def test_create_with_every_field_round_trips(api_a, tenant_a, make_client, make_member):
    client = make_client(tenant_a.tenant)
    tech = make_member(tenant_a.tenant, Role.TECHNICIAN)
    prios = ids_of(tenant_a.tenant, Priority)
    boards = ids_of(tenant_a.tenant, Board)
    with tenant_context(tenant_a.tenant):
        cat = Category.objects.create(name="Monitoring")
    body = {
        "name": "Servers critical", "enabled": True,
        "conditions": {"providers": ["generic"], "severities": ["critical", "high"], "alert_types": ["disk"],
                       "clients": [client.pk], "asset_types": ["server"], "text_contains": "disk",
                       "text_regex": r"C:\s+low"},
        "action": "create_ticket", "board": boards["General"], "priority": None,
        "priority_map": {"critical": prios["Critical"], "high": prios["High"]}, "category": cat.pk,
        "assignee": tech.pk, "title_template": "{{ device }}: {{ title }}",
        "description_template": "{{ message }}", "notify_users": [tech.pk, tenant_a.user.pk], "notify_email": True,
        "auto_close": False, "reset_on_close": False,
    }
    got = create(api_a, **body)
    for key, value in body.items():
        if key == "notify_users":
            assert sorted(got[key]) == sorted(value)
        elif key == "conditions":
            assert got[key]["clients"] == [client.pk] and got[key]["text_regex"] == r"C:\s+low"
        else:
            assert got[key] == value, key
    again = api_a.get(f"{URL}{got['id']}/").json()
    assert again == got


def test_create_ticket_rule_without_board_defaults_to_alerts(api_a, tenant_a):
    got = create(api_a, name="no board", action="create_ticket")
    assert got["board"] == ids_of(tenant_a.tenant, Board)["Alerts"]
    ignore = create(api_a, name="drop", action="ignore")
    assert ignore["board"] is None


@pytest.mark.parametrize(
    "conditions,key",
    [
        ({"colour": ["red"]}, "colour"),
        ({"severities": ["urgent"]}, "severities"),
        ({"text_regex": "disk ("}, "text_regex"),
        ({"asset_types": ["toaster"]}, "asset_types"),
        ({"clients": ["abc"]}, "clients"),
    ],
)
def test_invalid_conditions_answer_400_with_the_reason(api_a, conditions, key):
    r = api_a.post(URL, {"name": "bad", "conditions": conditions}, format="json")
    assert r.status_code == 400
    assert key in r.json()["conditions"]
    if key == "text_regex":
        assert "Invalid regular expression" in r.json()["conditions"]["text_regex"][0]


def test_regex_is_validated_on_update_too(api_a):
    rule = create(api_a, name="r", conditions={"text_regex": "ok"})
    r = api_a.patch(f"{URL}{rule['id']}/", {"conditions": {"text_regex": "(unclosed"}}, format="json")
    assert r.status_code == 400 and "text_regex" in r.json()["conditions"]


def test_another_tenants_ids_are_rejected(api_a, tenant_b, make_client):
    foreign_client = make_client(tenant_b.tenant)
    r = api_a.post(URL, {"name": "x", "conditions": {"clients": [foreign_client.pk]}}, format="json")
    assert r.status_code == 400 and "clients" in r.json()["conditions"]
    board_b = ids_of(tenant_b.tenant, Board)["General"]
    prio_b = ids_of(tenant_b.tenant, Priority)["High"]
    for field, value in (("board", board_b), ("priority", prio_b), ("notify_users", [tenant_b.user.pk]),
                         ("assignee", tenant_b.user.pk)):
        r = api_a.post(URL, {"name": "x", field: value}, format="json")
        assert r.status_code == 400 and field in r.json(), (field, r.content)
    r = api_a.post(URL, {"name": "x", "priority_map": {"high": prio_b}}, format="json")
    assert r.status_code == 400 and "priority_map" in r.json()


def test_priority_map_and_templates_are_validated(api_a):
    r = api_a.post(URL, {"name": "x", "priority_map": {"urgent": 1}}, format="json")
    assert r.status_code == 400 and "priority_map" in r.json()
    r = api_a.post(URL, {"name": "x", "title_template": "{{ ''.__class__ }}"}, format="json")
    assert r.status_code == 400 and "title_template" in r.json()
    r = api_a.post(URL, {"name": "x", "unknown_field": 1}, format="json")
    assert r.status_code == 400


def test_another_tenants_rule_is_404(api_a, api_b):
    rule_b = create(api_b, name="b's")
    for method in ("get", "patch", "delete"):
        assert getattr(api_a, method)(f"{URL}{rule_b['id']}/", {}, format="json").status_code == 404
    assert api_a.post(f"{URL}{rule_b['id']}/move/", {"direction": "up"}, format="json").status_code == 404
    r = api_a.post(f"{URL}reorder/", {"ids": [rule_b["id"]]}, format="json")
    assert r.status_code == 400
    assert api_b.get(f"{URL}{rule_b['id']}/").status_code == 200


def test_technician_reads_but_cannot_write(api_a, tenant_a, make_member):
    rule = create(api_a, name="r")
    tech = token_client(make_member(tenant_a.tenant, Role.TECHNICIAN).api_token)
    assert tech.get(URL).status_code == 200
    assert tech.get(f"{URL}{rule['id']}/").status_code == 200
    assert tech.post(URL, {"name": "t"}, format="json").status_code == 403
    assert tech.patch(f"{URL}{rule['id']}/", {"name": "t"}, format="json").status_code == 403
    assert tech.delete(f"{URL}{rule['id']}/").status_code == 403
    assert tech.post(f"{URL}reorder/", {"ids": [rule["id"]]}, format="json").status_code == 403
    assert tech.post(f"{URL}{rule['id']}/move/", {"direction": "up"}, format="json").status_code == 403


def test_create_at_a_position_and_move_by_patch(api_a):
    for n in "abc":
        create(api_a, name=n)
    d = create(api_a, name="d", position=1)
    assert [r["name"] for r in listing(api_a)] == ["d", "a", "b", "c", "Catch-all"]
    api_a.patch(f"{URL}{d['id']}/", {"position": 3}, format="json")
    assert [r["name"] for r in listing(api_a)] == ["a", "b", "d", "c", "Catch-all"]
    assert [r["position"] for r in listing(api_a)] == [1, 2, 3, 4, 5]


def test_reorder(api_a):
    a, b, c = (create(api_a, name=n) for n in "abc")
    catch_all = listing(api_a)[-1]
    r = api_a.post(f"{URL}reorder/", {"ids": [c["id"], a["id"], b["id"]]}, format="json")
    assert r.status_code == 200, r.content
    assert [x["name"] for x in r.json()] == ["c", "a", "b", "Catch-all"]
    # The catch-all can be listed, but stays last; a partial list puts the listed first.
    r = api_a.post(f"{URL}reorder/", {"ids": [catch_all["id"], b["id"]]}, format="json")
    assert [x["name"] for x in r.json()] == ["b", "c", "a", "Catch-all"]
    assert [x["name"] for x in listing(api_a)] == ["b", "c", "a", "Catch-all"]
    bad = api_a.post(f"{URL}reorder/", {"ids": [a["id"], a["id"]]}, format="json")
    assert bad.status_code == 400
    assert api_a.post(f"{URL}reorder/", {"ids": [999999]}, format="json").status_code == 400
    assert api_a.post(f"{URL}reorder/", {"ids": "nope"}, format="json").status_code == 400
    assert api_a.post(f"{URL}reorder/", {}, format="json").status_code == 400


def test_move_up_and_down(api_a):
    a, b, c = (create(api_a, name=n) for n in "abc")
    r = api_a.post(f"{URL}{c['id']}/move/", {"direction": "up"}, format="json")
    assert r.status_code == 200 and r.json()["position"] == 2
    assert [x["name"] for x in listing(api_a)] == ["a", "c", "b", "Catch-all"]
    api_a.post(f"{URL}{a['id']}/move/", {"direction": "down"}, format="json")
    assert [x["name"] for x in listing(api_a)] == ["c", "a", "b", "Catch-all"]
    # At the top, "up" changes nothing; at the bottom "down" does not pass the catch-all.
    api_a.post(f"{URL}{c['id']}/move/", {"direction": "up"}, format="json")
    api_a.post(f"{URL}{b['id']}/move/", {"direction": "down"}, format="json")
    assert [x["name"] for x in listing(api_a)] == ["c", "a", "b", "Catch-all"]
    assert api_a.post(f"{URL}{a['id']}/move/", {"direction": "sideways"}, format="json").status_code == 400


def test_catch_all_cannot_be_deleted_disabled_conditioned_or_moved(api_a, tenant_a):
    catch_all = listing(api_a)[-1]
    url = f"{URL}{catch_all['id']}/"
    r = api_a.delete(url)
    assert r.status_code == 400 and "catch-all" in r.json()["detail"]
    assert api_a.patch(url, {"enabled": False}, format="json").status_code == 400
    assert api_a.patch(url, {"conditions": {"severities": ["low"]}}, format="json").status_code == 400
    assert api_a.post(f"{url}move/", {"direction": "up"}, format="json").status_code == 400
    # Its action and routing can change: e.g. drop whatever no other rule matched.
    r = api_a.patch(url, {"action": "ignore", "position": 1}, format="json")
    assert r.status_code == 200 and r.json()["action"] == "ignore"
    create(api_a, name="later")
    assert listing(api_a)[-1]["id"] == catch_all["id"]
    with tenant_context(tenant_a.tenant):
        assert AlertRule.objects.filter(is_catch_all=True).count() == 1


def test_delete_closes_the_gap(api_a):
    _, b, _ = (create(api_a, name=n) for n in "abc")
    assert api_a.delete(f"{URL}{b['id']}/").status_code == 204
    rows = listing(api_a)
    assert [(x["name"], x["position"]) for x in rows] == [("a", 1), ("c", 2), ("Catch-all", 3)]


def test_filters(api_a):
    create(api_a, name="on")
    create(api_a, name="off", enabled=False, action="ignore")
    assert [x["name"] for x in api_a.get(URL, {"enabled": "false"}).json()["results"]] == ["off"]
    assert [x["name"] for x in api_a.get(URL, {"action": "ignore"}).json()["results"]] == ["off"]
