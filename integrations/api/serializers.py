"""Integration API shapes. Credentials are write-only: answers carry only {set, last4} hints."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from integrations import settings_schema
from integrations.base import Provider
from integrations.models import ExternalOrganization, Integration, Job
from integrations.services import config, status
from integrations.services.jobs import FRAMEWORK_KINDS
from psa.api.serializers import TenantModelSerializer
from psa.models import Client, ClientSite

# Keys of the representation a client may echo back in a PUT; they are ignored, not rejected.
READ_ONLY_KEYS = {
    "provider", "name", "status", "connected_at", "last_error", "account_name", "configured", "capabilities",
    "credential_fields", "credential_sets", "requires_base_url", "poll_interval_bounds", "next_poll_at",
    "last_poll_at", "last_poll_ok", "last_poll_error", "last_webhook_at", "counts", "updated_at",
    "webhook_header", "severity_map", "supports_polling", "settings_fields", "signature_scheme", "job_kinds",
    "docs", "provider_state",
}


def provider_info(cls: type[Provider]) -> dict[str, Any]:
    return {
        "provider": cls.slug,
        "name": cls.name,
        "capabilities": asdict(cls.capabilities),
        "credential_fields": [
            {"name": f.name, "label": f.label, "secret": f.secret, "required": f.required, "help_text": f.help_text}
            for f in cls.credential_fields
        ],
        "credential_sets": [list(cs.fields) for cs in cls.credential_sets],
        "requires_base_url": cls.requires_base_url,
        "poll_interval_bounds": list(cls.poll_interval_bounds),
        "severity_map": cls.severity_map.as_doc() if cls.severity_map else {},
        "settings_fields": settings_schema.describe(cls),
        "signature_scheme": cls.signature_scheme.name if cls.signature_scheme else None,
        "job_kinds": [{"kind": k.kind, "label": k.label} for k in (*FRAMEWORK_KINDS, *cls.job_kinds)],
        "docs": cls.docs,
    }


def integration_data(integration: Integration, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """The representation of one provider's integration (a placeholder when not set up yet)."""
    cls = config.provider_class(integration.provider)
    data = provider_info(cls)
    data.update({
        "configured": integration.pk is not None,
        "status": integration.status,
        "connected_at": integration.connected_at,
        "last_error": integration.last_error,
        "account_name": integration.account_name,
        "enabled": integration.enabled,
        "base_url": integration.base_url,
        "settings": settings_schema.options(cls, integration.settings) if settings_schema.declared(cls) else {},
        "credentials": config.credential_state(integration),
        "poll_interval_minutes": integration.poll_interval_minutes,
        "poll_enabled": integration.poll_enabled,
        "next_poll_at": integration.next_poll_at,
        "last_poll_at": integration.last_poll_at,
        "last_poll_ok": integration.last_poll_ok,
        "last_poll_error": integration.last_poll_error,
        "last_webhook_at": integration.last_webhook_at,
        "counts": counts or dict(status.EMPTY),
        "provider_state": integration.provider_state or {},
        "updated_at": integration.updated_at,
    })
    return data


class IntegrationSerializer(serializers.Serializer):
    """What ``integration_data`` answers (for the schema; the view builds the dict)."""

    provider = serializers.CharField()
    name = serializers.CharField()
    capabilities = serializers.DictField()
    credential_fields = serializers.ListField(child=serializers.DictField())
    credential_sets = serializers.ListField(child=serializers.ListField(child=serializers.CharField()))
    requires_base_url = serializers.BooleanField()
    poll_interval_bounds = serializers.ListField(child=serializers.IntegerField())
    severity_map = serializers.DictField()
    settings_fields = serializers.ListField(child=serializers.DictField())
    signature_scheme = serializers.CharField(allow_null=True)
    job_kinds = serializers.ListField(child=serializers.DictField())
    docs = serializers.CharField(allow_blank=True, allow_null=True)
    configured = serializers.BooleanField()
    status = serializers.CharField()
    connected_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField(allow_blank=True)
    account_name = serializers.CharField(allow_blank=True)
    enabled = serializers.BooleanField()
    base_url = serializers.CharField(allow_blank=True, allow_null=True)
    settings = serializers.DictField()
    credentials = serializers.DictField(help_text="Per credential field: {set, last4}; never the secret.")
    poll_interval_minutes = serializers.IntegerField()
    poll_enabled = serializers.BooleanField()
    next_poll_at = serializers.DateTimeField(allow_null=True)
    last_poll_at = serializers.DateTimeField(allow_null=True)
    last_poll_ok = serializers.BooleanField(allow_null=True)
    last_poll_error = serializers.CharField(allow_blank=True)
    last_webhook_at = serializers.DateTimeField(allow_null=True)
    counts = serializers.DictField()
    provider_state = serializers.DictField()
    updated_at = serializers.DateTimeField(allow_null=True)
    connection_test = serializers.DictField(required=False, help_text="After a save that tested the connection.")


@extend_schema_field(OpenApiTypes.OBJECT)
class CredentialsField(serializers.Field):
    """A JSON object of credential fields (values validated by the config service)."""

    def to_internal_value(self, data):
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise serializers.ValidationError("Must be an object of credential fields.")
        return data

    def to_representation(self, value):  # never used for output: answers are built by integration_data
        return {}


class IntegrationWriteSerializer(serializers.Serializer):
    base_url = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=500,
                                     trim_whitespace=True)
    credentials = CredentialsField(required=False, allow_null=True)
    settings = serializers.DictField(required=False)
    poll_interval_minutes = serializers.IntegerField(required=False)
    poll_enabled = serializers.BooleanField(required=False)
    enabled = serializers.BooleanField(required=False)

    def to_internal_value(self, data):
        if isinstance(data, dict):
            data = self._documented_aliases(data)
            unknown = sorted(set(data) - set(self.fields) - READ_ONLY_KEYS)
            if unknown:
                raise serializers.ValidationError({k: ["Unknown field."] for k in unknown})
            data = {k: v for k, v in data.items() if k in self.fields}
        return super().to_internal_value(data)

    def _documented_aliases(self, data: dict) -> dict:
        """API.md lists "(+ region or base_url)" beside a provider's credentials: ``credentials.base_url``
        means the top-level ``base_url``, and ``credentials.region`` (or a top-level ``region``) the
        ``settings.region`` of a provider that has one. Keys a provider declares as its own stay put."""
        cls = self.context.get("provider_cls")
        if cls is None:
            return data
        own = {f.name for f in cls.credential_fields}
        data = dict(data)
        creds = data.get("credentials")
        if isinstance(creds, dict):
            creds = dict(creds)
            if "base_url" in creds and "base_url" not in own:
                value = creds.pop("base_url")
                data.setdefault("base_url", value)
            if "region" in creds and "region" not in own:
                data.setdefault("region", creds.pop("region"))
            data["credentials"] = creds
        if "region" in data and any(f.name == "region" for f in cls.settings_fields):
            region = data.pop("region")
            settings = data.get("settings")
            if isinstance(settings, dict) or settings is None:
                data["settings"] = {"region": region, **(settings or {})}
        return data


class ExternalOrganizationSerializer(TenantModelSerializer):
    effective_client = serializers.SerializerMethodField(
        help_text="The client this organization resolves to (its own mapping or the nearest mapped ancestor's)."
    )
    mapped_via = serializers.SerializerMethodField(
        help_text="The organization (id) that carries the effective mapping: itself, the nearest mapped "
                  "ancestor, or null when nothing maps it."
    )
    subtree_device_count = serializers.SerializerMethodField(
        help_text="Devices of this organization and its descendants, as the provider counts them (null: unknown)."
    )

    class Meta:
        model = ExternalOrganization
        fields = ["id", "external_id", "name", "kind", "parent_external_id", "client", "site", "mapping",
                  "effective_client", "mapped_via", "device_count", "subtree_device_count", "missing_since",
                  "last_seen_at", "created_at", "create_site"]
        read_only_fields = ["id", "external_id", "name", "kind", "parent_external_id", "mapping",
                            "effective_client", "mapped_via", "device_count", "subtree_device_count",
                            "missing_since", "last_seen_at", "created_at"]
        extra_kwargs = {"client": {"allow_null": True}, "site": {"allow_null": True, "required": False}}

    def _tree(self, obj):
        tree = self.context.get("tree")
        return tree.get(obj.external_id) if tree is not None else None

    def get_mapped_via(self, obj) -> int | None:
        node = self._tree(obj)
        return node.via_pk if node is not None else (obj.pk if obj.client_id else None)

    def get_subtree_device_count(self, obj) -> int | None:
        node = self._tree(obj)
        return node.subtree_device_count if node is not None else obj.device_count

    def get_effective_client(self, obj) -> int | None:
        resolved = self.context.get("resolution")
        if resolved is None:
            return obj.client_id
        target = resolved.get(obj.external_id)
        return target[0] if target else None

    create_site = serializers.BooleanField(
        required=False, write_only=True,
        help_text="Map to the client's site named like this organization (e.g. a NinjaOne location), created "
                  "when the client has none; the client is the one given, this row's, or the one it inherits.")

    def validate(self, attrs):
        client: Client | None = attrs.get("client", getattr(self.instance, "client", None))
        site: ClientSite | None = attrs.get("site")
        if site is not None and client is None and "client" not in attrs:
            # A site alone (a location row inheriting its organization's client): the site names its client.
            attrs["client"] = client = site.client
        if site is not None and (client is None or site.client_id != client.pk):
            raise serializers.ValidationError({"site": ["The site must belong to the chosen client."]})
        if attrs.get("create_site"):
            if site is not None:
                raise serializers.ValidationError({"create_site": ["Give a site or create_site, not both."]})
            if client is None and self.instance is not None:
                resolved = (self.context.get("resolution") or {}).get(self.instance.external_id)
                client = Client.objects.filter(pk=resolved[0]).first() if resolved else None
                attrs["client"] = client
            if client is None:
                raise serializers.ValidationError({"create_site": ["Map a client first (here or on a parent)."]})
        return attrs


class JobSerializer(TenantModelSerializer):
    provider = serializers.CharField(source="integration.provider", read_only=True, default=None)

    class Meta:
        model = Job
        fields = ["id", "kind", "provider", "state", "progress", "progress_detail", "summary", "error",
                  "created_by", "created_at", "started_at", "finished_at"]
        read_only_fields = fields
