"""NinjaOne public API v2 client (routes and shapes: ../shared/providers/ninjaone.md).

- Auth: ``Authorization: Bearer`` from an :class:`integrations.oauth.OAuthSession` (renewed ahead of
  expiry, and once more when the API answers 401).
- Lists (organizations, locations, devices) page with ``pageSize`` + ``after`` (the last id of the
  previous page) and answer a bare array; a short page ends the walk. Devices are streamed one page
  at a time. ``/v2/alerts`` is one bare array, not paged.
- ``/v2/queries/*`` answer ``{cursor: {name, offset, count, expires}, results}``; the next page is
  asked with ``cursor=<name>``; a cursor expires, so an old cursor answering 4xx restarts the walk.
- Errors are ``{resultCode, errorMessage, incidentId}`` (OAuth: ``{error, error_description}``);
  the text is kept as NinjaOne wrote it (``exc.detail``), e.g. 403 "Different PSA is already
  configured" on ``DELETE /v2/webhook``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from integrations.coerce import dig, int_id, text
from integrations.errors import (
    AuthFailed,
    BadResponse,
    NotFound,
    PermissionDenied,
    ProviderError,
    RateLimited,
    Unavailable,
)
from integrations.http import ProviderHTTP, build_client, parse_retry_after
from integrations.oauth import BearerAuth, OAuthSession

log = logging.getLogger("integrations.ninjaone")
T = TypeVar("T")

NAME = "NinjaOne"
HTML_HINT = "Use the API host of your NinjaOne region (e.g. https://eu.ninjarmm.com), with no path."
PAGE_SIZE = 1000
QUERY_PAGE_SIZE = 1000
MAX_CURSOR_RESTARTS = 3
MAX_PAGES = 100_000  # a safety net against a server that never ends a walk


def error_detail(response: httpx.Response) -> tuple[str, str, str]:
    """(text, resultCode, incidentId) of a NinjaOne error body; OAuth bodies too. Never raises."""
    try:
        data = response.json()
    except ValueError:
        return "", "", ""
    if isinstance(data, str):
        return text(data, 300), "", ""
    if not isinstance(data, dict):
        return "", "", ""
    code = text(data.get("resultCode"), 100)
    incident = text(data.get("incidentId"), 100)
    message = text(data.get("errorMessage") or data.get("error_description") or data.get("message")
                   or data.get("detail") or data.get("error"), 300)
    return message or code, code, incident


def raise_for(response: httpx.Response, http: ProviderHTTP) -> None:
    """Raise the integrations.errors class for a failed answer, with NinjaOne's own words."""
    status = response.status_code
    if status < 300:
        return
    detail, result_code, incident = error_detail(response)
    path = urlsplit(str(response.request.url)).path
    said = f": {detail}" if detail else ""
    exc: ProviderError
    if status == 401:
        exc = AuthFailed(f"NinjaOne rejected the access token for {path} (401{said}).")
    elif status == 403:
        exc = PermissionDenied(f"NinjaOne refused {path} (403){said}")
    elif status == 404:
        exc = NotFound(f"NinjaOne has no {path} (404{said}).")
    elif status == 429:
        exc = RateLimited("NinjaOne is rate limiting requests (429); try again later.",
                          retry_after=parse_retry_after(response.headers.get("retry-after")))
    elif status >= 500:
        exc = Unavailable(f"NinjaOne answered a server error ({status}) for {path}"
                          f"{' (incident ' + incident + ')' if incident else ''}.")
    elif 300 <= status < 400:
        http.raise_for_status(response)  # the framework's redirect explanation
        return
    else:
        exc = ProviderError(f"NinjaOne rejected {path} ({status}{said}).")
    exc.status = status  # type: ignore[attr-defined]
    exc.detail = detail  # type: ignore[attr-defined]
    exc.result_code = result_code  # type: ignore[attr-defined]
    raise exc


def status_of(exc: BaseException) -> int:
    return int(getattr(exc, "status", 0) or 0)


def _rows(data: Any) -> list[dict[str, Any]]:
    """A bare array of objects (tolerating a {"results": [...]} wrapper); non-objects dropped."""
    if isinstance(data, dict):
        data = data.get("results", data.get("data"))
    return [row for row in data if isinstance(row, dict)] if isinstance(data, list) else []


class CursorExpired(Exception):
    pass


class NinjaOneClient:
    def __init__(
        self,
        base_url: str,
        session: OAuthSession | None,
        *,
        page_size: int = PAGE_SIZE,
        query_page_size: int = QUERY_PAGE_SIZE,
        transport: httpx.BaseTransport | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.page_size = page_size
        self.query_page_size = query_page_size
        self.http: ProviderHTTP = build_client(
            self.base_url, provider_name=NAME, html_hint=HTML_HINT, transport=transport,
            auth=BearerAuth(session) if session is not None else None,
        )

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, *, ok_404: bool = False, **kwargs: Any) -> Any:
        response = self.http.send(method, path, **kwargs)
        if ok_404 and response.status_code == 404:
            return None
        raise_for(response, self.http)
        return self.http.parse(response)

    # -- paging --------------------------------------------------------------------------------
    def pages(self, path: str, params: Mapping[str, Any] | None = None,
              page_size: int | None = None) -> Iterator[list[dict[str, Any]]]:
        """Pages of a ``pageSize`` + ``after`` list, one in memory at a time.

        A short page ends the walk (NinjaOne's rule), with one tolerance: when the first page is shorter
        than asked, it may be a server capping the page size (a limit no source documents), so one more
        page is asked; an empty one ends the walk, a page as long as the first continues it."""
        size = page_size or self.page_size
        expected, size_known = size, False
        after: int | None = None
        for _ in range(MAX_PAGES):
            query = {**(params or {}), "pageSize": size}
            if after is not None:
                query["after"] = after
            data = self.request("GET", path, params=query)
            if not isinstance(data, list) and not isinstance(data, dict):
                raise BadResponse(f"NinjaOne answered {path} with an unexpected shape.")
            rows = _rows(data)
            if rows:
                yield rows
            raw_count = len(data) if isinstance(data, list) else len(rows)
            if raw_count == 0:
                return
            if raw_count < expected:
                if size_known:
                    return
                expected = raw_count  # the end, or the server's page size: the next page tells
            size_known = True
            last = int_id(rows[-1].get("id")) if rows else None
            if last is None or last == after:
                # A page whose last id is missing or did not move: going on would loop.
                raise BadResponse(f"NinjaOne's paging of {path} did not advance past id {after}.")
            after = last
        raise BadResponse(f"NinjaOne's paging of {path} did not end after {MAX_PAGES} pages.")

    def all(self, path: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return [row for page in self.pages(path, params) for row in page]

    # -- organizations ---------------------------------------------------------------------------
    def organizations(self) -> list[dict[str, Any]]:
        return self.all("/v2/organizations")

    def organizations_detailed(self) -> list[dict[str, Any]]:
        """Organizations with their ``locations`` (and policies, settings); the plain list (locations then
        read from ``/v2/locations``) from a server without the detailed route (404)."""
        try:
            return self.all("/v2/organizations-detailed")
        except NotFound:
            return self.organizations()

    def organization(self, org_id: int) -> dict[str, Any] | None:
        data = self.request("GET", f"/v2/organization/{int(org_id)}", ok_404=True)
        return data if isinstance(data, dict) else None

    def locations(self) -> list[dict[str, Any]]:
        try:
            return self.all("/v2/locations")
        except NotFound:  # a server without the route: organizations without locations
            return []

    def organization_locations(self, org_id: int) -> list[dict[str, Any]]:
        return _rows(self.request("GET", f"/v2/organization/{int(org_id)}/locations"))

    # -- devices ---------------------------------------------------------------------------------
    def device_pages(self, *, detailed: bool = True, df: str | None = None) -> Iterator[list[dict[str, Any]]]:
        """Pages of devices; ``/v2/devices`` when the server has no detailed route (a 404 on its first page)."""
        params = {"df": df} if df else None
        if not detailed:
            yield from self.pages("/v2/devices", params)
            return
        started = False
        try:
            for page in self.pages("/v2/devices-detailed", params):
                started = True
                yield page
        except NotFound:
            if started:
                raise
            yield from self.pages("/v2/devices", params)

    def device(self, device_id: int) -> dict[str, Any] | None:
        data = self.request("GET", f"/v2/device/{int(device_id)}", ok_404=True)
        return data if isinstance(data, dict) else None

    def last_logged_on_user(self, device_id: int) -> dict[str, Any] | None:
        data = self.request("GET", f"/v2/device/{int(device_id)}/last-logged-on-user", ok_404=True)
        return data if isinstance(data, dict) else None

    def dashboard_url(self, device_id: int) -> dict[str, Any]:
        """``{url, expires}``: a console link that expires, fetched on demand and never stored."""
        data = self.request("GET", f"/v2/device/{int(device_id)}/dashboard-url", params={"redirect": "false"})
        if isinstance(data, str):  # a bare URL string, should a server answer one
            data = {"url": data}
        if not isinstance(data, dict) or not text(data.get("url")).startswith(("https://", "http://")):
            raise BadResponse("NinjaOne answered the dashboard link request without a URL.")
        return data

    # -- alerts ------------------------------------------------------------------------------------
    def alerts(self, *, source_type: str | None = None, df: str | None = None) -> list[dict[str, Any]]:
        """Every active alert (one bare array; NinjaOne does not page it)."""
        params = {k: v for k, v in (("sourceType", source_type), ("df", df)) if v}
        data = self.request("GET", "/v2/alerts", params=params or None)
        if not isinstance(data, (list, dict)):
            raise BadResponse("NinjaOne answered /v2/alerts with an unexpected shape.")
        return _rows(data)

    def reset_alert(self, uid: str, *, method: str = "delete", data: Mapping[str, Any] | None = None) -> bool:
        """Reset an alert: True when done, False when NinjaOne no longer has it (404: already gone).

        ``DELETE /v2/alert/{uid}`` by default; ``POST /v2/alert/{uid}/reset`` (with optional custom
        activity data) when asked, or when DELETE answers 405. Any 2xx is done.
        """
        path = f"/v2/alert/{quote(str(uid), safe='')}"
        if method == "delete":
            response = self.http.send("DELETE", path)
            if response.status_code != 405:
                return self._reset_outcome(response)
        response = self.http.send("POST", f"{path}/reset", json=dict(data or {}), idempotent=True)
        return self._reset_outcome(response)

    def _reset_outcome(self, response: httpx.Response) -> bool:
        if response.status_code == 404:
            return False
        raise_for(response, self.http)
        return True

    # -- queries (cursor walks) --------------------------------------------------------------------
    def query_pages(self, name: str, params: Mapping[str, Any] | None = None) -> Iterator[list[dict[str, Any]]]:
        """Pages of ``/v2/queries/{name}``; raises CursorExpired when an old cursor answers 4xx."""
        path = f"/v2/queries/{name}"
        size = self.query_page_size
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            query = {**(params or {}), "pageSize": size}
            if cursor:
                query["cursor"] = cursor
            try:
                data = self.request("GET", path, params=query)
            except ProviderError as exc:
                status = status_of(exc)
                if cursor and 400 <= status < 500 and status not in (401, 403, 429):
                    raise CursorExpired(f"{path}: cursor {cursor} answered {status}") from exc
                raise
            if isinstance(data, list):  # a server answering a bare array has no further pages
                yield _rows(data)
                return
            if not isinstance(data, dict):
                raise BadResponse(f"NinjaOne answered {path} with an unexpected shape.")
            results = data.get("results")
            results = results if isinstance(results, list) else []
            yield [row for row in results if isinstance(row, dict)]
            cursor = text(dig(data, "cursor.name")) or None
            if not cursor or len(results) < size:
                return
        raise BadResponse(f"NinjaOne's cursor walk of {path} did not end after {MAX_PAGES} pages.")

    def query(self, name: str, params: Mapping[str, Any] | None = None,
              row: Callable[[dict[str, Any]], T | None] | None = None) -> list[T]:
        """Every row of a query (``row`` maps each one, None drops it), restarting on an expired cursor.

        Rows of an abandoned walk are dropped, so a restart never counts a row twice.
        """
        for attempt in range(MAX_CURSOR_RESTARTS + 1):
            items: list[Any] = []
            try:
                for page in self.query_pages(name, params):
                    for item in page:
                        mapped = row(item) if row is not None else item
                        if mapped is not None:
                            items.append(mapped)
                return items
            except CursorExpired as exc:
                log.info("ninjaone query walk restarts (%s/%s): %s", attempt + 1, MAX_CURSOR_RESTARTS, exc)
        raise ProviderError(f"NinjaOne's /v2/queries/{name} cursor kept expiring ({MAX_CURSOR_RESTARTS} restarts).")

    # -- webhook -----------------------------------------------------------------------------------
    def put_webhook(self, configuration: Mapping[str, Any]) -> None:
        """Register (or replace) the app's one API webhook; NinjaOne's refusals keep its own text."""
        self.request("PUT", "/v2/webhook", json=dict(configuration))

    def delete_webhook(self) -> bool:
        """False when no webhook was registered (404)."""
        response = self.http.send("DELETE", "/v2/webhook")
        if response.status_code == 404:
            return False
        raise_for(response, self.http)
        return True

    # -- probes ------------------------------------------------------------------------------------
    def probe(self) -> list[dict[str, Any]]:
        """One small authenticated read (organizations, page of 1): the connection test's API call."""
        return _rows(self.request("GET", "/v2/organizations", params={"pageSize": 1}))
