"""Tenant isolation for every /api/v1/ endpoint and verb, found by walking the URL conf.

Each test builds a "world" (one row of every tenant-owned model, tests/world.py) for
tenant A and for tenant B, then calls the API as A's admin with B's ids. Endpoints
other helpers add later are covered automatically; a new tenant-owned model must get a
world factory (guard test below) and a new route must be fillable from a world.
"""

from __future__ import annotations

import json
import re

import pytest
from django.core.exceptions import FieldDoesNotExist
from django.urls import resolve
from django_filters import ModelChoiceFilter, ModelMultipleChoiceFilter, NumberFilter
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.relations import ManyRelatedField, RelatedField

from psa.tenancy import tenant_context
from tests.conftest import token_client
from tests.integration.api_routes import VERBS, api_routes
from tests.integration.foundation_fixtures import fast_password_hasher  # noqa: F401
from tests.world import FACTORIES, build_world, tenant_models

ROUTES = api_routes()
USABLE = [r for r in ROUTES if not r.problem]
DETAIL_ROUTES = [r for r in USABLE if r.is_detail]
# Lists and provider-level pages (only a provider slug in the path) that answer GET.
LIST_ROUTES = [r for r in USABLE if not r.is_detail and "get" in r.allowed]


def _write_routes():
    """ViewSet create (POST on a list) and partial_update (PATCH on a detail) routes: the ones whose
    serializer we can read. Plain APIViews are left out: nothing generic says what body they take."""
    out = []
    for r in USABLE:
        kind = {"create": "create", "partial_update": "update"}.get(r.actions.get("post") or r.actions.get("patch"))
        if kind == "update" and r.actions.get("post"):  # a POST action on a detail route, not an update
            kind = None
        if kind and getattr(r.view_class, "serializer_class", None) is not None:
            out.append((r, kind))
    return out


WRITE_ROUTES = _write_routes()


@pytest.fixture
def worlds(make_tenant):
    a = build_world(make_tenant("Alpha World MSP", "admin@alpha-world.example"))
    b = build_world(make_tenant("Beta World MSP", "admin@beta-world.example"))
    return a, b


def _send(client, verb: str, url: str, data=None):
    if verb == "get":
        return client.get(url, data or {})
    return client.generic(verb.upper(), url, json.dumps(data or {}), content_type="application/json")


def _leaks(response, b) -> list[str]:
    text = response.content.decode(errors="replace")
    return [s for s in (b.marker, b.admin.email) if s in text]


# --- guards ---------------------------------------------------------------------------------


def test_every_tenant_model_has_a_world_factory():
    missing = sorted(m._meta.label for m in tenant_models() if m._meta.label not in FACTORIES)
    assert not missing, f"add a @factory for each of these in tests/world.py so isolation tests cover them: {missing}"


def test_every_api_route_can_be_called_with_world_ids():
    problems = {r.template: r.problem for r in ROUTES if r.problem}
    assert not problems, problems


def test_route_walk_sees_nested_and_detail_routes():
    templates = {r.template for r in ROUTES}
    for expected in ("/api/v1/tickets/{pk}/", "/api/v1/tickets/{ticket_pk}/notes/", "/api/v1/clients/",
                     "/api/v1/assets/{pk}/software/", "/api/v1/notifications/{pk}/read/"):
        assert expected in templates
    ticket = next(r for r in ROUTES if r.template == "/api/v1/tickets/{pk}/")
    assert ticket.allowed == {"get", "patch", "delete"}


def test_world_rows_belong_to_their_tenant(worlds):
    a, b = worlds
    for label in FACTORIES:
        assert a[label].tenant_id == a.tenant.pk and b[label].tenant_id == b.tenant.pk, label


# --- detail routes: every verb with the other tenant's ids -> 404 -----------------------------


@pytest.mark.parametrize("route", DETAIL_ROUTES, ids=str)
def test_detail_route_hides_other_tenant_objects(route, worlds):
    a, b = worlds
    url_b = route.url_for(b)
    assert resolve(url_b).func is route.callback, f"{url_b} resolves to another view"
    before = b.snapshot()
    client_a = token_client(a.api_token)
    for verb in VERBS:
        r = _send(client_a, verb, url_b)
        expected = {404} if verb in route.allowed else {404, 405}
        assert r.status_code in expected, f"{verb.upper()} {url_b} as the other tenant -> {r.status_code} {r.content[:300]!r}"
        assert r["Content-Type"].startswith("application/json"), f"{verb.upper()} {url_b} answered {r['Content-Type']}"
        assert not _leaks(r, b)
    assert b.snapshot() == before, f"a request by tenant A through {route} changed tenant B's rows"
    if "get" in route.allowed:
        # Positive control: the same URL works for its owner, so the 404 above came from the tenant scope.
        r = token_client(b.api_token).get(url_b)
        assert r.status_code != 404, f"GET {url_b} as its owner -> 404; the world row is not reachable"


# --- list routes: never another tenant's rows; filters on its ids find nothing -----------------


def _filters(route):
    """(filter name, related model, model field attname) for filters on a related id."""
    cls = route.view_class
    if cls is None or route.model is None:
        return []
    fs = getattr(cls, "filterset_class", None)
    if fs is None and getattr(cls, "filterset_fields", None):
        with tenant_context(0):
            fs = DjangoFilterBackend().get_filterset_class(cls, route.model.objects.none())
    if fs is None:
        return []
    out = []
    for name, f in fs.base_filters.items():
        if not isinstance(f, NumberFilter | ModelChoiceFilter | ModelMultipleChoiceFilter) or f.method:
            continue
        field_name = re.sub(r"(__id|_id)$", "", f.field_name or name)
        if "__" in field_name:
            continue
        try:
            model_field = route.model._meta.get_field(field_name)
        except FieldDoesNotExist:  # a filter on something else than a model field: not an id filter
            continue
        if model_field.is_relation and model_field.many_to_one:
            out.append((name, model_field.related_model, model_field.attname))
    return out


def _result_ids(response) -> list | None:
    try:
        body = response.json()
    except ValueError:
        return None
    rows = body.get("results") if isinstance(body, dict) else body
    if not isinstance(rows, list):
        return None
    return [row.get("id") for row in rows if isinstance(row, dict)]


@pytest.mark.parametrize("route", LIST_ROUTES, ids=str)
def test_list_route_never_shows_other_tenant_rows(route, worlds):
    a, b = worlds
    client_a, client_b = token_client(a.api_token), token_client(b.api_token)
    url_a = route.url_for(a)
    r = client_a.get(url_a)
    assert r.status_code < 500, f"GET {url_a} -> {r.status_code}"
    assert not _leaks(r, b), f"GET {url_a} as tenant A shows tenant B's data"
    b_row = b.object_for_model(route.model) if route.model is not None else None
    ids = _result_ids(r)
    if b_row is not None and ids is not None:
        assert b_row.pk not in ids
        rb = client_b.get(route.url_for(b))
        assert b_row.pk in (_result_ids(rb) or []), f"positive control: {route} as tenant B should list B's world row"
    for name, related_model, attname in _filters(route):
        target = b.object_for_model(related_model)
        if target is None:
            continue
        r = client_a.get(url_a, {name: target.pk})
        assert r.status_code == 200, f"GET {url_a}?{name}={target.pk} -> {r.status_code} {r.content[:200]!r}"
        assert _result_ids(r) == [], f"filtering {route} on tenant B's {related_model.__name__} id found rows"
        assert not _leaks(r, b)
        if b_row is not None and getattr(b_row, attname) == target.pk:
            # Positive control: the filter does work for the owner.
            assert b_row.pk in (_result_ids(client_b.get(route.url_for(b), {name: target.pk})) or [])


# --- writes: another tenant's ids in related fields -> 400, nothing written --------------------


def _related_fields(route):
    with tenant_context(0):
        serializer = route.view_class.serializer_class()
        fields = serializer.fields
    out = []
    for name, f in fields.items():
        if f.read_only:
            continue
        if isinstance(f, ManyRelatedField) and isinstance(f.child_relation, RelatedField):
            out.append((name, f.child_relation.queryset.model, True))
        elif isinstance(f, RelatedField) and f.queryset is not None:
            out.append((name, f.queryset.model, False))
    return out


WRITE_CASES = [(r, kind) for r, kind in WRITE_ROUTES if _related_fields(r)]


def _normalize(errors) -> str:
    return re.sub(r"\d+", "N", json.dumps(errors))


@pytest.mark.parametrize(("route", "kind"), WRITE_CASES, ids=[f"{k} {r}" for r, k in WRITE_CASES])
def test_writes_refuse_other_tenant_ids_in_related_fields(route, kind, worlds):
    a, b = worlds
    client_a = token_client(a.api_token)
    url = route.url_for(a)
    verb = "post" if kind == "create" else "patch"
    checked = 0
    for name, model, many in _related_fields(route):
        target = b.object_for_model(model)
        if target is None:
            continue
        before = a.snapshot()
        r = _send(client_a, verb, url, {name: [target.pk] if many else target.pk})
        assert r.status_code == 400, f"{verb.upper()} {url} with B's {name} -> {r.status_code} {r.content[:300]!r}"
        assert name in r.json(), f"{verb.upper()} {url}: no error on {name}: {r.json()}"
        assert not _leaks(r, b)
        # Same answer as for an id that exists nowhere: no existence oracle.
        ghost = _send(client_a, verb, url, {name: [987654321] if many else 987654321})
        assert _normalize(r.json()[name]) == _normalize(ghost.json()[name])
        assert a.snapshot() == before, f"a refused write to {url} changed rows"
        checked += 1
    assert checked, f"{route} has related fields but none pointed at a world model"
