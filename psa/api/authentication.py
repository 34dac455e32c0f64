"""API authentication that also sets the current tenant for the request."""

from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication, TokenAuthentication

from psa.api.throttles import BadTokenThrottle
from psa.tenancy import set_current_tenant


def _bind_tenant(request, user):
    membership = user.membership
    if membership is None:
        return
    request._request.membership = membership
    request._request.tenant = membership.tenant
    # Reset by TenantMiddleware's finally (it owns the request-level context).
    set_current_tenant(membership.tenant)


class TenantTokenAuthentication(TokenAuthentication):
    """``Authorization: Token <key>``; wrong keys are throttled per address (psa.api.throttles)."""

    def authenticate(self, request):
        auth = request.META.get("HTTP_AUTHORIZATION", "")
        if not auth.lower().startswith("token "):
            return None  # no token offered: nothing to count
        guard = BadTokenThrottle()
        if guard.blocked(request):
            raise exceptions.Throttled(guard.wait(), detail="Too many wrong API tokens from this address.")
        try:
            result = super().authenticate(request)
        except exceptions.AuthenticationFailed:
            guard.record_failure(request)
            raise
        if result is not None:
            _bind_tenant(request, result[0])
        return result


class TenantSessionAuthentication(SessionAuthentication):
    def authenticate(self, request):
        result = super().authenticate(request)
        if result is not None:
            _bind_tenant(request, result[0])
        return result
