"""Huntress REST client (routes and shapes: ../shared/providers/huntress.md, section 4).

- HTTP Basic ``api_key:api_secret``; base ``https://api.huntress.io/v1`` (overridable).
- Huntress allows 60 requests per minute per account on a sliding window. Every request sent,
  retries included, first takes a slot of one budget shared by all workers and processes
  (integrations.ratelimit, keyed per integration); a 429 pushes that budget back by its
  Retry-After and the request is sent again later: a 429 means waiting, never a failed job
  (unless the wait would exceed ``max_wait``).
- Lists page with ``limit`` (at most 500) and the ``page_token`` Huntress returns in
  ``pagination`` (opaque: never built here); a missing, null or empty token ends the list.
- Singles are wrapped (``{"account": {...}}``).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import httpx
from django.conf import settings

from integrations import ratelimit
from integrations.coerce import as_dict, iso_datetime, str_id, text
from integrations.errors import BadResponse, NotFound
from integrations.http import GuardedTransport, ProviderHTTP, build_client

NAME = "Huntress"
DEFAULT_BASE_URL = "https://api.huntress.io/v1"
MAX_PAGE = 500
# Huntress: 60 per sliding minute per account. Our window is a second longer than theirs, so
# network jitter between our stamp and their arrival time cannot put 61 in their minute.
RATE_LIMIT = 60
RATE_WINDOW = 61.0
# How long one request may wait for the budget (429s included) before the job gives up.
MAX_WAIT = 300.0
# Polls re-read this much before the watermark: reports committed late, clock skew.
DEFAULT_OVERLAP = dt.timedelta(minutes=10)
HTML_HINT = "Use the Huntress API address (https://api.huntress.io/v1), not the portal."


def api_base(base_url: str | None) -> str:
    """The API root. A bare host (a proxy's or a simulator's address) means its ``/v1``, as for
    api.huntress.io: Huntress serves its API under ``/v1`` only."""
    base = (base_url or DEFAULT_BASE_URL).rstrip("/")
    return base + "/v1" if urlsplit(base).path in ("", "/") else base


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


class ResolveAnswer(NamedTuple):
    """Huntress's answer to a resolution request: 201, or one of the refusals it documents."""

    status_code: int
    incident_report: dict[str, Any] | None
    detail: str


def next_page_token(pagination: Any) -> str | None:
    """The token of the next page, or None on the last page (token missing, null or empty;
    ``pagination`` itself {} or null). Falls back to the token inside ``next_page_url``."""
    page = as_dict(pagination)
    token = str_id(page.get("next_page_token"), limit=4096)
    if token:
        return token
    url = page.get("next_page_url")
    if isinstance(url, str) and url:
        values = parse_qs(urlsplit(url).query).get("page_token")
        if values and values[0]:
            return values[0]
    return None


def _error_detail(response: httpx.Response) -> str:
    """A short readable reason from an error body (its format is not documented)."""
    try:
        data = response.json()
    except ValueError:
        return ""
    if isinstance(data, str):
        return text(data, 300)
    if isinstance(data, dict):
        for name in ("error", "message", "detail", "errors"):
            value = data.get(name)
            if isinstance(value, list):
                value = "; ".join(text(v) for v in value if text(v))
            if text(value):
                return text(value, 300)
    return ""


class HuntressClient:
    def __init__(
        self,
        base_url: str | None,
        credentials: dict[str, Any],
        *,
        rate_key: str,
        rate_limit: int | None = None,
        rate_window: float | None = None,
        max_wait: float | None = None,
        wait_on_429: bool = True,
    ):
        self.base_url = api_base(base_url)
        # False for an admin's connection test: a 429 is reported ("rate limited") rather than waited out.
        self.wait_on_429 = wait_on_429
        self.max_wait = float(max_wait if max_wait is not None else _setting("PSA_HUNTRESS_MAX_WAIT", MAX_WAIT))
        self.limiter = ratelimit.Limiter(
            key=rate_key,
            limit=int(rate_limit or _setting("PSA_HUNTRESS_RATE_LIMIT", RATE_LIMIT)),
            window=float(rate_window or _setting("PSA_HUNTRESS_RATE_WINDOW", RATE_WINDOW)),
            timeout=self.max_wait,
        )
        transport = ratelimit.RateLimitedTransport(
            GuardedTransport(retries=int(_setting("PSA_HTTP_RETRIES", 3))), self.limiter
        )
        self.http: ProviderHTTP = build_client(
            self.base_url,
            provider_name=NAME,
            auth=httpx.BasicAuth(str(credentials.get("api_key") or ""), str(credentials.get("api_secret") or "")),
            html_hint=HTML_HINT,
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    # -- requests ------------------------------------------------------------------------------
    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send until the answer is not 429, for at most ``max_wait`` seconds (the limiter does the
        waiting: the 429 pushed the shared budget back by its Retry-After)."""
        deadline = time.monotonic() + self.max_wait
        while True:
            response = self.http.send(method, path, **kwargs)
            if response.status_code != 429 or not self.wait_on_429 or time.monotonic() >= deadline:
                return response

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        self.http.raise_for_status(response)
        return self.http.parse(response)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def _single(self, path: str, wrapper: str) -> dict[str, Any]:
        data = self.get(path)
        if isinstance(data, dict) and isinstance(data.get(wrapper), dict):
            return data[wrapper]
        if isinstance(data, dict) and "id" in data:  # tolerate an unwrapped answer
            return data
        raise BadResponse(f"Huntress answered {path} without {wrapper!r}.")

    def pages(self, path: str, plural: str, params: dict[str, Any] | None = None,
              *, page_size: int = MAX_PAGE) -> Iterator[list[dict[str, Any]]]:
        """Pages (lists of objects) of a paged collection, fetched one at a time."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        query["limit"] = max(1, min(int(page_size), MAX_PAGE))
        seen: set[str] = set()
        while True:
            data = self.get(path, **query)
            if not isinstance(data, dict) or not isinstance(data.get(plural), list):
                raise BadResponse(f"Huntress answered {path} without a list of {plural}.")
            rows = [row for row in data[plural] if isinstance(row, dict)]
            if rows:
                yield rows
            token = next_page_token(data.get("pagination"))
            if not token or not data[plural]:
                return
            if token in seen:  # a server bug must not become an endless loop
                raise BadResponse(f"Huntress repeated a page token while listing {plural}.")
            seen.add(token)
            query["page_token"] = token

    def items(self, path: str, plural: str, params: dict[str, Any] | None = None,
              *, page_size: int = MAX_PAGE) -> Iterator[dict[str, Any]]:
        for page in self.pages(path, plural, params, page_size=page_size):
            yield from page

    # -- account and organizations ---------------------------------------------------------------
    def account(self) -> dict[str, Any]:
        return self._single("/account", "account")

    def organizations(self, *, page_size: int = MAX_PAGE) -> Iterator[dict[str, Any]]:
        return self.items("/organizations", "organizations", page_size=page_size)

    def organization(self, organization_id: int | str) -> dict[str, Any]:
        return self._single(f"/organizations/{organization_id}", "organization")

    # -- agents ----------------------------------------------------------------------------------
    def agents(self, *, organization_id: int | str | None = None, page_size: int = MAX_PAGE) -> Iterator[dict[str, Any]]:
        return self.items("/agents", "agents", {"organization_id": organization_id}, page_size=page_size)

    def agent(self, agent_id: int | str) -> dict[str, Any] | None:
        """One agent; None when Huntress no longer has it (404: uninstalled, or no access)."""
        try:
            return self._single(f"/agents/{agent_id}", "agent")
        except NotFound:
            return None

    # -- incident reports ------------------------------------------------------------------------
    def incident_report_pages(
        self,
        since: dt.datetime | None = None,
        *,
        overlap: dt.timedelta = DEFAULT_OVERLAP,
        page_size: int = MAX_PAGE,
        **filters: Any,
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of reports, most recently updated first, down to ``since - overlap`` (everything
        when ``since`` is None). Huntress has no updated-since filter: the sort is the filter."""
        params = {"sort_field": "updated_at", "sort_direction": "desc", **filters}
        pages = self.pages("/incident_reports", "incident_reports", params, page_size=page_size)
        return _down_to(pages, since - overlap if since is not None else None)

    def incident_report(self, report_id: int | str) -> dict[str, Any]:
        return self._single(f"/incident_reports/{report_id}", "incident_report")

    def remediations(self, report_id: int | str) -> Iterator[dict[str, Any]]:
        return self.items(f"/incident_reports/{report_id}/remediations", "remediations")

    def resolve_incident_report(self, report_id: int | str) -> ResolveAnswer:
        """POST .../resolution: 201 with the report, or Huntress's documented refusal (403 read-only
        key, 404, 409 remediations not all approved, 422 status not "sent"). Others raise."""
        response = self._send("POST", f"/incident_reports/{report_id}/resolution")
        if response.status_code in (403, 404, 409, 422):
            return ResolveAnswer(response.status_code, None, _error_detail(response))
        self.http.raise_for_status(response)
        data = self.http.parse(response)
        report = data.get("incident_report") if isinstance(data, dict) else None
        return ResolveAnswer(response.status_code, report if isinstance(report, dict) else None, "")

    # -- escalations -----------------------------------------------------------------------------
    def escalation_pages(self, since: dt.datetime | None = None, *, overlap: dt.timedelta = DEFAULT_OVERLAP,
                         page_size: int = MAX_PAGE) -> Iterator[list[dict[str, Any]]]:
        params = {"sort_field": "updated_at", "sort_direction": "desc"}
        pages = self.pages("/escalations", "escalations", params, page_size=page_size)
        return _down_to(pages, since - overlap if since is not None else None)

    def escalation(self, escalation_id: int | str) -> dict[str, Any]:
        return self._single(f"/escalations/{escalation_id}", "escalation")


def _down_to(pages: Iterator[list[dict[str, Any]]], cutoff: dt.datetime | None) -> Iterator[list[dict[str, Any]]]:
    """The pages of a list sorted by ``updated_at`` descending, cut at the first row older than
    ``cutoff`` (no further page is fetched). Rows without a readable ``updated_at`` are kept."""
    for page in pages:
        if cutoff is None:
            yield page
            continue
        kept = []
        for row in page:
            updated = iso_datetime(row.get("updated_at"))
            if updated is not None and updated < cutoff:
                if kept:
                    yield kept
                return
            kept.append(row)
        if kept:
            yield kept
