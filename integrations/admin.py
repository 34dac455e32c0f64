"""Django admin (operators only): read-mostly views; ciphertexts are never shown or editable here."""

from __future__ import annotations

from django.contrib import admin
from django.db import models

from .models import ExternalOrganization, Integration, Job


class UnscopedAdmin(admin.ModelAdmin):
    """The admin site is cross-tenant by design (operators); tenant managers would refuse it."""

    def get_queryset(self, request):
        return self.model.objects.unscoped().select_related("tenant")


@admin.register(Integration)
class IntegrationAdmin(UnscopedAdmin):
    list_display = ["provider", "tenant", "status", "enabled", "connected_at", "last_poll_at", "last_poll_ok"]
    list_filter = ["provider", "status", "enabled"]
    search_fields = ["tenant__name", "account_name"]
    # Secrets stay out: the ciphertext fields are excluded, hints show only "set"/last 4.
    exclude = ["credentials_ciphertext", "webhook_secret_ciphertext"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    readonly_fields = [
        "tenant", "provider", "status", "connected_at", "last_error", "account_name", "credentials_hint",
        "webhook_key", "last_webhook_at", "next_poll_at", "last_poll_at", "last_poll_ok", "last_poll_error",
        "poll_cursor", "poll_started_at", "created_at", "updated_at",
    ]

    def has_add_permission(self, request):  # integrations are created through the tenant's settings/API
        return False


@admin.register(ExternalOrganization)
class ExternalOrganizationAdmin(UnscopedAdmin):
    list_display = ["name", "external_id", "integration", "tenant", "client", "mapping", "missing_since"]
    list_filter = ["mapping"]  # (a related-field filter would query Integration without a tenant)
    search_fields = ["name", "external_id", "integration__provider", "tenant__name"]
    readonly_fields = ["tenant", "integration", "external_id", "name", "kind", "parent_external_id", "client",
                       "site", "mapping", "missing_since", "last_seen_at", "created_at"]

    def has_add_permission(self, request):
        return False


@admin.register(Job)
class JobAdmin(UnscopedAdmin):
    list_display = ["id", "kind", "integration", "tenant", "state", "progress", "created_at", "finished_at"]
    list_filter = ["kind", "state"]
    readonly_fields = ["tenant", "kind", "integration", "state", "progress", "progress_detail", "summary", "error",
                       "created_by", "created_at", "started_at", "finished_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
