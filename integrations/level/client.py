"""Level REST client (facts: ../shared/providers/level.md, with its "Checked again" section).

- Base ``https://api.level.io/v2``; the API key goes raw in ``Authorization`` (no "Bearer").
- Lists page with ``limit`` (1-100) and ``starting_after=<last id>`` over ``{"data": [...],
  "has_more": bool}``; they are streamed one page at a time.
- Groups are always listed whole: sources disagree on what ``parent_id=null`` does (root groups,
  or a 404), so it is never sent.
- Errors (401 ``{"error": "Access denied"}``, 403, 404, 422, 429 with Retry-After, 5xx) are mapped
  by integrations.http.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from integrations.coerce import str_id
from integrations.errors import BadResponse, NotFound, PermissionDenied, ProviderError
from integrations.http import ProviderHTTP, build_client

NAME = "Level"
DEFAULT_BASE_URL = "https://api.level.io/v2"
PAGE_LIMIT = 100
HTML_HINT = "The Level API lives at https://api.level.io/v2; leave the base URL empty to use it."
# Confirmed by Level's own n8n node.
DEVICE_INCLUDES = (
    "include_operating_system", "include_cpus", "include_memory", "include_disks", "include_network_interfaces",
)
# Seen only in other clients: asked for, and dropped when the server refuses them.
OPTIONAL_DEVICE_INCLUDES = ("include_disk_partitions", "include_security")
ALERT_STATUSES = ("active", "resolved")

# An alert id that cannot exist: a well-formed Level global id (base64 of gid://level/Alert/<key>)
# whose key is not a number, so it can never name a real alert, whatever Level's key type.
PROBE_ALERT_ID = base64.urlsafe_b64encode(b"gid://level/Alert/psa-access-probe").decode().rstrip("=")

ACCESS_READ_WRITE = "read_write"
ACCESS_READ_ONLY = "read_only"
ACCESS_UNKNOWN = "unknown"
_NOT_FOUND = object()  # a 404 answer, told apart from an empty body


@dataclass(frozen=True)
class AccessProbe:
    access: str  # ACCESS_*
    reason: str
    status: int | None = None


class ResolveOutcome:
    RESOLVED = "resolved"
    NOT_FOUND = "not_found"
    REFUSED = "refused"  # 422 (e.g. already resolved): the caller checks the alert


def api_base(base_url: str | None) -> str:
    """The API root. A bare host (a proxy's or a simulator's address) means its ``/v2``, as for
    api.level.io: Level serves nothing outside ``/v2``."""
    base = (base_url or DEFAULT_BASE_URL).rstrip("/")
    return base + "/v2" if urlsplit(base).path in ("", "/") else base


def _seg(value: str) -> str:
    """An id as one path segment: ids come from webhook bodies, so "/" or ".." must stay inside it."""
    return quote(str(value), safe="")


class LevelClient:
    def __init__(self, api_key: str, base_url: str | None = None, *, optional_includes: bool = True):
        self.base_url = api_base(base_url)
        self.http: ProviderHTTP = build_client(
            self.base_url, provider_name=NAME, html_hint=HTML_HINT, headers={"Authorization": str(api_key or "")},
        )
        self.optional_includes = optional_includes
        # Set once the server refused the optional include flags (kept for the client's lifetime).
        self.refused_includes = False

    def close(self) -> None:
        self.http.close()

    # -- paging ------------------------------------------------------------------------------
    def pages(self, path: str, params: dict[str, Any] | None = None, *,
              limit: int = PAGE_LIMIT) -> Iterator[list[dict[str, Any]]]:
        """Every page of a list endpoint, one at a time (rows that are not objects are dropped)."""
        limit = max(1, min(int(limit), PAGE_LIMIT))
        base = dict(params or {})
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            query = {**base, "limit": limit}
            if cursor is not None:
                query["starting_after"] = cursor
            data, base = self._get(path, query, base)
            rows, has_more = self._page(data)
            if not rows:
                if has_more:
                    raise BadResponse(f"{NAME} answered {path} with an empty page that claims more follow.")
                return
            yield rows
            if has_more is False:
                return
            if has_more is None and len(rows) < limit:
                return  # no has_more flag: a short page is the last one
            cursor = str_id(rows[-1].get("id"))
            if cursor is None or cursor in seen:
                raise BadResponse(f"{NAME} paging of {path} does not advance (last id {cursor!r} repeats or is missing).")
            seen.add(cursor)

    def _get(self, path: str, query: dict[str, Any], base: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """GET with the optional include flags dropped (once, for the client's lifetime) when Level
        refuses them with 400/422; returns the data and the base parameters to keep using."""
        response = self.http.send("GET", path, params=query)
        optional = [k for k in OPTIONAL_DEVICE_INCLUDES if k in query]
        if response.status_code in (400, 422) and optional:
            self.refused_includes = True
            query = {k: v for k, v in query.items() if k not in optional}
            base = {k: v for k, v in base.items() if k not in optional}
            response = self.http.send("GET", path, params=query)
        self.http.raise_for_status(response, ok_404=True)
        if response.status_code == 404:
            return _NOT_FOUND, base
        return self.http.parse(response), base

    @staticmethod
    def _page(data: Any) -> tuple[list[dict[str, Any]], bool | None]:
        if data is _NOT_FOUND:
            raise NotFound(f"{NAME} has no such list (404): check the base URL ({DEFAULT_BASE_URL}).")
        if isinstance(data, list):  # an unpaged list: everything at once
            return [r for r in data if isinstance(r, dict)], False
        if not isinstance(data, dict):
            if data is None:
                return [], False
            raise BadResponse(f"{NAME} answered a list request with {type(data).__name__}, not a page.")
        rows = data.get("data")
        if rows is None:
            rows = []
        if not isinstance(rows, list):
            raise BadResponse(f"{NAME} answered a list request without a data list.")
        more = data.get("has_more")
        return [r for r in rows if isinstance(r, dict)], (more if isinstance(more, bool) else None)

    def _one(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """One object, or None on 404 (tolerates the object wrapped in ``{"data": {...}}``)."""
        data, _ = self._get(path, dict(params or {}), dict(params or {}))
        if data is _NOT_FOUND or data is None:
            return None
        if not isinstance(data, dict):
            raise BadResponse(f"{NAME} answered {path} with something that is not an object.")
        inner = data.get("data")
        return inner if isinstance(inner, dict) and "id" not in data else data

    # -- groups ------------------------------------------------------------------------------
    def groups(self) -> Iterator[dict[str, Any]]:
        for page in self.pages("/groups"):
            yield from page

    def group(self, group_id: str) -> dict[str, Any] | None:
        return self._one(f"/groups/{_seg(group_id)}")

    # -- devices -----------------------------------------------------------------------------
    def _device_params(self) -> dict[str, str]:
        flags = list(DEVICE_INCLUDES)
        if self.optional_includes and not self.refused_includes:
            flags += OPTIONAL_DEVICE_INCLUDES
        return {flag: "true" for flag in flags}

    def device_pages(self, *, group_id: str | None = None,
                     ancestor_group_id: str | None = None) -> Iterator[list[dict[str, Any]]]:
        """Pages of devices with their inventory (the ``include_*`` flags)."""
        filters: dict[str, str] = {}
        if group_id:
            filters["group_id"] = group_id
        if ancestor_group_id:
            filters["ancestor_group_id"] = ancestor_group_id
        return self.pages("/devices", {**filters, **self._device_params()})

    def devices(self, **filters: str | None) -> Iterator[dict[str, Any]]:
        for page in self.device_pages(**filters):
            yield from page

    def device_groups(self) -> Iterator[tuple[str, str | None]]:
        """(device id, group id) of every device: a listing without inventory, to learn many groups at once."""
        for page in self.pages("/devices"):
            for row in page:
                device_id = str_id(row.get("id"))
                if device_id is not None:
                    yield device_id, str_id(row.get("group_id"))

    def device(self, device_id: str, *, inventory: bool = True) -> dict[str, Any] | None:
        """One device (None when Level has no such device)."""
        return self._one(f"/devices/{_seg(device_id)}", self._device_params() if inventory else None)

    # -- alerts ------------------------------------------------------------------------------
    def alert_pages(self, *, status: str | None = "active",
                    device_id: str | None = None) -> Iterator[list[dict[str, Any]]]:
        params: dict[str, str] = {}
        if status:
            if status not in ALERT_STATUSES:
                raise ValueError(f"status must be one of {ALERT_STATUSES}")
            params["status"] = status
        if device_id:
            params["device_id"] = device_id
        return self.pages("/alerts", params)

    def alerts(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        for page in self.alert_pages(**kwargs):
            yield from page

    def alert(self, alert_id: str) -> dict[str, Any] | None:
        return self._one(f"/alerts/{_seg(alert_id)}")

    def resolve_alert(self, alert_id: str) -> str:
        """``POST /alerts/{id}/resolve``: a ResolveOutcome; 403 raises PermissionDenied (read-only key)."""
        response = self.http.send("POST", f"/alerts/{_seg(alert_id)}/resolve")
        if response.status_code == 404:
            return ResolveOutcome.NOT_FOUND
        if response.status_code == 422:
            return ResolveOutcome.REFUSED
        if response.status_code == 403:
            raise PermissionDenied(
                "Level refused to resolve the alert (403): the API key is read-only (or belongs to another "
                "organization). In Level, Settings > API keys, edit the key and set its access to 'Read and "
                "write', or paste a read-and-write key in this integration."
            )
        self.http.raise_for_status(response)
        return ResolveOutcome.RESOLVED

    # -- read-only or read/write ---------------------------------------------------------------
    def probe_access(self) -> AccessProbe:
        """Read-only or read/write key, without changing anything in Level.

        Level documents keys as read-only or read-and-write (Settings > API keys; no finer scopes)
        but offers no endpoint describing a key. So we send the one write that cannot change
        anything: resolving an alert id that cannot exist. APIs check a key's scope for the method
        before loading the record, so a read-only key is refused (403) and a key allowed to write
        gets as far as the lookup (404, or 422 for an id it will not take). Should Level ever look
        the alert up first, a read-only key would also get 404 here: the first real resolve then
        answers 403 and the provider records that (``LevelProvider.learned_access``). Anything else
        (401 after a good read, 400, 405, 409, 429, 5xx, no answer) proves nothing: "unknown".
        """
        try:
            response = self.http.send("POST", f"/alerts/{PROBE_ALERT_ID}/resolve")
        except ProviderError as exc:
            return AccessProbe(ACCESS_UNKNOWN, f"The write check could not reach Level: {exc}")
        code = response.status_code
        if code == 403:
            return AccessProbe(ACCESS_READ_ONLY, "Level refused a write with this key (403).", code)
        if code in (404, 422):
            return AccessProbe(ACCESS_READ_WRITE, f"Level accepted a write with this key ({code} for an alert "
                                                  "that does not exist).", code)
        if 200 <= code < 300:
            # Level "resolved" an id that cannot exist: writes are allowed (nothing existed to change).
            return AccessProbe(ACCESS_READ_WRITE, f"Level accepted a write with this key ({code}).", code)
        return AccessProbe(ACCESS_UNKNOWN, f"Level answered the write check with {code}; it proves nothing.", code)

