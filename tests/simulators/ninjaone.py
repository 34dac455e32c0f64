"""A NinjaOne API simulator on loopback (one instance = one region), from ../shared/providers/ninjaone.md.

OAuth: ``POST /ws/oauth/token`` (and ``/oauth/token``) with client_credentials, authorization_code
(PKCE S256, redirect URI check) and refresh_token (rotating refresh tokens, a dead one answers 400
``{"error": "invalid_token"}``); ``GET /ws/oauth/authorize`` (consent is automatic: 302 to the
redirect URI with ``code`` and ``state``); ``POST /ws/oauth/revoke``. Clients the instance does not
know answer 401 ``invalid_client`` (a "region" that refuses credentials of another region). Access
tokens expire after ``token_lifetime`` seconds (``expire_access_tokens()`` ends them at once).

API (``/v2/...`` and ``/api/v2/...``): organizations (brief, detailed with locations, one),
locations, devices and devices-detailed paged by ``pageSize`` + ``after`` (bare arrays; explicit
devices plus ``generate_devices(n)``, generated on demand so 100,000 cost nothing until asked),
device detail, last-logged-on-user, dashboard-url, alerts (bare array), reset (DELETE / POST),
``/v2/queries/{software,os-patches,os-patch-installs}`` with expiring cursors, ``PUT``/``DELETE
/v2/webhook`` (403 texts as NinjaOne writes them). Errors are ``{resultCode, errorMessage,
incidentId}``. Knobs: ``fail_next``, ``rate_limit_next`` (429 + Retry-After), ``html_mode``,
``delay``, ``other_psa``, ``webhook_admin``, ``missing_scopes``, ``expire_tokens_after_pages``...

``activity()`` builds a webhook activity as NinjaOne would POST it; ``render_webhook()`` adds the
registered URL and custom headers; ``deliver()`` POSTs it.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import heapq
import itertools
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from .base import Reply, Request, SimulatorServer

SCOPES = frozenset({"monitoring", "management", "control", "offline_access"})
FORBIDDEN_ADMIN = "Only system administrators can configure webhooks"
DIFFERENT_PSA = "Different PSA is already configured"
_DF_EQ = re.compile(r"^\s*org\s*=\s*(\d+)\s*$", re.IGNORECASE)
_DF_IN = re.compile(r"^\s*org\s+in\s*\(([\d\s,]+)\)\s*$", re.IGNORECASE)
GENERATED_START = 1_000_000


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"resultCode": code, "errorMessage": message, "incidentId": uuid.uuid4().hex[:12]},
                 headers=headers or {})


def oauth_error(status: int, code: str, description: str = "") -> Reply:
    body = {"error": code}
    if description:
        body["error_description"] = description
    return Reply(status, body)


@dataclass
class SimApp:
    client_id: str
    client_secret: str
    kind: str = "api"  # "api" (client_credentials) or "web" (authorization code + refresh)
    scopes: frozenset[str] = frozenset({"monitoring", "management", "control"})
    redirect_uris: tuple[str, ...] = ()


@dataclass
class Generated:
    count: int
    org_ids: list[int]
    start: int = GENERATED_START
    software_per_device: int = 0
    patches_per_device: int = 0
    version: int = 0
    changed_every: int = 0  # after touch(): every n-th device carries the new version

    def ids_after(self, after: int, orgs: set[int] | None) -> Iterator[int]:
        first = max(self.start, after + 1)
        end = self.start + self.count
        if orgs is None:
            yield from range(first, end)
            return
        n = len(self.org_ids)
        wanted = sorted(i for i, org in enumerate(self.org_ids) if org in orgs)
        if not wanted:
            return
        base = first - (first - self.start) % n
        while base < end:
            for i in wanted:
                d = base + i
                if first <= d < end:
                    yield d
            base += n

    def org_of(self, device_id: int) -> int:
        return self.org_ids[(device_id - self.start) % len(self.org_ids)]


class NinjaOneSimulator(SimulatorServer):
    def __init__(self, region: str = "app", *, token_lifetime: float = 3600.0, cursor_ttl: float = 300.0,
                 max_page_size: int = 2000) -> None:
        super().__init__()
        self.region = region
        self.token_lifetime = token_lifetime
        self.cursor_ttl = cursor_ttl
        self.max_page_size = max_page_size
        self.clock = time.time
        self.apps: dict[str, SimApp] = {}
        self.access_tokens: dict[str, dict[str, Any]] = {}
        self.refresh_tokens: dict[str, dict[str, Any]] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.token_log: list[dict[str, Any]] = []  # every token request: grant, client, outcome
        self.rotate_refresh_tokens = True
        self.refresh_error = "invalid_token"
        # The EU server answers 400 to offline_access with client_credentials (squaredup PR #51).
        self.refuse_offline_access_with_client_credentials = region == "eu"
        self.grant_fewer_scopes: set[str] = set()  # scopes left out of issued tokens (then 403 on use)
        self.consent_denied = False
        self.orgs: dict[int, dict[str, Any]] = {}
        self.locations: dict[int, dict[str, Any]] = {}
        self.devices: dict[int, dict[str, Any]] = {}
        self._device_ids: list[int] = []
        self.generated: Generated | None = None
        self.software: dict[int, list[dict[str, Any]]] = {}
        self.os_patches: dict[int, list[dict[str, Any]]] = {}
        self.patch_installs: dict[int, list[dict[str, Any]]] = {}
        self.alerts: dict[str, dict[str, Any]] = {}
        self.alerts_include_device = False
        self.resets: list[tuple[str, str, Any]] = []
        self.reset_status_code = "RESET_BY_PSA_TICKET_CALLBACK"
        self.outbox: list[dict[str, Any]] = []  # activities NinjaOne would send (e.g. after a reset)
        self.webhook: dict[str, Any] | None = None
        self.other_psa = False
        self.webhook_admin = True
        self.cursors: dict[str, dict[str, Any]] = {}
        self.expire_cursors_after_pages = 0  # >0: a walk's cursor dies after that many pages, once
        self.omit_final_cursor = False
        # >0: every access token expires once that many device pages have been served (mid-sync expiry).
        self.expire_tokens_after_pages = 0
        self.device_pages_served = 0
        self._ids = itertools.count(1)
        self._activity_ids = itertools.count(881230)
        self._data_lock = threading.RLock()
        self._routes_setup()

    # -- OAuth apps and tokens -----------------------------------------------------------------------
    def add_app(self, client_id: str | None = None, client_secret: str | None = None, *, kind: str = "api",
                scopes: set[str] | None = None, redirect_uris: tuple[str, ...] = ()) -> SimApp:
        app = SimApp(client_id or secrets.token_urlsafe(16), client_secret or secrets.token_urlsafe(32), kind,
                     frozenset(scopes) if scopes is not None else
                     frozenset({"monitoring", "management", "control"} | ({"offline_access"} if kind == "web"
                                                                             else set())),
                     redirect_uris)
        self.apps[app.client_id] = app
        return app

    def expire_access_tokens(self) -> None:
        with self._data_lock:
            for token in self.access_tokens.values():
                token["expires_at"] = self.clock() - 1

    def revoke_refresh_tokens(self) -> None:
        with self._data_lock:
            for token in self.refresh_tokens.values():
                token["alive"] = False

    def grants(self, grant: str | None = None, outcome: str | None = "ok") -> list[dict[str, Any]]:
        with self._data_lock:
            return [t for t in self.token_log if (grant is None or t["grant"] == grant)
                    and (outcome is None or t["outcome"] == outcome)]

    def _issue(self, app: SimApp, scopes: set[str], *, refresh: bool) -> dict[str, Any]:
        granted = set(scopes) - self.grant_fewer_scopes
        access = "at-" + secrets.token_urlsafe(24)
        self.access_tokens[access] = {"client_id": app.client_id, "scopes": granted,
                                      "expires_at": self.clock() + self.token_lifetime}
        answer: dict[str, Any] = {"access_token": access, "token_type": "Bearer",
                                  "expires_in": int(self.token_lifetime), "scope": " ".join(sorted(granted))}
        if refresh:
            rt = "rt-" + secrets.token_urlsafe(24)
            self.refresh_tokens[rt] = {"client_id": app.client_id, "scopes": set(scopes), "alive": True}
            answer["refresh_token"] = rt
        return answer

    def _client_auth(self, req: Request, form: dict[str, str]) -> tuple[str, str]:
        authz = req.headers.get("authorization", "")
        if authz.lower().startswith("basic "):
            try:
                cid, _, secret = base64.b64decode(authz[6:]).decode().partition(":")
            except ValueError:
                return "", ""
            from urllib.parse import unquote_plus

            return unquote_plus(cid), unquote_plus(secret)
        return form.get("client_id", ""), form.get("client_secret", "")

    def _token(self, req: Request) -> Reply:
        form = {k: v[-1] for k, v in parse_qs(req.raw.decode("utf-8", "replace")).items()}
        grant = form.get("grant_type", "")
        client_id, secret = self._client_auth(req, form)
        entry = {"grant": grant, "client_id": client_id, "outcome": "ok", "form": {
            k: v for k, v in form.items() if k not in ("client_secret", "refresh_token", "code")}}
        with self._data_lock:
            reply = self._token_answer(grant, client_id, secret, form)
            if reply.status >= 400:
                entry["outcome"] = reply.body.get("error", str(reply.status)) if isinstance(reply.body, dict) else "?"
            self.token_log.append(entry)
        return reply

    def _token_answer(self, grant: str, client_id: str, secret: str, form: dict[str, str]) -> Reply:
        app = self.apps.get(client_id)
        if app is None or not secrets.compare_digest(app.client_secret, secret):
            return oauth_error(401, "invalid_client", "Bad client credentials")
        requested = set(form.get("scope", "").split())
        if grant == "client_credentials":
            if app.kind != "api":
                return oauth_error(400, "unauthorized_client", "Grant type not allowed for this client")
            if "offline_access" in requested and self.refuse_offline_access_with_client_credentials:
                return oauth_error(400, "invalid_request", "offline_access is not allowed")
            if requested - app.scopes or requested - SCOPES:
                return oauth_error(400, "invalid_scope", "Invalid scope: " + " ".join(sorted(requested - app.scopes)))
            return Reply(200, self._issue(app, requested or set(app.scopes), refresh=False))
        if grant == "authorization_code":
            code = self.codes.pop(form.get("code", ""), None)
            if app.kind != "web":
                return oauth_error(400, "unauthorized_client", "Grant type not allowed for this client")
            if code is None or code["client_id"] != client_id or code["expires_at"] < self.clock():
                return oauth_error(400, "invalid_grant", "Invalid authorization code")
            if form.get("redirect_uri", "") != code["redirect_uri"]:
                return oauth_error(400, "invalid_grant", "Redirect URI mismatch")
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if code.get("challenge") and challenge != code["challenge"]:
                return oauth_error(400, "invalid_grant", "PKCE verification failed")
            return Reply(200, self._issue(app, code["scopes"], refresh="offline_access" in code["scopes"]))
        if grant == "refresh_token":
            rt = self.refresh_tokens.get(form.get("refresh_token", ""))
            if rt is None or not rt["alive"] or rt["client_id"] != client_id:
                return oauth_error(400, self.refresh_error, "Invalid refresh token")
            if self.rotate_refresh_tokens:
                rt["alive"] = False
                return Reply(200, self._issue(app, rt["scopes"], refresh=True))
            answer = self._issue(app, rt["scopes"], refresh=False)
            return Reply(200, answer)
        return oauth_error(400, "unsupported_grant_type", f"Unsupported grant type {grant!r}")

    def _authorize(self, req: Request) -> Reply:
        q = req.query
        app = self.apps.get(q.get("client_id", ""))
        redirect = q.get("redirect_uri", "")
        if app is None or app.kind != "web" or (app.redirect_uris and redirect not in app.redirect_uris):
            return Reply(400, "<h1>Invalid client or redirect URI</h1>", content_type="text/html")
        params: dict[str, str] = {"state": q.get("state", "")}
        if self.consent_denied:
            params["error"] = "access_denied"
        elif q.get("response_type") != "code" or (q.get("code_challenge") and q.get("code_challenge_method") != "S256"):
            params["error"] = "invalid_request"
        else:
            code = secrets.token_urlsafe(16)
            self.codes[code] = {"client_id": app.client_id, "redirect_uri": redirect,
                                "scopes": set(q.get("scope", "").split()) & app.scopes,
                                "challenge": q.get("code_challenge", ""), "expires_at": self.clock() + 300}
            params["code"] = code
        return Reply(302, "", headers={"Location": redirect + ("&" if "?" in redirect else "?") + urlencode(params)},
                     content_type="text/html")

    def authorize(self, url: str) -> dict[str, str]:
        """What the admin's browser does: open the authorize URL, consent, follow to the callback's query."""
        response = httpx.get(url, follow_redirects=False)
        location = response.headers.get("location", "")
        return {k: v[-1] for k, v in parse_qs(urlsplit(location).query).items()}

    def _revoke(self, req: Request) -> Reply:
        form = {k: v[-1] for k, v in parse_qs(req.raw.decode("utf-8", "replace")).items()}
        token = form.get("token", "")
        with self._data_lock:
            if token in self.refresh_tokens:
                self.refresh_tokens[token]["alive"] = False
            self.access_tokens.pop(token, None)
        return Reply(200, "", content_type="text/plain")

    # -- API auth --------------------------------------------------------------------------------------
    def _authed(self, handler, scope: str = "monitoring"):
        def wrapped(req: Request) -> Reply:
            authz = req.headers.get("authorization", "")
            token = self.access_tokens.get(authz[7:].strip()) if authz.lower().startswith("bearer ") else None
            if token is None or token["expires_at"] <= self.clock():
                return oauth_error(401, "invalid_token", "Access token expired or invalid")
            if scope not in token["scopes"]:
                return error(403, "FORBIDDEN", f"Insufficient scope: {scope} required")
            with self._data_lock:
                return handler(req)

        return wrapped

    def rate_limit_next(self, n: int = 1, retry_after: str = "1") -> None:
        self.fail_next(n, 429, {"resultCode": "TOO_MANY_REQUESTS", "errorMessage": "Rate limit exceeded"},
                       headers={"Retry-After": retry_after})

    # -- data -------------------------------------------------------------------------------------------
    def add_org(self, name: str, locations: list[str] | None = None, **extra: Any) -> dict[str, Any]:
        with self._data_lock:
            oid = extra.pop("id", None) or next(self._ids)
            org = {"id": oid, "name": name, "description": extra.pop("description", ""),
                   "nodeApprovalMode": "AUTOMATIC", "tags": [], "fields": {}, "userData": {}, **extra}
            self.orgs[oid] = org
            for loc in locations or []:
                self.add_location(oid, loc)
            return org

    def add_location(self, org_id: int, name: str, **extra: Any) -> dict[str, Any]:
        with self._data_lock:
            lid = extra.pop("id", None) or next(self._ids)
            loc = {"id": lid, "name": name, "address": extra.pop("address", ""), "description": "", "tags": [],
                   "fields": {}, "userData": {}, "organizationId": org_id, **extra}
            self.locations[lid] = loc
            return loc

    def locations_of(self, org_id: int) -> list[dict[str, Any]]:
        return [loc for loc in self.locations.values() if loc["organizationId"] == org_id]

    def add_device(self, org_id: int, name: str, *, location_id: int | None = None, **fields: Any) -> dict[str, Any]:
        """A detailed device record (agent shape unless ``fields`` say otherwise); keys set to None are dropped."""
        with self._data_lock:
            did = fields.pop("id", None) or next(self._ids)
            if location_id is None:
                locs = self.locations_of(org_id)
                location_id = locs[0]["id"] if locs else None
            now = self.clock()
            record: dict[str, Any] = {
                "id": did, "uid": str(uuid.uuid4()), "organizationId": org_id, "locationId": location_id,
                "nodeClass": "WINDOWS_WORKSTATION", "nodeRoleId": 1, "rolePolicyId": 40, "policyId": 40,
                "approvalStatus": "APPROVED", "offline": False, "displayName": name, "systemName": name,
                "dnsName": f"{name.lower()}.example.local", "netbiosName": name, "created": now - 86400 * 30,
                "lastContact": now - 60, "lastUpdate": now - 60, "tags": [], "fields": {},
                "ipAddresses": ["10.20.1.44"], "macAddresses": ["3C:52:82:AA:10:4F"], "publicIP": "203.0.113.24",
                "os": {"manufacturer": "Microsoft Corporation", "name": "Windows 11 Pro", "architecture": "64-bit",
                       "buildNumber": "22631", "releaseId": "23H2", "lastBootTime": now - 3600, "needsReboot": False},
                "system": {"name": name, "manufacturer": "Dell Inc.", "model": "OptiPlex 7010",
                           "serialNumber": f"SN{did:07d}", "biosSerialNumber": f"SN{did:07d}",
                           "domain": "example.local", "chassisType": "DESKTOP"},
                "lastLoggedInUser": "EXAMPLE\\jdoe", "deviceType": "AGENT",
            }
            record.update(fields)
            record = {k: v for k, v in record.items() if v is not None}
            if did not in self.devices:
                bisect.insort(self._device_ids, did)
            self.devices[did] = record
            return record

    def remove_device(self, device_id: int) -> None:
        with self._data_lock:
            self.devices.pop(device_id, None)
            if device_id in self._device_ids:
                self._device_ids.remove(device_id)

    def generate_devices(self, count: int, org_ids: list[int] | None = None, *, software_per_device: int = 0,
                         patches_per_device: int = 0) -> Generated:
        """``count`` devices made on demand (ids from GENERATED_START), spread over ``org_ids``."""
        self.generated = Generated(count, list(org_ids or list(self.orgs)), software_per_device=software_per_device,
                                   patches_per_device=patches_per_device)
        return self.generated

    def touch_generated(self, fraction: float = 0.01) -> int:
        """Change ``fraction`` of the generated devices (name and last contact); returns how many."""
        gen = self.generated
        assert gen is not None
        gen.version += 1
        gen.changed_every = max(1, round(1 / fraction))
        return len(range(gen.start, gen.start + gen.count, gen.changed_every))

    def _generated_device(self, did: int) -> dict[str, Any]:
        gen = self.generated
        assert gen is not None
        org = gen.org_of(did)
        locs = [loc["id"] for loc in self.locations.values() if loc["organizationId"] == org]
        changed = gen.changed_every and (did - gen.start) % gen.changed_every == 0
        suffix = f"-v{gen.version}" if changed else ""
        n = did - gen.start
        classes = ("WINDOWS_WORKSTATION", "WINDOWS_WORKSTATION", "WINDOWS_SERVER", "MAC", "LINUX_SERVER")
        return {
            "id": did, "uid": str(uuid.UUID(int=did)), "organizationId": org, "locationId": locs[0] if locs else None,
            "nodeClass": classes[n % len(classes)], "approvalStatus": "APPROVED", "offline": n % 7 == 0,
            "displayName": f"GEN-{n:06d}{suffix}", "systemName": f"GEN-{n:06d}",
            "dnsName": f"gen-{n:06d}.example.local", "created": 1707363433.892432,
            "lastContact": 1742412252.744 + (gen.version if changed else 0), "lastUpdate": 1742412252.744,
            "ipAddresses": [f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"],
            "macAddresses": [f"02:00:{(n >> 24) & 255:02x}:{(n >> 16) & 255:02x}:{(n >> 8) & 255:02x}:{n & 255:02x}"],
            "os": {"name": "Windows 11 Pro", "architecture": "64-bit"},
            "system": {"manufacturer": "Dell Inc.", "model": "OptiPlex 7010", "serialNumber": f"GS{n:08d}"},
            "lastLoggedInUser": f"EXAMPLE\\user{n % 500}",
        }

    def device_record(self, did: int) -> dict[str, Any] | None:
        if did in self.devices:
            return self.devices[did]
        gen = self.generated
        if gen is not None and gen.start <= did < gen.start + gen.count:
            return self._generated_device(did)
        return None

    def add_alert(self, device_id: int, *, message: str = "Disk C: free space is less than 10%",
                  source_name: str = "Disk < 10%", source_type: str = "CONDITION_AGENT_DISK_FREE_SPACE",
                  source_config_uid: str | None = None, subject: str = "", code: str = "agent_cond_disk_free_space_lt",
                  params: dict[str, Any] | None = None) -> dict[str, Any]:
        with self._data_lock:
            now = self.clock()
            alert = {"uid": str(uuid.uuid4()), "deviceId": device_id, "message": message, "createTime": now,
                     "updateTime": now, "sourceType": source_type,
                     "sourceConfigUid": source_config_uid or str(uuid.uuid4()), "sourceName": source_name,
                     "subject": subject, "data": {"message": {"code": code, "params": params or {
                         "threshold": 10, "unit": "%", "value": 7.4}}}}
            self.alerts[alert["uid"]] = alert
            return alert

    # -- serialisation ------------------------------------------------------------------------------------
    def _org_json(self, org: dict[str, Any], detailed: bool) -> dict[str, Any]:
        if not detailed:
            return dict(org)
        locs = [{k: v for k, v in loc.items() if k != "organizationId"} for loc in self.locations_of(org["id"])]
        return {**org, "locations": locs, "policies": [{"nodeRoleId": 1, "policyId": 40}], "settings": {}}

    def _brief(self, device: dict[str, Any]) -> dict[str, Any]:
        keep = ("id", "uid", "parentDeviceId", "organizationId", "locationId", "nodeClass", "nodeRoleId",
                "rolePolicyId", "policyId", "approvalStatus", "offline", "displayName", "systemName", "dnsName",
                "netbiosName", "created", "lastContact", "lastUpdate", "userData", "tags", "fields", "maintenance")
        return {k: device[k] for k in keep if k in device}

    def references(self, device: dict[str, Any], expand: list[str] | tuple[str, ...] = ("organization", "location")
                   ) -> dict[str, Any]:
        refs: dict[str, Any] = {}
        org = self.orgs.get(device.get("organizationId"))
        loc = self.locations.get(device.get("locationId"))
        if "organization" in expand and org:
            refs["organization"] = {"id": org["id"], "name": org["name"], "nodeApprovalMode": org["nodeApprovalMode"]}
        if "location" in expand and loc:
            refs["location"] = {"id": loc["id"], "name": loc["name"]}
        return refs

    # -- routes --------------------------------------------------------------------------------------------
    def _routes_setup(self) -> None:
        for prefix in ("/ws/oauth", "/oauth"):
            self.route("POST", f"{prefix}/token", self._token)
            self.route("GET", f"{prefix}/authorize", self._authorize)
            self.route("POST", f"{prefix}/revoke", self._revoke)
        a = self._authed
        routes = [
            ("GET", "/organizations", a(lambda r: self._page_orgs(r, detailed=False))),
            ("GET", "/organizations-detailed", a(lambda r: self._page_orgs(r, detailed=True))),
            ("GET", "/organization/{oid}", a(self._org)),
            ("GET", "/organization/{oid}/locations", a(self._org_locations)),
            ("GET", "/organization/{oid}/devices", a(self._org_devices)),
            ("GET", "/locations", a(self._page_locations)),
            ("GET", "/devices", a(lambda r: self._page_devices(r, detailed=False))),
            ("GET", "/devices-detailed", a(lambda r: self._page_devices(r, detailed=True))),
            ("GET", "/device/{did}", a(self._device)),
            ("GET", "/device/{did}/last-logged-on-user", a(self._last_user)),
            ("GET", "/device/{did}/dashboard-url", a(self._dashboard)),
            ("GET", "/device/{did}/alerts", a(self._device_alerts)),
            ("GET", "/alerts", a(self._alerts)),
            ("DELETE", "/alert/{uid}", a(lambda r: self._reset(r, "DELETE"), "management")),
            ("POST", "/alert/{uid}/reset", a(lambda r: self._reset(r, "POST"), "management")),
            ("GET", "/queries/{name}", a(self._query)),
            ("PUT", "/webhook", a(self._put_webhook, "management")),
            ("DELETE", "/webhook", a(self._delete_webhook, "management")),
        ]
        for method, path, handler in routes:
            for prefix in ("/v2", "/api/v2"):
                self.route(method, prefix + path, handler)

    @staticmethod
    def _int(value: Any) -> int | None:
        return int(value) if isinstance(value, str) and value.isdigit() else None

    def _page_size(self, req: Request) -> int | Reply:
        raw = req.query.get("pageSize", "")
        if raw and not raw.isdigit():
            return error(400, "INVALID_PARAMETER", "pageSize must be a number")
        return min(int(raw or 1000), self.max_page_size) or 1

    def _after(self, req: Request) -> int:
        return self._int(req.query.get("after")) or 0

    def _page_orgs(self, req: Request, detailed: bool) -> Reply:
        size = self._page_size(req)
        if isinstance(size, Reply):
            return size
        after = self._after(req)
        ids = [i for i in sorted(self.orgs) if i > after][:size]
        return Reply(200, [self._org_json(self.orgs[i], detailed) for i in ids])

    def _org(self, req: Request) -> Reply:
        org = self.orgs.get(self._int(req.params["oid"]))
        return Reply(200, self._org_json(org, True)) if org else error(404, "NOT_FOUND", "Organization not found")

    def _org_locations(self, req: Request) -> Reply:
        oid = self._int(req.params["oid"])
        if oid not in self.orgs:
            return error(404, "NOT_FOUND", "Organization not found")
        return Reply(200, self.locations_of(oid))

    def _page_locations(self, req: Request) -> Reply:
        size = self._page_size(req)
        if isinstance(size, Reply):
            return size
        after = self._after(req)
        ids = [i for i in sorted(self.locations) if i > after][:size]
        return Reply(200, [self.locations[i] for i in ids])

    def _df_orgs(self, df: str | None) -> set[int] | None | Reply:
        if not df:
            return None
        if m := _DF_EQ.match(df):
            return {int(m.group(1))}
        if m := _DF_IN.match(df):
            return {int(x) for x in m.group(1).replace(" ", "").split(",") if x}
        return error(400, "INVALID_FILTER", f"Unsupported device filter: {df}")

    def _ids_after(self, after: int, orgs: set[int] | None) -> Iterator[int]:
        start = bisect.bisect_right(self._device_ids, after)
        explicit = (d for d in self._device_ids[start:] if orgs is None or self.devices[d]["organizationId"] in orgs)
        generated = self.generated.ids_after(after, orgs) if self.generated else iter(())
        return heapq.merge(explicit, generated)

    def _page_devices(self, req: Request, detailed: bool, orgs: set[int] | None = None) -> Reply:
        size = self._page_size(req)
        if isinstance(size, Reply):
            return size
        if orgs is None:
            orgs = self._df_orgs(req.query.get("df"))
            if isinstance(orgs, Reply):
                return orgs
        rows = []
        for did in itertools.islice(self._ids_after(self._after(req), orgs), size):
            record = self.device_record(did)
            rows.append(record if detailed else self._brief(record))
        self.device_pages_served += 1
        if self.expire_tokens_after_pages and self.device_pages_served >= self.expire_tokens_after_pages:
            self.expire_tokens_after_pages = 0  # once
            self.expire_access_tokens()
        return Reply(200, rows)

    def _org_devices(self, req: Request) -> Reply:
        oid = self._int(req.params["oid"])
        return self._page_devices(req, detailed=False, orgs={oid} if oid is not None else set())

    def _device_of(self, req: Request) -> dict[str, Any] | None:
        did = self._int(req.params["did"])
        return self.device_record(did) if did is not None else None

    def _device(self, req: Request) -> Reply:
        device = self._device_of(req)
        if device is None:
            return error(404, "NOT_FOUND", "Device not found")
        return Reply(200, {**device, "references": self.references(device)})

    def _last_user(self, req: Request) -> Reply:
        device = self._device_of(req)
        if device is None:
            return error(404, "NOT_FOUND", "Device not found")
        return Reply(200, {"userName": device.get("lastLoggedInUser"), "logonTime": device.get("lastContact")})

    def _dashboard(self, req: Request) -> Reply:
        device = self._device_of(req)
        if device is None:
            return error(404, "NOT_FOUND", "Device not found")
        url = f"https://{self.region}.ninjarmm.com/#/deviceDashboard/{device['id']}/overview?t={secrets.token_hex(8)}"
        if req.query.get("redirect") == "true":
            return Reply(302, "", headers={"Location": url}, content_type="text/html")
        return Reply(200, {"url": url, "expires": self.clock() + 300})

    def _alert_json(self, alert: dict[str, Any]) -> dict[str, Any]:
        if not self.alerts_include_device:
            return dict(alert)
        device = self.device_record(alert["deviceId"])
        if device is None:
            return dict(alert)
        return {**alert, "device": {**self._brief(device), "references": self.references(device)}}

    def _alerts(self, req: Request) -> Reply:
        rows = [a for a in self.alerts.values()
                if not req.query.get("sourceType") or a["sourceType"] == req.query["sourceType"]]
        return Reply(200, [self._alert_json(a) for a in rows])

    def _device_alerts(self, req: Request) -> Reply:
        did = self._int(req.params["did"])
        return Reply(200, [self._alert_json(a) for a in self.alerts.values() if a["deviceId"] == did])

    def _reset(self, req: Request, method: str) -> Reply:
        uid = req.params["uid"]
        alert = self.alerts.pop(uid, None)
        self.resets.append((method, uid, req.body))
        if alert is None:
            return error(404, "NOT_FOUND", "Alert not found")
        if self.webhook is not None:
            self.outbox.append(self.activity(alert, self.reset_status_code))
        return Reply(204, b"", content_type="application/json")

    # -- queries ----------------------------------------------------------------------------------------------
    def _query_rows(self, name: str, orgs: set[int] | None) -> list[dict[str, Any]] | None:
        if name == "software":
            source, generated_n = self.software, (self.generated.software_per_device if self.generated else 0)
        elif name == "os-patches":
            source, generated_n = self.os_patches, (self.generated.patches_per_device if self.generated else 0)
        elif name == "os-patch-installs":
            source, generated_n = self.patch_installs, 0
        else:
            return None
        rows: list[dict[str, Any]] = []
        now = self.clock()
        for did in self._ids_after(0, orgs):
            items = source.get(did)
            if items is None and did >= GENERATED_START and generated_n:
                items = self._generated_inventory(name, did, generated_n)
            for item in items or []:
                rows.append({**item, "deviceId": did, "timestamp": now})
        return rows

    @staticmethod
    def _generated_inventory(name: str, did: int, n: int) -> list[dict[str, Any]]:
        if name == "software":
            return [{"name": f"App {i}", "version": f"1.{i}", "publisher": "Example Corp",
                     "installDate": "2024-05-01T00:00:00Z", "location": "", "size": 1000 * i,
                     "productCode": f"{{{uuid.UUID(int=did * 100 + i)}}}"} for i in range(n)]
        return [{"id": str(uuid.UUID(int=did * 100 + i)), "name": f"Update KB50{i:05d}", "severity": "IMPORTANT",
                 "status": "MANUAL", "type": "SECURITY_UPDATES", "kbNumber": f"KB50{i:05d}"} for i in range(n)]

    def _query(self, req: Request) -> Reply:
        name = req.params["name"]
        size = self._page_size(req)
        if isinstance(size, Reply):
            return size
        cursor_name = req.query.get("cursor")
        if cursor_name:
            cursor = self.cursors.get(cursor_name)
            if cursor is None or cursor["expires_at"] <= self.clock() or cursor["name"] != name:
                return error(400, "INVALID_CURSOR", "Cursor expired or not found")
            if self.expire_cursors_after_pages and cursor["pages"] >= self.expire_cursors_after_pages:
                self.expire_cursors_after_pages = 0  # once: the restarted walk then completes
                del self.cursors[cursor_name]
                return error(400, "INVALID_CURSOR", "Cursor expired or not found")
        else:
            orgs = self._df_orgs(req.query.get("df"))
            if isinstance(orgs, Reply):
                return orgs
            rows = self._query_rows(name, orgs)
            if rows is None:
                return error(404, "NOT_FOUND", f"Unknown query {name}")
            cursor_name = str(uuid.uuid4())
            cursor = {"name": name, "rows": rows, "offset": 0, "pages": 0}
            self.cursors[cursor_name] = cursor
        cursor["expires_at"] = self.clock() + self.cursor_ttl
        page = cursor["rows"][cursor["offset"]: cursor["offset"] + size]
        cursor["offset"] += len(page)
        cursor["pages"] += 1
        body: dict[str, Any] = {"results": page}
        done = cursor["offset"] >= len(cursor["rows"])
        if not (done and self.omit_final_cursor):
            body["cursor"] = {"name": cursor_name, "offset": cursor["offset"], "count": len(page),
                              "expires": cursor["expires_at"]}
        return Reply(200, body)

    def expire_cursors(self) -> None:
        with self._data_lock:
            self.cursors.clear()

    # -- webhook ---------------------------------------------------------------------------------------------
    def _put_webhook(self, req: Request) -> Reply:
        if not self.webhook_admin:
            return error(403, "FORBIDDEN", FORBIDDEN_ADMIN)
        if self.other_psa:
            return error(403, "FORBIDDEN", DIFFERENT_PSA)
        body = req.body if isinstance(req.body, dict) else None
        if not body or not isinstance(body.get("url"), str) or not isinstance(body.get("activities"), dict):
            return error(400, "INVALID_PARAMETER", "url and activities are required")
        self.webhook = body
        return Reply(204, b"")

    def _delete_webhook(self, req: Request) -> Reply:
        if self.other_psa:
            return error(403, "FORBIDDEN", DIFFERENT_PSA)
        self.webhook = None
        return Reply(204, b"")

    # -- webhook activities as NinjaOne sends them ---------------------------------------------------------
    def activity(self, alert: dict[str, Any], status_code: str = "TRIGGERED", *, activity_type: str = "CONDITION",
                 severity: str | None = "MAJOR", priority: str | None = "HIGH", integer_time: bool = False,
                 expand: list[str] | tuple[str, ...] | None = None, channel: bool = False,
                 **extra: Any) -> dict[str, Any]:
        """An activity body; the device is expanded as the registered webhook asks (none for a channel)."""
        when = self.clock()
        body: dict[str, Any] = {
            "id": next(self._activity_ids), "activityTime": int(when) if integer_time else round(when, 3),
            "deviceId": alert["deviceId"], "severity": severity, "priority": priority,
            "seriesUid": alert["uid"], "activityType": activity_type, "statusCode": status_code,
            "status": status_code.replace("_", " ").title(), "sourceConfigUid": alert["sourceConfigUid"],
            "sourceName": alert["sourceName"], "subject": alert.get("subject", ""), "message": alert["message"],
            "type": activity_type.title(), "data": alert.get("data", {}),
        }
        body = {k: v for k, v in body.items() if v is not None}  # NinjaOne omits absent fields
        body.update(extra)
        if expand is None:
            expand = (self.webhook or {}).get("expand") or ()
        device = self.device_record(alert["deviceId"])
        if device is not None and not channel and "device" in expand:
            expanded = self._brief(device)
            refs = self.references(device, expand)
            if refs:
                expanded["references"] = refs
            body["device"] = expanded
        return body

    def render_webhook(self, activity: dict[str, Any], *, channel_url: str | None = None
                       ) -> tuple[str, dict[str, str], bytes]:
        """(url, headers, body) as NinjaOne POSTs them: the registered URL and custom headers, or a
        notification channel's URL (no custom headers)."""
        import json

        headers = {"Content-Type": "application/json"}
        if channel_url is not None:
            url = channel_url
        else:
            assert self.webhook is not None, "no webhook registered"
            url = self.webhook["url"]
            for header in self.webhook.get("headers") or []:
                headers[str(header["name"])] = str(header["value"])
        return url, headers, json.dumps(activity).encode()

    def deliver(self, activity: dict[str, Any], *, channel_url: str | None = None, client: httpx.Client | None = None
                ) -> httpx.Response:
        url, headers, body = self.render_webhook(activity, channel_url=channel_url)
        if client is not None:
            return client.post(url, content=body, headers=headers)
        return httpx.post(url, content=body, headers=headers, timeout=30)

