"""Login throttling (django-axes): who is the client, and which account the attempt names.

Settings in psa/settings.py (AXES_*): 5 failures lock the account (any address) and the address
(any account) for 15 minutes; a success resets the count. Unlock: Django admin > Axes > Access
attempts (delete the row), or ``manage.py axes_reset_username EMAIL`` / ``axes_reset_ip IP``.
"""

from __future__ import annotations

from django.conf import settings


def client_ip(request) -> str | None:
    """REMOTE_ADDR, or behind PSA_TRUSTED_PROXY_COUNT proxies the address the outermost of them saw.

    Each trusted proxy appends the address it received from to X-Forwarded-For, so the client's
    address is the N-th entry from the right; entries further left were written by the client and
    are ignored (a forged header cannot pick someone else's lockout).
    """
    remote = request.META.get("REMOTE_ADDR") or None
    proxies = getattr(settings, "PSA_TRUSTED_PROXY_COUNT", 0)
    if proxies <= 0:
        return remote
    chain = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
    return chain[-proxies] if len(chain) >= proxies else remote


def username(request, credentials) -> str | None:
    """The email the attempt names, lower-cased: 'Admin@X' and 'admin@x' are one account."""
    value = (credentials or {}).get(settings.AXES_USERNAME_FORM_FIELD) or request.POST.get(
        settings.AXES_USERNAME_FORM_FIELD
    )
    return value.strip().lower() if isinstance(value, str) else value
