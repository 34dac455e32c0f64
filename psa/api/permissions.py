"""Role enforcement. Technicians work tickets; only admins change settings and integrations."""

from rest_framework.permissions import SAFE_METHODS, BasePermission

from psa.models import Role


def membership_of(request):
    return getattr(request._request, "membership", None) if hasattr(request, "_request") else getattr(request, "membership", None)


class IsTenantMember(BasePermission):
    message = "You are not a member of any tenant."

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and membership_of(request) is not None)


class IsTenantAdmin(IsTenantMember):
    message = "Only tenant admins can do this."

    def has_permission(self, request, view):
        m = membership_of(request)
        return super().has_permission(request, view) and m.role == Role.ADMIN


class AdminOrReadOnly(IsTenantMember):
    """Everyone in the tenant reads; admins write (reference data, settings)."""

    message = "Only tenant admins can change this."

    def has_permission(self, request, view):
        if not super().has_permission(request, view):
            return False
        return request.method in SAFE_METHODS or membership_of(request).role == Role.ADMIN


class DispatcherOrReadOnly(IsTenantMember):
    """Admins and dispatchers write; technicians read."""

    message = "Only admins and dispatchers can change this."

    def has_permission(self, request, view):
        if not super().has_permission(request, view):
            return False
        return request.method in SAFE_METHODS or membership_of(request).role in (Role.ADMIN, Role.DISPATCHER)
