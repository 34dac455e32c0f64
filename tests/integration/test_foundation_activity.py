"""The ticket activity record (who did what, when) and the closed_at / closing rules."""

from __future__ import annotations

import pytest

from psa.models import Role
from tests.conftest import token_client
from tests.integration.foundation_fixtures import fast_password_hasher  # noqa: F401
from tickets import services
from tickets.models import ActivityKind, Board, Priority, Status, Ticket, TicketActivity
from tickets.signals import ticket_closed_by_user


@pytest.fixture
def tech(tenant_a, make_member):
    return make_member(tenant_a.tenant, Role.TECHNICIAN)


@pytest.fixture
def ticket(tenant_a, as_tenant):
    with as_tenant(tenant_a.tenant):  # created by the system (an alert), not a person
        return services.create_ticket(board=Board.objects.get(name="Alerts"), title="Disk full", source="alert")


def _statuses(tenant, as_tenant):
    with as_tenant(tenant):
        return {s.name: s for s in Status.objects.all()}


def _kinds(tenant, as_tenant, ticket) -> list[tuple[str, int | None]]:
    with as_tenant(tenant):
        return list(TicketActivity.objects.filter(ticket=ticket).order_by("id").values_list("kind", "actor_id"))


def test_system_activity_does_not_count_as_human_touch(ticket, tenant_a, as_tenant):
    with as_tenant(tenant_a.tenant):
        assert services.human_touched(ticket.pk) is False
        services.add_note(ticket, body="Alert fired again", kind="system")
        services.update_ticket(ticket, actor=None, changes={"priority": Priority.objects.get(name="High")})
        assert services.human_touched(ticket.pk) is False
    assert _kinds(tenant_a.tenant, as_tenant, ticket) == [(ActivityKind.CREATED, None), (ActivityKind.PRIORITY, None)]


def test_a_person_creating_a_ticket_has_not_touched_it_yet(api_a, tenant_a, as_tenant):
    with as_tenant(tenant_a.tenant):
        board = Board.objects.get(name="General").pk
    tid = api_a.post("/api/v1/tickets/", {"title": "Hello", "board": board}, format="json").json()["id"]
    with as_tenant(tenant_a.tenant):
        assert services.human_touched(tid) is False
        created = TicketActivity.objects.get(ticket_id=tid)
    assert created.kind == ActivityKind.CREATED and created.actor_id == tenant_a.user.pk


@pytest.mark.parametrize("action", ["note", "status", "assignment", "priority", "time_entry"])
def test_each_human_action_is_recorded_with_actor_and_counts_as_touch(action, ticket, tech, tenant_a, as_tenant):
    api = token_client(tech.api_token)
    st = _statuses(tenant_a.tenant, as_tenant)
    with as_tenant(tenant_a.tenant):
        high = Priority.objects.get(name="High").pk
    url = f"/api/v1/tickets/{ticket.pk}/"
    r = {
        "note": lambda: api.post(url + "notes/", {"body": "Looking at it", "kind": "internal"}, format="json"),
        "status": lambda: api.patch(url, {"status": st["In Progress"].pk}, format="json"),
        "assignment": lambda: api.patch(url, {"assignee": tech.pk}, format="json"),
        "priority": lambda: api.patch(url, {"priority": high}, format="json"),
        "time_entry": lambda: api.post(url + "time-entries/", {"minutes": 30, "note": "remote session"}, format="json"),
    }[action]()
    assert r.status_code in (200, 201), r.content
    with as_tenant(tenant_a.tenant):
        assert services.human_touched(ticket.pk) is True
        row = TicketActivity.objects.filter(ticket=ticket).exclude(kind=ActivityKind.CREATED).get()
    assert row.kind == action and row.actor_id == tech.pk and row.created_at is not None
    listed = api.get(url + "activity/").json()
    assert [a["kind"] for a in listed] == ["created", action] and listed[1]["actor"] == tech.pk


def test_status_change_records_old_and_new(ticket, tech, tenant_a, as_tenant):
    st = _statuses(tenant_a.tenant, as_tenant)
    token_client(tech.api_token).patch(f"/api/v1/tickets/{ticket.pk}/", {"status": st["Waiting"].pk}, format="json")
    with as_tenant(tenant_a.tenant):
        row = TicketActivity.objects.get(ticket=ticket, kind=ActivityKind.STATUS)
    assert row.data == {"old": st["New"].pk, "new": st["Waiting"].pk}


def test_unchanged_values_record_nothing(ticket, tech, tenant_a, as_tenant):
    st = _statuses(tenant_a.tenant, as_tenant)
    r = token_client(tech.api_token).patch(f"/api/v1/tickets/{ticket.pk}/", {"status": st["New"].pk}, format="json")
    assert r.status_code == 200
    with as_tenant(tenant_a.tenant):
        assert services.human_touched(ticket.pk) is False


def test_closed_at_is_set_by_a_closed_status_and_cleared_on_reopen(ticket, api_a, tenant_a, as_tenant):
    st = _statuses(tenant_a.tenant, as_tenant)
    url = f"/api/v1/tickets/{ticket.pk}/"
    closed = api_a.patch(url, {"status": st["Closed"].pk}, format="json").json()
    assert closed["is_closed"] is True and closed["closed_at"] is not None
    assert api_a.get("/api/v1/tickets/", {"is_closed": "true"}).json()["count"] == 1
    reopened = api_a.patch(url, {"status": st["In Progress"].pk}, format="json").json()
    assert reopened["is_closed"] is False and reopened["closed_at"] is None


def test_is_closed_closes_and_reopens_through_the_boards_statuses(ticket, api_a, tenant_a, as_tenant):
    url = f"/api/v1/tickets/{ticket.pk}/"
    closed = api_a.patch(url, {"is_closed": True}, format="json").json()
    with as_tenant(tenant_a.tenant):
        status = Status.objects.get(pk=closed["status"])
        assert status.is_closed  # the board's closed status, so closing does everything a status change does
    assert closed["is_closed"] is True and closed["closed_at"] is not None
    reopened = api_a.patch(url, {"is_closed": False}, format="json").json()
    with as_tenant(tenant_a.tenant):
        assert Status.objects.get(pk=reopened["status"]).is_default
    assert reopened["is_closed"] is False and reopened["closed_at"] is None
    # Repeating the current state is harmless (clients that send back what they read).
    assert api_a.patch(url, {"is_closed": False, "title": "Disk full on SRV1"}, format="json").status_code == 200
    # A status and is_closed that disagree are refused, not silently reconciled.
    with as_tenant(tenant_a.tenant):
        open_status = Status.objects.filter(is_closed=False).first()
    r = api_a.patch(url, {"is_closed": True, "status": open_status.pk}, format="json")
    assert r.status_code == 400 and "disagree" in r.json()["is_closed"][0]
    assert api_a.patch(url, {"is_closed": "yes"}, format="json").status_code == 400


def test_a_person_closing_a_ticket_signals_after_commit(ticket, tech, tenant_a, as_tenant, django_capture_on_commit_callbacks):
    seen = []

    def receiver(sender, **kw):
        seen.append(kw)

    ticket_closed_by_user.connect(receiver)
    try:
        st = _statuses(tenant_a.tenant, as_tenant)
        with django_capture_on_commit_callbacks(execute=True):
            token_client(tech.api_token).patch(f"/api/v1/tickets/{ticket.pk}/", {"status": st["Closed"].pk}, format="json")
        with as_tenant(tenant_a.tenant), django_capture_on_commit_callbacks(execute=True):
            # The system closing a ticket (alert resolved) is not "closed by a person".
            other = services.create_ticket(board=Board.objects.get(name="Alerts"), title="Other")
            services.update_ticket(other, actor=None, changes={"status": st["Closed"]})
    finally:
        ticket_closed_by_user.disconnect(receiver)
    assert [(s["ticket_id"], s["actor_id"], s["tenant_id"]) for s in seen] == [(ticket.pk, tech.pk, tenant_a.tenant.pk)]


def test_created_closed_ticket_gets_closed_at(tenant_a, as_tenant):
    st = _statuses(tenant_a.tenant, as_tenant)
    with as_tenant(tenant_a.tenant):
        t = services.create_ticket(board=Board.objects.get(name="General"), title="Already done", status=st["Closed"])
        assert Ticket.objects.get(pk=t.pk).closed_at is not None


def test_moving_board_keeps_status_valid(ticket, api_a, tenant_a, as_tenant):
    with as_tenant(tenant_a.tenant):
        security = Board.objects.get(name="Security")
        own = Status.objects.create(name="Triage only", board=Board.objects.get(name="Alerts"), position=5)
    url = f"/api/v1/tickets/{ticket.pk}/"
    assert api_a.patch(url, {"status": own.pk}, format="json").status_code == 200
    moved = api_a.patch(url, {"board": security.pk}, format="json").json()
    # The board-specific status does not exist on Security: the ticket falls back to that board's default.
    assert moved["board"] == security.pk and moved["status"] != own.pk
