"""Webhook intake: authenticate, size-limit, store, enqueue, answer 202. Nothing else.

Order of checks (each answer gives a guesser nothing it did not already know):
404 unknown key or provider mismatch -> 413 over the size limit (kept as failed when the
sender proved the secret) -> 401 wrong or missing secret -> 429 absurd flood -> 400 body the
provider cannot read, or JSON refused for every provider by psa.jsonsafe (kept as failed with the
reason) -> 202 stored (also for a redelivery).

Providers that sign their webhooks declare ``Provider.signature_scheme``; its ``verify`` answers
None for a request without any signature, which falls back to the shared-secret header. A signed
request whose signature does not match answers 401 and is kept as a failed event (a few per
minute), so an admin sees a mistyped secret in the event log. Headers a
provider declares in ``secret_headers`` are redacted from the stored request, like ours.
"""

from __future__ import annotations

import copy
import hmac
import logging
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from alerts.services import events
from integrations.base import WebhookRequest
from integrations.errors import WebhookParseError
from integrations.models import Integration
from integrations.ratelimit import redis_client as _redis_client
from integrations.registry import get_provider_class, is_registered
from psa import jsonsafe
from psa.tenancy import tenant_context
from psa.text import clean

log = logging.getLogger(__name__)

REDACTED = "[redacted]"
# Always redacted from the stored request, whatever the provider.
SENSITIVE_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-api-key", "x-psa-webhook-secret"}
SENSITIVE_QUERY = {"secret", "token", "key", "api_key"}
# How much of an oversized body is kept for the log.
OVERSIZE_KEEP_BYTES = 64 * 1024
LAST_WEBHOOK_EVERY = 60  # seconds: integration.last_webhook_at is a hint, not a counter


def _answer(http_status: int, /, **body: Any) -> JsonResponse:
    return JsonResponse(body, status=http_status)


@lru_cache(maxsize=1)
def _lookup_sql() -> str:
    """SELECT of the whole integration row by webhook key (with its row version on PostgreSQL), built
    once per process."""
    meta = Integration._meta
    quote = connection.ops.quote_name
    cols = ", ".join(quote(f.column) for f in meta.concrete_fields)
    key_col = quote(meta.get_field("webhook_key").column)
    version = f", {ROW_VERSION} AS row_version" if connection.vendor == "postgresql" else ""
    return f"SELECT {cols}{version} FROM {quote(meta.db_table)} WHERE {key_col} = %s"


@lru_cache(maxsize=1)
def _version_sql() -> str:
    meta = Integration._meta
    quote = connection.ops.quote_name
    return f"SELECT {ROW_VERSION} FROM {quote(meta.db_table)} WHERE {quote(meta.get_field('webhook_key').column)} = %s"


# Per process: webhook key -> (row version, the integration as loaded). The version is the row's
# transaction id and physical place (xmin, ctid): every UPDATE writes a new row version elsewhere,
# whoever makes it (save(), update(), another process), and two versions written in one transaction
# share xmin but not ctid, so the pair changes with every update. A request reads only the version (one index lookup, no model building) and reuses the
# loaded integration while it is unchanged, so a disabled integration or a rotated secret still
# takes effect at once. Building the model from the full row cost three times the version read.
_loaded: dict[str, tuple[str, Integration]] = {}
ROW_VERSION = "xmin::text || '/' || ctid::text"
LOADED_MAX = 10_000


def _lookup(provider_slug: str, key: str) -> Integration | None:
    if not key or len(key) > 64 or not is_registered(provider_slug):
        return None
    integration = _load(key)  # cross-tenant by design: the key names the tenant
    if integration is None or integration.provider != provider_slug or not integration.enabled:
        return None
    return integration


def _load(key: str) -> Integration | None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute(_version_sql(), [key])
            row = cur.fetchone()
        if row is None:
            _loaded.pop(key, None)
            return None
        known = _loaded.get(key)
        if known is not None and known[0] == row[0]:
            return copy.copy(known[1])  # a copy: requests on other threads share the loaded one
    # raw() applies the fields' converters (JSON, datetimes on SQLite); the SQL is built once.
    integration = next(iter(Integration.objects.unscoped().raw(_lookup_sql(), [key])), None)
    if integration is None or connection.vendor != "postgresql":
        return integration
    if len(_loaded) >= LOADED_MAX:
        _loaded.clear()
    _loaded[key] = (integration.row_version, integration)
    return copy.copy(integration)


def _headers(request: HttpRequest) -> dict[str, str]:
    return {k.lower(): clean(v) for k, v in request.headers.items()}


def _query(request: HttpRequest) -> dict[str, str]:
    return {clean(k): clean(v) for k, v in request.GET.items()}


def redact(values: dict[str, str], names: set[str], secret: str) -> dict[str, str]:
    """Copy with sensitive entries (by name, or carrying the secret) replaced."""
    out = {}
    for name, value in values.items():
        hide = name.lower() in names or (secret and len(secret) >= 8 and secret in value)
        out[name] = REDACTED if hide else value
    return out


def _secret(integration: Integration) -> str:
    try:
        return integration.get_webhook_secret()
    except (
        Exception
    ) as exc:  # undecryptable secret (key removed): refuse, and tell the operator, not the caller
        log.error(
            "webhook secret of integration %s cannot be decrypted (%s)", integration.pk, type(exc).__name__
        )
        return ""


def _shared_secret_ok(provider_cls, headers: dict[str, str], query: dict[str, str], secret: str) -> bool:
    if not secret:
        return False
    supplied = headers.get(provider_cls.webhook_header.lower(), "")
    if not supplied and provider_cls.webhook_secret_in_query:
        supplied = query.get("secret", "")
    return hmac.compare_digest(supplied.encode(), secret.encode())


AUTH_OK = "ok"
AUTH_REFUSED = "refused"  # no or wrong shared secret, or no key to check a signature with
AUTH_BAD_SIGNATURE = "bad_signature"  # the request is signed, and the signature does not match


def _authentication(provider_cls, integration, body: bytes | None, headers, query, secret: str) -> str:
    scheme = provider_cls.signature_scheme
    if scheme is not None and body is not None:
        try:
            key = provider_cls(integration).webhook_signing_secret(secret)
            verdict = scheme.verify(WebhookRequest(body=body, headers=headers, query=query), key) if key else False
        except Exception as exc:
            log.warning("signature check of integration %s raised %s", integration.pk, type(exc).__name__)
            return AUTH_REFUSED
        if verdict is not None:
            return AUTH_OK if verdict else (AUTH_BAD_SIGNATURE if key else AUTH_REFUSED)
    return AUTH_OK if _shared_secret_ok(provider_cls, headers, query, secret) else AUTH_REFUSED


# Requests with a wrong signature kept in the event log per integration and minute: enough to show an
# admin a mistyped secret, too few for a stranger to fill the table.
BAD_SIGNATURE_KEEP_PER_MINUTE = 20


def _keep_bad_signature(integration, provider_cls, body: bytes, meta: dict) -> None:
    """Log a request whose signature did not match as a failed event (401 all the same). Its
    secret-bearing headers are redacted like every stored request's; the signature is not a secret."""
    key = f"psa:webhook-bad-signature:{integration.pk}:{int(time.time() // 60)}"
    try:
        cache.add(key, 0, timeout=120)
        if cache.incr(key) > BAD_SIGNATURE_KEEP_PER_MINUTE:
            return
    except Exception:  # the cache being down: keep the event (the 401 is what matters)
        log.warning("bad-signature counter unavailable for integration %s", integration.pk)
    scheme = provider_cls.signature_scheme
    headers = ", ".join(scheme.headers) if scheme is not None and scheme.headers else "signature header"
    events.store_failed(
        integration,
        body=body[:OVERSIZE_KEEP_BYTES],
        error=(f"Signature check failed ({headers}): the request is signed, but not with this integration's "
               f"secret. Paste the webhook card's secret into {provider_cls.name} again (or rotate it and "
               "paste the new one). Refused with 401."),
        summary="Bad signature",
        **dict(meta, size=len(body)),
    )


@lru_cache(maxsize=64)
def _redacted_headers(provider_cls) -> frozenset[str]:
    return frozenset(
        SENSITIVE_HEADERS | {provider_cls.webhook_header.lower()} | {h.lower() for h in provider_cls.secret_headers}
    )


# The flood counter is shared (Redis) but each process adds to it in batches: a request only
# touches Redis when its process has counted FLOOD_SYNC_FRACTION of the limit since the last
# sync, or FLOOD_SYNC_SECONDS have passed. Between syncs the process decides on the shared
# total it last saw plus its own unsynced count, so the limit can be overshot by at most one
# batch per process (1 % each); with a small limit the batch is 1 and every request syncs.
FLOOD_SYNC_FRACTION = 0.01
FLOOD_SYNC_SECONDS = 1.0


@dataclass
class _FloodState:
    minute: int
    shared: int = 0  # the shared total at the last sync (includes this process's synced counts)
    pending: int = 0  # counted here, not yet added to the shared total
    synced_at: float = 0.0


_flood_lock = threading.Lock()
_flood: dict[str, _FloodState] = {}


def flooded(integration_id: int, tenant_id: int | None = None) -> bool:
    """Far beyond any real RMM: more than PSA_WEBHOOK_FLOOD_PER_MINUTE requests this minute for one
    integration, or more than PSA_WEBHOOK_FLOOD_PER_MINUTE_TENANT for all of a tenant's integrations
    (0 turns a limit off). Operators set both; the fair dispatcher, not this guard, keeps tenants apart."""
    if _over(str(integration_id), getattr(settings, "PSA_WEBHOOK_FLOOD_PER_MINUTE", 0)):
        return True
    return tenant_id is not None and _over(f"tenant-{tenant_id}",
                                           getattr(settings, "PSA_WEBHOOK_FLOOD_PER_MINUTE_TENANT", 0))


def _over(key: str, limit: int) -> bool:
    if not limit:
        return False
    now = time.time()
    minute = int(now // 60)
    batch = max(1, int(limit * FLOOD_SYNC_FRACTION))
    with _flood_lock:
        state = _flood.get(key)
        if state is None or state.minute != minute:
            if state is not None and state.minute != minute:
                stale = [k for k, v in _flood.items() if v.minute != minute]
                for k in stale:  # a new minute: forget the old buckets
                    del _flood[k]
            state = _flood[key] = _FloodState(minute)
        state.pending += 1
        seen = state.shared + state.pending
        delta = 0
        if state.pending >= batch or now - state.synced_at >= FLOOD_SYNC_SECONDS:
            delta, state.pending, state.synced_at = state.pending, 0, now
    if not delta:
        return seen > limit
    try:
        total = _add_to_shared(f"psa:webhook-flood:{key}:{minute}", delta)
    except Exception:  # the cache being down must never refuse a real alert
        return False
    with _flood_lock:
        if state.minute == minute:
            state.shared = max(state.shared, total)
        seen = max(seen, total + state.pending)
    return seen > limit


def _add_to_shared(key: str, delta: int) -> int:
    """Add ``delta`` to this minute's shared counter and return the new total."""
    client = _redis_client()
    if client is not None:
        # One round trip: INCRBY creates the counter, EXPIRE bounds its life (re-setting the
        # TTL of a per-minute key is harmless). Same key and integer encoding as the Django
        # cache path below, so both agree.
        pipe = client.pipeline(transaction=False)
        pipe.incrby(cache.make_key(key), delta)
        pipe.expire(cache.make_key(key), 120)
        total, _ = pipe.execute()
        return int(total)
    cache.add(key, 0, timeout=120)
    return cache.incr(key, delta)


def _touch(integration: Integration) -> None:
    now = timezone.now()
    last = integration.last_webhook_at
    if last is None or (now - last).total_seconds() > LAST_WEBHOOK_EVERY:
        Integration.objects.unscoped().filter(pk=integration.pk).update(last_webhook_at=now)


def _content_length(request: HttpRequest) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


def unsafe_reason(body: bytes) -> str | None:
    """Why a JSON body is refused whatever the provider (psa.jsonsafe: nesting, huge integers,
    NaN/Infinity/1e400, lone surrogates), or None. A body that is not JSON at all is the provider's
    to judge (some salvage it). A JSON string holding JSON (Tactical's fallback) is checked inside too."""
    try:
        document = jsonsafe.loads(body, strict=False)
        if isinstance(document, str) and document.lstrip()[:1] in ("{", "["):
            jsonsafe.loads(document, strict=False)
    except jsonsafe.UnsafeJSON as exc:
        return str(exc)
    except ValueError:
        return None
    return None


def receive_webhook(provider_slug: str, key: str, request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _answer(405, detail="Use POST.")
    integration = _lookup(provider_slug, key)
    if integration is None:
        return _answer(404, detail="Not found.")
    provider_cls = get_provider_class(provider_slug)
    limit = settings.PSA_WEBHOOK_MAX_BYTES
    headers, query = _headers(request), _query(request)
    secret = _secret(integration)
    meta = {
        "headers": redact(headers, _redacted_headers(provider_cls), secret),
        "query": redact(query, SENSITIVE_QUERY, secret),
        "remote_addr": request.META.get("REMOTE_ADDR") or None,
    }

    with tenant_context(integration.tenant_id):
        declared = _content_length(request)
        if declared is not None and declared > limit:
            kept = request.read(OVERSIZE_KEEP_BYTES)
            _drain(request)
            return _oversized(integration, provider_cls, kept, declared, headers, query, secret, meta)
        body = request.read(limit + 1)
        if len(body) > limit:
            _drain(request)
            return _oversized(
                integration, provider_cls, body[:OVERSIZE_KEEP_BYTES], len(body), headers, query, secret, meta
            )
        verdict = _authentication(provider_cls, integration, body, headers, query, secret)
        if verdict != AUTH_OK:
            if verdict == AUTH_BAD_SIGNATURE:
                _keep_bad_signature(integration, provider_cls, body, meta)
            return _answer(401, detail="Unauthorized")
        if flooded(integration.pk, integration.tenant_id):
            return _answer(429, detail="Too many requests for this integration; slow down.")
        _touch(integration)
        meta["size"] = len(body)
        try:
            refused = unsafe_reason(body)
            if refused:
                raise WebhookParseError(refused)
            envelope = provider_cls(integration).inspect_webhook(
                WebhookRequest(body=body, headers=headers, query=query)
            )
        except Exception as exc:
            if not isinstance(exc, WebhookParseError):
                # A parser bug must not turn an authenticated delivery into a 500 with no trace.
                log.exception("%s webhook parser raised on event of integration %s", provider_slug, integration.pk)
                exc = WebhookParseError(f"The {provider_slug} parser could not read this body ({type(exc).__name__}).")
            reason = clean(str(exc), 1000) or "The body could not be read."
            event_id = events.store_failed(
                integration, body=body, error=reason, summary="Unreadable webhook", **meta
            )
            return _answer(400, detail=f"Unreadable webhook: {reason}", event_id=event_id)
        stored = events.store_accepted(
            integration, body=body, delivery_id=envelope.delivery_id, summary=envelope.summary or "", **meta
        )
    if stored.is_duplicate:
        return _answer(202, status="accepted", event_id=stored.id, duplicate=True)
    return _answer(202, status="accepted", event_id=stored.id)


# A sender still writing an oversized body when we answer and close sees a broken pipe, not our 413
# (Python's urllib, as many senders use, does). Reading (and dropping) a bounded amount lets it finish
# writing and read the answer; a body beyond this is cut off. The production proxy (nginx) answers 413
# itself, before the body, when the sender asked "Expect: 100-continue".
OVERSIZE_DRAIN_BYTES = 16 * 1024 * 1024


def _drain(request: HttpRequest) -> None:
    left = OVERSIZE_DRAIN_BYTES
    while left > 0:
        chunk = request.read(min(64 * 1024, left))
        if not chunk:
            return
        left -= len(chunk)


def _oversized(
    integration, provider_cls, kept: bytes, size: int, headers, query, secret, meta
) -> HttpResponse:
    limit = settings.PSA_WEBHOOK_MAX_BYTES
    # Only a sender that proved the shared secret gets its refused request logged; a signature
    # cannot be checked without the whole body, so those are refused without a trace.
    if provider_cls.signature_scheme is None:
        if not _shared_secret_ok(provider_cls, headers, query, secret):
            return _answer(401, detail="Unauthorized")
        events.store_failed(
            integration,
            body=kept,
            error=f"Body of {size} bytes over the {limit}-byte limit; its first {len(kept)} bytes are kept.",
            summary="Oversized webhook",
            **dict(meta, size=min(size, 2**31 - 1)),
        )
    return _answer(413, detail=f"Body over the {limit}-byte limit.")
