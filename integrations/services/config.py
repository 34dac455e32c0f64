"""Connecting a provider: the Integration row, write-only credentials, webhook secret, connection test."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone

from integrations import registry, settings_schema
from integrations.base import Provider
from integrations.crypto import CredentialDecryptError
from integrations.errors import NotConfigured, ProviderError
from integrations.models import Integration, IntegrationStatus

from .errors import describe_error

log = logging.getLogger("integrations.config")

# Hints show the last 4 characters only of values long enough that 4 characters reveal little.
HINT_MIN_LENGTH = 12

# The admin's request while a connection is tested: without PSA_PUBLIC_BASE_URL, an on_connected hook
# (NinjaOne's webhook registration) builds our webhook URL from it, as the webhook card does.
_request: ContextVar[Any] = ContextVar("integrations_config_request", default=None)


@contextmanager
def _serving(request):
    token = _request.set(request)
    try:
        yield
    finally:
        _request.reset(token)


class UnknownProvider(Http404):
    """No provider with this slug is registered (the API answers 404)."""


class IntegrationNotFound(Http404):
    """The current tenant has not set this provider up yet."""


def provider_class(slug: str) -> type[Provider]:
    try:
        return registry.get_provider_class(slug)
    except LookupError:
        raise UnknownProvider(f"Unknown provider {slug!r}.") from None


def takes_credentials(cls: type[Provider]) -> bool:
    """False for providers like ``generic`` that are enabled by an empty PUT."""
    return bool(cls.credential_fields or cls.credential_sets or cls.requires_base_url)


def clamp_interval(cls: type[Provider], minutes: int) -> int:
    lo, hi = cls.poll_interval_bounds
    return max(lo, min(hi, int(minutes)))


def get_integration(slug: str, create: bool = False) -> Integration:
    """The current tenant's integration for ``slug``; 404-able (UnknownProvider / IntegrationNotFound)."""
    cls = provider_class(slug)
    found = Integration.objects.filter(provider=slug).first()
    if found is not None:
        return found
    if not create:
        raise IntegrationNotFound(f"{cls.name} is not set up.")
    try:
        with transaction.atomic():
            integration = Integration.objects.create(
                provider=slug, poll_interval_minutes=clamp_interval(cls, cls.default_poll_interval_minutes)
            )
            # The secret is bound to the row id, so it is written right after the insert.
            integration.set_webhook_secret(secrets.token_urlsafe(32))
            integration.save(update_fields=["webhook_secret_ciphertext"])
    except IntegrityError:  # a concurrent request created it first
        return Integration.objects.get(provider=slug)
    return integration


def unsaved_integration(slug: str) -> Integration:
    """A not-yet-configured placeholder for listings (never saved by the caller)."""
    cls = provider_class(slug)
    return Integration(provider=slug, poll_interval_minutes=clamp_interval(cls, cls.default_poll_interval_minutes))


# -- credentials --------------------------------------------------------------------------------------


def _hint(value: Any) -> dict[str, Any]:
    text = str(value)
    hint: dict[str, Any] = {"set": True}
    if len(text) >= HINT_MIN_LENGTH:
        hint["last4"] = text[-4:]
    return hint


def credential_state(integration: Integration) -> dict[str, dict[str, Any]]:
    """What the API shows instead of credentials: for every field, whether it is set (+ a hint)."""
    cls = provider_class(integration.provider)
    hints = integration.credentials_hint or {}
    names = [f.name for f in cls.credential_fields] or sorted(hints)
    state = {name: dict(hints.get(name) or {"set": False}) for name in names}
    for name, hint in hints.items():  # fields a provider stores beyond its declared ones
        state.setdefault(name, dict(hint))
    return state


def _hints_for(stored: dict[str, Any], typed: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """Hints for what is actually stored (after prepare_credentials), never for what was dropped."""
    hints: dict[str, Any] = {}
    for key, value in stored.items():
        if key in typed and typed[key] == value:
            hints[key] = _hint(value)
        elif key in previous and key not in typed:
            hints[key] = previous[key]
        else:  # derived by the provider (e.g. a token from a login): say it is set, nothing more
            hints[key] = {"set": True}
    return hints


def _clean_credentials(cls: type[Provider], credentials: Any) -> dict[str, Any]:
    if not isinstance(credentials, dict):
        raise ValidationError({"credentials": ["Must be an object of credential fields."]})
    known = {f.name for f in cls.credential_fields}
    cleaned: dict[str, Any] = {}
    bad: list[str] = []
    for key, value in credentials.items():
        if isinstance(value, dict) and "set" in value:
            continue  # a hint echoed back from a GET: "unchanged"
        if known and key not in known or not known and value not in (None, ""):
            bad.append(str(key))
            continue
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise ValidationError({"credentials": [f"{key}: must be a string."]})
        cleaned[key] = value.strip() if isinstance(value, str) else value
    if bad:
        if not known:
            raise ValidationError({"credentials": [f"{cls.name} takes no credentials."]})
        raise ValidationError(
            {"credentials": [f"Unknown field(s): {', '.join(sorted(bad))}. Expected: {', '.join(sorted(known))}."]}
        )
    return cleaned


def _clean_base_url(value: Any) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str):
        raise ValidationError({"base_url": ["Must be a URL."]})
    url = value.strip().rstrip("/")
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        raise ValidationError({"base_url": ["Enter a valid http(s) URL."]}) from None
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise ValidationError({"base_url": ["Do not put credentials in the URL; use the credential fields."]})
    if parts.query or parts.fragment:
        raise ValidationError({"base_url": ["The base URL must not contain a query or fragment."]})
    return url


def update_integration(
    integration: Integration,
    *,
    base_url: Any = None,
    credentials: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    poll_interval_minutes: int | None = None,
    poll_enabled: bool | None = None,
    enabled: bool | None = None,
    test: bool = True,
) -> Integration:
    """Apply an admin's PUT. Credentials merge write-only: omitted keys keep their value, null/"" clears.

    Raises django ValidationError with field errors. When the connection details changed and
    ``test`` is true, the connection is tested afterwards (outside any transaction).
    """
    cls = provider_class(integration.provider)
    provider = cls(integration)
    errors: dict[str, list[str]] = {}
    changed_connection = False

    new_base_url = integration.base_url
    if base_url is not None:
        new_base_url = _clean_base_url(base_url)
        changed_connection |= new_base_url != integration.base_url

    merged: dict[str, Any] | None = None
    incoming: dict[str, Any] = {}
    if credentials is not None:
        incoming = _clean_credentials(cls, credentials)
        merged = dict(integration.get_credentials()) if integration.credentials_ciphertext else {}
        for key, value in incoming.items():
            if value in (None, ""):
                merged.pop(key, None)
            else:
                merged[key] = value
        changed_connection |= bool(incoming)

    new_settings: dict[str, Any] | None = None
    if settings is not None:
        new_settings, setting_errors = settings_schema.validate(provider, settings, integration.settings)
        errors.update(setting_errors)
        changed_connection |= new_settings != (integration.settings or {})

    if poll_interval_minutes is not None:
        lo, hi = cls.poll_interval_bounds
        if not isinstance(poll_interval_minutes, int) or isinstance(poll_interval_minutes, bool) or not (
            lo <= poll_interval_minutes <= hi
        ):
            errors["poll_interval_minutes"] = [f"Must be a whole number of minutes between {lo} and {hi}."]

    # Every declared credential named and cleared (null or "") in one request is a disconnect; clearing
    # only some of them, which leaves no complete set, is refused below.
    clearing = (merged is not None and not merged and all(v in (None, "") for v in incoming.values())
                and {f.name for f in cls.credential_fields} <= set(incoming))
    if takes_credentials(cls) and (changed_connection or merged is not None) and not clearing:
        check = merged if merged is not None else (integration.get_credentials() if integration.pk else {})
        errors.update(provider.validate_credentials(check, new_base_url) or {})
        if not errors and merged and (incoming or changed_connection):
            try:
                merged = provider.prepare_credentials(merged, new_base_url)
            except ProviderError as exc:
                errors["credentials"] = [describe_error(exc)]
    if errors:
        raise ValidationError(errors)

    if takes_credentials(cls) and merged is not None and not merged and integration.credentials_ciphertext:
        _before_disconnect(integration)  # HTTP: before the row lock below
    now = timezone.now()
    with transaction.atomic():
        row = Integration.objects.select_for_update().get(pk=integration.pk)
        row.base_url = new_base_url
        if merged is not None:
            row.set_credentials(merged)
            row.credentials_hint = _hints_for(merged, incoming, row.credentials_hint or {})
        if new_settings is not None:
            row.settings = new_settings
        if poll_interval_minutes is not None and poll_interval_minutes != row.poll_interval_minutes:
            row.poll_interval_minutes = poll_interval_minutes
            if row.next_poll_at is not None:  # None means "poll as soon as connected": keep it
                row.next_poll_at = (row.last_poll_at or now) + dt.timedelta(minutes=poll_interval_minutes)
        if poll_enabled is not None:
            row.poll_enabled = bool(poll_enabled)
        if enabled is not None:
            row.enabled = bool(enabled)
        if not row.webhook_secret_ciphertext:
            row.set_webhook_secret(secrets.token_urlsafe(32))
        if not takes_credentials(cls):
            if row.status != IntegrationStatus.CONNECTED:
                row.status, row.connected_at = IntegrationStatus.CONNECTED, now
            row.last_error = ""
        elif merged is not None and not merged:
            row.status, row.connected_at, row.last_error, row.account_name = (
                IntegrationStatus.NOT_CONFIGURED, None, "", "")
            row.token_ciphertext = ""  # a token outlives no credentials
        row.save()
    integration.refresh_from_db()
    if takes_credentials(cls) and changed_connection and test and integration.credentials_ciphertext:
        test_connection(integration)
    return integration


def save(slug: str, *, base_url: Any = None, credentials: dict[str, Any] | None = None,
         settings: dict[str, Any] | None = None, poll_interval_minutes: int | None = None,
         poll_enabled: bool | None = None, enabled: bool | None = None,
         request=None) -> tuple[Integration, dict[str, Any] | None]:
    """An admin saves a provider's connection (the API's PUT and the connection card alike): create the
    row if needed and apply the changes in one transaction (a rejected first save leaves nothing), then,
    when connection details were given, test the connection after the commit (HTTP outside it).

    ``request`` (the admin's) gives our public address when PSA_PUBLIC_BASE_URL is unset.
    Returns (integration, the connection test's result or None). Raises ValidationError."""
    cls = provider_class(slug)
    with transaction.atomic():
        integration = get_integration(slug, create=True)
        update_integration(
            integration, base_url=base_url, credentials=credentials, settings=settings,
            poll_interval_minutes=poll_interval_minutes, poll_enabled=poll_enabled, enabled=enabled, test=False,
        )
    result = None
    details_given = bool(credentials) or base_url is not None or settings is not None
    if takes_credentials(cls) and details_given and integration.credentials_ciphertext:
        result = test_connection(integration, request=request)
        integration.refresh_from_db()
    return integration, result


def rotate_webhook_secret(integration: Integration) -> str:
    secret = secrets.token_urlsafe(32)
    with transaction.atomic():
        row = Integration.objects.select_for_update().get(pk=integration.pk)
        row.set_webhook_secret(secret)
        row.save(update_fields=["webhook_secret_ciphertext", "updated_at"])
    integration.refresh_from_db()
    return secret


# -- connection test ----------------------------------------------------------------------------------


def _set_status(integration: Integration, status: str, *, error: str = "", account_name: str | None = None) -> None:
    fields = ["status", "last_error", "updated_at"]
    if status == IntegrationStatus.CONNECTED and (integration.status != status or not integration.connected_at):
        integration.connected_at = timezone.now()
        fields.append("connected_at")
    integration.status, integration.last_error = status, error
    if account_name is not None:
        integration.account_name = account_name[:255]
        fields.append("account_name")
    integration.save(update_fields=fields)


def _after_connect(provider: Provider, message: str) -> str:
    """Run the provider's on_connected hook (e.g. webhook registration); its answer joins the message.
    A failure there does not undo the connection: the admin reads why and can retry."""
    try:
        note = provider.on_connected()
    except ProviderError as exc:
        note = describe_error(exc)
    return f"{message} {note}".strip() if note else message


def _before_disconnect(integration: Integration) -> None:
    cls = provider_class(integration.provider)
    provider = cls(integration)
    try:
        provider.on_disconnect()
    except ProviderError as exc:  # the credentials are cleared anyway: the admin asked for it
        log.info("%s on_disconnect failed: %s", integration.provider, describe_error(exc))
    except CredentialDecryptError:
        pass
    finally:
        provider.close()


def test_connection(integration: Integration, request=None) -> dict[str, Any]:
    """Call the provider's connection test and record the outcome on the integration (``request``: see save)."""
    cls = provider_class(integration.provider)
    if takes_credentials(cls) and not integration.credentials_ciphertext:
        msg = "Enter the credentials first."
        _set_status(integration, IntegrationStatus.NOT_CONFIGURED)
        return {"ok": False, "status": integration.status, "message": msg, "account_name": ""}
    provider = cls(integration)
    try:
        integration.get_credentials()  # undecryptable credentials: say so, whatever the provider does
        result = provider.test_connection()
        ok, message, account, details = result.ok, result.message, result.account_name, result.details
        if ok:
            with _serving(request):
                message = _after_connect(provider, message)
    except NotConfigured:
        if takes_credentials(cls):
            ok, message, account, details = False, f"{cls.name} cannot test its connection.", "", {}
        else:
            ok, message, account, details = True, "Ready to receive webhooks.", "", {}
    except ProviderError as exc:
        ok, message, account, details = False, describe_error(exc), "", {"code": exc.code}
    except CredentialDecryptError as exc:
        ok, message, account, details = False, describe_error(exc), "", {"code": "credentials_unreadable"}
    except Exception as exc:  # an unexpected bug must still leave a readable status
        log.exception("connection test of integration %s failed", integration.pk)
        ok, message, account, details = False, describe_error(exc), "", {}
    finally:
        try:
            provider.close()
        except Exception:  # closing must not hide the test outcome
            log.warning("closing provider %s failed", integration.provider, exc_info=True)
    if ok:
        _set_status(integration, IntegrationStatus.CONNECTED, account_name=account or integration.account_name)
    else:
        _set_status(integration, IntegrationStatus.ERROR, error=message or "Connection failed.")
    remember(integration, connection={"ok": ok, "message": message, "details": details,
                                      "at": timezone.now().isoformat()})
    return {"ok": ok, "status": integration.status, "message": message, "account_name": integration.account_name,
            "details": details}


def remember(integration: Integration, **facts: Any) -> None:
    """Merge non-secret facts into ``integration.provider_state`` (one UPDATE; JSON-safe values only).

    Concurrent writers of different keys do not lose each other's: the merge happens in the row lock."""
    with transaction.atomic():
        row = Integration.objects.select_for_update().filter(pk=integration.pk).only("provider_state").first()
        if row is None:
            return
        state = {**(row.provider_state or {}), **facts}
        Integration.objects.filter(pk=integration.pk).update(provider_state=state)
    integration.provider_state = state


# -- webhook card -------------------------------------------------------------------------------------


def webhook_url(integration: Integration, request=None) -> str:
    path = f"/webhooks/{integration.provider}/{integration.webhook_key}/"
    base = getattr(django_settings, "PUBLIC_BASE_URL", "") or getattr(django_settings, "PSA_PUBLIC_BASE_URL", "")
    if base:
        return base.rstrip("/") + path
    request = request if request is not None else _request.get()
    return request.build_absolute_uri(path) if request is not None else path


def webhook_card(integration: Integration, request=None) -> dict[str, Any]:
    """What the admin pastes into the provider: {url, header_name, secret, payload_template, ...}."""
    cls = provider_class(integration.provider)
    if not integration.webhook_secret_ciphertext:
        rotate_webhook_secret(integration)
    url, secret = webhook_url(integration, request), integration.get_webhook_secret()
    card: dict[str, Any] = {"url": url, "header_name": cls.webhook_header, "secret": secret, "payload_template": ""}
    provider = cls(integration)
    card.update(provider.webhook_card(url, secret) or {})
    if cls.severity_map is not None:  # the one table the parser uses, with this integration's overrides
        card["severity_map"] = severity_table(provider)
    if cls.signature_scheme is not None:
        card.setdefault("signature", {"scheme": cls.signature_scheme.name,
                                      "headers": list(cls.signature_scheme.headers)})
    return card


def severity_table(provider: Provider) -> dict[str, str]:
    """{provider word: our severity} as this integration parses it (declared map + overrides)."""
    overrides = provider.options.get("severity_map") if isinstance(provider.options.get("severity_map"), dict) else None
    return {row["provider"]: row["severity"] for row in type(provider).severity_map.rows(overrides)}
