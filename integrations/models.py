"""Integrations per tenant, external organizations and long-running jobs."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models

from psa.tenancy import TenantModel


def new_webhook_key() -> str:
    return secrets.token_urlsafe(24)


class IntegrationStatus(models.TextChoices):
    NOT_CONFIGURED = "not_configured", "Not configured"
    CONNECTED = "connected", "Connected"
    ERROR = "error", "Error"


class Integration(TenantModel):
    provider = models.CharField(max_length=30)
    status = models.CharField(max_length=20, choices=IntegrationStatus.choices, default=IntegrationStatus.NOT_CONFIGURED)
    enabled = models.BooleanField(default=True)
    connected_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    account_name = models.CharField(max_length=255, blank=True)
    base_url = models.URLField(max_length=500, blank=True)
    settings = models.JSONField(default=dict, blank=True)
    # Encrypted JSON (integrations.crypto): write-only everywhere.
    credentials_ciphertext = models.TextField(blank=True)
    # Non-secret hints shown back ("set", last 4 characters).
    credentials_hint = models.JSONField(default=dict, blank=True)
    # An OAuth token (access + refresh) obtained with the credentials: encrypted like them, but its own
    # column, so a token renewal and an admin's credential edit never overwrite each other.
    token_ciphertext = models.TextField(blank=True)
    webhook_key = models.CharField(max_length=64, unique=True, default=new_webhook_key)
    webhook_secret_ciphertext = models.TextField(blank=True)
    last_webhook_at = models.DateTimeField(null=True, blank=True)
    # Polling
    poll_interval_minutes = models.PositiveIntegerField(default=15)
    poll_enabled = models.BooleanField(default=True)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    last_poll_at = models.DateTimeField(null=True, blank=True)
    last_poll_ok = models.BooleanField(null=True)
    last_poll_error = models.TextField(blank=True)
    poll_cursor = models.TextField(blank=True)
    # Fences concurrent polls: set while one runs (see integrations.services.polling).
    poll_started_at = models.DateTimeField(null=True, blank=True)
    # What the provider learned about this connection (never secrets): the last connection test's
    # details, a key's access level, a token's expiry... Written by integrations.services.config
    # (``remember``), shown by the API as ``provider_state``.
    provider_state = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "provider"], name="uniq_integration_per_provider")]
        indexes = [models.Index(fields=["status", "next_poll_at"])]

    def __str__(self) -> str:
        return f"{self.provider} ({self.tenant_id})"

    # Credential helpers live in integrations.crypto; thin wrappers for providers.
    def get_credentials(self) -> dict:
        from .crypto import decrypt_credentials

        if not self.credentials_ciphertext:
            return {}
        return decrypt_credentials(self, self.credentials_ciphertext)

    def set_credentials(self, credentials: dict) -> None:
        from .crypto import encrypt_credentials

        self.credentials_ciphertext = encrypt_credentials(self, credentials) if credentials else ""

    def get_token(self) -> dict | None:
        from .crypto import decrypt_value

        return decrypt_value(self, "token", self.token_ciphertext) if self.token_ciphertext else None

    def set_token(self, token: dict | None) -> None:
        from .crypto import encrypt_value

        self.token_ciphertext = encrypt_value(self, "token", token) if token else ""

    def get_webhook_secret(self) -> str:
        from .crypto import decrypt_secret

        return decrypt_secret(self, self.webhook_secret_ciphertext) if self.webhook_secret_ciphertext else ""

    def set_webhook_secret(self, secret: str) -> None:
        from .crypto import encrypt_secret

        self.webhook_secret_ciphertext = encrypt_secret(self, secret)


class MappingKind(models.TextChoices):
    MANUAL = "manual", "Manual"
    AUTO = "auto", "Automatic"


class ExternalOrganization(TenantModel):
    """A provider's organization (client, site, group...) and its mapping to our client."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="organizations")
    external_id = models.CharField(max_length=255)
    name = models.CharField(max_length=500)
    kind = models.CharField(max_length=50, blank=True)
    parent_external_id = models.CharField(max_length=255, blank=True, null=True)
    client = models.ForeignKey("psa.Client", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    site = models.ForeignKey("psa.ClientSite", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    mapping = models.CharField(max_length=10, choices=MappingKind.choices, null=True, blank=True)
    missing_since = models.DateTimeField(null=True, blank=True, help_text="No longer reported by the provider")
    # Devices directly in this organization as the provider counts them (None: it did not say).
    device_count = models.PositiveIntegerField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["integration", "external_id"], name="uniq_external_org")]
        indexes = [models.Index(fields=["tenant", "integration", "client"])]

    def __str__(self) -> str:
        return self.name


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Job(TenantModel):
    """A long operation (org sync, device sync, poll, backfill) run by Celery."""

    kind = models.CharField(max_length=50)
    integration = models.ForeignKey(Integration, null=True, blank=True, on_delete=models.CASCADE, related_name="jobs")
    state = models.CharField(max_length=10, choices=JobState.choices, default=JobState.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent, 0-100")
    progress_detail = models.JSONField(default=dict, blank=True)
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "integration", "kind", "-created_at"])]
