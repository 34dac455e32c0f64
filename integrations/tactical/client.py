"""Tactical RMM REST client (routes and shapes: docs/tactical.md and ../shared/providers/tactical.md).

Auth, in order of preference:
- ``api_key``: header ``X-API-KEY`` (Tactical's ``APIAuthentication``);
- ``username`` + ``password`` of an account without two-factor: a Knox token from
  ``POST /v2/checkcreds/`` (Tactical limits those to 3 minutes), renewed by logging in
  again whenever the server answers 401;
- ``knox_token`` alone: the token from ``/v2/login/`` after a TOTP code. It cannot be
  renewed without a person, so a 401 raises ReconnectRequired.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from integrations.errors import AuthFailed, NotFound, ProviderError, ReconnectRequired
from integrations.http import ProviderHTTP, build_client

NAME = "Tactical RMM"
HTML_HINT = (
    "Use the API host of your Tactical RMM (usually https://api.<your-domain>), "
    "not the dashboard address (rmm.<your-domain>), which answers every path with a web page."
)
BETA_PAGE_SIZE = 100


class TacticalClient:
    def __init__(self, base_url: str, credentials: dict[str, Any]):
        self.base_url = base_url
        self.credentials = credentials
        self.http: ProviderHTTP = build_client(base_url, provider_name=NAME, html_hint=HTML_HINT)
        self._logged_in = False
        if credentials.get("api_key"):
            self.mode = "api_key"
            self.http.set_header("X-API-KEY", str(credentials["api_key"]))
        elif credentials.get("username") and credentials.get("password"):
            self.mode = "login"
        elif credentials.get("knox_token"):
            self.mode = "knox"
            self.http.set_header("Authorization", f"Token {credentials['knox_token']}")
        else:
            self.mode = "none"

    def close(self) -> None:
        self.http.close()

    # -- auth --------------------------------------------------------------------------------
    def login(self, totp: str | None = None) -> dict[str, Any]:
        """Knox login; returns {"token", "expiry", "renewable"}. Raises AuthFailed / ReconnectRequired."""
        creds = {"username": self.credentials.get("username", ""), "password": self.credentials.get("password", "")}
        step1 = self._auth_post("/v2/checkcreds/", creds)
        if isinstance(step1, dict) and step1.get("token") and step1.get("totp") is False:
            # An account without two-factor: checkcreds itself logs in (a short-lived token).
            return {"token": step1["token"], "expiry": step1.get("expiry"), "renewable": True}
        if not totp:
            raise ReconnectRequired(
                "This Tactical RMM account uses two-factor authentication: enter the current TOTP code "
                "and reconnect (or use an API key, which never needs a person)."
            )
        step2 = self._auth_post("/v2/login/", {**creds, "twofactor": str(totp)})
        if not isinstance(step2, dict) or not step2.get("token"):
            raise AuthFailed("Tactical RMM did not return a login token.")
        return {"token": step2["token"], "expiry": step2.get("expiry"), "renewable": False}

    def _auth_post(self, path: str, body: dict[str, Any]) -> Any:
        response = self.http.send("POST", path, json=body)
        if response.status_code == 400:
            # Tactical answers bad credentials / a wrong TOTP code with 400 "Bad credentials".
            raise AuthFailed("Tactical RMM rejected the username, password or two-factor code.")
        self.http.raise_for_status(response)
        return self.http.parse(response)

    def _ensure_login(self) -> None:
        if self.mode == "login" and not self._logged_in:
            token = self.login()["token"]
            self.http.set_header("Authorization", f"Token {token}")
            self._logged_in = True

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        self._ensure_login()
        try:
            return self.http.request(method, path, **kwargs)
        except AuthFailed:
            if self.mode == "login":
                # checkcreds tokens live 3 minutes: log in again once, then give up.
                self._logged_in = False
                self._ensure_login()
                return self.http.request(method, path, **kwargs)
            if self.mode == "knox":
                raise ReconnectRequired(
                    "The Tactical RMM login token expired or was revoked, and it was obtained with a "
                    "two-factor code, so it cannot be renewed automatically: reconnect the integration "
                    "(or switch to an API key)."
                ) from None
            raise

    # -- organizations -----------------------------------------------------------------------
    def clients(self) -> list[dict[str, Any]]:
        data = self.request("GET", "/clients/")
        return [c for c in (data or []) if isinstance(c, dict)]

    # -- agents ------------------------------------------------------------------------------
    def agents(self, *, client: int | None = None, site: int | None = None) -> list[dict[str, Any]]:
        """Classic, unpaginated table rows of one client or site (Tactical filters server-side)."""
        params: dict[str, Any] = {}
        if site is not None:
            params["site"] = site
        elif client is not None:
            params["client"] = client
        data = self.request("GET", "/agents/", params=params)
        return [a for a in (data or []) if isinstance(a, dict)]

    def beta_available(self) -> bool:
        """True when the server enables the beta API (BETA_API_ENABLED); 404 otherwise."""
        self._ensure_login()
        try:
            data = self.request("GET", "/beta/v1/agent/", params={"page": 1, "page_size": 1})
        except NotFound:
            return False
        return isinstance(data, dict) and "results" in data

    def beta_agents(self, *, client_id: int | None = None, site: int | None = None) -> Iterator[list[dict[str, Any]]]:
        """Pages of beta API agent rows (raw model fields incl. ``id`` and ``site``)."""
        params: dict[str, Any] = {"page_size": BETA_PAGE_SIZE}
        if site is not None:
            params["site"] = site
        elif client_id is not None:
            params["client_id"] = client_id
        page = 1
        while True:
            data = self.request("GET", "/beta/v1/agent/", params={**params, "page": page})
            if not isinstance(data, dict):
                return
            rows = [a for a in data.get("results") or [] if isinstance(a, dict)]
            if rows:
                yield rows
            if not data.get("next") or not rows:
                return
            page += 1

    def agent(self, agent_id: str) -> dict[str, Any]:
        return self.request("GET", f"/agents/{agent_id}/") or {}

    def software(self, agent_id: str) -> list[dict[str, Any]] | None:
        """Installed software; None when Tactical has no inventory for the agent (it answers [])."""
        data = self.request("GET", f"/software/{agent_id}/")
        if isinstance(data, dict):
            rows = data.get("software")
            return [s for s in rows if isinstance(s, dict)] if isinstance(rows, list) else None
        return None

    def meshcentral(self, agent_id: str) -> dict[str, Any]:
        data = self.request("GET", f"/agents/{agent_id}/meshcentral/")
        return data if isinstance(data, dict) else {}

    # -- alerts ------------------------------------------------------------------------------
    def active_alerts(self) -> list[dict[str, Any]]:
        # {} would return every alert, resolved ones included; only resolvedFilter=false filters.
        # A read despite the verb: safe to resend on a dead kept-alive connection.
        data = self.request("PATCH", "/alerts/", json={"resolvedFilter": False}, idempotent=True)
        if isinstance(data, dict):  # the {"top": n} shape, should a server answer it
            data = data.get("alerts")
        return [a for a in (data or []) if isinstance(a, dict)]

    def alert(self, alert_id: int | str) -> dict[str, Any]:
        data = self.request("GET", f"/alerts/{int(alert_id)}/")
        if not isinstance(data, dict):
            raise ProviderError(f"Tactical RMM answered alert {alert_id} with an unexpected shape.")
        return data

    def resolve_alert(self, alert_id: int | str) -> bool:
        """Resolve in Tactical; False when the alert no longer exists (404)."""
        try:
            self.request("PUT", f"/alerts/{int(alert_id)}/", json={"type": "resolve"})
        except NotFound:
            return False
        return True
