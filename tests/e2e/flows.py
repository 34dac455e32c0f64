"""Small steps the e2e tests share, spoken through the public REST API only (API.md)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import httpx

from .harness import wait_until

WAIT = 45.0  # seconds: bounds a hung pipeline, not a speed claim


def ok(response: httpx.Response, *codes: int) -> Any:
    expected = codes or (200,)
    assert response.status_code in expected, (
        f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text[:500]}"
    )
    return response.json() if response.content else None


def all_pages(api: httpx.Client, path: str, params: dict | None = None) -> Iterator[dict]:
    url: str | None = path
    query = dict(params or {})
    while url:
        page = ok(api.get(url, params=query))
        yield from page["results"]
        url, query = page.get("next"), None


def create_client(api: httpx.Client, name: str) -> dict:
    return ok(api.post("clients/", json={"name": name}), 201)


def closed_status(api: httpx.Client) -> dict:
    return next(s for s in all_pages(api, "statuses/") if s["is_closed"])


def alert(api: httpx.Client, provider: str, external_id: str) -> dict | None:
    return next(
        (a for a in all_pages(api, "alerts/", {"provider": provider}) if a["external_id"] == external_id),
        None,
    )


def wait_alert(api: httpx.Client, provider: str, external_id: str, what: str = "", **expect: Any) -> dict:
    """Wait until the alert exists and every ``field=value`` in ``expect`` holds."""

    def check():
        a = alert(api, provider, external_id)
        return a if a and all(a.get(k) == v for k, v in expect.items()) else None

    return wait_until(check, WAIT, 0.25, what or f"alert {external_id} with {expect}")


def wait_alert_ticket(api: httpx.Client, provider: str, external_id: str) -> dict:
    """The ticket the pipeline made (or reused) for this alert."""
    a = wait_until(
        lambda: (x := alert(api, provider, external_id)) and x.get("ticket") and x,
        WAIT,
        0.25,
        f"a ticket for alert {external_id}",
    )
    return ticket(api, a["ticket"])


def ticket(api: httpx.Client, ticket_id: int) -> dict:
    return ok(api.get(f"tickets/{ticket_id}/"))


def wait_ticket(api: httpx.Client, ticket_id: int, what: str, **expect: Any) -> dict:
    def check():
        t = ticket(api, ticket_id)
        return t if all(t.get(k) == v for k, v in expect.items()) else None

    return wait_until(check, WAIT, 0.25, what)


def notes(api: httpx.Client, ticket_id: int) -> list[dict]:
    return list(all_pages(api, f"tickets/{ticket_id}/notes/"))


def alert_tickets(api: httpx.Client) -> list[dict]:
    return list(all_pages(api, "tickets/", {"source": "alert"}))


def events(api: httpx.Client, provider: str) -> list[dict]:
    return list(all_pages(api, f"integrations/{provider}/events/"))


def wait_events_settled(api: httpx.Client, provider: str, expected: int, timeout: float = WAIT) -> list[dict]:
    """Wait until at least ``expected`` events are logged and none is still ``accepted``."""

    def check():
        evs = events(api, provider)
        return evs if len(evs) >= expected and all(e["status"] != "accepted" for e in evs) else None

    return wait_until(check, timeout, 0.5, f"{expected} {provider} events processed")


def map_org(api: httpx.Client, provider: str, external_id: str, client_id: int | None) -> dict:
    """Wait for the external organization to be known, then pair it with our client."""
    org = wait_until(
        lambda: next(
            (
                o
                for o in all_pages(api, f"integrations/{provider}/organizations/")
                if o["external_id"] == external_id
            ),
            None,
        ),
        WAIT,
        0.25,
        f"{provider} organization {external_id} to be discovered",
    )
    return ok(api.patch(f"integrations/{provider}/organizations/{org['id']}/", json={"client": client_id}))


class GenericWebhook:
    """The generic provider as an admin sets it up: enable, read the webhook card, post to it."""

    def __init__(self, api: httpx.Client):
        self.api = api
        ok(api.put("integrations/generic/", json={}), 200, 201)
        card = ok(api.get("integrations/generic/webhook/"))
        self.url: str = card["url"]
        self.header_name: str = card["header_name"]
        self.secret: str = card["secret"]
        self.http = httpx.Client(timeout=30)

    def close(self) -> None:
        self.http.close()

    def post_raw(self, body: bytes, *, secret: str | None = None, url: str | None = None) -> httpx.Response:
        headers = {
            "Content-Type": "application/json",
            self.header_name: self.secret if secret is None else secret,
        }
        return self.http.post(url or self.url, content=body, headers=headers)

    def send(
        self,
        event: str,
        alert_id: str,
        condition: str = "disk-full",
        *,
        org: tuple[str, str] = ("org-1", "Acme Org"),
        device: tuple[str, str, str] = ("dev-1", "web-01", "SN-0001"),
        severity: str = "high",
        title: str | None = None,
    ) -> httpx.Response:
        body = {
            "event": event,
            "alert_id": alert_id,
            "condition": condition,
            "severity": severity,
            "title": title or f"{condition} on {device[1]}",
            "message": f"{condition} detected on {device[1]}",
            "organization": {"id": org[0], "name": org[1]},
            "device": {"id": device[0], "hostname": device[1], "serial_number": device[2]},
            "occurred_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        }
        return self.post_raw(json.dumps(body).encode())
