"""Base viewsets: the tenant comes from the authenticated user, never from request data.

Subclasses supply ``queryset_for_tenant()`` (or ``queryset``); the base owns
``get_queryset`` and ``get_object`` so a new endpoint cannot forget the scope.
"""

from __future__ import annotations

from django.db import transaction
from rest_framework import mixins, viewsets
from rest_framework.exceptions import ValidationError

from psa.tenancy import get_current_tenant, get_current_tenant_id


class TenantViewSetMixin:
    # Reject unknown fields in writes (clear 400 instead of silently ignoring).
    reject_unknown_fields = True

    def queryset_for_tenant(self):
        return self.queryset.model.objects.all()

    def get_queryset(self):
        qs = self.queryset_for_tenant()
        # Defence in depth: re-filter on the tenant even if a subclass used unscoped().
        return qs.filter(tenant_id=get_current_tenant_id())

    def get_serializer_context(self):
        ctx = super().get_serializer_context()
        ctx["tenant"] = get_current_tenant()
        return ctx

    def resolve_parents(self) -> None:
        """Hook for nested routes: look up the parent objects in the tenant (404 otherwise).

        Runs right after authentication and permissions and before any body validation,
        so another tenant's parent id answers 404 whatever the request body holds.
        """

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.resolve_parents()
        if self.reject_unknown_fields and request.method in ("POST", "PUT", "PATCH") and isinstance(request.data, dict):
            serializer_class = self.get_serializer_class()
            known = set(serializer_class().fields.keys()) if serializer_class else set()
            unknown = sorted(set(request.data.keys()) - known)
            if unknown and known:
                raise ValidationError(self.unknown_field_errors(unknown))

    def unknown_field_errors(self, unknown: list[str]) -> dict[str, list[str]]:
        """The 400 body for fields the endpoint does not take (a view may explain a field it refuses)."""
        return {k: ["Unknown field."] for k in unknown}

    def perform_create(self, serializer):
        # A savepoint: a unique-constraint race answers 409 (psa.api.exceptions) and leaves any
        # enclosing transaction usable for the rest of the request.
        with transaction.atomic():
            serializer.save(tenant=get_current_tenant())

    def perform_update(self, serializer):
        with transaction.atomic():
            super().perform_update(serializer)


class TenantModelViewSet(TenantViewSetMixin, viewsets.ModelViewSet):
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]


class TenantListCreateViewSet(
    TenantViewSetMixin, mixins.ListModelMixin, mixins.CreateModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    pass


class TenantReadOnlyViewSet(TenantViewSetMixin, viewsets.ReadOnlyModelViewSet):
    pass
