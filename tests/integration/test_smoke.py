def test_ticket_roundtrip(api_a):
    boards = api_a.get("/api/v1/boards/").json()["results"]
    general = next(b for b in boards if b["name"] == "General")
    r = api_a.post("/api/v1/tickets/", {"title": "Printer jammed", "board": general["id"]}, format="json")
    assert r.status_code == 201, r.content
    t = r.json()
    assert t["number"] == 1 and t["is_closed"] is False and t["source"] == "manual"
    r = api_a.get(f"/api/v1/tickets/{t['id']}/")
    assert r.json()["title"] == "Printer jammed"


def test_other_tenant_ticket_is_404(api_a, api_b, tenant_b, make_ticket):
    t = make_ticket(tenant_b.tenant)
    assert api_a.get(f"/api/v1/tickets/{t.pk}/").status_code == 404
    assert api_b.get(f"/api/v1/tickets/{t.pk}/").status_code == 200
