"""Tenancy that fails closed.

A context variable holds the current tenant. The default manager of every
tenant-owned model filters by it and raises when none is set; the explicit,
grep-able escape is ``Model.objects.unscoped()``.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from typing import Any

from django.db import models

_current_tenant: contextvars.ContextVar[Any] = contextvars.ContextVar("psa_current_tenant", default=None)


class NoTenantError(RuntimeError):
    """A tenant-owned model was queried with no tenant in context."""


def get_current_tenant():
    return _current_tenant.get()


def get_current_tenant_id() -> int | None:
    tenant = _current_tenant.get()
    return getattr(tenant, "pk", tenant)


def set_current_tenant(tenant) -> contextvars.Token:
    return _current_tenant.set(tenant)


def reset_current_tenant(token: contextvars.Token) -> None:
    _current_tenant.reset(token)


@contextmanager
def tenant_context(tenant):
    """Run a block as ``tenant`` (a Tenant or a tenant id)."""
    token = _current_tenant.set(tenant)
    try:
        yield tenant
    finally:
        _current_tenant.reset(token)


class TenantQuerySet(models.QuerySet):
    """Built with no tenant in context, it matches nothing and raises when evaluated.

    Raising at evaluation (not construction) lets libraries that build querysets at
    import time (django-filter, DRF fields) work, while any read or write still fails
    closed; used as a subquery it contributes no rows.
    """

    _no_tenant = False

    def _clone(self):
        clone = super()._clone()
        clone._no_tenant = self._no_tenant
        return clone

    def _guard(self):
        if self._no_tenant:
            raise NoTenantError(
                f"{self.model.__name__} queried with no current tenant; use tenant_context() or .unscoped() explicitly"
            )

    def _fetch_all(self):
        self._guard()
        super()._fetch_all()

    def iterator(self, *args, **kwargs):
        self._guard()
        return super().iterator(*args, **kwargs)

    def count(self):
        self._guard()
        return super().count()

    def exists(self):
        self._guard()
        return super().exists()

    def aggregate(self, *args, **kwargs):
        self._guard()
        return super().aggregate(*args, **kwargs)

    def update(self, **kwargs):
        self._guard()
        return super().update(**kwargs)

    def delete(self):
        self._guard()
        return super().delete()


class TenantManager(models.Manager.from_queryset(TenantQuerySet)):
    """Default manager of tenant-owned models: scoped to the current tenant."""

    def get_queryset(self):
        tenant_id = get_current_tenant_id()
        qs = super().get_queryset()
        if tenant_id is None:
            qs = qs.filter(pk__in=[])
            qs._no_tenant = True
            return qs
        return qs.filter(tenant_id=tenant_id)

    def unscoped(self):
        """Every tenant's rows: for admin, migrations and cross-tenant jobs only."""
        return super().get_queryset()

    def create(self, **kwargs):
        if "tenant" not in kwargs and "tenant_id" not in kwargs:
            tenant_id = get_current_tenant_id()
            if tenant_id is None:
                raise NoTenantError(f"{self.model.__name__} created with no current tenant")
            kwargs["tenant_id"] = tenant_id
        return super().create(**kwargs)


class TenantModel(models.Model):
    """Base for every tenant-owned model."""

    tenant = models.ForeignKey("psa.Tenant", on_delete=models.CASCADE, related_name="+", editable=False)

    objects = TenantManager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if self.tenant_id is None:
            tenant_id = get_current_tenant_id()
            if tenant_id is None:
                raise NoTenantError(f"{type(self).__name__} saved with no current tenant")
            self.tenant_id = tenant_id
        super().save(*args, **kwargs)


class TenantMiddleware:
    """Sets the current tenant from the session user for web pages."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        tenant = None
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            membership = user.membership
            if membership is not None:
                tenant = membership.tenant
                request.membership = membership
        request.tenant = tenant
        token = _current_tenant.set(tenant)
        try:
            return self.get_response(request)
        finally:
            _current_tenant.reset(token)
