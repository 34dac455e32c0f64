"""API throttles for the account-related surface (rates in REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]).

- ``bad_token``: wrong ``Authorization: Token`` keys, per client address. Past the rate every
  token from that address is answered 429 until the window passes, right or wrong, so guessing
  cannot be combined with checking.
- ``accounts``: member changes (POST/PATCH ``users/``), per admin: adding members is how an
  address's registration could be probed, and setting passwords is sensitive. Invitations'
  revoke and resend count here too (a resend sends an email).
- ``invitation_accept``: accepting an invitation (``POST invitations/accept/`` and the web page
  ``/accounts/invitations/<token>/``), per client address: no sign-in there, and each attempt
  hashes a password.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle

from psa.lockout import client_ip


class BadTokenThrottle(SimpleRateThrottle):
    scope = "bad_token"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": client_ip(request) or "unknown"}

    def blocked(self, request) -> bool:
        """Over the rate already (reads the history, records nothing). With the cache (Redis) down nothing
        can be counted: the API keeps answering rather than failing every request."""
        self.key = self.get_cache_key(request, None)
        try:
            self.history = self.cache.get(self.key, [])
        except Exception:  # noqa: BLE001 - fail open for the outage
            return False
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        return len(self.history) >= self.num_requests

    def record_failure(self, request) -> None:
        try:
            self.allow_request(request, None)
        except Exception:  # noqa: BLE001 - the cache is down: this failure goes uncounted
            pass


class AccountChangeThrottle(ScopedRateThrottle):
    """ScopedRateThrottle on writes only: everyone lists members (assignee pickers) freely."""

    def allow_request(self, request, view):
        if request.method in SAFE_METHODS:
            return True
        return super().allow_request(request, view)


class InvitationAcceptThrottle(SimpleRateThrottle):
    """Per client address; also used by the web page (a Django request works as well). With the cache
    (Redis) down nothing can be counted: accepting keeps working rather than failing."""

    scope = "invitation_accept"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": client_ip(request) or "unknown"}

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except Exception:  # noqa: BLE001 - fail open for the outage
            return True
