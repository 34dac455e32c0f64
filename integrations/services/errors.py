"""Turn failures into messages an admin can act on (never secrets, never a stack trace)."""

from __future__ import annotations

from integrations import errors as e
from integrations.crypto import CredentialDecryptError

# Prefix per provider error; ``str(exc)`` of a ProviderError is already admin-safe.
_PREFIX: list[tuple[type[Exception], str]] = [
    (e.AuthFailed, "Authentication failed"),
    (e.PermissionDenied, "The credentials lack a permission"),
    (e.RateLimited, "The provider is rate limiting us"),
    (e.Unavailable, "The provider is unreachable or unavailable"),
    (e.BadResponse, "The provider answered something we cannot read"),
    (e.NotFound, "Not found at the provider"),
    (e.ReconnectRequired, "Reconnect required"),
    (e.BlockedURL, "The provider URL is not allowed"),
    (e.NotConfigured, "Not configured"),
]


def describe_error(exc: BaseException) -> str:
    """A readable one-line explanation of ``exc`` for Job.error / Integration.last_error."""
    if isinstance(exc, e.ProviderError):
        detail = str(exc).strip()
        for cls, prefix in _PREFIX:
            if isinstance(exc, cls):
                if isinstance(exc, e.RateLimited) and exc.retry_after:
                    detail = f"{detail} (retry after {int(exc.retry_after)} s)".strip()
                return f"{prefix}: {detail}" if detail else prefix + "."
        return detail or "The provider reported an error."
    if isinstance(exc, CredentialDecryptError):
        return "The stored credentials cannot be decrypted with the configured keys; enter them again."
    # Anything else may carry request data in its message: name the type only.
    return f"Internal error ({type(exc).__name__}); the details are in the server log."


def error_code(exc: BaseException) -> str:
    return getattr(exc, "code", "internal_error") if isinstance(exc, e.ProviderError) else "internal_error"
