"""The one outbound HTTP layer every provider uses (httpx).

What it guarantees, so providers do not each re-invent it:

- one ``httpx.Client`` per provider connection, with ``base_url``, explicit timeouts
  (``settings.PSA_HTTP_TIMEOUT``; httpx's default is 5 s for everything) and limits;
- transport-level retries for connection failures only; 429 and 5xx are retried with
  exponential backoff and jitter through tenacity, honouring ``Retry-After``
  (``settings.PSA_HTTP_RETRIES`` retries; waits are configurable so tests stay fast);
- an idempotent request (GET, HEAD, OPTIONS, PUT, DELETE, or one the caller marks
  ``idempotent=True``) that dies on the connection before any answer (a kept-alive connection
  the server closed without saying so) is sent once more on a fresh connection; POST and PATCH
  are not, since the server may have acted on them;
- failures mapped to :mod:`integrations.errors` the UI can explain (401, 403, 404, 429,
  5xx / connection / timeout / DNS, HTML or invalid JSON);
- an SSRF guard: only http/https, and the host is resolved and refused when any of
  its addresses is loopback, private, link-local, reserved, multicast or otherwise not
  global (IPv4 and IPv6), unless ``settings.PSA_ALLOW_PRIVATE_PROVIDER_URLS``. The
  check runs again at connect time on the addresses actually dialled, so a DNS answer
  that changes between the check and the connection (rebinding) is refused too;
- logging that never shows credentials (auth headers and secret-looking query
  parameters are redacted).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import ipaddress
import json
import logging
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpcore
import httpx
from django.conf import settings
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from .errors import (
    AuthFailed,
    BadResponse,
    BlockedURL,
    NotFound,
    PermissionDenied,
    ProviderError,
    RateLimited,
    Unavailable,
)

logger = logging.getLogger("integrations.http")

ALLOWED_SCHEMES = ("http", "https")
_SENSITIVE_HINTS = ("auth", "key", "token", "secret", "password", "cookie", "signature", "session")
REDACTED = "[redacted]"


def _sleep(seconds: float) -> None:
    """Indirection so tests can record retry waits instead of sleeping."""
    time.sleep(seconds)


# -- settings ----------------------------------------------------------------------------
def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def default_timeout() -> httpx.Timeout:
    total = float(_setting("PSA_HTTP_TIMEOUT", 15.0))
    # Connecting should never take as long as reading a large page.
    return httpx.Timeout(total, connect=min(total, 10.0))


def allow_private() -> bool:
    return bool(_setting("PSA_ALLOW_PRIVATE_PROVIDER_URLS", False))


# -- redaction ---------------------------------------------------------------------------
def _is_sensitive(name: str) -> bool:
    lowered = name.lower()
    return any(hint in lowered for hint in _SENSITIVE_HINTS)


def redact_headers(headers: Mapping[str, str] | httpx.Headers) -> dict[str, str]:
    return {k: (REDACTED if _is_sensitive(k) else v) for k, v in headers.items()}


def redact_url(url: str | httpx.URL) -> str:
    parts = urlsplit(str(url))
    if not parts.query:
        return str(url)
    query = [(k, REDACTED if _is_sensitive(k) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="[]")))


def _url_for_message(url: str | httpx.URL) -> str:
    parts = urlsplit(str(url))
    return urlunsplit(parts._replace(query="", fragment=""))


# -- SSRF guard --------------------------------------------------------------------------
def ip_is_blocked(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        # ::ffff:127.0.0.1 and friends reach IPv4 hosts: judge the embedded address.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            return ip_is_blocked(embedded)
    return (
        not ip.is_global
        or ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


def _literal_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def resolve_host(host: str, port: int | None = None) -> list[str]:
    """Every address the host resolves to (raises Unavailable when it does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unavailable(f"Cannot resolve the host name {host!r}: check the address.") from exc
    seen: list[str] = []
    for info in infos:
        addr = info[4][0].split("%", 1)[0]
        if addr not in seen:
            seen.append(addr)
    return seen


def _blocked_message(host: str, addr: str) -> str:
    if host.strip("[]") == addr:
        where = f"{host}"
    else:
        where = f"{host} (resolves to {addr})"
    return (
        f"Refusing to connect to {where}: it is a loopback, private, link-local or reserved address. "
        "Provider URLs must be public; an operator can allow private addresses with "
        "PSA_ALLOW_PRIVATE_PROVIDER_URLS=1."
    )


def check_host(host: str, port: int | None = None, *, resolve: bool = True) -> list[str]:
    """Raise BlockedURL when the host is (or resolves to) a non-public address."""
    if allow_private():
        return []
    literal = _literal_ip(host)
    addrs = [str(literal)] if literal is not None else (resolve_host(host, port) if resolve else [])
    for addr in addrs:
        ip = _literal_ip(addr)
        if ip is None or ip_is_blocked(ip):
            raise BlockedURL(_blocked_message(host, addr))
    return addrs


def check_url(url: str, *, resolve: bool = True) -> str:
    """Validate a provider URL (scheme, host, SSRF); returns it normalised without a trailing slash."""
    try:
        parts = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise BlockedURL(f"Not a valid URL: {exc}") from None
    if parts.scheme not in ALLOWED_SCHEMES:
        raise BlockedURL(f"Only http and https URLs are allowed, not {parts.scheme or 'no scheme'!r}.")
    if not parts.host:
        raise BlockedURL("The URL has no host name.")
    if parts.userinfo:
        raise BlockedURL("Put credentials in the credential fields, not in the URL.")
    check_host(parts.host, parts.port, resolve=resolve)
    return str(url).rstrip("/")


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolves the host itself, refuses blocked addresses, then dials a checked address.

    Dialling the very address that was checked closes the DNS-rebinding gap between a
    pre-flight check and the connection. TLS still verifies and sends SNI for the host
    name (httpcore passes the origin host as ``server_hostname``).
    """

    def __init__(self, inner: httpcore.NetworkBackend):
        self._inner = inner

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        if allow_private():
            return self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        addrs = check_host(host, port, resolve=True)
        last_exc: Exception | None = None
        for addr in addrs:
            try:
                return self._inner.connect_tcp(addr, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:  # try the next checked address
                last_exc = exc
        raise last_exc or httpcore.ConnectError(f"no address for {host}")

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise BlockedURL("Unix sockets are not allowed for provider connections.")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


@dataclass
class CallTally:
    """What the guarded transport saw during a unit of work (see ``tally``)."""

    answered: int = 0  # requests that got any HTTP answer
    refused: int = 0  # requests the SSRF guard refused
    refusal: str = ""  # the guard's first message

    @property
    def all_refused(self) -> bool:
        return self.refused > 0 and self.answered == 0


_tally: ContextVar[CallTally | None] = ContextVar("psa_http_tally", default=None)


@contextmanager
def tally() -> Iterator[CallTally]:
    """Count answered and guard-refused provider requests made in this block (this thread).

    A provider may swallow a failed call (one organization of many, an optional extra); a job
    whose every call was refused by the guard must still fail with the guard's message.
    """
    current = CallTally()
    token = _tally.set(current)
    try:
        yield current
    finally:
        _tally.reset(token)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport with the SSRF-guarding network backend."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("trust_env", False)  # an env proxy would bypass the guard
        super().__init__(**kwargs)
        pool = self._pool
        pool._network_backend = _GuardedBackend(pool._network_backend)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        current = _tally.get()
        try:
            response = super().handle_request(request)
        except BlockedURL as exc:
            if current is not None:
                current.refused += 1
                current.refusal = current.refusal or str(exc)
            raise
        if current is not None:
            current.answered += 1
        return response

    def close_idle_connections(self) -> None:
        """Close the pool's idle keep-alive connections (the pool drops closed ones on its next request).

        After one pooled connection turned out dead, its idle siblings likely sat as long and were
        closed by the same server timeout: a replayed request must dial afresh, not try them.
        """
        for connection in self._pool.connections:
            if connection.is_idle():
                connection.close()


# -- retries -----------------------------------------------------------------------------
# Safe to send twice (RFC 9110 9.2.2); a caller may mark any other request idempotent.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# How a request on a kept-alive connection the server silently closed fails, before any answer:
# "Server disconnected without sending a response", a reset on read, or a broken pipe on write.
_DEAD_CONNECTION_ERRORS = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


class _RetryableStatus(Exception):
    def __init__(self, response: httpx.Response):
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.retry_after = parse_retry_after(response.headers.get("retry-after"))


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _retry_after_of(state: RetryCallState) -> float | None:
    exc = state.outcome.exception() if state.outcome else None
    return getattr(exc, "retry_after", None)


class _Wait:
    """Retry-After when the server sent one, else exponential backoff with full jitter."""

    def __init__(self) -> None:
        self._backoff = wait_random_exponential(
            multiplier=float(_setting("PSA_HTTP_BACKOFF", 0.5)), max=float(_setting("PSA_HTTP_BACKOFF_MAX", 20.0))
        )

    def __call__(self, state: RetryCallState) -> float:
        retry_after = _retry_after_of(state)
        if retry_after is not None:
            return retry_after
        return self._backoff(state)


def _stop_on_long_retry_after(state: RetryCallState) -> bool:
    # A worker must not sleep for an hour: give up and surface RateLimited(retry_after).
    retry_after = _retry_after_of(state)
    return retry_after is not None and retry_after > float(_setting("PSA_HTTP_RETRY_AFTER_MAX", 60.0))


# -- the client --------------------------------------------------------------------------
def _detail(response: httpx.Response) -> str:
    """A short, safe description of an error body (DRF detail, a bare JSON string...)."""
    try:
        data = response.json()
    except ValueError:
        return ""
    if isinstance(data, str):
        text = data
    elif isinstance(data, dict):
        detail = data.get("detail") or data.get("message") or data.get("error")
        text = detail if isinstance(detail, str) else json.dumps(data)[:200]
    else:
        text = ""
    return text.strip()[:200]


def looks_like_html(response: httpx.Response) -> bool:
    ctype = response.headers.get("content-type", "").lower()
    if "html" in ctype:
        return True
    head = response.content[:200].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


class ProviderHTTP:
    """A provider connection: ``request()`` returns parsed JSON or raises a ProviderError."""

    def __init__(
        self,
        base_url: str,
        *,
        provider_name: str,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
        timeout: httpx.Timeout | float | None = None,
        html_hint: str = "",
        transport: httpx.BaseTransport | None = None,
    ):
        self.base_url = check_url(base_url, resolve=False)
        self.provider_name = provider_name
        self.html_hint = html_hint
        retries = int(_setting("PSA_HTTP_RETRIES", 3))
        self.retries = retries
        self._transport = transport or GuardedTransport(retries=retries)
        self._client = httpx.Client(
            base_url=self.base_url,
            headers={"Accept": "application/json", "User-Agent": "psa-integrations/1", **(headers or {})},
            auth=auth,
            timeout=timeout if timeout is not None else default_timeout(),
            limits=httpx.Limits(max_connections=10, max_keepalive_connections=5, keepalive_expiry=30.0),
            transport=self._transport,
            follow_redirects=False,
            trust_env=False,
            event_hooks={"request": [self._log_request], "response": [self._log_response]},
        )

    # logging with secrets redacted
    @staticmethod
    def _log_request(request: httpx.Request) -> None:
        request.extensions["psa_started"] = time.monotonic()
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s headers=%s", request.method, redact_url(request.url), redact_headers(request.headers))

    @staticmethod
    def _log_response(response: httpx.Response) -> None:
        started = response.request.extensions.get("psa_started")
        elapsed = (time.monotonic() - started) if started else 0.0
        logger.debug(
            "%s %s -> %s (%.0f ms)",
            response.request.method,
            redact_url(response.request.url),
            response.status_code,
            elapsed * 1000,
        )

    # ------------------------------------------------------------------------------------
    def set_header(self, name: str, value: str | None) -> None:
        if value is None:
            self._client.headers.pop(name, None)
        else:
            self._client.headers[name] = value

    def _request(self, method: str, url: str, replay: bool, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.request(method, url, **kwargs)
        except _DEAD_CONNECTION_ERRORS as exc:
            if not replay:
                raise  # the server may have received and acted on it: never send it twice
            logger.info("%s %s: %s on a kept-alive connection; sending it once more on a fresh one",
                        method, redact_url(self._client.base_url.join(url)), type(exc).__name__)
            close_idle = getattr(self._transport, "close_idle_connections", None)
            if close_idle is not None:
                close_idle()
            return self._client.request(method, url, **kwargs)

    def _send_once(self, method: str, url: str, idempotent: bool | None, **kwargs: Any) -> httpx.Response:
        where = _url_for_message(self._client.base_url.join(url))
        replay = method.upper() in IDEMPOTENT_METHODS if idempotent is None else idempotent
        try:
            response = self._request(method, url, replay, **kwargs)
        except ProviderError:
            raise  # BlockedURL from the guarded backend
        except httpx.TimeoutException as exc:
            raise Unavailable(f"{self.provider_name} did not answer in time ({type(exc).__name__}) at {where}.") from exc
        except httpx.ConnectError as exc:
            text = str(exc)
            if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
                raise Unavailable(f"Cannot resolve the host of {where}: check the address.") from exc
            raise Unavailable(f"Cannot connect to {self.provider_name} at {where}: {text or 'connection failed'}.") from exc
        except httpx.TransportError as exc:
            raise Unavailable(f"Connection to {self.provider_name} failed at {where}: {type(exc).__name__}.") from exc
        if response.status_code == 429 or response.status_code >= 500:
            response.read()
            raise _RetryableStatus(response)
        return response

    def send(self, method: str, url: str, *, idempotent: bool | None = None, **kwargs: Any) -> httpx.Response:
        """Send with retries; returns the final response for any status below 500 except 429.

        ``idempotent`` (default: by method) allows sending the request again when its connection dies
        before any answer; mark a POST that is safe to repeat (a search, a lookup) ``idempotent=True``.
        """
        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1) | _stop_on_long_retry_after,
            wait=_Wait(),
            retry=retry_if_exception_type(_RetryableStatus),
            reraise=True,
            sleep=lambda seconds: _sleep(seconds),
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._send_once(method, url, idempotent, **kwargs)
        except _RetryableStatus as exc:
            return exc.response
        raise AssertionError("unreachable")  # pragma: no cover

    def request(
        self, method: str, url: str, *, ok_404: bool = False, idempotent: bool | None = None, **kwargs: Any
    ) -> Any:
        response = self.send(method, url, idempotent=idempotent, **kwargs)
        self.raise_for_status(response, ok_404=ok_404)
        if ok_404 and response.status_code == 404:
            return None
        return self.parse(response)

    def raise_for_status(self, response: httpx.Response, *, ok_404: bool = False) -> None:
        code = response.status_code
        if code < 300:
            return
        where = _url_for_message(response.request.url)
        detail = _detail(response)
        suffix = f": {detail}" if detail else ""
        name = self.provider_name
        if code == 401:
            raise AuthFailed(f"{name} rejected the credentials (401{suffix}).")
        if code == 403:
            raise PermissionDenied(f"{name} refused access to {urlsplit(where).path} (403{suffix}).")
        if code == 404:
            if ok_404:
                return
            raise NotFound(f"{name} has no {urlsplit(where).path} (404{suffix}).")
        if code == 429:
            raise RateLimited(
                f"{name} is rate limiting requests (429); try again later.",
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        if code >= 500:
            raise Unavailable(f"{name} answered with a server error ({code}) at {where}.")
        if 300 <= code < 400:
            target = response.headers.get("location", "")
            raise BadResponse(
                f"{name} redirected {where} to {_url_for_message(target) or 'another address'} ({code}); "
                "use the final API address as the base URL."
            )
        raise ProviderError(f"{name} rejected the request ({code}{suffix}).")

    def parse(self, response: httpx.Response) -> Any:
        if looks_like_html(response):
            hint = f" {self.html_hint}" if self.html_hint else ""
            raise BadResponse(
                f"{self.provider_name} answered {_url_for_message(response.request.url)} with an HTML page, "
                f"not the API.{hint}"
            )
        if not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise BadResponse(
                f"{self.provider_name} answered {_url_for_message(response.request.url)} with something that is not JSON."
            ) from exc

    # conveniences
    def get(self, url: str, **kwargs: Any) -> Any:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Any:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> Any:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Any:
        return self.request("DELETE", url, **kwargs)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_client(base_url: str, *, provider_name: str, **kwargs: Any) -> ProviderHTTP:
    """The factory providers call: one ProviderHTTP per provider connection."""
    return ProviderHTTP(base_url, provider_name=provider_name, **kwargs)
