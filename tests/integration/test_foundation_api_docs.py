"""OpenAPI schema and interactive docs."""

from django.test import Client as WebClient


def test_schema_lists_the_public_endpoints(api_a):
    r = api_a.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert r.status_code == 200
    schema = r.json()
    for path in ("/api/v1/tickets/", "/api/v1/tickets/{id}/", "/api/v1/tickets/{ticket_pk}/notes/", "/api/v1/clients/",
                 "/api/v1/assets/", "/api/v1/boards/", "/api/v1/statuses/", "/api/v1/priorities/", "/api/v1/categories/"):
        assert path in schema["paths"], path
    assert {"tokenAuth", "cookieAuth"} <= set(schema["components"]["securitySchemes"])
    params = {p["name"] for p in schema["paths"]["/api/v1/tickets/"]["get"]["parameters"]}
    assert {"board", "status", "client", "asset", "priority", "assignee", "is_closed", "source", "q", "page"} <= params


def test_interactive_docs_page(db):
    r = WebClient().get("/api/docs/")
    assert r.status_code == 200 and b"swagger" in r.content.lower()


def test_interactive_docs_are_served_locally_not_from_a_cdn(db):
    html = WebClient().get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn.jsdelivr" not in html and "unpkg" not in html
    assert WebClient().get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js").status_code == 200
