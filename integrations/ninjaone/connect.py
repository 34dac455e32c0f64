"""How we connect to NinjaOne: regions, OAuth endpoints and scopes, and the connection diagnosis.

Each NinjaOne region is its own instance: an API app (client id) exists in one region only, and the
others answer ``invalid_client`` for it. The diagnosis uses that to tell a wrong region from a wrong
secret: when the configured region refuses the client, the other regions' token endpoints are asked
with the same client (NinjaOne's own hosts only), and any answer other than ``invalid_client``
means the region knows the app.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integrations.coerce import text
from integrations.errors import (
    AuthFailed,
    BadResponse,
    BlockedURL,
    NotFound,
    PermissionDenied,
    ProviderError,
    RateLimited,
    ReconnectRequired,
    Unavailable,
)
from integrations.oauth import (
    AUTHORIZATION_CODE,
    CLIENT_CREDENTIALS,
    MemoryTokenStore,
    OAuthConfig,
    OAuthSession,
    TokenStore,
)
from integrations.records import ConnectionResult

from .client import NinjaOneClient, status_of

NAME = "NinjaOne"
# Region -> API host (N-PS Initialisation.ps1). Tests point these at simulators.
REGION_URLS: dict[str, str] = {
    "app": "https://app.ninjarmm.com",
    "us2": "https://us2.ninjarmm.com",
    "eu": "https://eu.ninjarmm.com",
    "ca": "https://ca.ninjarmm.com",
    "oc": "https://oc.ninjarmm.com",
    "fed": "https://fed.ninjarmm.com",
}
REGION_LABELS = (
    ("app", "United States (app)"),
    ("us2", "United States 2 (us2)"),
    ("eu", "Europe (eu)"),
    ("ca", "Canada (ca)"),
    ("oc", "Oceania (oc)"),
    ("fed", "US Federal (fed)"),
)
REGION_ALIASES = {"us": "app"}
DEFAULT_REGION = "app"
TOKEN_PATH = "/ws/oauth/token"
AUTHORIZE_PATH = "/ws/oauth/authorize"
REVOKE_PATH = "/ws/oauth/revoke"
# An API Services app: no offline_access (the EU server answers 400 to it with client_credentials).
MACHINE_SCOPES = "monitoring management control"
# A Web app (authorization code): offline_access for a refresh token.
WEB_SCOPES = MACHINE_SCOPES + " offline_access"
AUTH_FLOWS = (
    (CLIENT_CREDENTIALS, "Client credentials (API Services app)"),
    (AUTHORIZATION_CODE, "Authorization code (Web app, sign in with NinjaOne)"),
)
CLIENT_AUTH = (("client_secret_post", "In the request body"), ("client_secret_basic", "HTTP Basic"))


def region_of(value: Any) -> str:
    region = text(value).lower() or DEFAULT_REGION
    return REGION_ALIASES.get(region, region)


def base_url_for(region: Any, base_url: str = "") -> str:
    """``base_url`` (an override) wins; else the region's host. Raises ProviderError on an unknown region.

    The override is the host our paths (``/v2/...``, ``/ws/oauth/...``) hang from: an address pasted with
    the API's ``/v2`` (or ``/api/v2``) on the end is cut back to it."""
    if base_url:
        root = base_url.rstrip("/")
        for suffix in ("/api/v2", "/v2"):
            if root.endswith(suffix):
                return root[: -len(suffix)]
        return root
    name = region_of(region)
    if name not in REGION_URLS:
        raise ProviderError(f"Unknown NinjaOne region {name!r}; one of {', '.join(REGION_URLS)}.")
    return REGION_URLS[name]


def oauth_config(base_url: str, credentials: Mapping[str, Any], *, auth_flow: str = CLIENT_CREDENTIALS,
                 redirect_uri: str = "", auth_method: str = "client_secret_post") -> OAuthConfig:
    root = base_url.rstrip("/")
    return OAuthConfig(
        provider_name=NAME,
        token_url=root + TOKEN_PATH,
        authorize_url=root + AUTHORIZE_PATH,
        revoke_url=root + REVOKE_PATH,
        client_id=text(credentials.get("client_id")),
        client_secret=text(credentials.get("client_secret")),
        grant=auth_flow if auth_flow in (CLIENT_CREDENTIALS, AUTHORIZATION_CODE) else CLIENT_CREDENTIALS,
        scope=WEB_SCOPES if auth_flow == AUTHORIZATION_CODE else MACHINE_SCOPES,
        redirect_uri=redirect_uri,
        auth_method=auth_method if auth_method in dict(CLIENT_AUTH) else "client_secret_post",
    )


def session_for(base_url: str, credentials: Mapping[str, Any], store: TokenStore, **kwargs: Any) -> OAuthSession:
    return OAuthSession(oauth_config(base_url, credentials, **kwargs), store)


# -- diagnosis ------------------------------------------------------------------------------------
def probe_region(url: str, credentials: Mapping[str, Any], auth_method: str = "client_secret_post") -> str:
    """Does the region at ``url`` know this client? "accepted", "known", "unknown" or "unreachable"."""
    session = OAuthSession(oauth_config(url, credentials, auth_method=auth_method), MemoryTokenStore())
    try:
        session.access_token()
    except (Unavailable, RateLimited, BadResponse, BlockedURL):
        return "unreachable"
    except AuthFailed as exc:
        error = getattr(exc, "oauth_error", "")
        if error == "invalid_client" or (not error and status_of(exc) == 401):
            return "unknown"
        return "known"  # e.g. unauthorized_client: the app exists there, for another grant
    except ProviderError:
        return "known"  # invalid_scope, invalid_request...: the region knows the client
    return "accepted"


def other_regions(current: str) -> list[str]:
    return [r for r in REGION_URLS if r != current]


def _refused_credentials(region: str | None, credentials: Mapping[str, Any], exc: ProviderError,
                         auth_method: str) -> ConnectionResult:
    if region is None:  # a base URL override: we cannot know its neighbours
        return ConnectionResult(
            ok=False, details={"code": "invalid_client"},
            message=f"NinjaOne refused the client id or secret at this address ({exc}). Check them, or the "
                    f"app belongs to another region: try {', '.join(REGION_URLS)}.",
        )
    found: dict[str, str] = {}
    for other in other_regions(region):
        found[other] = probe_region(REGION_URLS[other], credentials, auth_method)
    knows = [r for r, verdict in found.items() if verdict in ("accepted", "known")]
    unreachable = [r for r, verdict in found.items() if verdict == "unreachable"]
    if knows:
        return ConnectionResult(
            ok=False, details={"code": "wrong_region", "region": region, "regions_to_try": knows},
            message=f"Wrong region: NinjaOne's {region} region does not know this app, but {', '.join(knows)} "
                    f"does. Set the region to {knows[0]}.",
        )
    tail = f" ({', '.join(unreachable)} could not be asked)" if unreachable else ""
    return ConnectionResult(
        ok=False, details={"code": "invalid_client", "regions_to_try": unreachable},
        message=f"Wrong client id or secret: NinjaOne refused them ({exc}), and no other region knows this "
                f"app{tail}. Copy them again from Administration > Apps > API in NinjaOne.",
    )


def diagnose(client: NinjaOneClient, session: OAuthSession, *, region: str | None,
             credentials: Mapping[str, Any], auth_method: str = "client_secret_post") -> ConnectionResult:
    """Tell apart: wrong client id/secret, wrong region, missing scope, NinjaOne down, not authorized."""
    where = region or client.base_url
    try:
        session.access_token()
    except ReconnectRequired as exc:
        return ConnectionResult(ok=False, message=str(exc), details={"code": exc.code})
    except AuthFailed as exc:
        if getattr(exc, "oauth_error", "") in ("invalid_client", "") and session.config.grant == CLIENT_CREDENTIALS:
            return _refused_credentials(region, credentials, exc, auth_method)
        return ConnectionResult(ok=False, message=str(exc), details={"code": getattr(exc, "oauth_error", exc.code)})
    except PermissionDenied as exc:
        return _missing_scope(session, str(exc))
    except (Unavailable, RateLimited) as exc:
        return _down(where, exc)
    except (BadResponse, BlockedURL, NotFound) as exc:
        return ConnectionResult(ok=False, message=f"Wrong address for NinjaOne ({where}): {exc}",
                                details={"code": exc.code})
    except ProviderError as exc:
        return ConnectionResult(ok=False, message=f"NinjaOne refused the connection: {exc}",
                                details={"code": getattr(exc, "oauth_error", "") or exc.code})
    granted = set(text((session.current() or {}).get("scope")).split())
    wanted = set(session.config.scope.split()) - {"offline_access"}
    missing = sorted(wanted - granted) if granted else []
    try:
        client.probe()
        organizations = client.organizations_detailed()
    except PermissionDenied as exc:
        return _missing_scope(session, str(exc), missing)
    except (Unavailable, RateLimited) as exc:
        return _down(where, exc)
    except (AuthFailed, ReconnectRequired) as exc:
        return ConnectionResult(ok=False, message=f"NinjaOne issued a token but refused it: {exc}",
                                details={"code": exc.code})
    except (BadResponse, NotFound) as exc:
        return ConnectionResult(ok=False, message=f"Wrong address for NinjaOne ({where}): {exc}",
                                details={"code": exc.code})
    locations = sum(len(o.get("locations") or []) for o in organizations if isinstance(o.get("locations"), list))
    details: dict[str, Any] = {"organizations": len(organizations), "locations": locations,
                               "scopes": sorted(granted), "auth_flow": session.config.grant}
    message = (f"Connected to NinjaOne ({where}): {len(organizations)} organizations, "
               f"{locations} locations.")
    if missing:
        details["missing_scopes"] = missing
        message += (f" The app lacks the scope(s) {', '.join(missing)}: alert reset and webhook registration "
                    "may be refused; add them to the API app in NinjaOne.")
    return ConnectionResult(ok=True, message=message, account_name=client.base_url.split("//", 1)[-1],
                            details=details)


def _missing_scope(session: OAuthSession, said: str, missing: list[str] | None = None) -> ConnectionResult:
    scopes = ", ".join(missing) if missing else session.config.scope
    return ConnectionResult(
        ok=False, details={"code": "missing_scope", "missing_scopes": missing or session.config.scope.split()},
        message=f"Missing scope: NinjaOne refused ({said}). Give the API app the scopes {scopes} "
                "(Administration > Apps > API > the app > Scopes).",
    )


def _down(where: str, exc: ProviderError) -> ConnectionResult:
    return ConnectionResult(
        ok=False, details={"code": "unavailable"},
        message=f"NinjaOne is down or unreachable ({where}): {exc} Try again later.",
    )
