"""Web pages with the Django test client: login, lists, detail, notes, status changes, tenancy."""

from __future__ import annotations

import pytest
from django.test import Client as WebClient

from psa.models import Notification, Role
from tests.integration.foundation_fixtures import fast_password_hasher  # noqa: F401
from tickets.models import ActivityKind, Board, Status, Ticket, TicketActivity, TicketNote

PAGES = ["/tickets/", "/tickets/new/", "/assets/", "/clients/", "/notifications/"]


def _login(tenant_created) -> WebClient:
    web = WebClient()
    r = web.post("/accounts/login/", {"username": tenant_created.user.email, "password": tenant_created.password})
    assert r.status_code == 302 and r["Location"] == "/tickets/", "login failed"
    return web


@pytest.fixture
def web_a(tenant_a):
    return _login(tenant_a)


@pytest.fixture
def member_web(tenant_a, make_member):
    def _make(role):
        user = make_member(tenant_a.tenant, role, password="pw-member-123")
        web = WebClient()
        assert web.login(username=user.email, password="pw-member-123")
        web.user = user
        return web

    return _make


def _statuses(tenant, as_tenant):
    with as_tenant(tenant):
        return {s.name: s for s in Status.objects.all()}


@pytest.mark.parametrize("path", [*PAGES, "/tickets/1/", "/assets/1/"])
def test_pages_require_login(db, path):
    r = WebClient().get(path)
    assert r.status_code == 302 and r["Location"].startswith(f"/accounts/login/?next={path}")


def test_login_page_has_labelled_fields_and_rejects_wrong_password(tenant_a):
    web = WebClient()
    page = web.get("/accounts/login/").content.decode()
    assert 'for="id_username"' in page and 'for="id_password"' in page
    r = web.post("/accounts/login/", {"username": tenant_a.user.email, "password": "wrong"})
    assert r.status_code == 200 and "Wrong email or password" in r.content.decode()


@pytest.mark.parametrize("path", PAGES)
def test_empty_pages_say_what_to_do(web_a, path):
    r = web_a.get(path)
    assert r.status_code == 200
    html = r.content.decode()
    assert "Alpha MSP" in html  # the tenant is shown in the header
    if path != "/tickets/new/":
        assert 'class="empty"' in html


def test_ticket_list_shows_own_tickets_and_filters(web_a, tenant_a, tenant_b, make_ticket, as_tenant):
    st = _statuses(tenant_a.tenant, as_tenant)
    printer = make_ticket(tenant_a.tenant, "Printer jammed")
    make_ticket(tenant_a.tenant, "Old thing", status=st["Closed"])
    vpn = make_ticket(tenant_a.tenant, "VPN down", board="Alerts")
    make_ticket(tenant_b.tenant, "Beta secret ticket")
    html = web_a.get("/tickets/").content.decode()
    assert "Printer jammed" in html and "VPN down" in html
    assert "Old thing" not in html  # open tickets by default
    assert "Beta secret ticket" not in html
    assert "Old thing" in web_a.get("/tickets/?state=closed").content.decode()
    assert "Printer jammed" not in web_a.get("/tickets/?state=closed").content.decode()
    found = web_a.get("/tickets/", {"q": "printer"}).content.decode()
    assert "Printer jammed" in found and "VPN down" not in found
    assert "VPN down" in web_a.get("/tickets/", {"q": f"#{vpn.number}"}).content.decode()
    by_board = web_a.get("/tickets/", {"board": vpn.board_id}).content.decode()
    assert "VPN down" in by_board and "Printer jammed" not in by_board
    by_status = web_a.get("/tickets/", {"status": printer.status_id, "state": "all"}).content.decode()
    assert "Printer jammed" in by_status and "Old thing" not in by_status
    none = web_a.get("/tickets/", {"q": "zzz"}).content.decode()
    assert "No tickets match these filters" in none


def test_ticket_list_paginates(web_a, tenant_a, as_tenant):
    from tickets.services import create_ticket

    with as_tenant(tenant_a.tenant):
        board = Board.objects.get(name="General")
        for i in range(30):
            create_ticket(board=board, title=f"bulk {i:02d}")
    first = web_a.get("/tickets/").content.decode()
    assert first.count('data-testid="ticket-row"') == 25 and "Page 1 of 2" in first
    second = web_a.get("/tickets/?page=2").content.decode()
    assert second.count('data-testid="ticket-row"') == 5 and "bulk 00" in second


def test_ticket_detail_shows_fields_notes_and_activity(web_a, tenant_a, make_ticket, make_client, as_tenant):
    from tickets.services import add_note

    client = make_client(tenant_a.tenant, "Acme Dental")
    t = make_ticket(tenant_a.tenant, "Backup failed", client=client, description="Nightly job exit 2")
    with as_tenant(tenant_a.tenant):
        add_note(t, body="Alert fired again", kind="system")
    html = web_a.get(f"/tickets/{t.pk}/").content.decode()
    for text in ("Backup failed", "Nightly job exit 2", "Acme Dental", "Alert fired again", "General", "New",
                 f"#{t.number}", "Created ticket"):
        assert text in html, text
    assert 'for="id_body"' in html and 'for="id_status"' in html  # labelled inputs


def test_add_note_from_the_page(web_a, tenant_a, make_ticket, as_tenant):
    t = make_ticket(tenant_a.tenant)
    r = web_a.post(f"/tickets/{t.pk}/notes/", {"body": "Called the customer", "kind": "public"})
    assert r.status_code == 302 and r["Location"] == f"/tickets/{t.pk}/"
    with as_tenant(tenant_a.tenant):
        note = TicketNote.objects.get(ticket=t)
        assert (note.body, note.kind, note.author_id) == ("Called the customer", "public", tenant_a.user.pk)
        assert TicketActivity.objects.filter(ticket=t, kind=ActivityKind.NOTE, actor=tenant_a.user).exists()
    assert "Called the customer" in web_a.get(f"/tickets/{t.pk}/").content.decode()


def test_add_note_with_htmx_returns_the_fragment(web_a, tenant_a, make_ticket):
    t = make_ticket(tenant_a.tenant)
    r = web_a.post(f"/tickets/{t.pk}/notes/", {"body": "Via htmx", "kind": "internal"}, HTTP_HX_REQUEST="true")
    html = r.content.decode()
    assert r.status_code == 200 and "Via htmx" in html and "Note added." in html
    assert "<html" not in html and 'id="ticket-main"' in html


def test_empty_note_is_refused_with_a_message(web_a, tenant_a, make_ticket, as_tenant):
    t = make_ticket(tenant_a.tenant)
    r = web_a.post(f"/tickets/{t.pk}/notes/", {"body": "   ", "kind": "internal"})
    assert r.status_code == 400 and "A note needs some text." in r.content.decode()
    with as_tenant(tenant_a.tenant):
        assert not TicketNote.objects.filter(ticket=t).exists()


def test_change_status_closes_and_reopens(member_web, tenant_a, make_ticket, as_tenant):
    web = member_web(Role.TECHNICIAN)
    st = _statuses(tenant_a.tenant, as_tenant)
    t = make_ticket(tenant_a.tenant)
    r = web.post(f"/tickets/{t.pk}/update/", {"status": st["Closed"].pk})
    assert r.status_code == 302
    with as_tenant(tenant_a.tenant):
        t.refresh_from_db()
        assert t.status_id == st["Closed"].pk and t.closed_at is not None
        act = TicketActivity.objects.get(ticket=t, kind=ActivityKind.STATUS)
        assert act.actor_id == web.user.pk
    r = web.post(f"/tickets/{t.pk}/update/", {"status": st["In Progress"].pk, "assignee": web.user.pk}, HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and "Ticket updated." in r.content.decode()
    with as_tenant(tenant_a.tenant):
        t.refresh_from_db()
        assert t.closed_at is None and t.assignee_id == web.user.pk


def test_status_of_another_board_is_refused(web_a, tenant_a, make_ticket, as_tenant):
    t = make_ticket(tenant_a.tenant)
    with as_tenant(tenant_a.tenant):
        other = Status.objects.create(name="Alerts only", board=Board.objects.get(name="Alerts"), position=8)
    r = web_a.post(f"/tickets/{t.pk}/update/", {"status": other.pk})
    assert r.status_code == 400
    with as_tenant(tenant_a.tenant):
        assert Ticket.objects.get(pk=t.pk).status_id != other.pk


def test_other_tenants_ticket_and_asset_are_404(web_a, tenant_b, make_ticket, make_client, make_asset, as_tenant):
    theirs = make_ticket(tenant_b.tenant, "Beta only")
    asset = make_asset(tenant_b.tenant, make_client(tenant_b.tenant))
    assert web_a.get(f"/tickets/{theirs.pk}/").status_code == 404
    assert web_a.post(f"/tickets/{theirs.pk}/notes/", {"body": "hi", "kind": "internal"}).status_code == 404
    with as_tenant(tenant_b.tenant):
        closed = Status.objects.get(name="Closed")
    assert web_a.post(f"/tickets/{theirs.pk}/update/", {"status": closed.pk}).status_code == 404
    assert web_a.get(f"/assets/{asset.pk}/").status_code == 404
    with as_tenant(tenant_b.tenant):
        assert not TicketNote.objects.exists()
        assert Ticket.objects.get(pk=theirs.pk).status.name == "New"


def test_new_ticket_form(web_a, tenant_a, make_client, as_tenant):
    client = make_client(tenant_a.tenant, "Acme")
    with as_tenant(tenant_a.tenant):
        board = Board.objects.get(name="Security")
    r = web_a.post("/tickets/new/", {"title": "Laptop stolen", "board": board.pk, "client": client.pk})
    assert r.status_code == 302
    with as_tenant(tenant_a.tenant):
        t = Ticket.objects.get(title="Laptop stolen")
    assert r["Location"] == f"/tickets/{t.pk}/" and t.board_id == board.pk and t.client_id == client.pk
    assert web_a.post("/tickets/new/", {"title": "", "board": board.pk}).status_code == 400


def test_assets_pages(web_a, tenant_a, make_client, make_asset):
    acme = make_client(tenant_a.tenant, "Acme")
    pc = make_asset(tenant_a.tenant, acme, "ACME-PC7", provider="tactical", external_id="agent-7", os="Windows 11",
                    remote_access_url="javascript:alert(1)")
    make_asset(tenant_a.tenant, make_client(tenant_a.tenant, "Globex"), "GLX-1")
    html = web_a.get("/assets/", {"client": acme.pk}).content.decode()
    assert "ACME-PC7" in html and "GLX-1" not in html
    assert "GLX-1" in web_a.get("/assets/", {"q": "glx"}).content.decode()
    detail = web_a.get(f"/assets/{pc.pk}/").content.decode()
    assert "Windows 11" in detail and "agent-7" in detail and "javascript:" not in detail


def test_clients_page_create_by_role(member_web, tenant_a, as_tenant):
    from psa.models import Client

    tech = member_web(Role.TECHNICIAN)
    assert "Add a client" not in tech.get("/clients/").content.decode()
    assert tech.post("/clients/", {"name": "Sneaky"}).status_code == 403
    dispatcher = member_web(Role.DISPATCHER)
    r = dispatcher.post("/clients/", {"name": "Acme Dental", "notes": "Two sites"})
    assert r.status_code == 302
    assert dispatcher.post("/clients/", {"name": "acme dental"}).status_code == 400  # duplicate
    with as_tenant(tenant_a.tenant):
        assert list(Client.objects.values_list("name", flat=True)) == ["Acme Dental"]
    assert "Acme Dental" in tech.get("/clients/").content.decode()


def test_notifications_mark_read_and_all_read(web_a, tenant_a, tenant_b, as_tenant):
    with as_tenant(tenant_a.tenant):
        n1 = Notification.objects.create(user=tenant_a.user, title="Ticket #1 assigned to you", url="/tickets/")
        Notification.objects.create(user=tenant_a.user, title="Bad link", url="javascript:alert(1)")
        Notification.objects.create(user=tenant_a.user, title="Third")
    with as_tenant(tenant_b.tenant):
        theirs = Notification.objects.create(user=tenant_b.user, title="Beta notice")
    html = web_a.get("/notifications/").content.decode()
    assert "Ticket #1 assigned to you" in html and "Beta notice" not in html and "javascript:" not in html
    assert 'data-testid="unread-count">3<' in html
    assert web_a.post(f"/notifications/{n1.pk}/read/").status_code == 302
    assert web_a.post(f"/notifications/{theirs.pk}/read/").status_code == 404
    assert 'data-testid="unread-count">2<' in web_a.get("/notifications/").content.decode()
    assert "Ticket #1" not in web_a.get("/notifications/?show=unread").content.decode()
    web_a.post("/notifications/read-all/")
    with as_tenant(tenant_a.tenant):
        assert not Notification.objects.filter(read_at__isnull=True).exists()
    with as_tenant(tenant_b.tenant):
        assert Notification.objects.get(pk=theirs.pk).read_at is None
    assert "unread-count" not in web_a.get("/notifications/").content.decode()


def test_user_without_tenant_sees_a_clear_403(db):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("loner@nowhere.example", "pw-secret-123")
    web = WebClient()
    assert web.login(username="loner@nowhere.example", password="pw-secret-123")
    r = web.get("/tickets/")
    assert r.status_code == 403 and "not a member" in r.content.decode()


def test_logout(web_a):
    assert web_a.post("/accounts/logout/").status_code == 302
    assert web_a.get("/tickets/").status_code == 302


def test_storm_ticket_page_shows_the_latest_notes_and_offers_all(web_a, tenant_a, make_ticket, as_tenant):
    from tickets.models import TicketNote
    from tickets.views import NOTES_SHOWN

    t = make_ticket(tenant_a.tenant, title="Flapping check")
    with as_tenant(tenant_a.tenant):
        TicketNote.objects.bulk_create(
            [TicketNote(tenant=tenant_a.tenant, ticket=t, kind="system", body=f"Occurrence {i}") for i in range(NOTES_SHOWN + 30)]
        )
    page = web_a.get(f"/tickets/{t.pk}/").content.decode()
    assert page.count('data-testid="note"') == NOTES_SHOWN
    assert "30 earlier notes not shown" in page
    assert f"Occurrence {NOTES_SHOWN + 29}" in page and "Occurrence 29<" not in page
    everything = web_a.get(f"/tickets/{t.pk}/?notes=all").content.decode()
    assert everything.count('data-testid="note"') == NOTES_SHOWN + 30
