"""OAuth 2.0 for provider connections (provider-agnostic; NinjaOne is the first user).

Grants: ``client_credentials`` (machine-to-machine apps) and ``authorization_code`` with PKCE S256,
a CSRF ``state`` and ``refresh_token``. Token requests go through authlib's httpx ``OAuth2Client``
built on our :class:`integrations.http.GuardedTransport` (authlib's client is an ``httpx.Client``
subclass that takes a ``transport``), so the SSRF guard applies to the token endpoint as it does to
API calls, while authlib does the protocol work (client authentication, PKCE challenge, grant
bodies, RFC 6749 error parsing). The API itself is called through ``ProviderHTTP`` with
:class:`BearerAuth`, which asks :class:`OAuthSession` for a token per request.

Tokens live in a :class:`TokenStore`. :class:`OAuthSession` renews a token ahead of its expiry
(``REFRESH_AHEAD_MAX`` seconds or ``REFRESH_AHEAD_FRACTION`` of its lifetime, the smaller), inside
the store's ``refresh_lock()``: it re-reads the token there and renews only when it is still
expiring, so many workers needing a token at once renew it once (a rotated refresh token used
twice is dead). Every refresh answer's refresh token is persisted. A refused refresh
(``invalid_grant`` / ``invalid_token``) is remembered in the store and raises ``ReconnectRequired``
without any further request until someone reconnects: never a loop on a dead token.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import httpx
from authlib.deprecate import AuthlibDeprecationWarning
from django.conf import settings
from django.db import connection, transaction

from . import http as phttp
from .coerce import number, text
from .errors import (
    AuthFailed,
    BadResponse,
    PermissionDenied,
    ProviderError,
    RateLimited,
    ReconnectRequired,
    Unavailable,
)

with warnings.catch_warnings():
    # authlib prefers the "httpx2" package and warns when it falls back to httpx, which is what we use.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.common.security import generate_token
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.httpx_client import OAuth2Client

if TYPE_CHECKING:
    from .models import Integration

log = logging.getLogger("integrations.oauth")

CLIENT_CREDENTIALS = "client_credentials"
AUTHORIZATION_CODE = "authorization_code"
GRANTS = (CLIENT_CREDENTIALS, AUTHORIZATION_CODE)
CLIENT_AUTH_METHODS = ("client_secret_post", "client_secret_basic")
REFRESH_AHEAD_MAX = 300.0
REFRESH_AHEAD_FRACTION = 0.1
# What an authorization server answers for a refresh token it will never accept again.
REFUSED_REFRESH_ERRORS = frozenset({"invalid_grant", "invalid_token"})
# Token requests may run under a row lock (IntegrationTokenStore): keep their retries short.
TOKEN_RETRIES_MAX = 2
TOKEN_RETRY_AFTER_MAX = 10.0
_TOKEN_KEYS = ("access_token", "token_type", "expires_in", "expires_at", "scope", "refresh_token")


@dataclass(frozen=True)
class OAuthConfig:
    provider_name: str
    token_url: str
    client_id: str
    client_secret: str
    grant: str = CLIENT_CREDENTIALS
    scope: str = ""
    authorize_url: str = ""
    revoke_url: str = ""
    redirect_uri: str = ""
    auth_method: str = "client_secret_post"

    def __post_init__(self) -> None:
        if self.grant not in GRANTS:
            raise ValueError(f"unknown OAuth grant {self.grant!r}")
        if self.auth_method not in CLIENT_AUTH_METHODS:
            raise ValueError(f"unknown client authentication {self.auth_method!r}")


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the admin, and what the callback must find again (keep both server-side)."""

    url: str
    state: str
    code_verifier: str


# -- token stores --------------------------------------------------------------------------------
class TokenStore(Protocol):
    def load(self) -> dict[str, Any] | None:
        """The stored token dict, or None."""

    def save(self, token: dict[str, Any]) -> None:
        """Persist ``token`` (inside ``refresh_lock()`` when called from a renewal)."""

    def refresh_lock(self) -> AbstractContextManager[None]:
        """Held around re-read + renew + save: one renewal at a time across every worker."""


class MemoryTokenStore:
    """A process-local store (tests, probes, a connection test before anything is saved)."""

    def __init__(self, token: dict[str, Any] | None = None):
        self.token = dict(token) if token else None
        self.saves = 0
        self._lock = threading.RLock()

    def load(self) -> dict[str, Any] | None:
        return dict(self.token) if self.token else None

    def save(self, token: dict[str, Any]) -> None:
        self.token = dict(token)
        self.saves += 1

    def refresh_lock(self) -> AbstractContextManager[None]:
        return self._lock


class IntegrationTokenStore:
    """The token in an Integration's own encrypted column (``Integration.token_ciphertext``), apart from
    the credentials: a renewal and an admin's credential edit never overwrite each other.

    ``refresh_lock()`` is ``transaction.atomic()`` + ``SELECT ... FOR UPDATE`` on the Integration row:
    a second worker blocks there until the first has saved and committed, then re-reads the fresh
    token. The token HTTP request runs under that row lock on purpose: it serializes exactly the
    renewals, and nothing else we do holds the lock. Call it outside any longer transaction (inside
    one, the lock and the new token stay invisible to other workers until the outer commit).

    ``on_refused(integration, message)`` runs once, when a renewal is refused for good (the refusal is
    stored in the same transaction); by default the framework turns the integration to error and tells
    its admins (integrations.services.attention).
    """

    def __init__(self, integration: Integration,
                 on_refused: Callable[[Integration, str], None] | None = None):
        self.integration = integration
        self.on_refused = on_refused
        self._locked: Integration | None = None

    def _row(self) -> Integration:
        return self._locked if self._locked is not None else self.integration

    def load(self) -> dict[str, Any] | None:
        token = self._row().get_token()
        return dict(token) if isinstance(token, dict) else None

    def save(self, token: dict[str, Any]) -> None:
        if self._locked is None:
            with self.refresh_lock():
                self._write(token)
        else:
            self._write(token)

    def _write(self, token: dict[str, Any]) -> None:
        row = self._locked
        assert row is not None
        newly_refused = bool(token.get("reconnect_required")) and not (row.get_token() or {}).get(
            "reconnect_required")
        row.set_token(dict(token))
        row.save(update_fields=["token_ciphertext", "updated_at"])
        # The caller's instance (the provider's) sees the new token without reloading.
        self.integration.token_ciphertext = row.token_ciphertext
        if newly_refused:
            (self.on_refused or _access_lost)(row, str(token["reconnect_required"]))


    @contextlib.contextmanager
    def refresh_lock(self) -> Iterator[None]:
        from .models import Integration

        if self._locked is not None:  # re-entered (save() from within a renewal)
            yield
            return
        if connection.in_atomic_block:
            log.debug("token renewal of integration %s inside an outer transaction", self.integration.pk)
        with transaction.atomic():
            self._locked = Integration.objects.unscoped().select_for_update().get(pk=self.integration.pk)
            try:
                yield
            finally:
                self._locked = None


def _access_lost(integration: Integration, message: str) -> None:
    from .services.attention import access_lost  # the framework's: error status + the admins told

    access_lost(integration, message)


# -- the session ---------------------------------------------------------------------------------
class _Refused(Exception):
    """The authorization server refused our refresh token for good."""


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


class OAuthSession:
    """Tokens for one provider connection: obtains, renews ahead of expiry, persists, reports."""

    def __init__(
        self,
        config: OAuthConfig,
        store: TokenStore,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.config = config
        self.store = store
        self.clock = clock
        self._transport = transport
        self._token: dict[str, Any] | None = None
        self._last_status = 0

    # -- tokens --------------------------------------------------------------------------------
    def _ours(self, token: dict[str, Any] | None) -> bool:
        """A stored token belongs to this configuration (not to a previous app, region or host)."""
        if not token:
            return False
        key = self._client_key()
        return (token.get("client_id", self.config.client_id) == self.config.client_id
                and token.get("token_url", self.config.token_url) == self.config.token_url
                and token.get("client_key", key) == key)

    def _client_key(self) -> str:
        """A digest of the client id and secret: a token obtained before the admin changed the secret is
        not used after (it is stored encrypted, like the secret itself)."""
        cfg = self.config
        return hashlib.sha256(f"{cfg.client_id}\0{cfg.client_secret}".encode()).hexdigest()[:16]

    def _margin(self, token: dict[str, Any]) -> float:
        lifetime = number(token.get("expires_in"))
        if lifetime is None:
            obtained, expires = number(token.get("obtained_at")), number(token.get("expires_at"))
            lifetime = expires - obtained if obtained is not None and expires is not None else None
        if lifetime is None or lifetime <= 0:
            return REFRESH_AHEAD_MAX
        return min(REFRESH_AHEAD_MAX, lifetime * REFRESH_AHEAD_FRACTION)

    def usable(self, token: dict[str, Any] | None) -> bool:
        """Has an access token that is not within the refresh margin of its expiry."""
        if not token or not token.get("access_token") or token.get("reconnect_required") or not self._ours(token):
            return False
        expires_at = number(token.get("expires_at"))
        if expires_at is None:
            return True  # no lifetime given: used until the API answers 401
        return self.clock() < expires_at - self._margin(token)

    def current(self) -> dict[str, Any] | None:
        """The stored token (for display: expiry, scope), without renewing it."""
        token = self.store.load()
        return token if self._ours(token) else None

    def expires_at(self) -> float | None:
        token = self.current()
        return number(token.get("expires_at")) if token else None

    def access_token(self) -> str:
        token = self._token if self._token is not None else self.store.load()
        if self.usable(token):
            self._token = token
            return token["access_token"]
        return self._renew(rejected=None)["access_token"]

    def renew_after_rejection(self, rejected: str) -> str:
        """The API refused ``rejected`` (401): a token another worker obtained since, or a new one."""
        return self._renew(rejected=rejected)["access_token"]

    def _renew(self, rejected: str | None) -> dict[str, Any]:
        refused: _Refused | None = None
        with self.store.refresh_lock():
            token = self.store.load()
            if token and token.get("reconnect_required") and self._ours(token):
                raise ReconnectRequired(str(token["reconnect_required"]))
            if self.usable(token) and (rejected is None or token.get("access_token") != rejected):
                self._token = token  # renewed by someone else while we waited for the lock
                return token
            try:
                fresh = self._obtain(token if self._ours(token) else None)
            except _Refused as exc:
                # Remember it (committed with the lock), so no worker tries the dead token again.
                self.store.save(self._stamp_refused(str(exc)))
                refused = exc
            else:
                self.store.save(fresh)
                self._token = fresh
        if refused is not None:
            self._token = None
            raise ReconnectRequired(str(refused))
        return fresh

    def _obtain(self, previous: dict[str, Any] | None) -> dict[str, Any]:
        cfg = self.config
        if cfg.grant == CLIENT_CREDENTIALS:
            answer = self._token_request(
                lambda c: c.fetch_token(cfg.token_url, grant_type=CLIENT_CREDENTIALS, scope=cfg.scope or None),
                refresh=False,
            )
            return self._stamp(answer, previous=None)
        refresh_token = text((previous or {}).get("refresh_token"))
        if not refresh_token:
            raise ReconnectRequired(
                f"{cfg.provider_name} is not authorized (or its access expired without a refresh token): "
                "connect it again."
            )
        answer = self._token_request(lambda c: c.refresh_token(cfg.token_url, refresh_token=refresh_token),
                                     refresh=True)
        return self._stamp(answer, previous=previous)

    def _stamp(self, answer: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
        now = self.clock()
        token = {k: answer[k] for k in _TOKEN_KEYS if answer.get(k) not in (None, "")}
        expires_in = number(answer.get("expires_in"))
        if expires_in is not None and expires_in > 0:
            token["expires_at"] = now + expires_in
        if not token.get("refresh_token") and previous and previous.get("refresh_token"):
            token["refresh_token"] = previous["refresh_token"]  # a refresh answer without rotation
        token.update(obtained_at=now, grant=self.config.grant, client_id=self.config.client_id,
                     token_url=self.config.token_url, client_key=self._client_key())
        return token

    def _stamp_refused(self, message: str) -> dict[str, Any]:
        return {"reconnect_required": message, "refused_at": self.clock(), "grant": self.config.grant,
                "client_id": self.config.client_id, "token_url": self.config.token_url,
                "client_key": self._client_key()}

    # -- authorization code ------------------------------------------------------------------------
    def authorization_request(self, state: str | None = None) -> AuthorizationRequest:
        cfg = self.config
        if not cfg.authorize_url or not cfg.redirect_uri:
            raise ProviderError(f"{cfg.provider_name}: the authorization URL and redirect URI must be set.")
        verifier = generate_token(64)  # RFC 7636: 43-128 unreserved characters
        with self._client() as client:
            url, state = client.create_authorization_url(
                cfg.authorize_url, state=state or generate_token(32), code_verifier=verifier, scope=cfg.scope or None)
        return AuthorizationRequest(url=url, state=state, code_verifier=verifier)

    def complete_authorization(self, *, code: str, state: str, expected_state: str, code_verifier: str) -> dict:
        """Exchange the callback's code (after checking its ``state``) and store the token."""
        if not expected_state or not state or not hmac.compare_digest(str(state), str(expected_state)):
            raise AuthFailed("The authorization answer does not match the request we made (state mismatch); "
                             "start the connection again.")
        if not code:
            raise AuthFailed(f"{self.config.provider_name} sent no authorization code.")
        cfg = self.config
        answer = self._token_request(
            lambda c: c.fetch_token(cfg.token_url, grant_type=AUTHORIZATION_CODE, code=code,
                                    code_verifier=code_verifier, redirect_uri=cfg.redirect_uri),
            refresh=False,
        )
        token = self._stamp(answer, previous=None)
        with self.store.refresh_lock():
            self.store.save(token)
        self._token = token
        return token

    def revoke(self) -> bool:
        """Best effort (disconnect): revoke the refresh token, else the access token."""
        cfg = self.config
        token = self.current() or {}
        value = text(token.get("refresh_token")) or text(token.get("access_token"))
        if not cfg.revoke_url or not value:
            return False
        hint = "refresh_token" if token.get("refresh_token") else "access_token"
        try:
            with self._client() as client:
                response = client.revoke_token(cfg.revoke_url, token=value, token_type_hint=hint)
        except (httpx.HTTPError, ProviderError) as exc:
            log.info("%s token revocation failed: %s", cfg.provider_name, exc)
            return False
        return response.status_code < 300

    # -- HTTP ------------------------------------------------------------------------------------
    def _client(self) -> OAuth2Client:
        cfg = self.config
        client = OAuth2Client(
            client_id=cfg.client_id,
            client_secret=cfg.client_secret,
            token_endpoint_auth_method=cfg.auth_method,
            revocation_endpoint_auth_method=cfg.auth_method,
            redirect_uri=cfg.redirect_uri or None,
            code_challenge_method="S256",
            transport=self._transport or phttp.GuardedTransport(retries=int(_setting("PSA_HTTP_RETRIES", 3))),
            timeout=phttp.default_timeout(),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": "psa-integrations/1"},
        )
        client.register_compliance_hook("access_token_response", self._check_response)
        client.register_compliance_hook("refresh_token_response", self._check_response)
        return client

    def _check_response(self, response: httpx.Response) -> httpx.Response:
        """Before authlib parses a token answer: what is not an OAuth answer becomes our error."""
        name, code = self.config.provider_name, response.status_code
        self._last_status = code
        where = phttp.redact_url(str(response.request.url).split("?", 1)[0])
        if code == 429:
            raise RateLimited(f"{name} is rate limiting token requests (429).",
                              retry_after=phttp.parse_retry_after(response.headers.get("retry-after")))
        if code >= 500:
            raise Unavailable(f"{name}'s token endpoint answered a server error ({code}) at {where}.")
        if 300 <= code < 400:
            raise BadResponse(f"{name} redirected the token request ({code}) from {where}: check the address.")
        if phttp.looks_like_html(response):
            raise BadResponse(f"{name} answered the token request at {where} with a web page: check the address.")
        try:
            data = response.json()
        except ValueError:
            raise BadResponse(f"{name} answered the token request at {where} with something that is not JSON.") \
                from None
        if not isinstance(data, dict):
            raise BadResponse(f"{name} answered the token request at {where} with an unexpected shape.")
        if "error" in data:
            return response  # authlib raises OAuthError(error, description)
        if code >= 400:
            detail = text(data.get("errorMessage") or data.get("message") or data.get("detail"), 200)
            cls = AuthFailed if code == 401 else PermissionDenied if code == 403 else ProviderError
            exc = cls(f"{name} refused the token request ({code}{': ' + detail if detail else ''}).")
            exc.status = code  # type: ignore[attr-defined]
            raise exc
        if not text(data.get("access_token")):
            raise BadResponse(f"{name}'s token answer carries no access token.")
        return response

    def _map_oauth_error(self, exc: OAuthError, *, refresh: bool) -> Exception:
        name = self.config.provider_name
        error = text(exc.error).lower()
        description = text(exc.description, 300)
        said = f"{error}: {description}" if description else error
        if refresh and error in REFUSED_REFRESH_ERRORS:
            return _Refused(f"{name} refused to renew the access ({said}): the authorization was revoked or "
                            "expired. Reconnect the integration.")
        if error in ("invalid_client", "unauthorized_client"):
            mapped: ProviderError = AuthFailed(f"{name} rejected the client id or secret ({said}).")
        elif error == "invalid_scope":
            mapped = PermissionDenied(f"{name} refused the requested scopes '{self.config.scope}' ({said}).")
        elif error in REFUSED_REFRESH_ERRORS:
            mapped = AuthFailed(f"{name} refused the authorization code ({said}); start the connection again.")
        else:
            mapped = ProviderError(f"{name} refused the token request ({said}).")
        mapped.oauth_error = error  # type: ignore[attr-defined]
        mapped.status = self._last_status  # type: ignore[attr-defined]
        return mapped

    def _token_request(self, call: Callable[[OAuth2Client], Any], *, refresh: bool) -> dict[str, Any]:
        retries = min(int(_setting("PSA_HTTP_RETRIES", 3)), TOKEN_RETRIES_MAX)
        name = self.config.provider_name
        for attempt in range(retries + 1):
            try:
                with self._client() as client:
                    try:
                        return dict(call(client))
                    except OAuthError as exc:
                        raise self._map_oauth_error(exc, refresh=refresh) from None
                    except httpx.TimeoutException:
                        raise Unavailable(f"{name}'s token endpoint did not answer in time.") from None
                    except httpx.TransportError as exc:
                        raise Unavailable(f"Cannot reach {name}'s token endpoint ({type(exc).__name__}).") \
                            from None
            except (Unavailable, RateLimited) as exc:
                wait = getattr(exc, "retry_after", None)
                if attempt >= retries or (wait is not None and wait > TOKEN_RETRY_AFTER_MAX):
                    raise
                phttp._sleep(wait if wait is not None else float(_setting("PSA_HTTP_BACKOFF", 0.5)) * (2 ** attempt))
        raise AssertionError("unreachable")  # pragma: no cover


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer`` from an OAuthSession; on a 401, one retry with a renewed token."""

    def __init__(self, session: OAuthSession):
        self.session = session

    def auth_flow(self, request: httpx.Request):
        token = self.session.access_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        fresh = self.session.renew_after_rejection(token)
        if fresh and fresh != token:
            request.headers["Authorization"] = f"Bearer {fresh}"
            yield request
