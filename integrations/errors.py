"""Provider-agnostic errors the UI and API can explain."""


class ProviderError(Exception):
    """Base: ``str(exc)`` is a message fit for an admin (never contains secrets)."""

    code = "provider_error"


class AuthFailed(ProviderError):
    code = "auth_failed"


class PermissionDenied(ProviderError):
    code = "permission_denied"


class RateLimited(ProviderError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(ProviderError):
    code = "unavailable"


class BadResponse(ProviderError):
    """The provider answered something we cannot read (HTML from a dashboard host, bad JSON)."""

    code = "bad_response"


class NotFound(ProviderError):
    code = "not_found"


class ReconnectRequired(ProviderError):
    """Credentials can no longer be renewed without a person (e.g. TOTP): admin must reconnect."""

    code = "reconnect_required"


class BlockedURL(ProviderError):
    code = "blocked_url"


class NotConfigured(ProviderError):
    code = "not_configured"


class NotResettable(ProviderError):
    """``reset_alert``: this alert cannot be reset in the provider, and that is nobody's failure (an alert
    the provider's API cannot address, a read-only key...). ``str(exc)`` says why; the ticket gets it as
    a note and the reset is recorded as skipped, not failed."""

    code = "not_resettable"


class WebhookParseError(Exception):
    """The webhook body cannot be read; intake answers 400 and logs it failed."""
